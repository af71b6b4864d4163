"""The pipeline end to end on the embedded AWS: GuardDuty finding (PutEvents -> the app's rule
-> handler) or HTTP request -> Step Functions -> containment, snapshots, reports on the topic."""

from urllib.parse import parse_qs


from chalicelib.report import DNS_NOT_CUT
from local import recording
from tests.helpers import (
    api,
    deliver_finding,
    finish,
    guardduty_event,
    history,
    instance_attribute,
    instance_tags,
    interface_groups,
    make_victim,
    messages,
    product_groups,
    snapshots_of,
    subscribe_queue,
)


def _assert_contained(stack, victim, record):
    groups = product_groups(stack, victim["vpc_id"])
    isolation, open_group = groups["isolation"], groups["open"]
    for eni in victim["interfaces"]:
        assert interface_groups(stack, eni) == [isolation["GroupId"]]
    assert isolation["IpPermissions"] == [] and isolation["IpPermissionsEgress"] == []
    ec2 = stack.client("ec2")
    assert ec2.describe_iam_instance_profile_associations(Filters=[
        {"Name": "instance-id", "Values": [victim["instance_id"]]}])[
        "IamInstanceProfileAssociations"] == []
    assert instance_attribute(stack, victim["instance_id"], "disableApiTermination") is True
    assert instance_attribute(stack, victim["instance_id"],
                              "instanceInitiatedShutdownBehavior") == "stop"
    tags = instance_tags(stack, victim["instance_id"])
    assert tags["QuarantineIncident"] == record["incident_id"]
    assert tags["QuarantineStatus"] == "CONTAINED"
    return isolation["GroupId"], open_group["GroupId"]


def _swaps(calls):
    """(interface, group, function) of every ModifyNetworkInterfaceAttribute that sets groups,
    in the order made."""
    found = []
    for call in calls:
        fields = parse_qs(call.body)
        if call.name == "ec2:ModifyNetworkInterfaceAttribute" and "SecurityGroupId.1" in fields:
            found.append((fields["NetworkInterfaceId"][0], fields["SecurityGroupId.1"][0],
                          call.caller))
    return found


def test_guardduty_finding_contains_preserves_and_reports(stack):
    queue = subscribe_queue(stack)
    victim = make_victim(stack, interfaces=2, volumes=2)
    recording.start(stack)

    decided = deliver_finding(stack, guardduty_event(victim["instance_id"]))
    record, execution = finish(stack, decided)
    recording.stop(stack)

    assert decided["decision"] == "acted" and execution["status"] == "SUCCEEDED"
    assert record["status"] == "CONTAINED" and record["errors"] == []
    isolation, open_group = _assert_contained(stack, victim, record)
    calls = recording.calls(stack)
    swaps = _swaps(calls)
    for eni in victim["interfaces"]:
        mine = [(group, by) for interface, group, by in swaps if interface == eni]
        entry = "ec2-quarantine-dev-on_guardduty_finding"
        assert mine == [(open_group, entry), (isolation, entry)], \
            "the entry function's cut: all-open group first, then isolation (Contain verifies)"
    started = next(n for n, c in enumerate(calls) if c.name == "states:StartExecution")
    assert max(n for n, c in enumerate(calls) if c.name == "ec2:ModifyNetworkInterfaceAttribute"
               and "SecurityGroupId.1" in c.body) < started, "isolated before the execution"
    snapshots = snapshots_of(stack, record["incident_id"])
    assert len(snapshots) == 2 and {s["State"] for s in snapshots} == {"completed"}
    assert all({"Key": "QuarantineInstance", "Value": victim["instance_id"]} in s["Tags"]
               for s in snapshots)
    received = messages(stack, queue)
    subjects = [m["Subject"] for m in received]
    assert any("incident opened" in s for s in subjects)
    assert any(s.endswith(": contained") for s in subjects)
    final = next(m["Text"] for m in received if m["Subject"].endswith(": contained"))
    assert all(s["SnapshotId"] in final for s in snapshots)
    assert DNS_NOT_CUT in final, "what isolation cannot cut is named"
    assert all(len(s) < 100 and "\n" not in s for s in subjects)
    steps = [e["lambdaFunctionScheduledEventDetails"]["resource"].rsplit(":", 1)[-1]
             for e in history(stack, execution["executionArn"])
             if e["type"] == "LambdaFunctionScheduled"]
    assert steps[0] == "ec2-quarantine-dev-contain" and steps[-1] == "ec2-quarantine-dev-report"


def test_http_request_contains_the_same_way(stack):
    queue = subscribe_queue(stack)
    victim = make_victim(stack, interfaces=2, volumes=3)

    status, answer = api(stack, "POST", "/quarantine",
                         {"instance_id": victim["instance_id"], "reason": "analyst saw beaconing"})
    assert status == 202
    assert answer["status_url"] == f"/incidents/{answer['incident_id']}"
    record, execution = finish(stack, answer)

    assert execution["status"] == "SUCCEEDED"
    _assert_contained(stack, victim, record)
    assert len(snapshots_of(stack, record["incident_id"])) == 3
    status, fetched = api(stack, "GET", answer["status_url"])
    assert status == 200 and fetched["status"] == "CONTAINED"
    assert fetched["reason"] == "analyst saw beaconing"
    assert [step["step"] for step in fetched["timeline"]] == [
        "cut", "contain", "evidence", "wait-snapshots", "report", "page"]
    assert len(messages(stack, queue)) == 2


