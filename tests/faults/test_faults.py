"""Faults from the embedded AWS, on every AWS operation the workflow calls.

One victim shape serves every test: a member of an Auto Scaling group behind two target groups
and a classic load balancer, with an Elastic IP, an instance profile and an SSM agent, quarantined
with every option on. OPERATIONS lists each AWS operation a normal run of it makes — by service,
action and the app's function that calls it — with what a denial of it must leave reported and
undone; a test fails when a normal run makes an operation the list lacks.

Throttling on any of them is retried and the incident succeeds. A denial is reported on the
incident and in the report on the topic, every other action still applies (read back from AWS),
and the incident ends in a terminal state: containment is never skipped because a later step
failed, and no finding is silently dropped.
"""

import json
import logging
import time
from dataclasses import dataclass

import pytest

from chalicelib.actions.isolation import SHORT_TRACKING
from deploy import names, statemachine
from local import recording
from local.faults import denied, throttled
from local.victims import make_fleet_member, make_victim
from tests.helpers import (
    api,
    deliver_finding,
    finish,
    guardduty_event,
    incident,
    instance_tags,
    interface_groups,
    messages,
    product_groups,
    snapshots_of,
    subscribe_queue,
    wait_execution,
)

FORENSIC_ACCOUNT = "210987654321"
OPTIONS = {"DISASSOCIATE_ELASTIC_IP": "true", "REVOKE_ROLE_SESSIONS": "true",
           "STOP_AFTER_EVIDENCE": "true", "FORENSIC_ACCOUNT_ID": FORENSIC_ACCOUNT,
           "MEMORY_CAPTURE_DOCUMENT": "AWSSupport-ExampleMemoryCapture"}
STATE_MACHINE = "state machine"  # the caller of the definition's own tasks (Lambda, SNS)
ADMISSION = ("admission",)  # a denial here means no incident can start
CONTAIN = ("isolate-interface", "connection-tracking", "leave-autoscaling-group", "leave-target-groups",
           "leave-classic-load-balancers", "disassociate-elastic-ip", "detach-instance-profile",
           "revoke-role-sessions", "termination-protection", "keep-volumes-on-termination",
           "quarantine-tags")
CRITICAL = ("isolate-interface", "detach-instance-profile")  # what the status is about
EVIDENCE = ("snapshots", "evidence-store")
AFTER_SNAPSHOTS = ("share-snapshots", "stop-instance")
DETECTION = "%3A+incident+opened"  # in the detection notice's request (its subject) alone
REPORT = "%22Incident+inc-"  # in the report's request (its text begins so), not the detection's


@dataclass(frozen=True)
class Op:
    """An AWS operation the workflow calls, and what a denial of it must leave behind."""

    service: str  # signing name
    action: str
    caller: str  # the app's function that calls it, or STATE_MACHINE
    fails: tuple  # the actions (or steps) the incident reports failed
    unapplied: tuple | None = None  # actions whose change is absent from AWS (None: `fails`)
    resource: str | None = None  # narrows the fault to one of the caller's calls
    stops: tuple = ()  # steps a denial keeps from running

    @property
    def step(self) -> str:
        """The step whose run the fault hits (the state machine's tasks: the one invoked)."""
        if self.service == "lambda":
            return self.resource[len(names.function("dev", "")):]
        return self.resource if self.caller == STATE_MACHINE else self.caller

    @property
    def key(self):
        return (self.service, self.action, self.caller)

    @property
    def not_applied(self) -> set:
        return set(self.fails if self.unapplied is None else self.unapplied)

    def __str__(self):
        return f"{self.caller}:{self.service}:{self.action}" + (
            f"[{self.resource}]" if self.resource else "")


def _ops(service, actions, caller, fails, unapplied=None, stops=()):
    return [Op(service, action, caller, fails, unapplied, stops=stops) for action in actions]


def _invoke(function, fails, unapplied):
    """The state machine's invocation of `function`: denied, the step does not run."""
    return Op("lambda", "Invoke", STATE_MACHINE, fails, unapplied,
              resource=names.function("dev", function), stops=(function,))


