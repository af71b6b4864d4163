"""One rule for what travels with an execution: the options it started under are the ones its
steps act under, whatever the settings say by the time a step runs (chalicelib/execution.py)."""

import time

from local.victims import make_fleet_member
from tests.helpers import api, finish, incident, make_victim, snapshots_of

FORENSIC = "210987654321"


def _until(condition, timeout: float = 30.0):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def _instance(stack, instance_id: str) -> dict:
    return stack.client("ec2").describe_instances(InstanceIds=[instance_id])[
        "Reservations"][0]["Instances"][0]


def test_containment_acts_under_the_options_its_incident_opened_with(stack):
    """Memory capture comes before containment: while it waits for its command (held by one
    InvocationDoesNotExist), the settings change; containment still swaps in the deny-all
    profile and puts the instance in Standby, as the incident opened with."""
    stack.configure(CREDENTIALS_MODE="deny-all", AUTOSCALING_MODE="standby",
                    MEMORY_CAPTURE_DOCUMENT="AWSSupport-ExampleMemoryCapture")
    fleet = make_fleet_member(stack, profile=True)
    stack.manage_with_ssm(fleet["instance_id"])
    stack.faults.arm("ssm", "GetCommandInvocation", "InvocationDoesNotExist")

    status, answer = api(stack, "POST", "/quarantine", {"instance_id": fleet["instance_id"]})
    assert status == 202
    _until(lambda: not stack.faults.armed())  # the capture now sleeps before it polls again
    stack.configure(CREDENTIALS_MODE="disassociate", AUTOSCALING_MODE="detach")
    record, _ = finish(stack, answer)

    assert record["status"] == "CONTAINED", record["errors"]
    assert record["memory"]["outcome"] == "captured"
    associations = stack.client("ec2").describe_iam_instance_profile_associations(Filters=[
        {"Name": "instance-id", "Values": [fleet["instance_id"]]}])["IamInstanceProfileAssociations"]
    assert [a["IamInstanceProfile"]["Arn"] for a in associations] == [
        stack.names["DENY_ALL_PROFILE_ARN"]]
    group = stack.client("autoscaling").describe_auto_scaling_instances(
        InstanceIds=[fleet["instance_id"]])["AutoScalingInstances"]
    assert [g["LifecycleState"] for g in group] == ["Standby"]


def test_snapshots_waited_for_are_shared_and_the_instance_stopped_as_the_incident_opened(stack):
    """The settings change while the execution waits for its snapshots: the snapshot check
    still shares them with the forensic account and stops the instance."""
    stack.configure(FORENSIC_ACCOUNT_ID=FORENSIC, STOP_AFTER_EVIDENCE="true")
    victim = make_victim(stack, interfaces=1, volumes=1)
    stack.hold_snapshots(4)

    status, answer = api(stack, "POST", "/quarantine", {"instance_id": victim["instance_id"]})
    assert status == 202
    _until(lambda: "evidence" in (incident(stack, answer["incident_id"]) or {}))
    stack.configure(FORENSIC_ACCOUNT_ID="", STOP_AFTER_EVIDENCE="false")
    record, _ = finish(stack, answer)

    assert record["status"] == "CONTAINED", record["errors"]
    assert _instance(stack, victim["instance_id"])["State"]["Name"] in ("stopping", "stopped")
    snapshots = snapshots_of(stack, record["incident_id"])
    assert snapshots
    for snapshot in snapshots:
        shared = stack.client("ec2").describe_snapshot_attribute(
            SnapshotId=snapshot["SnapshotId"], Attribute="createVolumePermission")
        assert shared["CreateVolumePermissions"] == [{"UserId": FORENSIC}]