def test_snapshots_pending_for_a_few_polls_are_waited_for(stack):
    victim = make_victim(stack, interfaces=1, volumes=2)
    stack.hold_snapshots(2)
    record, execution = finish(stack, deliver_finding(stack, guardduty_event(victim["instance_id"])))
    assert execution["status"] == "SUCCEEDED"
    assert set(record["evidence"]["snapshots"].values()) == {"completed"}
    polls = [e for e in history(stack, execution["executionArn"]) if e["type"] == "WaitStateEntered"]
    assert len(polls) == 3  # two polls saw them pending, the third saw them completed


def test_snapshots_missing_the_deadline_are_named_in_the_report(stack):
    queue = subscribe_queue(stack)
    stack.configure(SNAPSHOT_DEADLINE_SECONDS="2")
    victim = make_victim(stack, interfaces=1, volumes=2)
    stack.hold_snapshots(1000)
    record, execution = finish(stack, deliver_finding(stack, guardduty_event(victim["instance_id"])))

    late = sorted(record["evidence"]["snapshots"])
    assert len(late) == 2 and set(record["evidence"]["snapshots"].values()) == {"pending"}
    assert {e["resource"] for e in record["errors"] if e["code"] == "SnapshotNotCompleted"} == set(late)
    report = next(m for m in messages(stack, queue) if "incident opened" not in m["Subject"])
    assert all(f"{s} was still pending at the deadline" in report["Text"] for s in late)
    assert record["status"] == "CONTAINED"  # containment itself succeeded


def test_access_denied_on_one_containment_call_still_collects_evidence_and_reports(stack):
    queue = subscribe_queue(stack)
    victim = make_victim(stack, interfaces=2, volumes=2)
    stack.faults.arm("ec2", "DisassociateIamInstanceProfile", "UnauthorizedOperation")

    record, execution = finish(stack, deliver_finding(stack, guardduty_event(victim["instance_id"])))

    assert record["status"] == "PARTIAL" and execution["status"] == "SUCCEEDED"
    assert [(e["action"], e["code"]) for e in record["errors"]] == [
        ("detach-instance-profile", "UnauthorizedOperation")]
    assert len(snapshots_of(stack, record["incident_id"])) == 2
    for eni in victim["interfaces"]:  # the other actions still ran
        assert interface_groups(stack, eni) == [product_groups(stack, victim["vpc_id"])[
            "isolation"]["GroupId"]]
    report = next(m for m in messages(stack, queue) if "partially contained" in m["Subject"])
    assert "detach-instance-profile" in report["Text"]
    assert "UnauthorizedOperation" in report["Text"]


def test_containment_that_changes_nothing_fails_the_execution(stack):
    queue = subscribe_queue(stack)
    victim = make_victim(stack, interfaces=1, volumes=1, profile=False)
    for action in ("ModifyNetworkInterfaceAttribute", "ModifyInstanceAttribute", "CreateTags"):
        stack.faults.arm("ec2", action, "UnauthorizedOperation", count=10,
                         resource=None if action != "CreateTags" else victim["instance_id"])

    record, execution = finish(stack, deliver_finding(stack, guardduty_event(victim["instance_id"])))

    assert record["status"] == "FAILED" and execution["status"] == "FAILED"
    assert len(snapshots_of(stack, record["incident_id"])) == 1  # evidence all the same
    assert any(m["Subject"].endswith(": failed") for m in messages(stack, queue))
    # a failed incident does not block the next one
    again = deliver_finding(stack, guardduty_event(victim["instance_id"]))
    assert again["decision"] == "acted" and again["incident_id"] != record["incident_id"]
    finish(stack, again)


def _second_victim(stack):
    """A victim in a VPC whose groups exist, and that VPC's isolation group."""
    first = make_victim(stack, interfaces=1, volumes=1)  # makes the VPC's pair of groups
    finish(stack, deliver_finding(stack, guardduty_event(first["instance_id"])))
    isolation = product_groups(stack, first["vpc_id"])["isolation"]["GroupId"]
    victim = make_victim(stack, interfaces=1, volumes=1,
                         vpc={"vpc_id": first["vpc_id"], "subnet_id": first["subnet_id"]})
    return victim, isolation


def _contains_writes(calls):
    """Contain's requests that change something, in order (its reads and MACs left out)."""
    return [c for c in calls if (c.caller or "").endswith("-contain")
            and not c.action.startswith(("Describe", "Get", "List", "VerifyMac", "GenerateMac"))]