OPERATIONS = [
    *_ops("ec2", ["DescribeInstances"], "on_guardduty_finding", ADMISSION),
    *_ops("dynamodb", ["TransactWriteItems"], "on_guardduty_finding", ADMISSION),
    *_ops("states", ["StartExecution"], "on_guardduty_finding", ADMISSION),
    # the incident's binding cannot be sealed: nothing may act on it (the claim is marked)
    *_ops("kms", ["GenerateMac"], "on_guardduty_finding", ADMISSION),
    # read beside DescribeInstances for the pre-incident state: denied, Contain reads them
    *_ops("ec2", ["DescribeInstanceAttribute"], "on_guardduty_finding", ()),
    # a step that cannot verify its execution does nothing (it fails closed); one that cannot
    # seal its change records cannot record them (as if its write were denied)
    *_ops("kms", ["VerifyMac"], "capture_memory", ("capture-memory-step",), ("capture-memory",)),
    *_ops("kms", ["GenerateMac"], "capture_memory", ("capture-memory-step",), ()),
    *_ops("ssm", ["DescribeInstanceInformation", "SendCommand"], "capture_memory",
          ("capture-memory",)),
    # the agent uploaded its part, but the command's status could not be read: the upload is
    # aborted (so are the ones whose parts cannot be listed or that cannot be completed)
    *_ops("ssm", ["GetCommandInvocation"], "capture_memory", ("capture-memory",)),
    *_ops("s3", ["CreateMultipartUpload", "ListParts", "CompleteMultipartUpload"],
          "capture_memory", ("capture-memory",)),
    *_ops("dynamodb", ["UpdateItem"], "capture_memory", ("capture-memory-step",), ()),
    # the instance as it is now, read beside the seal's check: denied, each action reads
    *_ops("ec2", ["DescribeInstances"], "contain", ()),
    *_ops("ec2", ["DescribeSecurityGroups", "CreateSecurityGroup", "AuthorizeSecurityGroupIngress",
                  "AuthorizeSecurityGroupEgress", "RevokeSecurityGroupEgress"], "contain",
          ("isolate-interface",)),
    # the swaps and the connection-tracking change are the same operation
    *_ops("ec2", ["ModifyNetworkInterfaceAttribute"], "contain",
          ("isolate-interface", "connection-tracking")),
    *_ops("autoscaling", ["SetInstanceProtection", "DetachInstances"], "contain",
          ("leave-autoscaling-group",)),
    *_ops("elasticloadbalancing", ["DescribeTargetGroups", "DescribeTargetHealth",
                                   "DeregisterTargets"], "contain", ("leave-target-groups",)),
    *_ops("elasticloadbalancing", ["DescribeLoadBalancers", "DeregisterInstancesFromLoadBalancer"],
          "contain", ("leave-classic-load-balancers",)),
    *_ops("ec2", ["DescribeAddresses", "DisassociateAddress"], "contain",
          ("disassociate-elastic-ip",)),
    *_ops("ec2", ["DescribeIamInstanceProfileAssociations"], "contain",
          ("detach-instance-profile", "revoke-role-sessions")),
    *_ops("ec2", ["DisassociateIamInstanceProfile"], "contain", ("detach-instance-profile",)),
    *_ops("ec2", ["ModifyInstanceMetadataOptions"], "contain", ("disable-instance-metadata",)),
    *_ops("iam", ["GetInstanceProfile", "ListInstanceProfilesForRole"], "contain",
          ("revoke-role-sessions",)),
    # contain asks the revoking function, which alone writes the role policy
    Op("lambda", "Invoke", "contain", ("revoke-role-sessions",),
       resource=names.function("dev", "revoke_sessions")),
    # which reads the incident, verifies its seal and resolves the profile's role first
    *_ops("dynamodb", ["GetItem"], "revoke_sessions", ("revoke-role-sessions",)),
    *_ops("kms", ["VerifyMac"], "revoke_sessions", ("revoke-role-sessions",)),
    *_ops("iam", ["GetInstanceProfile", "PutRolePolicy"], "revoke_sessions",
          ("revoke-role-sessions",)),
    # shutdown behaviour reads "stop" already on this shape: nothing to change, only to read
    *_ops("ec2", ["DescribeInstanceAttribute"], "contain",
          ("termination-protection", "shutdown-behaviour")),
    *_ops("ec2", ["ModifyInstanceAttribute"], "contain",
          ("termination-protection", "keep-volumes-on-termination")),
    *_ops("ec2", ["CreateTags"], "contain", ("quarantine-tags",)),
    *_ops("dynamodb", ["UpdateItem"], "contain", ("contain-step",), ()),
    *_ops("kms", ["VerifyMac"], "contain", ("contain-step",), CONTAIN),
    *_ops("kms", ["GenerateMac"], "contain", ("contain-step",), ()),
    # no snapshot: nothing to share, and the instance is not stopped before its disks are safe
    *_ops("ec2", ["CreateSnapshots"], "collect_evidence", ("snapshots",),
          ("snapshots",) + AFTER_SNAPSHOTS, stops=("check_snapshots",)),
    *_ops("ec2", ["DescribeInstances", "DescribeNetworkInterfaces", "DescribeSecurityGroups",
                  "DescribeRouteTables", "DescribeNetworkAcls", "GetConsoleOutput",
                  "GetConsoleScreenshot"], "collect_evidence", ("evidence-store",)),
    *_ops("s3", ["ListObjectVersions", "PutObject"], "collect_evidence", ("evidence-store",)),
    *_ops("kms", ["Sign"], "collect_evidence", ("evidence-store",)),  # kept, but unsigned
    *_ops("dynamodb", ["UpdateItem"], "collect_evidence", ("evidence-step",), AFTER_SNAPSHOTS,
          stops=("check_snapshots",)),
    *_ops("kms", ["VerifyMac"], "collect_evidence", ("evidence-step",),
          EVIDENCE + AFTER_SNAPSHOTS, stops=("check_snapshots",)),
    *_ops("kms", ["GenerateMac"], "collect_evidence", ("evidence-step",), AFTER_SNAPSHOTS,
          stops=("check_snapshots",)),
    *_ops("ec2", ["DescribeSnapshots"], "check_snapshots", ("evidence-step",), AFTER_SNAPSHOTS),
    *_ops("kms", ["VerifyMac"], "check_snapshots", ("evidence-step",), AFTER_SNAPSHOTS),
    *_ops("kms", ["GenerateMac"], "check_snapshots", ("evidence-step",), ()),
    *_ops("ec2", ["ModifySnapshotAttribute"], "check_snapshots", ("share-snapshots",)),
    *_ops("ec2", ["StopInstances"], "check_snapshots", ("stop-instance",)),
    *_ops("dynamodb", ["UpdateItem"], "check_snapshots", ("evidence-step",), ()),
    *_ops("dynamodb", ["GetItem", "UpdateItem"], "report", ("report-step",), ()),
    *_ops("kms", ["VerifyMac"], "report", ("report-step",), ()),
    # the report asks for the page once it settled, asynchronously: denied, the page is not
    # written (logged); the report and containment are whole
    Op("lambda", "Invoke", "report", (), (), resource=names.function("dev", "publish_page")),
    Op("sns", "Publish", STATE_MACHINE, ("detection-notice-step",), (), resource=DETECTION),
    Op("sns", "Publish", STATE_MACHINE, ("report-notice",), (), resource=REPORT),
    _invoke("capture_memory", ("capture-memory-step",), ("capture-memory",)),
    _invoke("contain", ("contain-step",), CONTAIN),
    _invoke("collect_evidence", ("evidence-step",), EVIDENCE + AFTER_SNAPSHOTS),
    _invoke("check_snapshots", ("evidence-step",), AFTER_SNAPSHOTS),
    _invoke("report", ("report-step",), ()),
]
ADMITTING = [op for op in OPERATIONS if op.fails == ADMISSION]
REPORTING = [op for op in OPERATIONS if op.fails in (("report-step",), ("report-notice",))]
ACTING = [op for op in OPERATIONS if op not in ADMITTING + REPORTING]


