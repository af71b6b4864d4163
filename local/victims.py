"""Victims that look like real instances, for the demo, the tests and the benchmarks: launched
with SecurityGroupIds, further interfaces carrying other groups, extra volumes, an instance
profile, shutdown behaviour `terminate` (so that containment has something to change) and the
metadata options of today's AMIs (IMDSv2 required, hop limit 2: what release must keep)."""

import json
import time


def make_victim(stack, interfaces: int = 2, volumes: int = 2, profile: bool = True,
                tags: dict | None = None, vpc: dict | None = None,
                shutdown_behaviour: str = "terminate", account: str | None = None,
                region: str = "us-east-1", instance_type: str = "t3.micro") -> dict:
    """An instance like a real one: launched with SecurityGroupIds, further interfaces carrying
    other groups, extra volumes, an instance profile. Returns ids of what was made."""
    def client(service):
        return stack.client(service, region=region, account=account or stack.account)

    ec2 = client("ec2")
    if vpc is not None:  # its VPC and subnet only (another victim may be given for them)
        vpc = {"vpc_id": vpc["vpc_id"], "subnet_id": vpc["subnet_id"]}
    if vpc is None:
        vpc_id = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
        subnet = ec2.create_subnet(VpcId=vpc_id, CidrBlock="10.0.1.0/24",
                                   AvailabilityZone=f"{region}a")["Subnet"]["SubnetId"]
        vpc = {"vpc_id": vpc_id, "subnet_id": subnet}
    groups = [ec2.create_security_group(GroupName=f"app-{n}-{time.monotonic_ns()}",
                                        Description="app", VpcId=vpc["vpc_id"])["GroupId"]
              for n in range(interfaces + 1)]
    launch = {"ImageId": "ami-12345678", "MinCount": 1, "MaxCount": 1, "InstanceType": instance_type,
              "SubnetId": vpc["subnet_id"], "SecurityGroupIds": groups[:2],
              "InstanceInitiatedShutdownBehavior": shutdown_behaviour,
              "MetadataOptions": {"HttpTokens": "required", "HttpPutResponseHopLimit": 2}}
    if profile:
        launch["IamInstanceProfile"] = {"Name": make_instance_profile(client("iam"))}
    if tags:
        launch["TagSpecifications"] = [{"ResourceType": "instance", "Tags": [
            {"Key": k, "Value": v} for k, v in tags.items()]}]
    instance = ec2.run_instances(**launch)["Instances"][0]
    instance_id = instance["InstanceId"]
    enis = {instance["NetworkInterfaces"][0]["NetworkInterfaceId"]: sorted(groups[:2])}
    for index in range(1, interfaces):
        eni = ec2.create_network_interface(SubnetId=vpc["subnet_id"], Groups=[groups[index + 1]])[
            "NetworkInterface"]["NetworkInterfaceId"]
        ec2.attach_network_interface(NetworkInterfaceId=eni, InstanceId=instance_id,
                                     DeviceIndex=index)
        enis[eni] = [groups[index + 1]]
    for index in range(1, volumes):
        volume = ec2.create_volume(AvailabilityZone=f"{region}a", Size=8)["VolumeId"]
        ec2.attach_volume(VolumeId=volume, InstanceId=instance_id, Device=_device(index))
    return {"instance_id": instance_id, "interfaces": enis, **vpc}


def _device(index: int) -> str:
    """The device name of the `index`th extra volume: /dev/sdf to /dev/sdp, then /dev/xvdba on."""
    if index < 11:
        return f"/dev/sd{'fghijklmnop'[index]}"
    letters = "abcdefghijklmnopqrstuvwxyz"
    return f"/dev/xvd{letters[1 + (index - 11) // 26]}{letters[(index - 11) % 26]}"


