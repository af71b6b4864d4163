"""Operating it: dry-run, release, the finding field, the incidents list, member accounts and
regions, and findings arriving together."""

import threading

from chalicelib import workflow
from local import recording
from local.victims import make_fleet_member
from tests.helpers import (
    api,
    deliver_finding,
    finish,
    guardduty_event,
    instance_attribute,
    instance_tags,
    interface_groups,
    make_victim,
    messages,
    sample,
    snapshots_of,
    subscribe_queue,
    wait_execution,
)

READ_ONLY = ("Describe", "Get", "List")
GUARDED = {"ec2", "autoscaling", "elasticloadbalancing", "iam", "ssm"}


def _mutations(calls):
    return [c.name for c in calls if c.service in GUARDED and not c.action.startswith(READ_ONLY)]


def test_dry_run_plans_everything_and_changes_nothing(stack):
    queue = subscribe_queue(stack)
    stack.configure(MEMORY_CAPTURE_DOCUMENT="AWSSupport-ExampleMemoryCapture",
                    REVOKE_ROLE_SESSIONS="true", DISASSOCIATE_ELASTIC_IP="true")
    victim = make_victim(stack, interfaces=2, volumes=2)
    stack.manage_with_ssm(victim["instance_id"])
    recording.start(stack)

    status, answer = api(stack, "POST", "/quarantine",
                         {"instance_id": victim["instance_id"], "dry_run": True})
    record, execution = finish(stack, answer)
    recording.stop(stack)

    assert status == 202 and record["status"] == "DRY_RUN" and execution["status"] == "SUCCEEDED"
    calls = [c.name for c in recording.calls(stack)]
    assert "ec2:DescribeSecurityGroups" in calls and "ssm:DescribeInstanceInformation" in calls
    assert _mutations(recording.calls(stack)) == []
    for eni, groups in victim["interfaces"].items():
        assert interface_groups(stack, eni) == groups
    assert snapshots_of(stack, record["incident_id"]) == []
    planned = [c["action"] for c in record["plan"]]
    assert planned[:4] == ["isolate-interface"] * 4  # all-open, then isolation, per interface
    assert {"detach-instance-profile", "revoke-role-sessions", "disable-instance-metadata",
            "termination-protection", "shutdown-behaviour", "keep-volumes-on-termination",
            "quarantine-tags"} <= set(planned)
    assert record["memory_plan"][0]["action"] == "capture-memory"
    report = next(m for m in messages(stack, queue) if "changes planned" in m["Subject"])
    assert "nothing was changed" in report["Text"]
    assert "1. capture-memory" in report["Text"]

    # a dry run never blocks a real incident
    status, real = api(stack, "POST", "/quarantine", {"instance_id": victim["instance_id"]})
    assert status == 202 and real["incident_id"] != answer["incident_id"]
    finish(stack, real)


def test_dry_run_setting_applies_to_findings_on_a_fleet_member(stack):
    stack.configure(DRY_RUN="true", DISASSOCIATE_ELASTIC_IP="true",
                    FORENSIC_ACCOUNT_ID="210987654321", STOP_AFTER_EVIDENCE="true")
    fleet = make_fleet_member(stack)
    recording.start(stack)
    record, _ = finish(stack, deliver_finding(stack, guardduty_event(fleet["instance_id"])))
    recording.stop(stack)
    calls = [c.name for c in recording.calls(stack)]
    assert "elasticloadbalancing:DescribeTargetHealth" in calls
    assert record["status"] == "DRY_RUN" and _mutations(recording.calls(stack)) == []
    planned = [c["action"] for c in record["plan"] + record["evidence_plan"]]
    for action in ("leave-autoscaling-group", "leave-target-groups",
                   "leave-classic-load-balancers", "disassociate-elastic-ip", "snapshots",
                   "share-snapshots", "stop-instance"):
        assert action in planned