def _arm(stack, op: Op, error: str, count: int = 20) -> None:
    stack.faults.arm(op.service, op.action, error, count=count, resource=op.resource,
                     caller=None if op.caller == STATE_MACHINE else op.caller)


def _fleet(stack) -> dict:
    stack.configure(**OPTIONS)
    victim = make_fleet_member(stack, profile=True)
    stack.manage_with_ssm(victim["instance_id"])
    return victim


def _run(stack, victim) -> tuple[dict, dict]:
    return finish(stack, deliver_finding(stack, guardduty_event(victim["instance_id"])))


def _report(stack, queue) -> dict:
    """The final report on the topic (not the detection notice)."""
    (report,) = [m for m in messages(stack, queue)  # not the detection, nor a tamper alert
                 if (m["Document"] or {}).get("event") in ("report", "report-failed")]
    return report


def _steps(record: dict) -> list[str]:
    """The incident's steps but the page's, written asynchronously once the report settled
    (with or before the notice's record): tests/integration/test_page.py follows it."""
    return [s["step"] for s in record["timeline"] if s["step"] != "page"]


def _definition_operations() -> set:
    """The operations the state machine itself calls: its Lambda tasks and SNS publishes."""
    found = set()

    def walk(states):
        for state in states.values():
            resource = state.get("Resource", "")
            if resource == "arn:aws:states:::sns:publish":
                found.add(("sns", "Publish", STATE_MACHINE))
            elif resource.startswith("arn:aws:lambda:"):
                found.add(("lambda", "Invoke", STATE_MACHINE))
            for branch in state.get("Branches", []):
                walk(branch["States"])

    arns = statemachine.step_function_arns("us-east-1", "123456789012", "dev")
    walk(statemachine.build(arns, "arn:aws:sns:us-east-1:123456789012:t", "table")["States"])
    return found


