"""The first cut (chalicelib/cut.py): every interface isolated at once, preservation and short
connection tracking beside the first swap; then Contain's actions record each change against
the pre-incident state, whoever made it, and finish what the cut left."""

from chalicelib import actions, cut
from chalicelib.actions import Target
from chalicelib.actions.isolation import (DEFAULT_TRACKING, SHORT_TRACKING, IsolateInterface,
                                          ShortenConnectionTracking)
from chalicelib.instances import pre_state
from chalicelib.steps.contain import containment_actions
from local.victims import make_victim
from tests.unit.actions.world import ACCOUNT, REGION, attribute, interface_groups, quarantine_groups

COVERS = (ShortenConnectionTracking,)


def _opened(world, instance_id, settings):
    """The target of a new incident as the entry function has it: the preservation attributes
    read beside DescribeInstances, into the pre-incident state."""
    ec2 = world.client("ec2")
    attributes = {name: attribute(ec2, instance_id, name) for name in cut.AHEAD}
    incident = {"incident_id": "inc-000000000001", "instance_id": instance_id,
                "account_id": ACCOUNT, "home_account": ACCOUNT, "region": REGION,
                "pre_state": pre_state(world.instance(instance_id), attributes)}
    target = Target(client=world.client, home_client=world.client, settings=settings,
                    incident=incident)
    cut.remember(target, world.instance(instance_id), None, attributes)
    return target


def _contain(target):
    """Contain's view: the same incident, nothing cached, the instance read as it is now."""
    fresh = Target(client=target.client, home_client=target.home_client,
                   settings=target.settings, incident=target.incident)
    cut.observe(fresh)
    cut.make(fresh, restore=True)
    return actions.run(containment_actions(fresh.pre_state, fresh.settings), fresh)


def _volumes_kept(world, instance_id):
    return {m["Ebs"]["VolumeId"]: m["Ebs"]["DeleteOnTermination"]
            for m in world.instance(instance_id)["BlockDeviceMappings"]}


def test_the_cut_isolates_every_interface_and_preserves_at_once(world, settings):
    victim = make_victim(world, interfaces=8, volumes=2, shutdown_behaviour="terminate")
    target = _opened(world, victim["instance_id"], settings)
    ec2 = world.client("ec2")

    assert cut.make(target) == []

    isolation = quarantine_groups(ec2, victim["vpc_id"])["isolation"]["GroupId"]
    assert {eni: interface_groups(ec2, eni) for eni in victim["interfaces"]} == {
        eni: [isolation] for eni in victim["interfaces"]}
    assert attribute(ec2, victim["instance_id"], "instanceInitiatedShutdownBehavior") == "stop"
    assert attribute(ec2, victim["instance_id"], "disableApiTermination") is True
    assert set(_volumes_kept(world, victim["instance_id"]).values()) == {False}
    described = ec2.describe_network_interfaces(NetworkInterfaceIds=list(victim["interfaces"]))
    assert [n.get("ConnectionTrackingConfiguration") for n in described["NetworkInterfaces"]] \
        == [SHORT_TRACKING] * 8


def test_contain_records_what_the_cut_made_as_it_was_before(world, settings):
    victim = make_victim(world, interfaces=2, volumes=2, shutdown_behaviour="terminate")
    target = _opened(world, victim["instance_id"], settings)
    cut.make(target)
    isolation = quarantine_groups(world.client("ec2"), victim["vpc_id"])["isolation"]["GroupId"]
    world.fail("ec2", "ModifyInstanceAttribute", calls=range(1, 100))  # nothing left to set

    changes, errors = _contain(target)

    assert errors == []
    by_action = {(c["action"], c["resource"]): c for c in changes}
    for interface in target.pre_state["interfaces"]:
        assert by_action[("isolate-interface", interface["id"])]["before"] == interface["groups"]
        assert by_action[("isolate-interface", interface["id"])]["after"] == [isolation]
        assert by_action[("connection-tracking", interface["id"])]["after"] == SHORT_TRACKING
    instance = victim["instance_id"]
    assert by_action[("shutdown-behaviour", instance)]["before"] == "terminate"
    assert by_action[("termination-protection", instance)]["before"] is False
    assert {c["resource"] for c in changes if c["action"] == "keep-volumes-on-termination"} == {
        v["id"] for v in target.pre_state["volumes"] if v["delete_on_termination"]}


