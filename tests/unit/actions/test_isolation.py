"""IsolateInterface: each interface ends on the isolation group alone, through the all-open one,
and never stays on the all-open group when the second swap fails."""

import pytest

from chalicelib import actions
from chalicelib.actions.isolation import IsolateInterface
from tests.unit.actions.world import interface_groups, quarantine_groups

COVERS = (IsolateInterface,)


def _isolators(target):
    return [IsolateInterface(i) for i in target.pre_state["interfaces"]]


def test_plan_names_the_swaps_and_changes_nothing(world, victim, settings):
    target = world.target(victim["instance_id"], settings)
    ec2 = world.client("ec2")
    primary = target.pre_state["interfaces"][0]

    planned = IsolateInterface(primary).plan(target)

    assert planned == [
        actions.change("isolate-interface", primary["id"], "groups", primary["groups"],
                       ["(new open group)"]),
        actions.change("isolate-interface", primary["id"], "groups", ["(new open group)"],
                       ["(new isolation group)"])]
    assert quarantine_groups(ec2, victim["vpc_id"]) == {}
    assert interface_groups(ec2, primary["id"]) == victim["interfaces"][primary["id"]]


def test_plan_names_the_groups_once_they_exist(world, victim, settings):
    target = world.target(victim["instance_id"], settings)
    IsolateInterface(target.pre_state["interfaces"][0]).apply(target)
    groups = target.cache["groups"][victim["vpc_id"]]
    second = target.pre_state["interfaces"][1]

    planned = IsolateInterface(second).plan(target)

    assert [p["after"] for p in planned] == [[groups["open"]], [groups["isolation"]]]
    assert interface_groups(world.client("ec2"), second["id"]) == victim["interfaces"][second["id"]]


def test_apply_leaves_every_interface_on_the_isolation_group_alone(world, victim, settings):
    target = world.target(victim["instance_id"], settings)
    ec2 = world.client("ec2")

    made = [record for action in _isolators(target) for record in action.apply(target)]

    groups = quarantine_groups(ec2, victim["vpc_id"])
    isolation = groups["isolation"]["GroupId"]
    for eni in victim["interfaces"]:  # the primary's launch-time groups are gone as well
        assert interface_groups(ec2, eni) == [isolation]
    assert made == [actions.change("isolate-interface", i["id"], "groups", i["groups"], [isolation])
                    for i in target.pre_state["interfaces"]]
    assert [g["GroupId"] for g in world.instance(victim["instance_id"])["SecurityGroups"]] == [
        isolation]
    assert groups["isolation"]["IpPermissions"] == groups["isolation"]["IpPermissionsEgress"] == []
    for rules in (groups["open"]["IpPermissions"], groups["open"]["IpPermissionsEgress"]):
        assert [(r["IpProtocol"], r["IpRanges"], r["Ipv6Ranges"]) for r in rules] == [
            ("-1", [{"CidrIp": "0.0.0.0/0"}], [{"CidrIpv6": "::/0"}])]