def test_operations_lists_every_operation_a_normal_run_makes(stack):
    victim = _fleet(stack)
    recording.start(stack)
    record, execution = _run(stack, victim)
    recording.stop(stack)
    assert (record["status"], execution["status"]) == ("CONTAINED", "SUCCEEDED"), record["errors"]

    prefix = names.function("dev", "")
    # checking the pipeline's own calls: test_tamper_faults.py; the page, asked asynchronously
    # after the report and reported on the incident alone: tests/integration/test_page.py
    watch = {"on_tampering", "sweep", "publish_page"}
    made = {(c.service, c.action, c.caller[len(prefix):])
            for c in recording.calls(stack) if c.caller and c.caller.startswith(prefix)
            and c.caller[len(prefix):] not in watch}
    made |= {("lambda", "Invoke", i.caller[len(prefix):])  # answered by the bridge, unrecorded
             for i in stack.bridge.invocations if i.caller and i.caller.startswith(prefix)}
    made |= _definition_operations()
    listed = {op.key for op in OPERATIONS}
    assert made - listed == set(), "operations the fault tests do not cover"
    assert listed - made == set(), "listed operations a normal run no longer makes"
    assert {op.resource for op in OPERATIONS if op.key == ("lambda", "Invoke", STATE_MACHINE)} == {
        names.function("dev", name) for name in statemachine.STEP_FUNCTIONS
        if name not in ("release", "approval")}  # a release; a rule that asks for approval


# -- throttling ----------------------------------------------------------------------------

CALLERS = sorted({op.caller for op in OPERATIONS})


@pytest.fixture
def quick_backoff(monkeypatch):
    """botocore waits up to 1 s (jittered) before retrying a throttled call: wait 10 ms here,
    so that throttling every operation stays cheap. Whether the call is retried is unchanged."""
    from botocore.retries.standard import ExponentialBackoff

    monkeypatch.setattr(ExponentialBackoff, "delay_amount", lambda self, context: 0.01)


@pytest.mark.usefixtures("quick_backoff")
@pytest.mark.parametrize("caller", CALLERS)
def test_throttling_every_operation_of_a_step_is_retried_and_the_incident_succeeds(stack, caller):
    queue = subscribe_queue(stack)
    victim = _fleet(stack)
    throttled_ops = [op for op in OPERATIONS if op.caller == caller]
    for op in throttled_ops:
        _arm(stack, op, throttled(op.service), count=1)

    record, execution = _run(stack, victim)

    assert stack.faults.armed() == [], f"never called: {stack.faults.armed()}"
    assert (record["status"], execution["status"]) == ("CONTAINED", "SUCCEEDED"), record["errors"]
    assert record["errors"] == []
    assert _report(stack, queue)["Subject"].endswith(": contained")


# -- denials -------------------------------------------------------------------------------

