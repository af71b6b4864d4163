"""The tamper watch's sweep, tried as the insider and the host would: containment undone after
the incident is CONTAINED (a rule on the shared isolation group, an interface given its groups
back, the profile associated again, the metadata service on, tags and protection removed, the
revocation policy deleted, a stopped instance started) is found and put back, recorded and
announced; an incident left OPEN whose execution ended is settled; a release under way, and a
record the product did not seal, are left alone."""

import json

import pytest

from chalicelib import incidents
from local.victims import make_instance_profile
from tests.helpers import (
    deliver_finding,
    finish,
    guardduty_event,
    incident,
    instance_attribute,
    instance_tags,
    interface_groups,
    make_victim,
    messages,
    principal,
    product_groups,
    release,
    stop_execution,
    subscribe_queue,
    wait_execution,
)

EVERYTHING_OPEN = [{"IpProtocol": "-1", "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}]


@pytest.fixture(autouse=True)
def no_cloudtrail(stack):
    """CloudTrail delivers nothing here (best-effort; a member account without its forwarding
    rule): only the sweep can find what was undone."""
    from deploy import names

    stack.client("events").disable_rule(Name=names.rule(stack.stage, "on_tampering"))


def sweep(stack) -> dict:
    """Run the scheduled sweep now; what it did."""
    return stack.tick("sweep")["sweep"]


def contained(stack, **victim_options) -> tuple[dict, dict]:
    victim = make_victim(stack, **{"interfaces": 2, "volumes": 1, **victim_options})
    record, _ = finish(stack, deliver_finding(stack, guardduty_event(victim["instance_id"])))
    assert record["status"] == "CONTAINED", record["errors"]
    return victim, record


def metadata_endpoint(stack, instance_id: str) -> str:
    described = stack.client("ec2").describe_instances(InstanceIds=[instance_id])
    return described["Reservations"][0]["Instances"][0]["MetadataOptions"]["HttpEndpoint"]


def profiles_of(stack, instance_id: str) -> list[str]:
    return [a["IamInstanceProfile"]["Arn"] for a in stack.client(
        "ec2").describe_iam_instance_profile_associations(Filters=[
            {"Name": "instance-id", "Values": [instance_id]}])["IamInstanceProfileAssociations"]
        if a["State"] == "associated"]


def revocation_policy(stack, record) -> tuple[str, str, dict]:
    """(role, policy name, document) of the incident's revocation, as the revoker wrote it."""
    (revoked,) = [c for c in record["changes"] if c["action"] == "revoke-role-sessions"]
    role, policy = revoked["resource"], revoked["attribute"].split(":", 1)[1]
    return role, policy, stack.client("iam").get_role_policy(
        RoleName=role, PolicyName=policy)["PolicyDocument"]


def test_what_an_insider_undid_is_put_back_recorded_and_announced(stack):
    queue = subscribe_queue(stack)
    victim, record = contained(stack)
    instance_id, (eni, *_) = victim["instance_id"], victim["interfaces"]
    isolation = product_groups(stack, victim["vpc_id"])["isolation"]["GroupId"]
    insider = principal(stack, "insider", [
        "ec2:AuthorizeSecurityGroupEgress", "ec2:ModifyNetworkInterfaceAttribute",
        "ec2:ModifyInstanceMetadataOptions", "ec2:DeleteTags", "ec2:ModifyInstanceAttribute",
        "ec2:AssociateIamInstanceProfile", "iam:PassRole"])
    other_profile = make_instance_profile(stack.client("iam"))
    with stack.enforce_iam():
        ec2 = insider("ec2")
        ec2.authorize_security_group_egress(GroupId=isolation, IpPermissions=EVERYTHING_OPEN)
        ec2.modify_network_interface_attribute(NetworkInterfaceId=eni,
                                               Groups=victim["interfaces"][eni])
        ec2.modify_instance_metadata_options(InstanceId=instance_id, HttpEndpoint="enabled")
        ec2.delete_tags(Resources=[instance_id], Tags=[{"Key": "QuarantineStatus"}])
        ec2.modify_instance_attribute(InstanceId=instance_id,
                                      DisableApiTermination={"Value": False})
        ec2.modify_instance_attribute(InstanceId=instance_id,
                                      InstanceInitiatedShutdownBehavior={"Value": "terminate"})
        ec2.associate_iam_instance_profile(InstanceId=instance_id,
                                           IamInstanceProfile={"Name": other_profile})
        messages(stack, queue)  # what containment reported
        swept = sweep(stack)  # as its own role, held to its own policy

    assert swept["repaired"] == [record["incident_id"]]
    for interface in victim["interfaces"]:
        assert interface_groups(stack, interface) == [isolation]
    group = product_groups(stack, victim["vpc_id"])["isolation"]
    assert group["IpPermissions"] == [] and group["IpPermissionsEgress"] == []
    assert metadata_endpoint(stack, instance_id) == "disabled"
    assert instance_tags(stack, instance_id)["QuarantineStatus"] == "CONTAINED"
    assert instance_attribute(stack, instance_id, "disableApiTermination") is True
    assert instance_attribute(stack, instance_id, "instanceInitiatedShutdownBehavior") == "stop"
    assert profiles_of(stack, instance_id) == []

    (entry,) = incident(stack, record["incident_id"])["tamper"]
    assert entry["found_by"] == "sweep"
    assert {d["what"] for d in entry["drift"]} == {
        "interface-groups", "isolation-group-rules", "metadata-endpoint", "quarantine-tags",
        "termination-protection", "shutdown-behaviour", "instance-profile"}
    assert all(d["outcome"] == "put back" for d in entry["drift"]), entry
    (alert,) = [m for m in messages(stack, queue) if "containment undone" in m["Subject"]]
    assert instance_id in alert["Subject"] and "put back" in alert["Subject"]
    assert "found by the sweep" in alert["Text"]

    assert sweep(stack)["repaired"] == []  # whole again: nothing more to do or say
    assert len(incident(stack, record["incident_id"])["tamper"]) == 1


def test_a_deleted_revocation_policy_and_a_restarted_instance_are_put_back(stack):
    stack.configure(REVOKE_ROLE_SESSIONS="true", STOP_AFTER_EVIDENCE="true")
    victim, record = contained(stack)
    instance_id = victim["instance_id"]
    role, policy, written = revocation_policy(stack, record)
    iam = stack.client("iam")
    assert stack.client("ec2").describe_instances(InstanceIds=[instance_id])[
        "Reservations"][0]["Instances"][0]["State"]["Name"] == "stopped"

    iam.delete_role_policy(RoleName=role, PolicyName=policy)
    stack.client("ec2").start_instances(InstanceIds=[instance_id])
    swept = sweep(stack)

    assert swept["repaired"] == [record["incident_id"]]
    assert iam.get_role_policy(RoleName=role, PolicyName=policy)["PolicyDocument"] == written
    assert stack.client("ec2").describe_instances(InstanceIds=[instance_id])[
        "Reservations"][0]["Instances"][0]["State"]["Name"] in ("stopping", "stopped")
    (entry,) = incident(stack, record["incident_id"])["tamper"]
    assert {d["what"] for d in entry["drift"]} == {"revoke-role-sessions", "stop-instance"}


def test_a_weakened_revocation_policy_under_the_same_name_is_written_again(stack):
    """A Deny that never matches, put in place of the product's, is not the product's."""
    stack.configure(REVOKE_ROLE_SESSIONS="true")
    victim, record = contained(stack)
    role, policy, written = revocation_policy(stack, record)
    iam = stack.client("iam")
    weakened = json.loads(json.dumps(written))
    weakened["Statement"][0]["Condition"]["DateLessThan"]["aws:TokenIssueTime"] = \
        "2000-01-01T00:00:00Z"
    iam.put_role_policy(RoleName=role, PolicyName=policy, PolicyDocument=json.dumps(weakened))
    assert sweep(stack)["repaired"] == [record["incident_id"]]
    assert iam.get_role_policy(RoleName=role, PolicyName=policy)["PolicyDocument"] == written


def test_an_incident_left_open_after_its_execution_ended_is_settled(stack):
    """The execution ended with the incident still OPEN (its report step and the report's
    fallback both failed: the table refused them): the incident held the instance for ever.
    The sweep settles it from what was recorded, and says so."""
    queue = subscribe_queue(stack)
    victim = make_victim(stack, interfaces=1, volumes=1)
    started = deliver_finding(stack, guardduty_event(victim["instance_id"]))
    finish(stack, started)
    incidents.record_step(started["incident_id"], "report", incidents.now(), "failed",
                          fields={"status": "OPEN"})  # as the failed report leaves it
    messages(stack, queue)
    swept = sweep(stack)

    (settled,) = swept["settled"]
    assert settled == {"incident_id": started["incident_id"], "status": "CONTAINED",
                       "execution": "SUCCEEDED"}
    stack.bridge.wait_idle()  # the page, asked once it settled
    record = incident(stack, started["incident_id"])
    assert record["status"] == "CONTAINED"
    assert [s["step"] for s in record["timeline"]][-2:] == ["sweep", "page"]
    assert any(e["code"] == "SettledBySweep" for e in record["errors"])
    (report,) = messages(stack, queue)
    assert ": contained" in report["Subject"] and "SettledBySweep" in report["Text"]
    assert sweep(stack)["settled"] == []


def test_an_open_incident_with_nothing_recorded_is_settled_failed_and_frees_its_instance(stack):
    victim = make_victim(stack, interfaces=1, volumes=1)
    started = deliver_finding(stack, guardduty_event(victim["instance_id"]))
    finish(stack, started)
    incidents.record_step(started["incident_id"], "report", incidents.now(), "failed",
                          fields={"status": "OPEN", "containment": "unknown"})
    incidents._update(started["incident_id"], "SET changes = :none, change_seals = :none",
                      {":none": []})  # nothing was recorded
    (settled,) = sweep(stack)["settled"]
    assert settled["status"] == "FAILED"
    assert incidents.active_for(stack.account, "us-east-1", victim["instance_id"]) is None


def test_a_running_execution_is_not_settled(stack):
    victim = make_victim(stack, interfaces=1, volumes=1)
    stack.configure(SNAPSHOT_DEADLINE_SECONDS="60")
    stack.hold_snapshots(polls=1000)  # the execution waits for its snapshots
    started = deliver_finding(stack, guardduty_event(victim["instance_id"]))
    assert sweep(stack)["settled"] == []
    assert incident(stack, started["incident_id"])["status"] == "OPEN"
    stop_execution(stack, started["execution_arn"])


def test_a_release_under_way_is_never_fought(stack):
    victim, record = contained(stack)
    eni = next(iter(victim["interfaces"]))
    incidents.hold_for_release(record["incident_id"])  # the release step's lease, as it takes it
    stack.client("ec2").modify_network_interface_attribute(
        NetworkInterfaceId=eni, Groups=victim["interfaces"][eni])  # as release restores it
    assert sweep(stack)["repaired"] == []
    assert interface_groups(stack, eni) == sorted(victim["interfaces"][eni])
    assert "tamper" not in incident(stack, record["incident_id"])


def test_a_repair_under_way_holds_a_release_back_until_it_ends(stack):
    victim, record = contained(stack)
    token = incidents.hold_for_repair(record["incident_id"])
    with pytest.raises(incidents.Held):  # one repair at a time
        incidents.hold_for_repair(record["incident_id"])
    with pytest.raises(incidents.Held):
        incidents.hold_for_release(record["incident_id"], wait_seconds=1)
    incidents.record_tamper(record["incident_id"], {"found_by": "test", "drift": []}, token)
    incidents.hold_for_release(record["incident_id"], wait_seconds=1)  # the lease has ended
    with pytest.raises(incidents.Held):
        incidents.hold_for_repair(record["incident_id"])


def test_a_repair_whose_lease_was_lost_does_not_end_another_holders_lease(stack):
    victim, record = contained(stack)
    stale = incidents.hold_for_repair(record["incident_id"])
    incidents.record_step(record["incident_id"], "test", incidents.now(), "forced",
                          fields={"repairing_until": incidents.now()})  # as if it ran out
    current = incidents.hold_for_repair(record["incident_id"])
    after = incidents.record_tamper(record["incident_id"], {"found_by": "late", "drift": []},
                                    stale)
    assert after["repair_token"] == current and after["tamper"][-1]["found_by"] == "late"
    with pytest.raises(incidents.Held):
        incidents.hold_for_release(record["incident_id"], wait_seconds=1)


def test_after_a_release_nothing_is_put_back(stack):
    victim, record = contained(stack)
    release(stack, victim["instance_id"])
    assert sweep(stack)["checked"] == 0
    for eni, groups in victim["interfaces"].items():
        assert interface_groups(stack, eni) == sorted(groups)
    assert "tamper" not in incident(stack, record["incident_id"])


def test_an_incident_the_product_did_not_seal_is_not_acted_on(stack):
    """An insider who may write the table makes an instance look contained: the watch would
    isolate it, stop it, revoke its role. It refuses a record whose seal does not hold."""
    victim, record = contained(stack)
    bystander = make_victim(stack, interfaces=1, volumes=1)
    forged = {**incident(stack, record["incident_id"]), "incident_id": "inc-0123456789ab",
              "instance_id": bystander["instance_id"]}
    incidents.put(forged)
    swept = sweep(stack)
    assert swept["repaired"] == []
    for eni, groups in bystander["interfaces"].items():
        assert interface_groups(stack, eni) == sorted(groups)
    assert metadata_endpoint(stack, bystander["instance_id"]) == "enabled"


def _undo_an_interface(stack, victim) -> str:
    eni = next(iter(victim["interfaces"]))
    stack.client("ec2").modify_network_interface_attribute(
        NetworkInterfaceId=eni, Groups=victim["interfaces"][eni])
    return eni


def test_containment_holds_while_the_evidence_is_still_collected(stack):
    """Status stays OPEN until the report, after the snapshots (up to an hour): Contain's
    outcome is recorded, and the watch keeps it from the first minute."""
    stack.configure(SNAPSHOT_DEADLINE_SECONDS="60")
    stack.hold_snapshots(polls=1000)
    victim = make_victim(stack, interfaces=2, volumes=1)
    started = deliver_finding(stack, guardduty_event(victim["instance_id"]))
    for _ in range(200):  # Contain's outcome recorded (the first cut's comes before, unsealed)
        record = incident(stack, started["incident_id"])
        if record.get("seal"):
            break
        import time
        time.sleep(0.1)
    assert record["status"] == "OPEN" and record["containment"] == "CONTAINED"
    eni = _undo_an_interface(stack, victim)
    assert sweep(stack)["repaired"] == [started["incident_id"]]
    isolation = product_groups(stack, victim["vpc_id"])["isolation"]["GroupId"]
    assert interface_groups(stack, eni) == [isolation]
    assert instance_tags(stack, victim["instance_id"])["QuarantineStatus"] == "CONTAINED"
    stop_execution(stack, started["execution_arn"])


@pytest.mark.parametrize("field", ["releasing_until", "repairing_until"])
def test_a_lease_further_ahead_than_the_product_takes_one_holds_nothing(stack, field):
    """Whoever may write the table sets a lease for ever: the watch would keep off the
    incident, or every release would wait for a repair that never ends."""
    victim, record = contained(stack)
    incidents.record_step(record["incident_id"], "test", incidents.now(), "forged",
                          fields={field: "9999-12-31T00:00:00.000000Z"})
    eni = _undo_an_interface(stack, victim)
    assert sweep(stack)["repaired"] == [record["incident_id"]]
    isolation = product_groups(stack, victim["vpc_id"])["isolation"]["GroupId"]
    assert interface_groups(stack, eni) == [isolation]
    incidents.hold_for_release(record["incident_id"], wait_seconds=1)


def test_a_released_incident_set_back_to_contained_is_not_acted_on(stack):
    victim, record = contained(stack)
    release(stack, victim["instance_id"])
    incidents.record_step(record["incident_id"], "test", incidents.now(), "forged",
                          fields={"status": "CONTAINED", "release": {}})
    assert sweep(stack)["repaired"] == []
    for eni, groups in victim["interfaces"].items():
        assert interface_groups(stack, eni) == sorted(groups)


def test_a_dry_run_made_to_look_contained_is_not_acted_on(stack):
    """Its seal is real (a dry run is sealed too); no sealed record says containment made
    anything, so the watch makes nothing either."""
    victim = make_victim(stack, interfaces=1, volumes=1)
    from tests.helpers import api
    status, planned = api(stack, "POST", "/quarantine", {"instance_id": victim["instance_id"],
                                                         "dry_run": True})
    assert status == 202, planned
    finish(stack, planned)
    incidents.record_step(planned["incident_id"], "test", incidents.now(), "forged",
                          fields={"status": "CONTAINED"})
    assert sweep(stack)["repaired"] == []
    for eni, groups in victim["interfaces"].items():
        assert interface_groups(stack, eni) == sorted(groups)


def test_a_forged_open_incident_is_not_settled_nor_announced(stack):
    queue = subscribe_queue(stack)
    victim, record = contained(stack)
    messages(stack, queue)
    bystander = make_victim(stack, interfaces=1, volumes=1)
    incidents.put({**incident(stack, record["incident_id"]), "incident_id": "inc-0123456789ab",
                   "instance_id": bystander["instance_id"], "status": "OPEN"})
    assert sweep(stack)["settled"] == []
    assert incident(stack, "inc-0123456789ab")["status"] == "OPEN"
    assert messages(stack, queue) == []


def test_one_record_the_watch_cannot_read_does_not_stop_the_sweep(stack):
    victim, record = contained(stack)
    other, other_record = contained(stack)
    incidents._update(record["incident_id"], "SET releasing_until = :n", {":n": 7})
    stack.faults.arm("ec2", "DescribeInstances", "InternalError", count=20,
                     resource=victim["instance_id"], caller="sweep")  # AWS fails on that one
    eni = _undo_an_interface(stack, other)
    swept = sweep(stack)
    assert swept["repaired"] == [other_record["incident_id"]]
    assert record["incident_id"] in swept["unchecked"]
    isolation = product_groups(stack, other["vpc_id"])["isolation"]["GroupId"]
    assert interface_groups(stack, eni) == [isolation]


def test_what_containment_made_is_kept_whatever_the_settings_say_now(stack):
    """Contained with the deny-all profile; the setting is switched to disassociate since.
    A profile put in its place is swapped for deny-all again (as release expects to find)."""
    stack.configure(CREDENTIALS_MODE="deny-all")
    victim, record = contained(stack)
    stack.configure(CREDENTIALS_MODE="disassociate")
    ec2 = stack.client("ec2")
    (association,) = ec2.describe_iam_instance_profile_associations(Filters=[
        {"Name": "instance-id", "Values": [victim["instance_id"]]}])[
        "IamInstanceProfileAssociations"]
    ec2.replace_iam_instance_profile_association(
        AssociationId=association["AssociationId"],
        IamInstanceProfile={"Name": make_instance_profile(stack.client("iam"))})
    with stack.enforce_iam():
        assert sweep(stack)["repaired"] == [record["incident_id"]]
    from deploy import names
    assert [p.rsplit("/", 1)[-1] for p in profiles_of(stack, victim["instance_id"])] == [
        names.deny_all_profile(stack.stage)]
    release(stack, victim["instance_id"])
    assert profiles_of(stack, victim["instance_id"]) == [record["pre_state"]["instance_profile"]]


def test_a_revocation_narrowed_to_the_instance_is_not_the_one_written(stack):
    stack.configure(REVOKE_ROLE_SESSIONS="true", REVOKE_SCOPE="role")
    victim, record = contained(stack)
    role, policy, written = revocation_policy(stack, record)
    iam = stack.client("iam")
    narrowed = json.loads(json.dumps(written))
    narrowed["Statement"][0]["Condition"]["StringEquals"] = {
        "ec2:SourceInstanceARN": f"arn:aws:ec2:us-east-1:{stack.account}:instance/"
                                 f"{victim['instance_id']}"}
    iam.put_role_policy(RoleName=role, PolicyName=policy, PolicyDocument=json.dumps(narrowed))
    assert sweep(stack)["repaired"] == [record["incident_id"]]
    assert iam.get_role_policy(RoleName=role, PolicyName=policy)["PolicyDocument"] == written


def test_a_deleted_open_group_is_made_again(stack):
    """The all-open group is in use by nothing once the cut is made: deleting it (a call the
    events do not follow) leaves the next cut in the VPC without its first step."""
    victim, record = contained(stack)
    open_group = product_groups(stack, victim["vpc_id"])["open"]["GroupId"]
    stack.client("ec2").delete_security_group(GroupId=open_group)
    assert sweep(stack)["repaired"] == [record["incident_id"]]
    made = product_groups(stack, victim["vpc_id"])["open"]
    assert made["GroupId"] != open_group and made["IpPermissions"]


def _partial(stack, restore_fails: bool) -> tuple[dict, dict, str]:
    """A victim whose isolation swap fails for the entry function and for Contain, each with
    its retry (the first cut records the all-open step); Contain's restore of its own groups
    fails too when `restore_fails`, leaving it on the all-open group."""
    first, _ = contained(stack)  # makes the VPC's pair of groups
    isolation = product_groups(stack, first["vpc_id"])["isolation"]["GroupId"]
    victim = make_victim(stack, interfaces=1, volumes=1,
                         vpc={"vpc_id": first["vpc_id"], "subnet_id": first["subnet_id"]})
    (eni, groups), = victim["interfaces"].items()
    stack.faults.arm("ec2", "ModifyNetworkInterfaceAttribute", "UnauthorizedOperation", count=4,
                     resource=isolation)
    if restore_fails:
        stack.faults.arm("ec2", "ModifyNetworkInterfaceAttribute", "UnauthorizedOperation",
                         resource=groups[0], caller="contain")
    record, _ = finish(stack, deliver_finding(stack, guardduty_event(victim["instance_id"])))
    assert record["status"] == "PARTIAL" and len(stack.faults.fired) == 4 + restore_fails
    return victim, record, isolation


def test_an_interface_containment_gave_its_own_groups_back_is_left_to_the_person(stack):
    """The first cut's record of the all-open step is not a promise of isolation: the PARTIAL
    report says the interface is on its own groups, and so it stays."""
    victim, record, _ = _partial(stack, restore_fails=False)
    (eni, groups), = victim["interfaces"].items()
    assert interface_groups(stack, eni) == groups

    assert record["incident_id"] not in sweep(stack)["repaired"]
    assert interface_groups(stack, eni) == groups
    assert "tamper" not in incident(stack, record["incident_id"])


def test_an_interface_left_on_the_all_open_group_is_isolated_and_release_restores_it(stack):
    victim, record, isolation = _partial(stack, restore_fails=True)
    (eni, groups), = victim["interfaces"].items()
    assert interface_groups(stack, eni) == [product_groups(stack, victim["vpc_id"])["open"][
        "GroupId"]]

    assert sweep(stack)["repaired"] == [record["incident_id"]]
    assert interface_groups(stack, eni) == [isolation]
    (entry,) = incident(stack, record["incident_id"])["tamper"]
    assert [d["what"] for d in entry["drift"]] == ["interface-groups"]

    release(stack, victim["instance_id"])
    assert interface_groups(stack, eni) == groups


def test_what_the_watch_put_in_place_beyond_containment_release_names_and_leaves(stack):
    """Contain could not turn the metadata endpoint off (its role lacks the action); the sweep
    finds the endpoint on and turns it off. No change record covers it, so release does not
    undo it: the release says so instead of restoring the rest silently."""
    from deploy import names
    from tests.helpers import remove_action

    queue = subscribe_queue(stack)
    victim = make_victim(stack, interfaces=1, volumes=1)
    with stack.enforce_iam():
        remove_action(stack, names.function_role("dev", "contain"),
                      "ec2:ModifyInstanceMetadataOptions")
        started = deliver_finding(stack, guardduty_event(victim["instance_id"]))
        wait_execution(stack, started["execution_arn"])
        stack.bridge.wait_idle()
    assert _endpoint(stack, victim["instance_id"]) == "enabled"
    stack.tick("sweep")
    assert _endpoint(stack, victim["instance_id"]) == "disabled"
    released = release(stack, victim["instance_id"])
    record = incident(stack, started["incident_id"])
    assert record["status"] == "RELEASED", released
    assert _endpoint(stack, victim["instance_id"]) == "disabled"
    (note,) = record["release"]["notes"]
    assert note.startswith(f"left as is: metadata-endpoint of {victim['instance_id']}, put in "
                           'place by the tamper watch (found "enabled", made "disabled"')
    (sent,) = [m for m in messages(stack, queue) if m["MessageAttributes"]["event"][
        "Value"] == "released"]
    assert "metadata-endpoint" in sent["Message"]


def _endpoint(stack, instance_id: str) -> str:
    return stack.client("ec2").describe_instances(InstanceIds=[instance_id])["Reservations"][0][
        "Instances"][0]["MetadataOptions"]["HttpEndpoint"]