def make_instance_profile(iam) -> str:
    """An instance profile holding a role of the same name (EC2 may assume it); its name."""
    name = f"app-server-{time.monotonic_ns()}"
    iam.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps({
        "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole",
                                                "Principal": {"Service": "ec2.amazonaws.com"}}]}))
    iam.create_instance_profile(InstanceProfileName=name)
    iam.add_role_to_instance_profile(InstanceProfileName=name, RoleName=name)
    return name


def make_fleet_member(stack, target_groups: int = 2, profile: bool = False) -> dict:
    """An instance of an Auto Scaling group (launch template), registered in `target_groups`
    target groups of an application load balancer and in a classic load balancer, with an
    Elastic IP: the setting in which an isolated instance would be terminated or keep serving;
    with `profile`, it carries an instance profile too."""
    ec2, autoscaling = stack.client("ec2"), stack.client("autoscaling")
    elbv2, elb = stack.client("elbv2"), stack.client("elb")
    vpc_id = ec2.create_vpc(CidrBlock="10.1.0.0/16")["Vpc"]["VpcId"]
    subnets = [ec2.create_subnet(VpcId=vpc_id, CidrBlock=f"10.1.{n}.0/24",
                                 AvailabilityZone=f"us-east-1{zone}")["Subnet"]["SubnetId"]
               for n, zone in ((1, "a"), (2, "b"))]
    group = ec2.create_security_group(GroupName=f"web-{time.monotonic_ns()}", Description="web",
                                      VpcId=vpc_id)["GroupId"]
    ec2.create_launch_template(LaunchTemplateName="web-template", LaunchTemplateData={
        "ImageId": "ami-12345678", "InstanceType": "t3.micro", "SecurityGroupIds": [group]})
    autoscaling.create_auto_scaling_group(
        AutoScalingGroupName="web", LaunchTemplate={"LaunchTemplateName": "web-template"},
        MinSize=1, MaxSize=4, DesiredCapacity=2, VPCZoneIdentifier=",".join(subnets))
    members = autoscaling.describe_auto_scaling_groups(AutoScalingGroupNames=["web"])[
        "AutoScalingGroups"][0]["Instances"]
    instance_id = members[0]["InstanceId"]
    balancer = elbv2.create_load_balancer(Name="web-alb", Subnets=subnets,
                                          SecurityGroups=[group])["LoadBalancers"][0]
    arns = []
    for n in range(target_groups):
        arn = elbv2.create_target_group(Name=f"web-{n}", Protocol="HTTP", Port=80 + n,
                                        VpcId=vpc_id)["TargetGroups"][0]["TargetGroupArn"]
        elbv2.create_listener(LoadBalancerArn=balancer["LoadBalancerArn"], Protocol="HTTP",
                              Port=80 + n, DefaultActions=[{"Type": "forward",
                                                            "TargetGroupArn": arn}])
        elbv2.register_targets(TargetGroupArn=arn, Targets=[{"Id": m["InstanceId"]}
                                                            for m in members])
        arns.append(arn)
    elb.create_load_balancer(LoadBalancerName="web-classic", AvailabilityZones=["us-east-1a"],
                             Listeners=[{"Protocol": "HTTP", "LoadBalancerPort": 80,
                                         "InstancePort": 80}])
    elb.register_instances_with_load_balancer(LoadBalancerName="web-classic", Instances=[
        {"InstanceId": m["InstanceId"]} for m in members])
    allocation = ec2.allocate_address(Domain="vpc")["AllocationId"]
    ec2.associate_address(AllocationId=allocation, InstanceId=instance_id)
    if profile:
        ec2.associate_iam_instance_profile(InstanceId=instance_id, IamInstanceProfile={
            "Name": make_instance_profile(stack.client("iam"))})
    eni = ec2.describe_instances(InstanceIds=[instance_id])["Reservations"][0]["Instances"][0][
        "NetworkInterfaces"][0]["NetworkInterfaceId"]
    return {"instance_id": instance_id, "vpc_id": vpc_id, "group": "web", "target_groups": arns,
            "classic": "web-classic", "allocation_id": allocation, "interfaces": {eni: [group]},
            "members": [m["InstanceId"] for m in members]}