def _rounds(ops: list[Op]) -> list[list[Op]]:
    """Denials that touch different actions of different steps' parts share one run (each is
    reported under its own action); a denial that stops a whole step runs without the others
    of that step. First fit, in the list's order."""
    def step_wide(op):
        return any(name.endswith("-step") for name in op.fails)

    def clash(a, b):
        return bool(set(a.fails) & set(b.fails) or a.not_applied & b.not_applied) or (
            a.step == b.step and (step_wide(a) or step_wide(b))) or (
            a.step in b.stops or b.step in a.stops)

    rounds: list[list[Op]] = []
    for op in ops:
        free = next((r for r in rounds if not any(clash(op, other) for other in r)), None)
        if free is None:
            rounds.append([op])
        else:
            free.append(op)
    return rounds


def _applied(stack, victim, incident_id) -> dict:
    """Each action's change, as AWS holds it now."""
    ec2, elbv2, elb = stack.client("ec2"), stack.client("elbv2"), stack.client("elb")
    instance_id, (eni,) = victim["instance_id"], victim["interfaces"]
    isolation = product_groups(stack, victim["vpc_id"]).get("isolation", {}).get("GroupId")
    described = ec2.describe_instances(InstanceIds=[instance_id])["Reservations"][0][
        "Instances"][0]
    group = stack.client("autoscaling").describe_auto_scaling_groups(
        AutoScalingGroupNames=[victim["group"]])["AutoScalingGroups"][0]
    address = ec2.describe_addresses(AllocationIds=[victim["allocation_id"]])["Addresses"][0]
    profiles = ec2.describe_iam_instance_profile_associations(Filters=[
        {"Name": "instance-id", "Values": [instance_id]}])["IamInstanceProfileAssociations"]
    roles = stack.client("iam").list_roles()["Roles"]
    revoked = [stack.client("iam").list_role_policies(RoleName=r["RoleName"])["PolicyNames"]
               for r in roles if r["RoleName"].startswith("app-server-")]
    snapshots = snapshots_of(stack, incident_id)
    listed = stack.client("s3").list_objects_v2(
        Bucket=stack.names["EVIDENCE_BUCKET"], Prefix=f"{incident_id}/").get("Contents", [])
    keys = {o["Key"][len(incident_id) + 1:] for o in listed}
    manifest = None
    if "manifest.json" in keys:
        manifest = json.loads(stack.client("s3").get_object(
            Bucket=stack.names["EVIDENCE_BUCKET"], Key=f"{incident_id}/manifest.json")["Body"].read())
    shared = snapshots and all({"UserId": FORENSIC_ACCOUNT} in ec2.describe_snapshot_attribute(
        SnapshotId=s["SnapshotId"], Attribute="createVolumePermission")["CreateVolumePermissions"]
        for s in snapshots)
    return {
        "capture-memory": any(k.startswith("memory/") for k in keys),
        "isolate-interface": interface_groups(stack, eni) == [isolation],
        "connection-tracking": ec2.describe_network_interfaces(NetworkInterfaceIds=[eni])[
            "NetworkInterfaces"][0].get("ConnectionTrackingConfiguration") == SHORT_TRACKING,
        "leave-autoscaling-group": instance_id not in [i["InstanceId"] for i in group["Instances"]],
        "leave-target-groups": all(instance_id not in [
            t["Target"]["Id"] for t in elbv2.describe_target_health(TargetGroupArn=arn)[
                "TargetHealthDescriptions"]] for arn in victim["target_groups"]),
        "leave-classic-load-balancers": instance_id not in [
            i["InstanceId"] for i in elb.describe_load_balancers(LoadBalancerNames=[
                victim["classic"]])["LoadBalancerDescriptions"][0]["Instances"]],
        "disassociate-elastic-ip": not address.get("InstanceId"),
        "detach-instance-profile": profiles == [],
        "revoke-role-sessions": [f"ec2-quarantine-revoke-{incident_id}"] in revoked,
        "termination-protection": ec2.describe_instance_attribute(
            InstanceId=instance_id, Attribute="disableApiTermination")[
            "DisableApiTermination"]["Value"] is True,
        "keep-volumes-on-termination": not any(
            m["Ebs"]["DeleteOnTermination"] for m in described["BlockDeviceMappings"]),
        "quarantine-tags": instance_tags(stack, instance_id).get("QuarantineIncident") == incident_id,
        "snapshots": bool(snapshots),
        "evidence-store": bool(manifest) and not manifest["not_captured"] and len(
            manifest["objects"]) >= 5 and "manifest.sig.json" in keys,
        "share-snapshots": bool(shared),
        "stop-instance": described["State"]["Name"] in ("stopping", "stopped"),
    }


