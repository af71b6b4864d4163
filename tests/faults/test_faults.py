"""Faults from the embedded AWS: throttling is retried and the incident still succeeds; a
denied, exhausted or crashed step is reported and the rest goes on; every incident ends in a
terminal state with a message on the topic, and containment is never skipped."""

import pytest

from tests.helpers import (
    deliver_finding,
    finish,
    guardduty_event,
    interface_groups,
    make_victim,
    messages,
    product_groups,
    snapshots_of,
    subscribe_queue,
)

THROTTLED = [
    ("ec2", "DescribeInstances", "RequestLimitExceeded"),
    ("dynamodb", "TransactWriteItems", "ThrottlingException"),
    ("states", "StartExecution", "ThrottlingException"),
    ("ec2", "DescribeSecurityGroups", "RequestLimitExceeded"),
    ("ec2", "ModifyNetworkInterfaceAttribute", "RequestLimitExceeded"),
    ("ec2", "DisassociateIamInstanceProfile", "RequestLimitExceeded"),
    ("ec2", "ModifyInstanceAttribute", "RequestLimitExceeded"),
    ("ec2", "CreateTags", "RequestLimitExceeded"),
    ("ec2", "CreateSnapshots", "RequestLimitExceeded"),
    ("ec2", "DescribeSnapshots", "RequestLimitExceeded"),
    ("dynamodb", "UpdateItem", "ProvisionedThroughputExceededException"),
    ("s3", "PutObject", "SlowDown"),
    ("sns", "Publish", "Throttling"),
    ("lambda", "Invoke", "TooManyRequestsException"),
]


def _run(stack, victim):
    return finish(stack, deliver_finding(stack, guardduty_event(victim["instance_id"])))


def _isolated(stack, victim):
    isolation = product_groups(stack, victim["vpc_id"])["isolation"]["GroupId"]
    return all(interface_groups(stack, eni) == [isolation] for eni in victim["interfaces"])


@pytest.mark.parametrize("service,action,error", THROTTLED, ids=lambda v: str(v))
def test_throttling_is_retried_and_the_incident_succeeds(stack, service, action, error):
    queue = subscribe_queue(stack)
    victim = make_victim(stack, interfaces=2, volumes=1)
    stack.faults.arm(service, action, error, count=2)

    record, execution = _run(stack, victim)

    assert len(stack.faults.fired) == 2, "the fault was never hit"
    assert (record["status"], execution["status"]) == ("CONTAINED", "SUCCEEDED"), record["errors"]
    assert _isolated(stack, victim)
    assert any(m["Subject"].endswith(": contained") for m in messages(stack, queue))


def test_snapshot_limit_exceeded_is_reported_and_containment_stands(stack):
    queue = subscribe_queue(stack)
    victim = make_victim(stack, interfaces=1, volumes=2)
    stack.faults.arm("ec2", "CreateSnapshots", "SnapshotLimitExceeded")
    record, execution = _run(stack, victim)
    assert _isolated(stack, victim) and snapshots_of(stack, record["incident_id"]) == []
    assert [e["code"] for e in record["errors"]] == ["SnapshotLimitExceeded"]
    report = next(m for m in messages(stack, queue) if "opened" not in m["Subject"])
    assert "SnapshotLimitExceeded" in report["Message"]


def test_a_report_that_cannot_be_published_leaves_the_record_complete(stack):
    victim = make_victim(stack, interfaces=1, volumes=1)
    stack.faults.arm("sns", "Publish", "Throttling", count=50)
    record, execution = _run(stack, victim)
    assert record["status"] == "CONTAINED" and execution["status"] == "SUCCEEDED"
    assert [s["step"] for s in record["timeline"]] == [
        "contain", "evidence", "wait-snapshots", "report"]
    assert any(e["action"] == "detection-notice-step" for e in record["errors"])


@pytest.mark.parametrize("function,status,execution_status", [
    ("contain", "FAILED", "FAILED"),
    ("collect_evidence", "CONTAINED", "SUCCEEDED"),
])
def test_a_crashing_step_is_reported(stack, function, status, execution_status):
    queue = subscribe_queue(stack)
    victim = make_victim(stack, interfaces=1, volumes=1)
    stack.faults.arm("lambda", "Invoke", "Crash", resource=f"ec2-quarantine-dev-{function}",
                     count=5)
    record, execution = _run(stack, victim)
    assert (record["status"], execution["status"]) == (status, execution_status)
    step = {"contain": "contain-step", "collect_evidence": "evidence-step"}[function]
    assert any(e["action"] == step and e["code"] == "InjectedCrash" for e in record["errors"])
    report = next(m for m in messages(stack, queue) if "opened" not in m["Subject"])
    assert step in report["Message"]


def test_access_denied_on_the_swap_still_collects_evidence_and_reports(stack):
    queue = subscribe_queue(stack)
    victim = make_victim(stack, interfaces=1, volumes=1)
    stack.faults.arm("ec2", "ModifyNetworkInterfaceAttribute", "UnauthorizedOperation", count=10)
    record, execution = _run(stack, victim)
    assert record["status"] == "PARTIAL"  # the profile, protection, ... still applied
    assert len(snapshots_of(stack, record["incident_id"])) == 1
    report = next(m for m in messages(stack, queue) if "partially contained" in m["Subject"])
    assert "isolate-interface" in report["Message"]
