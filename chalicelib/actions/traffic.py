"""Out of the traffic path, right after the swap: Auto Scaling, load balancers, Elastic IP.

An isolated instance left in its Auto Scaling group fails health checks and is terminated with its
evidence; one left behind a load balancer keeps receiving users. Both are undone within seconds
of isolation, well inside any health-check window, and never in front of it.
"""

from chalicelib.actions import Action, OnRelease, apply_each, change

ASG_TAG = "aws:autoscaling:groupName"  # on every instance of a group: no lookup needed


class LeaveAutoScalingGroup(Action):
    """Protect the instance from scale-in, then detach it keeping desired capacity (the group
    launches a replacement), or put it in Standby (AUTOSCALING_MODE=standby)."""

    name = "leave-autoscaling-group"
    permissions = ("autoscaling:SetInstanceProtection", "autoscaling:DetachInstances",
                   "autoscaling:EnterStandby")
    on_release = OnRelease.NOT_REATTACHED  # the group has replaced the instance

    def _group(self, target):
        tags = {t["Key"]: t["Value"] for t in target.pre_state.get("tags", [])}
        return tags.get(ASG_TAG)

    def plan(self, target):
        group = self._group(target)
        if not group:
            return []
        outcome = {"detach": "detached", "standby": "in standby"}[target.settings.autoscaling_mode]
        return [change(self.name, target.instance_id, "autoscaling-group", group, outcome)]

    def apply(self, target):
        group = self._group(target)
        if not group:
            return []
        autoscaling = target.client("autoscaling")

        def make(record):
            if record["attribute"] == "protected-from-scale-in":
                autoscaling.set_instance_protection(AutoScalingGroupName=group,
                                                    InstanceIds=[target.instance_id],
                                                    ProtectedFromScaleIn=True)
            else:
                self._leave(autoscaling, group, target)

        protected = change(self.name, target.instance_id, "protected-from-scale-in", False, True)
        return apply_each([protected] + self.plan(target), make)

    def _leave(self, autoscaling, group, target):
        if target.settings.autoscaling_mode == "standby":
            autoscaling.enter_standby(AutoScalingGroupName=group, InstanceIds=[target.instance_id],
                                      ShouldDecrementDesiredCapacity=False)
        else:
            autoscaling.detach_instances(AutoScalingGroupName=group,
                                         InstanceIds=[target.instance_id],
                                         ShouldDecrementDesiredCapacity=False)

    def undo(self, target, record):
        """Not re-attached on release: the group launched a replacement (the report says so)."""


class LeaveTargetGroups(Action):
    """Deregister from every target group (of the instance's VPC) that holds it."""

    name = "leave-target-groups"
    permissions = ("elasticloadbalancing:DescribeTargetGroups",
                   "elasticloadbalancing:DescribeTargetHealth",
                   "elasticloadbalancing:DeregisterTargets")
    undo_permissions = ("elasticloadbalancing:RegisterTargets",)
    on_release = OnRelease.ON_REQUEST

    def _registrations(self, target):
        elbv2 = target.client("elbv2")
        vpcs = {i["vpc_id"] for i in target.pre_state["interfaces"]}
        for page in elbv2.get_paginator("describe_target_groups").paginate():
            for group in page["TargetGroups"]:
                if group.get("VpcId") not in vpcs or group.get("TargetType", "instance") != "instance":
                    continue
                for health in elbv2.describe_target_health(
                        TargetGroupArn=group["TargetGroupArn"])["TargetHealthDescriptions"]:
                    if health["Target"]["Id"] == target.instance_id:
                        yield group["TargetGroupArn"], health["Target"]

    def plan(self, target):
        return [change(self.name, arn, "target", registered, None)
                for arn, registered in self._registrations(target)]

    def apply(self, target):
        elbv2 = target.client("elbv2")
        return apply_each(self.plan(target), lambda record: elbv2.deregister_targets(
            TargetGroupArn=record["resource"], Targets=[record["before"]]))

    def undo(self, target, record):
        target.client("elbv2").register_targets(TargetGroupArn=record["resource"],
                                                Targets=[record["before"]])

    def foreign(self, target, record):
        registered = (record.get("before") or {}).get("Id")
        if registered != target.instance_id:
            return f"target {registered!r} is not instance {target.instance_id}"
        return None


class LeaveClassicLoadBalancers(Action):
    """Deregister from every classic load balancer that lists the instance."""

    name = "leave-classic-load-balancers"
    permissions = ("elasticloadbalancing:DescribeLoadBalancers",
                   "elasticloadbalancing:DeregisterInstancesFromLoadBalancer")
    undo_permissions = ("elasticloadbalancing:RegisterInstancesWithLoadBalancer",)
    on_release = OnRelease.ON_REQUEST

    def plan(self, target):
        elb = target.client("elb")
        return [change(self.name, balancer["LoadBalancerName"], "instance", target.instance_id, None)
                for page in elb.get_paginator("describe_load_balancers").paginate()
                for balancer in page["LoadBalancerDescriptions"]
                if any(i["InstanceId"] == target.instance_id for i in balancer.get("Instances", []))]

    def apply(self, target):
        elb = target.client("elb")
        return apply_each(self.plan(target), lambda record: elb.deregister_instances_from_load_balancer(
            LoadBalancerName=record["resource"], Instances=[{"InstanceId": target.instance_id}]))

    def foreign(self, target, record):
        if record.get("before") != target.instance_id:
            return f"{record.get('before')!r} is not instance {target.instance_id}"
        return None

    def undo(self, target, record):
        target.client("elb").register_instances_with_load_balancer(
            LoadBalancerName=record["resource"], Instances=[{"InstanceId": target.instance_id}])


class DisassociateElasticIp(Action):
    """Take the instance's Elastic IPs away (DISASSOCIATE_ELASTIC_IP=true; off by default)."""

    name = "disassociate-elastic-ip"
    permissions = ("ec2:DescribeAddresses", "ec2:DisassociateAddress")
    undo_permissions = ("ec2:AssociateAddress",)
    on_release = OnRelease.UNDONE

    def plan(self, target):
        addresses = target.ec2.describe_addresses(Filters=[
            {"Name": "instance-id", "Values": [target.instance_id]}])["Addresses"]
        return [change(self.name, a["AllocationId"], "association",
                       {"AssociationId": a["AssociationId"], "PublicIp": a.get("PublicIp"),
                        "NetworkInterfaceId": a.get("NetworkInterfaceId"),
                        "PrivateIpAddress": a.get("PrivateIpAddress")}, None)
                for a in addresses if a.get("AssociationId")]

    def apply(self, target):
        return apply_each(self.plan(target), lambda record: target.ec2.disassociate_address(
            AssociationId=record["before"]["AssociationId"]))

    def foreign(self, target, record):
        interfaces = {i["id"] for i in target.pre_state["interfaces"]}
        interface = (record.get("before") or {}).get("NetworkInterfaceId")
        if interface not in interfaces:
            return f"{interface!r} was not an interface of {target.instance_id}"
        return None

    def undo(self, target, record):
        before = record["before"]
        target.ec2.associate_address(AllocationId=record["resource"],
                                     NetworkInterfaceId=before["NetworkInterfaceId"],
                                     PrivateIpAddress=before["PrivateIpAddress"])