def _expected_status(ops) -> str:
    """About containment (isolation, credentials): FAILED when neither applied, PARTIAL when one
    of them failed, CONTAINED otherwise, whatever else failed."""
    not_applied = set().union(*(op.not_applied for op in ops))
    failed = set().union(*(op.fails for op in ops))
    if set(CRITICAL) <= not_applied:
        return "FAILED"
    return "PARTIAL" if failed & set(CRITICAL) else "CONTAINED"


def _subject_says(subject: str, status: str, errors: int) -> bool:
    """The report's subject: the outcome, and with errors under CONTAINED, how many."""
    outcome = {"CONTAINED": "contained", "PARTIAL": "partially contained",
               "FAILED": "failed"}[status]
    if errors and status == "CONTAINED":
        outcome += f", with {errors} error" + ("s" if errors != 1 else "")
    return subject.endswith(f": {outcome}")


DENIAL_ROUNDS = _rounds(ACTING)


@pytest.mark.parametrize("ops", DENIAL_ROUNDS, ids=lambda ops: "+".join(map(str, ops)))
def test_a_denied_operation_fails_its_action_and_the_rest_proceed(stack, ops):
    queue = subscribe_queue(stack)
    victim = _fleet(stack)
    for op in ops:
        _arm(stack, op, denied(op.service))

    record, execution = _run(stack, victim)

    fired = {(f["service"], f["action"]) for f in stack.faults.fired}
    assert {(op.service, op.action) for op in ops} <= fired, "a denial was never hit"
    status = _expected_status(ops)
    assert record["status"] == status, record["errors"]
    assert execution["status"] == ("FAILED" if status == "FAILED" else "SUCCEEDED")
    failed = set().union(*(op.fails for op in ops))
    assert {e["action"] for e in record["errors"]} == failed, record["errors"]
    not_applied = set().union(*(op.not_applied for op in ops))
    applied = _applied(stack, victim, record["incident_id"])
    assert {name for name, done in applied.items() if not done} == not_applied & set(applied)
    report = _report(stack, queue)
    assert _subject_says(report["Subject"], status, len(record["errors"])), report["Subject"]
    for op in ops:
        assert denied(op.service) in report["Text"], f"{op} is not in the report"


@pytest.mark.parametrize("op", [op for op in REPORTING if op.fails == ("report-step",)], ids=str)
def test_a_report_step_that_cannot_run_still_sends_a_message_and_settles_the_incident(stack, op):
    queue = subscribe_queue(stack)
    victim = _fleet(stack)
    _arm(stack, op, denied(op.service))

    record, execution = _run(stack, victim)

    assert (record["status"], execution["status"]) == ("CONTAINED", "SUCCEEDED"), record["errors"]
    assert "report-step" in {e["action"] for e in record["errors"]}  # settled by Step Functions
    assert _applied(stack, victim, record["incident_id"])["isolate-interface"]
    report = _report(stack, queue)
    assert report["Subject"].endswith("report step failed") and record["incident_id"] in report[
        "Text"]


def test_a_failed_containment_whose_report_step_cannot_run_frees_the_instance(stack):
    """Settled by Step Functions as FAILED, the claim is freed: the next finding acts again."""
    victim = make_victim(stack, interfaces=1, volumes=1)
    stack.faults.arm("ec2", "ModifyNetworkInterfaceAttribute", denied("ec2"), count=10,
                     caller="on_guardduty_finding")  # the first cut isolates nothing
    stack.faults.arm("lambda", "Invoke", "Crash", resource=names.function("dev", "contain"))
    stack.faults.arm("lambda", "Invoke", denied("lambda"), count=10,
                     resource=names.function("dev", "report"))

    first, execution = finish(stack, deliver_finding(stack, guardduty_event(victim["instance_id"])))
    assert execution["status"] == "FAILED"  # containment failed: so does the execution
    stack.faults.reset()
    again = deliver_finding(stack, guardduty_event(victim["instance_id"]))

    assert first["status"] == "FAILED" and "report-step" in {e["action"] for e in first["errors"]}
    assert again["incident_id"] != first["incident_id"]
    record, _ = finish(stack, again)
    assert record["status"] == "CONTAINED"