def _first_action(writes):
    """Contain's writes up to its second action: its first (the cut: swaps, with preservation
    and tracking beside them) ends where a request of another kind is made."""
    cut = ("ec2:ModifyNetworkInterfaceAttribute", "ec2:ModifyInstanceAttribute")
    end = next((n for n, c in enumerate(writes) if c.name not in cut), len(writes))
    return [c for c in writes[:end] if "SecurityGroupId.1" in c.body], writes[end:]


def test_a_half_cut_left_by_the_entry_function_is_finished_first_by_contain(stack):
    """The entry function's second swap fails, and its retry: the interface is left on the
    all-open group, and Contain's very first change puts it on the isolation group."""
    victim, isolation = _second_victim(stack)
    (eni, groups), = victim["interfaces"].items()
    stack.faults.arm("ec2", "ModifyNetworkInterfaceAttribute", "UnauthorizedOperation", count=2,
                     resource=isolation, caller="on_guardduty_finding")
    recording.start(stack)

    record, _ = finish(stack, deliver_finding(stack, guardduty_event(victim["instance_id"])))
    recording.stop(stack)

    assert interface_groups(stack, eni) == [isolation]
    assert record["status"] == "CONTAINED" and record["errors"] == []
    (failure,) = record["first_cut"]["failures"]
    assert failure["resource"] == eni and "LEFT ON THE ALL-OPEN GROUP" in failure["message"]
    swaps, after = _first_action(_contains_writes(recording.calls(stack)))
    assert [isolation in c.body for c in swaps] == [True], "straight to the isolation group"
    assert after and not any("SecurityGroupId.1" in c.body for c in after)


def test_a_failed_isolation_step_never_leaves_an_interface_all_open(stack):
    """The second swap fails for the entry function and for Contain, each with its retry:
    Contain's first action gives the interface its own groups back."""
    victim, isolation = _second_victim(stack)
    (eni, groups), = victim["interfaces"].items()
    stack.faults.arm("ec2", "ModifyNetworkInterfaceAttribute", "UnauthorizedOperation", count=4,
                     resource=isolation)  # the all-open step works, the isolation step fails
    recording.start(stack)

    record, _ = finish(stack, deliver_finding(stack, guardduty_event(victim["instance_id"])))
    recording.stop(stack)

    assert interface_groups(stack, eni) == groups  # back on its own groups, not all-open
    (error,) = [e for e in record["errors"] if e["action"] == "isolate-interface"]
    assert "original groups were restored" in error["message"]
    assert record["status"] == "PARTIAL"
    # the refused swaps never reach moto: each function's two tries are the faults fired
    assert [f["caller"].rsplit("-", 1)[-1] for f in stack.faults.fired] == [
        "on_guardduty_finding"] * 2 + ["contain"] * 2
    swaps, after = _first_action(_contains_writes(recording.calls(stack)))
    assert len(swaps) == 1 and all(g in swaps[0].body for g in groups), \
        "restored before anything else is done"
    assert after and not any("SecurityGroupId.1" in c.body for c in after)


def test_a_guest_powering_off_at_the_second_swap_stops_the_instance_and_keeps_its_volumes(stack):
    """A dead-man switch: the host powers itself off when its network drops. Launched with
    shutdown behaviour `terminate` and a root volume deleted on termination, it would be gone
    with its disk; the preservation sent beside the first swap makes it stop instead."""
    first = make_victim(stack, interfaces=1, volumes=1)
    finish(stack, deliver_finding(stack, guardduty_event(first["instance_id"])))
    isolation = product_groups(stack, first["vpc_id"])["isolation"]["GroupId"]
    victim = make_victim(stack, interfaces=2, volumes=2, shutdown_behaviour="terminate",
                         vpc={"vpc_id": first["vpc_id"], "subnet_id": first["subnet_id"]})
    ec2 = stack.client("ec2")
    mappings = ec2.describe_instances(InstanceIds=[victim["instance_id"]])["Reservations"][0][
        "Instances"][0]["BlockDeviceMappings"]
    volumes = [m["Ebs"]["VolumeId"] for m in mappings]
    assert any(m["Ebs"]["DeleteOnTermination"] for m in mappings)  # the trap is armed
    states = []
    stack.faults.when("ec2", "ModifyNetworkInterfaceAttribute", resource=isolation,
                      run=lambda: states.append(stack.power_off(victim["instance_id"])))

    record, _ = finish(stack, deliver_finding(stack, guardduty_event(victim["instance_id"])))

    assert states and states[0] in ("stopping", "stopped"), states  # it fired, and stopped
    described = ec2.describe_instances(InstanceIds=[victim["instance_id"]])["Reservations"][0][
        "Instances"][0]
    assert described["State"]["Name"] in ("stopping", "stopped")
    assert sorted(v["VolumeId"] for v in ec2.describe_volumes(VolumeIds=volumes)["Volumes"]) == \
        sorted(volumes)
    assert record["status"] == "CONTAINED"
    assert {c["action"] for c in record["changes"]} >= {"shutdown-behaviour",
                                                        "keep-volumes-on-termination"}