def test_release_restores_the_pre_incident_state(stack):
    queue = subscribe_queue(stack)
    victim = make_victim(stack, interfaces=2, volumes=2)
    ec2 = stack.client("ec2")
    profile = ec2.describe_iam_instance_profile_associations(Filters=[
        {"Name": "instance-id", "Values": [victim["instance_id"]]}])[
        "IamInstanceProfileAssociations"][0]["IamInstanceProfile"]["Arn"]
    def delete_on_termination():
        described = ec2.describe_instances(InstanceIds=[victim["instance_id"]])
        return {m["Ebs"]["VolumeId"]: m["Ebs"]["DeleteOnTermination"]
                for m in described["Reservations"][0]["Instances"][0]["BlockDeviceMappings"]}

    def metadata():
        described = ec2.describe_instances(InstanceIds=[victim["instance_id"]])
        return {k: v for k, v in described["Reservations"][0]["Instances"][0][
            "MetadataOptions"].items() if k != "State"}

    before, options = delete_on_termination(), metadata()
    assert True in before.values() and False in before.values()
    assert (options["HttpEndpoint"], options["HttpTokens"]) == ("enabled", "required")
    contained, _ = finish(stack, deliver_finding(stack, guardduty_event(victim["instance_id"])))
    assert contained["status"] == "CONTAINED"
    assert set(delete_on_termination().values()) == {False}
    assert metadata() == {**options, "HttpEndpoint": "disabled"}  # the endpoint alone

    status, answer = api(stack, "POST", "/release",
                         {"instance_id": victim["instance_id"], "reason": "false positive"})
    assert status == 202
    assert wait_execution(stack, answer["release_execution_arn"])["status"] == "SUCCEEDED"

    for eni, groups in victim["interfaces"].items():  # each interface its own set again
        assert interface_groups(stack, eni) == groups
    associations = ec2.describe_iam_instance_profile_associations(Filters=[
        {"Name": "instance-id", "Values": [victim["instance_id"]]}])["IamInstanceProfileAssociations"]
    assert [a["IamInstanceProfile"]["Arn"] for a in associations] == [profile]
    assert instance_attribute(stack, victim["instance_id"], "disableApiTermination") is False
    assert instance_attribute(stack, victim["instance_id"],
                              "instanceInitiatedShutdownBehavior") == "terminate"
    assert delete_on_termination() == before
    assert metadata() == options
    assert not {"QuarantineIncident", "QuarantineStatus", "QuarantineFinding"} & set(
        instance_tags(stack, victim["instance_id"]))
    status, released = api(stack, "GET", f"/incidents/{contained['incident_id']}")
    assert released["status"] == "RELEASED" and released["release"]["reason"] == "false positive"
    assert len(snapshots_of(stack, contained["incident_id"])) == 2  # evidence kept
    assert any(m["Subject"].endswith(": released") for m in messages(stack, queue))

    # released: nothing more to release; a new finding opens a new incident
    assert api(stack, "POST", "/release", {"instance_id": victim["instance_id"],
                                           "reason": "again"})[0] == 409
    again = deliver_finding(stack, guardduty_event(victim["instance_id"]))
    assert again["decision"] == "acted" and again["incident_id"] != contained["incident_id"]
    finish(stack, again)


def test_release_re_registers_with_load_balancers_when_asked_not_with_the_group(stack):
    queue = subscribe_queue(stack)
    fleet = make_fleet_member(stack)
    finish(stack, deliver_finding(stack, guardduty_event(fleet["instance_id"])))
    status, answer = api(stack, "POST", "/release", {"instance_id": fleet["instance_id"],
                                                     "reason": "cleared", "reregister": True})
    assert status == 202
    wait_execution(stack, answer["release_execution_arn"])
    elbv2 = stack.client("elbv2")
    for arn in fleet["target_groups"]:
        targets = [t["Target"]["Id"] for t in
                   elbv2.describe_target_health(TargetGroupArn=arn)["TargetHealthDescriptions"]]
        assert fleet["instance_id"] in targets
    report = next(m for m in messages(stack, queue) if m["Subject"].endswith(": released"))
    assert "not re-attached to Auto Scaling group web" in report["Text"]