def test_a_cut_whose_contain_step_never_runs_is_partial_and_released_from_its_own_record(stack):
    """The entry function isolated the instance and recorded it; Contain crashes and the report
    step cannot run: Step Functions settles what the cut earned (PARTIAL: the profile is still
    attached), the claim holds, and release undoes the cut from its sealed records."""
    victim = make_victim(stack, interfaces=2, volumes=1)
    stack.faults.arm("lambda", "Invoke", "Crash", resource=names.function("dev", "contain"))
    stack.faults.arm("lambda", "Invoke", denied("lambda"), count=10,
                     resource=names.function("dev", "report"))

    first, execution = finish(stack, deliver_finding(stack, guardduty_event(victim["instance_id"])))

    assert (first["status"], execution["status"]) == ("PARTIAL", "SUCCEEDED")
    isolation = product_groups(stack, victim["vpc_id"])["isolation"]["GroupId"]
    assert {interface_groups(stack, eni) == [isolation] for eni in victim["interfaces"]} == {True}
    assert {c["action"] for c in first["changes"]} >= {"isolate-interface", "shutdown-behaviour"}
    assert deliver_finding(stack, guardduty_event(victim["instance_id"]))["decision"] == "recorded"
    stack.faults.reset()
    status, answer = api(stack, "POST", "/release", {"instance_id": victim["instance_id"],
                                                     "reason": "false positive"})
    assert status == 202, answer
    assert wait_execution(stack, answer["release_execution_arn"])["status"] == "SUCCEEDED"
    assert incident(stack, first["incident_id"])["status"] == "RELEASED"
    for eni, groups in victim["interfaces"].items():
        assert interface_groups(stack, eni) == groups


@pytest.mark.parametrize("function,status", [
    ("capture_memory", "CONTAINED"), ("contain", "FAILED"), ("collect_evidence", "CONTAINED"),
    ("check_snapshots", "CONTAINED"),
])
def test_a_crashing_step_is_reported_and_the_others_run(stack, function, status):
    queue = subscribe_queue(stack)
    victim = _fleet(stack)
    (op,) = [op for op in OPERATIONS if op.resource == names.function("dev", function)]
    _arm(stack, op, "Crash")

    record, execution = _run(stack, victim)

    assert (record["status"], execution["status"]) == (
        status, "FAILED" if status == "FAILED" else "SUCCEEDED")
    assert [(e["action"], e["code"]) for e in record["errors"]] == [(op.fails[0], "InjectedCrash")]
    applied = _applied(stack, victim, record["incident_id"])
    assert {name for name, done in applied.items() if not done} == op.not_applied
    assert op.fails[0] in _report(stack, queue)["Text"]


# -- admission -----------------------------------------------------------------------------

@pytest.mark.parametrize("op", ADMITTING, ids=str)
def test_a_finding_that_cannot_be_admitted_is_logged_as_an_error_not_dropped(stack, op, caplog):
    victim = _fleet(stack)
    _arm(stack, op, denied(op.service), count=1)

    with caplog.at_level(logging.INFO):
        decided = deliver_finding(stack, guardduty_event(victim["instance_id"]))

    assert decided["decision"] in ("error", "refused"), decided
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert any(victim["instance_id"] in r.getMessage() or decided.get("incident_id", "-") in
               r.getMessage() for r in errors), [r.getMessage() for r in caplog.records]
    (eni, groups), = victim["interfaces"].items()
    assert interface_groups(stack, eni) == groups  # nothing was contained

    # the API's own request (each of its calls: the seal is made twice when it finds the claim
    # the finding left, beside the claim and again to start it)
    stack.faults.arm(op.service, op.action, denied(op.service), count=2)
    status, body = api(stack, "POST", "/quarantine", {"instance_id": victim["instance_id"],
                                                      "reason": "denied admission"})
    assert status == 503 and body["error"], body


