"""Out of the traffic path: the Auto Scaling group, target groups, classic load balancers and
Elastic IPs."""

import pytest

from chalicelib import actions
from chalicelib.actions.traffic import (
    DisassociateElasticIp,
    LeaveAutoScalingGroup,
    LeaveClassicLoadBalancers,
    LeaveTargetGroups,
)

COVERS = (LeaveAutoScalingGroup, LeaveTargetGroups, LeaveClassicLoadBalancers,
          DisassociateElasticIp)


# -- LeaveAutoScalingGroup --------------------------------------------------------------------
def _membership(world, instance_id):
    """(lifecycle state, protected from scale-in) in group "web"; None once detached."""
    group = world.client("autoscaling").describe_auto_scaling_groups(
        AutoScalingGroupNames=["web"])["AutoScalingGroups"][0]
    return next(((i["LifecycleState"], i["ProtectedFromScaleIn"]) for i in group["Instances"]
                 if i["InstanceId"] == instance_id), None)


def _group(world):
    return world.client("autoscaling").describe_auto_scaling_groups(
        AutoScalingGroupNames=["web"])["AutoScalingGroups"][0]


@pytest.mark.parametrize("mode, outcome", [("detach", "detached"), ("standby", "in standby")])
def test_leave_group_plan_says_how_and_changes_nothing(world, fleet, configure, mode, outcome):
    target = world.target(fleet["instance_id"], configure(AUTOSCALING_MODE=mode))

    assert LeaveAutoScalingGroup().plan(target) == [actions.change(
        "leave-autoscaling-group", fleet["instance_id"], "autoscaling-group", "web", outcome)]
    assert _membership(world, fleet["instance_id"]) == ("InService", False)


def test_leave_group_detaches_keeping_capacity(world, fleet, settings):
    target = world.target(fleet["instance_id"], settings)

    made = LeaveAutoScalingGroup().apply(target)

    assert made == [
        actions.change("leave-autoscaling-group", fleet["instance_id"],
                       "protected-from-scale-in", False, True),
        actions.change("leave-autoscaling-group", fleet["instance_id"], "autoscaling-group",
                       "web", "detached")]
    group = _group(world)
    assert _membership(world, fleet["instance_id"]) is None
    assert group["DesiredCapacity"] == 2 and len(group["Instances"]) == 2  # a replacement


def test_leave_group_in_standby_mode_stays_in_the_group_protected(world, fleet, configure):
    target = world.target(fleet["instance_id"], configure(AUTOSCALING_MODE="standby"))

    made = LeaveAutoScalingGroup().apply(target)

    assert [r["after"] for r in made] == [True, "in standby"]
    assert _membership(world, fleet["instance_id"]) == ("Standby", True)
    assert _group(world)["DesiredCapacity"] == 2


def test_leave_group_undo_does_not_reattach(world, fleet, settings):
    target = world.target(fleet["instance_id"], settings)
    made = LeaveAutoScalingGroup().apply(target)

    for record in made:
        LeaveAutoScalingGroup().undo(target, record)

    assert _membership(world, fleet["instance_id"]) is None


def test_leave_group_failure_to_detach_keeps_the_protection_made(world, fleet, settings):
    target = world.target(fleet["instance_id"], settings)
    world.fail("autoscaling", "DetachInstances", code="AccessDenied")

    with pytest.raises(actions.PartialFailure) as raised:
        LeaveAutoScalingGroup().apply(target)

    assert raised.value.made == [actions.change(
        "leave-autoscaling-group", fleet["instance_id"], "protected-from-scale-in", False, True)]
    assert _membership(world, fleet["instance_id"]) == ("InService", True)


def test_leave_group_has_nothing_to_do_outside_a_group(world, victim, settings):
    target = world.target(victim["instance_id"], settings)
    assert LeaveAutoScalingGroup().plan(target) == LeaveAutoScalingGroup().apply(target) == []


# -- LeaveTargetGroups ------------------------------------------------------------------------
def _registered(world, arn):
    return sorted(h["Target"]["Id"] for h in world.client("elbv2").describe_target_health(
        TargetGroupArn=arn)["TargetHealthDescriptions"])


def _target_records(fleet):
    return [actions.change("leave-target-groups", arn, "target",
                           {"Id": fleet["instance_id"], "Port": 80 + n}, None)
            for n, arn in enumerate(fleet["target_groups"])]


def test_leave_target_groups_plan_names_each_registration(world, fleet, settings):
    target = world.target(fleet["instance_id"], settings)

    assert LeaveTargetGroups().plan(target) == _target_records(fleet)
    for arn in fleet["target_groups"]:
        assert _registered(world, arn) == sorted(fleet["members"])


def test_leave_target_groups_deregisters_and_undo_registers_again(world, fleet, settings):
    target = world.target(fleet["instance_id"], settings)
    others = sorted(set(fleet["members"]) - {fleet["instance_id"]})

    made = LeaveTargetGroups().apply(target)

    assert made == _target_records(fleet)
    for arn in fleet["target_groups"]:
        assert _registered(world, arn) == others
    for record in made:
        LeaveTargetGroups().undo(target, record)
    for arn in fleet["target_groups"]:
        assert _registered(world, arn) == sorted(fleet["members"])


def test_leave_target_groups_partial_failure_carries_the_first(world, fleet, settings):
    target = world.target(fleet["instance_id"], settings)
    first, second = fleet["target_groups"]
    world.fail("elbv2", "DeregisterTargets", calls=(2,), code="AccessDenied")

    with pytest.raises(actions.PartialFailure) as raised:
        LeaveTargetGroups().apply(target)

    assert raised.value.made == _target_records(fleet)[:1]
    assert fleet["instance_id"] not in _registered(world, first)
    assert fleet["instance_id"] in _registered(world, second)