def test_release_refusals(stack):
    victim = make_victim(stack, interfaces=1, volumes=1)
    assert api(stack, "POST", "/release", {"instance_id": victim["instance_id"],
                                           "reason": "x"})[0] == 409
    assert api(stack, "POST", "/release", {"instance_id": "i-0123456789abcdef0",
                                           "reason": "x"})[0] == 404
    status, body = api(stack, "POST", "/release", {"instance_id": victim["instance_id"]})
    assert status == 400 and body["error"] == "MissingReason"


def test_finding_field_accepts_either_casing_and_must_name_the_instance(stack):
    victim = make_victim(stack, interfaces=1, volumes=1)
    pascal = sample("backdoor-cc-activity-get-findings-pascalcase.json")
    pascal["Resource"]["InstanceDetails"]["InstanceId"] = victim["instance_id"]
    status, answer = api(stack, "POST", "/quarantine",
                         {"instance_id": victim["instance_id"], "finding": pascal})
    assert status == 202
    record, _ = finish(stack, answer)
    assert record["finding"]["type"] == pascal["Type"]

    other = guardduty_event("i-0123456789abcdef0")
    status, body = api(stack, "POST", "/quarantine",
                       {"instance_id": victim["instance_id"], "finding": other})
    assert status == 400 and body["error"] == "FindingMismatch"
    assert "i-0123456789abcdef0" in body["message"]


def test_incidents_list_newest_first_filtered_and_paginated(stack):
    victims = [make_victim(stack, interfaces=1, volumes=1) for _ in range(3)]
    opened = []
    for victim in victims:
        status, answer = api(stack, "POST", "/quarantine", {"instance_id": victim["instance_id"],
                                                           "dry_run": True})
        opened.append(answer["incident_id"])
        finish(stack, answer)

    status, listed = api(stack, "GET", "/incidents")
    assert [i["incident_id"] for i in listed["incidents"]] == list(reversed(opened))
    status, page = api(stack, "GET", "/incidents?limit=2")
    assert len(page["incidents"]) == 2 and page["next_token"]
    status, rest = api(stack, "GET", f"/incidents?limit=2&next_token={page['next_token']}")
    assert [i["incident_id"] for i in rest["incidents"]] == [opened[0]]
    status, one = api(stack, "GET", f"/incidents?instance_id={victims[1]['instance_id']}")
    assert [i["incident_id"] for i in one["incidents"]] == [opened[1]]
    assert api(stack, "GET", "/incidents?status=CONTAINED")[1]["incidents"] == []
    assert len(api(stack, "GET", "/incidents?status=DRY_RUN&limit=2")[1]["incidents"]) == 2
    assert api(stack, "GET", "/incidents?since=2999-01-01")[1]["incidents"] == []
    for bad in ("status=NOPE", "since=yesterday", "limit=0", "next_token=%%%", "colour=red"):
        assert api(stack, "GET", f"/incidents?{bad}")[0] == 400


def test_member_account_finding_is_acted_on_in_that_account(stack):
    member = "111111111111"
    stack.configure(MEMBER_ACCOUNTS=member, MEMBER_EXTERNAL_ID="shared-secret")
    victim = make_victim(stack, interfaces=2, volumes=1, account=member, region="eu-west-1")

    record, execution = finish(stack, deliver_finding(stack, guardduty_event(
        victim["instance_id"], account=member, region="eu-west-1")))

    assert record["status"] == "CONTAINED" and record["account_id"] == member
    ec2 = stack.client("ec2", region="eu-west-1", account=member)
    isolation = ec2.describe_security_groups(Filters=[
        {"Name": "tag:ec2-quarantine", "Values": ["isolation"]}])["SecurityGroups"][0]["GroupId"]
    for eni in victim["interfaces"]:
        groups = ec2.describe_network_interfaces(NetworkInterfaceIds=[eni])["NetworkInterfaces"]
        assert [g["GroupId"] for g in groups[0]["Groups"]] == [isolation]


