"""Victims that look like real instances, for the demo, the tests and the benchmarks: launched
with SecurityGroupIds, further interfaces carrying other groups, extra volumes, an instance
profile, and shutdown behaviour `terminate` (so that containment has something to change)."""

import json
import time


def make_victim(stack, interfaces: int = 2, volumes: int = 2, profile: bool = True,
                tags: dict | None = None, vpc: dict | None = None,
                shutdown_behaviour: str = "terminate") -> dict:
    """An instance like a real one: launched with SecurityGroupIds, further interfaces carrying
    other groups, extra volumes, an instance profile. Returns ids of what was made."""
    ec2 = stack.client("ec2")
    if vpc is None:
        vpc_id = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
        subnet = ec2.create_subnet(VpcId=vpc_id, CidrBlock="10.0.1.0/24",
                                   AvailabilityZone="us-east-1a")["Subnet"]["SubnetId"]
        vpc = {"vpc_id": vpc_id, "subnet_id": subnet}
    groups = [ec2.create_security_group(GroupName=f"app-{n}-{time.monotonic_ns()}",
                                        Description="app", VpcId=vpc["vpc_id"])["GroupId"]
              for n in range(interfaces + 1)]
    launch = {"ImageId": "ami-12345678", "MinCount": 1, "MaxCount": 1, "InstanceType": "t3.micro",
              "SubnetId": vpc["subnet_id"], "SecurityGroupIds": groups[:2],
              "InstanceInitiatedShutdownBehavior": shutdown_behaviour}
    if profile:
        iam = stack.client("iam")
        name = f"app-server-{time.monotonic_ns()}"
        iam.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps({
            "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole",
                                                    "Principal": {"Service": "ec2.amazonaws.com"}}]}))
        iam.create_instance_profile(InstanceProfileName=name)
        iam.add_role_to_instance_profile(InstanceProfileName=name, RoleName=name)
        launch["IamInstanceProfile"] = {"Name": name}
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
        volume = ec2.create_volume(AvailabilityZone="us-east-1a", Size=8)["VolumeId"]
        ec2.attach_volume(VolumeId=volume, InstanceId=instance_id, Device=f"/dev/sd{'fghijklmnop'[index]}")
    return {"instance_id": instance_id, "interfaces": enis, **vpc}