def _refuse_isolation(world, vpc_id, count):
    """Refuse the first `count` swaps onto the VPC's isolation group (the groups must exist)."""
    isolation = quarantine_groups(world.client("ec2"), vpc_id)["isolation"]["GroupId"]
    return world.refuse("ec2", "ModifyNetworkInterfaceAttribute",
                        lambda params: params.get("Groups") == [isolation], count)


def test_the_cut_never_puts_an_interface_back_on_its_own_groups(world, settings):
    """The entry function may only isolate: a second swap refused twice leaves the interface
    on the all-open group for Contain, which finishes it first."""
    victim = make_victim(world, interfaces=2, volumes=1)
    target = _opened(world, victim["instance_id"], settings)
    ec2 = world.client("ec2")
    cut.make(_opened(world, make_victim(world, interfaces=1, volumes=1, vpc=victim)[
        "instance_id"], settings))  # the VPC's groups now exist
    made = quarantine_groups(ec2, victim["vpc_id"])
    refused = _refuse_isolation(world, victim["vpc_id"], 4)  # two interfaces, each twice

    failures = cut.make(target)

    assert len(refused) == 4  # the second swaps and their one retry; no restore
    assert {f["resource"] for f in failures} == set(victim["interfaces"])
    assert all("LEFT ON THE ALL-OPEN GROUP" in f["message"] and "Contain finishes" in
               f["message"] for f in failures)
    assert {interface_groups(ec2, eni) == [made["open"]["GroupId"]]
            for eni in victim["interfaces"]} == {True}
    changes, errors = _contain(target)
    assert {eni: interface_groups(ec2, eni) for eni in victim["interfaces"]} == {
        eni: [made["isolation"]["GroupId"]] for eni in victim["interfaces"]}
    assert not [e for e in errors if e["action"] == "isolate-interface"]
    assert {c["resource"] for c in changes if c["action"] == "isolate-interface"} == set(
        victim["interfaces"])


def test_contain_gives_its_own_groups_back_to_an_interface_it_cannot_isolate(world, settings):
    victim = make_victim(world, interfaces=1, volumes=1)
    target = _opened(world, victim["instance_id"], settings)
    cut.make(_opened(world, make_victim(world, interfaces=1, volumes=1, vpc=victim)[
        "instance_id"], settings))
    (eni, groups), = victim["interfaces"].items()
    _refuse_isolation(world, victim["vpc_id"], 4)  # the cut's two tries, then Contain's two

    cut.make(target)
    changes, errors = _contain(target)

    assert interface_groups(world.client("ec2"), eni) == sorted(groups)
    (error,) = [e for e in errors if e["action"] == "isolate-interface"]
    assert "its original groups were restored" in error["message"]
    assert not [c for c in changes if c["action"] == "isolate-interface"]


def test_connection_tracking_is_recorded_and_undone_to_what_it_was(world, victim, settings):
    target = world.target(victim["instance_id"], settings)
    ec2 = world.client("ec2")
    first = target.pre_state["interfaces"][0]

    (record,) = ShortenConnectionTracking(first).apply(target)

    assert record == actions.change("connection-tracking", first["id"], "connection-tracking",
                                    first.get("tracking"), SHORT_TRACKING)
    tracking = ec2.describe_network_interfaces(NetworkInterfaceIds=[first["id"]])[
        "NetworkInterfaces"][0].get("ConnectionTrackingConfiguration")
    assert tracking == SHORT_TRACKING
    ShortenConnectionTracking().undo(target, record)
    tracking = ec2.describe_network_interfaces(NetworkInterfaceIds=[first["id"]])[
        "NetworkInterfaces"][0].get("ConnectionTrackingConfiguration")
    assert tracking == (first.get("tracking") or DEFAULT_TRACKING)