def test_account_not_allowed_is_refused(stack):
    victim = make_victim(stack, interfaces=1, volumes=1, account="222222222222")
    decided = deliver_finding(stack, guardduty_event(victim["instance_id"], account="222222222222"))
    assert decided["decision"] == "refused" and decided["code"] == "AccountNotAllowed"
    status, body = api(stack, "POST", "/quarantine", {"instance_id": victim["instance_id"],
                                                      "account_id": "222222222222"})
    assert status == 403 and "222222222222" in body["message"]


def test_twenty_findings_for_five_instances_make_five_incidents(stack):
    victims = [make_victim(stack, interfaces=1, volumes=1) for _ in range(5)]
    events = [guardduty_event(v["instance_id"], finding_id=f"{n:032x}")
              for n in range(4) for v in victims]
    barrier = threading.Barrier(len(events))
    decisions = []

    def handle(event):
        barrier.wait()
        decisions.append(workflow.handle_finding(event["detail"], stack.account))

    threads = [threading.Thread(target=handle, args=(e,)) for e in events]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    acted = [d for d in decisions if d["decision"] == "acted"]
    recorded = [d for d in decisions if d["decision"] == "recorded"]
    assert len(acted) == 5 and len(recorded) == 15
    assert {d["instance_id"] for d in acted} == {v["instance_id"] for v in victims}
    for decision in acted:
        record, _ = finish(stack, decision)
        assert record["findings_count"] == 3

    # an update of the same finding later, while the incident is active, is recorded, not re-run
    update = deliver_finding(stack, guardduty_event(victims[0]["instance_id"], finding_id="0" * 32))
    assert update["decision"] == "recorded"


def test_a_failed_release_can_be_asked_for_again_and_finishes_the_job(stack):
    victim = make_victim(stack, interfaces=2, volumes=1)
    contained, _ = finish(stack, deliver_finding(stack, guardduty_event(victim["instance_id"])))
    stack.faults.arm("ec2", "AssociateIamInstanceProfile", "UnauthorizedOperation")

    status, first = api(stack, "POST", "/release", {"instance_id": victim["instance_id"],
                                                    "reason": "cleared"})
    wait_execution(stack, first["release_execution_arn"])
    _, incomplete = api(stack, "GET", f"/incidents/{contained['incident_id']}")
    assert incomplete["status"] == "CONTAINED"  # not released: one undo failed
    for eni, groups in victim["interfaces"].items():  # the rest was restored all the same
        assert interface_groups(stack, eni) == groups

    status, second = api(stack, "POST", "/release", {"instance_id": victim["instance_id"],
                                                     "reason": "cleared, again"})
    assert status == 202 and second["release_execution_arn"] != first["release_execution_arn"]
    assert wait_execution(stack, second["release_execution_arn"])["status"] == "SUCCEEDED"
    _, released = api(stack, "GET", f"/incidents/{contained['incident_id']}")
    assert released["status"] == "RELEASED" and released["errors"][-1]["code"] == (
        "UnauthorizedOperation")
    restored = [c["action"] for c in released["release"]["restored_changes"]]
    assert restored.count("isolate-interface") == 2  # each undone once, not twice


def test_member_account_incident_is_released_in_that_account(stack):
    member = "111111111111"
    stack.configure(MEMBER_ACCOUNTS=member)
    victim = make_victim(stack, interfaces=2, volumes=1, account=member)
    finish(stack, deliver_finding(stack, guardduty_event(victim["instance_id"], account=member)))
    status, answer = api(stack, "POST", "/release", {"instance_id": victim["instance_id"],
                                                     "account_id": member, "reason": "cleared"})
    assert status == 202
    assert wait_execution(stack, answer["release_execution_arn"])["status"] == "SUCCEEDED"
    ec2 = stack.client("ec2", account=member)
    for eni, groups in victim["interfaces"].items():
        described = ec2.describe_network_interfaces(NetworkInterfaceIds=[eni])
        assert sorted(g["GroupId"] for g in described["NetworkInterfaces"][0]["Groups"]) == groups