def test_an_execution_that_did_not_start_starts_with_the_next_finding(stack):
    victim = _fleet(stack)
    (op,) = [op for op in ADMITTING if op.action == "StartExecution"]
    _arm(stack, op, denied(op.service), count=1)
    first = deliver_finding(stack, guardduty_event(victim["instance_id"]))
    assert first["decision"] == "refused" and first["code"] == "ExecutionNotStarted"

    record, execution = _run(stack, victim)  # GuardDuty sends the finding again

    assert (record["status"], execution["status"]) == ("CONTAINED", "SUCCEEDED"), record["errors"]
    assert [s["step"] for s in record["timeline"]][0] == "start"


# -- at key points -------------------------------------------------------------------------

def test_an_instance_terminated_mid_run_ends_in_a_report(stack):
    queue = subscribe_queue(stack)
    victim = _fleet(stack)
    stack.hold_snapshots(3)  # the run waits for its snapshots: the instance goes meanwhile
    decided = deliver_finding(stack, guardduty_event(victim["instance_id"]))
    while not any(s["step"] == "evidence" for s in incident(stack, decided["incident_id"]).get(
            "timeline", [])):
        time.sleep(0.05)
    ec2 = stack.client("ec2")
    # the tamper watch would put the protection back at once: this run is one it missed
    stack.client("events").disable_rule(Name=names.rule(stack.stage, "on_tampering"))
    ec2.modify_instance_attribute(InstanceId=victim["instance_id"],
                                  DisableApiTermination={"Value": False})
    ec2.terminate_instances(InstanceIds=[victim["instance_id"]])
    # AWS refuses to stop a terminated instance; moto stops it anyway: answer as AWS does
    stack.faults.arm("ec2", "StopInstances", "IncorrectInstanceState", caller="check_snapshots")

    record, execution = finish(stack, decided)

    assert (record["status"], execution["status"]) == ("CONTAINED", "SUCCEEDED")
    assert [e["action"] for e in record["errors"]] == ["stop-instance"], record["errors"]
    assert len(snapshots_of(stack, record["incident_id"])) == 1
    report = _report(stack, queue)
    assert "stop-instance" in report["Text"] and _subject_says(report["Subject"], "CONTAINED", 1)


def test_snapshot_limit_exceeded_is_reported_and_containment_stands(stack):
    queue = subscribe_queue(stack)
    victim = _fleet(stack)
    stack.faults.arm("ec2", "CreateSnapshots", "SnapshotLimitExceeded", caller="collect_evidence")
    record, execution = _run(stack, victim)
    assert (record["status"], execution["status"]) == ("CONTAINED", "SUCCEEDED")
    assert snapshots_of(stack, record["incident_id"]) == []
    assert [e["code"] for e in record["errors"]] == ["SnapshotLimitExceeded"]
    assert _applied(stack, victim, record["incident_id"])["isolate-interface"]
    assert "SnapshotLimitExceeded" in _report(stack, queue)["Text"]


def test_a_report_publish_throttled_for_a_while_is_retried(stack):
    queue = subscribe_queue(stack)
    victim = _fleet(stack)
    (op,) = [op for op in REPORTING if op.fails == ("report-notice",)]
    _arm(stack, op, throttled(op.service), count=3)
    record, execution = _run(stack, victim)
    assert stack.faults.armed() == []
    assert (record["status"], execution["status"]) == ("CONTAINED", "SUCCEEDED")
    assert record["errors"] == [] and _steps(record) == [
        "capture-memory", "contain", "evidence", "wait-snapshots", "report"]
    assert _report(stack, queue)["Subject"].endswith(": contained")


def test_a_report_that_cannot_be_published_is_recorded_on_the_incident(stack):
    queue = subscribe_queue(stack)
    victim = _fleet(stack)
    (op,) = [op for op in REPORTING if op.fails == ("report-notice",)]
    _arm(stack, op, throttled(op.service), count=50)
    record, execution = _run(stack, victim)
    assert (record["status"], execution["status"]) == ("CONTAINED", "SUCCEEDED")
    assert _steps(record) == [
        "capture-memory", "contain", "evidence", "wait-snapshots", "report", "notify-report"]
    assert [e["action"] for e in record["errors"]] == ["report-notice"]
    assert [m["Subject"] for m in messages(stack, queue)] == [
        f"[ec2-quarantine] {victim['instance_id']}: incident opened"]