def test_apply_removes_a_rule_someone_added_to_the_isolation_group(world, victim, settings):
    first = world.target(victim["instance_id"], settings)
    IsolateInterface(first.pre_state["interfaces"][0]).apply(first)
    ec2 = world.client("ec2")
    isolation = quarantine_groups(ec2, victim["vpc_id"])["isolation"]["GroupId"]
    ec2.authorize_security_group_ingress(GroupId=isolation, IpPermissions=[{
        "IpProtocol": "tcp", "FromPort": 22, "ToPort": 22, "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}])

    second = world.target(victim["instance_id"], settings)  # a new step: no cached groups
    IsolateInterface(second.pre_state["interfaces"][1]).apply(second)

    assert quarantine_groups(ec2, victim["vpc_id"])["isolation"]["IpPermissions"] == []


def test_undo_puts_each_interfaces_own_groups_back(world, victim, settings):
    target = world.target(victim["instance_id"], settings)
    made = [record for action in _isolators(target) for record in action.apply(target)]

    for record in made:
        IsolateInterface().undo(target, record)

    ec2 = world.client("ec2")
    for eni, groups in victim["interfaces"].items():
        assert interface_groups(ec2, eni) == groups


def test_a_failed_isolation_swap_restores_the_interfaces_own_groups(world, victim, settings):
    target = world.target(victim["instance_id"], settings)
    primary = target.pre_state["interfaces"][0]
    failed = world.fail("ec2", "ModifyNetworkInterfaceAttribute", calls=(2, 3))  # and its retry

    with pytest.raises(RuntimeError, match="its original groups were restored"):
        IsolateInterface(primary).apply(target)

    assert failed == [2, 3]
    assert interface_groups(world.client("ec2"), primary["id"]) == sorted(primary["groups"])


def test_an_interface_that_cannot_be_restored_is_named_on_the_open_group(world, victim, settings):
    target = world.target(victim["instance_id"], settings)
    primary = target.pre_state["interfaces"][0]
    world.fail("ec2", "ModifyNetworkInterfaceAttribute", calls=(2, 3, 4))

    with pytest.raises(actions.PartialFailure, match="LEFT ON THE ALL-OPEN GROUP") as left:
        IsolateInterface(primary).apply(target)

    open_group = quarantine_groups(world.client("ec2"), victim["vpc_id"])["open"]["GroupId"]
    assert left.value.made == [actions.change("isolate-interface", primary["id"], "groups",
                                              primary["groups"], [open_group])]  # release undoes
    assert interface_groups(world.client("ec2"), primary["id"]) == [open_group]


def test_a_failure_on_the_second_interface_keeps_the_first_isolated(world, victim, settings):
    target = world.target(victim["instance_id"], settings)
    first, second = target.pre_state["interfaces"]
    ec2 = world.client("ec2")
    # calls: first open, first isolation, second open, second isolation (fails, and again)
    world.fail("ec2", "ModifyNetworkInterfaceAttribute", calls=(4, 5))

    made, errors = actions.run(_isolators(target), target)

    isolation = quarantine_groups(ec2, victim["vpc_id"])["isolation"]["GroupId"]
    assert made == [actions.change("isolate-interface", first["id"], "groups", first["groups"],
                                   [isolation])]
    assert [(e["action"], e["resource"], e["code"]) for e in errors] == [
        ("isolate-interface", second["id"], "RuntimeError")]
    assert interface_groups(ec2, first["id"]) == [isolation]
    assert interface_groups(ec2, second["id"]) == sorted(second["groups"])


def test_a_group_squatting_the_products_name_is_never_used(world, victim, settings):
    """An insider creates an untagged `ec2-quarantine-isolation` (with a rule) in the VPC first:
    containment neither adopts nor changes it (IAM would refuse to: it is not the product's)."""
    ec2 = world.client("ec2")
    squatter = ec2.create_security_group(GroupName="ec2-quarantine-isolation",
                                         Description="mine", VpcId=victim["vpc_id"])["GroupId"]
    ec2.authorize_security_group_ingress(GroupId=squatter, IpPermissions=[{
        "IpProtocol": "tcp", "FromPort": 22, "ToPort": 22, "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}])
    target = world.target(victim["instance_id"], settings)

    for action in _isolators(target):
        action.apply(target)

    isolation = quarantine_groups(ec2, victim["vpc_id"])["isolation"]
    assert isolation["GroupId"] != squatter and isolation["GroupName"].startswith(
        "ec2-quarantine-isolation-")
    for eni in victim["interfaces"]:
        assert interface_groups(ec2, eni) == [isolation["GroupId"]]
    (kept,) = ec2.describe_security_groups(GroupIds=[squatter])["SecurityGroups"]
    assert len(kept["IpPermissions"]) == 1 and not kept.get("Tags")