# -- LeaveClassicLoadBalancers ----------------------------------------------------------------
@pytest.fixture
def two_classic(world, fleet):
    """The fleet member behind a second classic load balancer as well."""
    elb = world.client("elb")
    elb.create_load_balancer(LoadBalancerName="web-classic-2", AvailabilityZones=["us-east-1a"],
                             Listeners=[{"Protocol": "HTTP", "LoadBalancerPort": 81,
                                         "InstancePort": 81}])
    elb.register_instances_with_load_balancer(LoadBalancerName="web-classic-2", Instances=[
        {"InstanceId": fleet["instance_id"]}])
    return ["web-classic", "web-classic-2"]


def _behind(world, balancer):
    described = world.client("elb").describe_load_balancers(LoadBalancerNames=[balancer])
    return sorted(i["InstanceId"] for i in described["LoadBalancerDescriptions"][0]["Instances"])


def _classic_records(fleet, balancers):
    return [actions.change("leave-classic-load-balancers", b, "instance", fleet["instance_id"],
                           None) for b in balancers]


def test_leave_classic_plan_names_each_balancer(world, fleet, two_classic, settings):
    target = world.target(fleet["instance_id"], settings)

    assert LeaveClassicLoadBalancers().plan(target) == _classic_records(fleet, two_classic)
    assert all(fleet["instance_id"] in _behind(world, b) for b in two_classic)


def test_leave_classic_deregisters_and_undo_registers_again(world, fleet, two_classic, settings):
    target = world.target(fleet["instance_id"], settings)

    made = LeaveClassicLoadBalancers().apply(target)

    assert made == _classic_records(fleet, two_classic)
    assert not any(fleet["instance_id"] in _behind(world, b) for b in two_classic)
    assert _behind(world, "web-classic") == sorted(set(fleet["members"]) - {fleet["instance_id"]})
    for record in made:
        LeaveClassicLoadBalancers().undo(target, record)
    assert all(fleet["instance_id"] in _behind(world, b) for b in two_classic)


def test_leave_classic_partial_failure_carries_the_first(world, fleet, two_classic, settings):
    target = world.target(fleet["instance_id"], settings)
    world.fail("elb", "DeregisterInstancesFromLoadBalancer", calls=(2,))

    with pytest.raises(actions.PartialFailure) as raised:
        LeaveClassicLoadBalancers().apply(target)

    assert raised.value.made == _classic_records(fleet, two_classic)[:1]
    assert fleet["instance_id"] not in _behind(world, two_classic[0])
    assert fleet["instance_id"] in _behind(world, two_classic[1])


# -- DisassociateElasticIp --------------------------------------------------------------------
@pytest.fixture
def addresses(world, victim):
    """Two Elastic IPs on the victim's primary interface (on its primary and a secondary private
    address), associated by instance: {allocation id: interface id}. (moto lists an address by
    instance only when it was associated by instance: one associated with a secondary interface
    would be missed, where AWS lists it.)"""
    ec2, primary = world.client("ec2"), next(iter(victim["interfaces"]))
    ec2.assign_private_ip_addresses(NetworkInterfaceId=primary, SecondaryPrivateIpAddressCount=1)
    found = {}
    for private in ec2.describe_network_interfaces(NetworkInterfaceIds=[primary])[
            "NetworkInterfaces"][0]["PrivateIpAddresses"]:
        allocation = ec2.allocate_address(Domain="vpc")["AllocationId"]
        ec2.associate_address(AllocationId=allocation, InstanceId=victim["instance_id"],
                              PrivateIpAddress=private["PrivateIpAddress"])
        found[allocation] = primary
    return found


def _associations(world, allocations):
    described = world.client("ec2").describe_addresses(AllocationIds=list(allocations))
    return {a["AllocationId"]: a["NetworkInterfaceId"] if a.get("AssociationId") else None
            for a in described["Addresses"]}


def test_elastic_ip_plan_names_each_association(world, victim, addresses, settings):
    target = world.target(victim["instance_id"], settings)

    planned = DisassociateElasticIp().plan(target)

    assert {p["resource"]: p["before"]["NetworkInterfaceId"] for p in planned} == addresses
    assert {(p["action"], p["attribute"], p["after"]) for p in planned} == {
        ("disassociate-elastic-ip", "association", None)}
    assert _associations(world, addresses) == addresses


def test_elastic_ip_apply_takes_them_away_and_undo_gives_them_back(world, victim, addresses,
                                                                    settings):
    target = world.target(victim["instance_id"], settings)
    before = world.client("ec2").describe_addresses(AllocationIds=list(addresses))["Addresses"]

    made = DisassociateElasticIp().apply(target)

    assert made == [actions.change("disassociate-elastic-ip", a["AllocationId"], "association",
                                   {"AssociationId": a["AssociationId"], "PublicIp": a["PublicIp"],
                                    "NetworkInterfaceId": a["NetworkInterfaceId"],
                                    "PrivateIpAddress": a["PrivateIpAddress"]}, None)
                    for a in before]
    assert _associations(world, addresses) == dict.fromkeys(addresses)
    for record in made:
        DisassociateElasticIp().undo(target, record)
    assert _associations(world, addresses) == addresses


def test_elastic_ip_partial_failure_carries_the_first(world, victim, addresses, settings):
    target = world.target(victim["instance_id"], settings)
    world.fail("ec2", "DisassociateAddress", calls=(2,))

    with pytest.raises(actions.PartialFailure) as raised:
        DisassociateElasticIp().apply(target)

    [made] = raised.value.made
    assert _associations(world, addresses) == {**addresses, made["resource"]: None}