def test_connection_tracking_of_an_interface_not_the_instances_is_refused(world, victim,
                                                                         settings):
    target = world.target(victim["instance_id"], settings)
    other = make_victim(world, interfaces=1, volumes=1)
    (eni,) = other["interfaces"]
    record = actions.change("connection-tracking", eni, "connection-tracking", None,
                            SHORT_TRACKING)

    assert "was not an interface of" in ShortenConnectionTracking().foreign(target, record)
    assert IsolateInterface().foreign(target, {**record, "action": "isolate-interface"})


def test_a_group_tagged_as_the_products_but_named_otherwise_is_never_used(world, settings):
    """The host (or an insider) tags the instance's own group ec2-quarantine=isolation: the
    cut neither takes the interface for isolated nor strips that group's rules."""
    from chalicelib.actions.isolation import ROLE_TAG

    victim = make_victim(world, interfaces=1, volumes=1)
    (eni, groups), = victim["interfaces"].items()
    ec2 = world.client("ec2")
    ec2.create_tags(Resources=groups, Tags=[{"Key": ROLE_TAG, "Value": "isolation"}])
    own_rules = [ec2.describe_security_groups(GroupIds=[g])["SecurityGroups"][0][
        "IpPermissionsEgress"] for g in groups]
    target = _opened(world, victim["instance_id"], settings)

    assert cut.make(target) == []

    made = quarantine_groups(ec2, victim["vpc_id"])
    assert made["isolation"]["GroupId"] not in groups
    assert interface_groups(ec2, eni) == [made["isolation"]["GroupId"]]
    assert [ec2.describe_security_groups(GroupIds=[g])["SecurityGroups"][0][
        "IpPermissionsEgress"] for g in groups] == own_rules


def test_an_interface_left_on_the_all_open_group_is_recorded_so_release_restores_it(world,
                                                                                   settings):
    victim = make_victim(world, interfaces=1, volumes=1)
    cut.make(_opened(world, make_victim(world, interfaces=1, volumes=1, vpc=victim)[
        "instance_id"], settings))
    target = _opened(world, victim["instance_id"], settings)
    (eni, groups), = victim["interfaces"].items()
    open_group = quarantine_groups(world.client("ec2"), victim["vpc_id"])["open"]["GroupId"]
    _refuse_isolation(world, victim["vpc_id"], 2)

    cut.make(target)
    made = cut.changes(target)

    (record,) = [c for c in made if c["action"] == "isolate-interface"]
    before = target.pre_state["interfaces"][0]["groups"]
    assert record == actions.change("isolate-interface", eni, "groups", before, [open_group])
    IsolateInterface().undo(target, record)
    assert interface_groups(world.client("ec2"), eni) == sorted(groups)


def test_contain_without_its_read_ahead_does_not_reopen_an_isolated_interface(world, settings):
    victim = make_victim(world, interfaces=2, volumes=1)
    target = _opened(world, victim["instance_id"], settings)
    cut.make(target)
    fresh = Target(client=target.client, home_client=target.home_client,
                   settings=target.settings, incident=target.incident)  # observe() failed
    made = quarantine_groups(world.client("ec2"), victim["vpc_id"])
    reopened = world.refuse("ec2", "ModifyNetworkInterfaceAttribute",
                            lambda params: params.get("Groups") == [made["open"]["GroupId"]])

    cut.make(fresh, restore=True)

    assert reopened == []  # not one swap back onto the all-open group
    assert fresh.cache["isolated"] == {eni: None for eni in victim["interfaces"]}
