"""Forgery, tried as the attackers would, under moto's IAM enforcement: an insider who may only
write the incidents table (dynamodb:PutItem) and start the state machine (states:StartExecution),
and a compromised step (a function's own role). Whatever they write or start, the responder
restores nothing it did not verify, acts on no instance its execution is not bound to, and the
report names the refusal."""

import json

import pytest

from chalicelib import incidents, items
from deploy import names
from local import provision
from tests.helpers import (
    api,
    deliver_finding,
    guardduty_event,
    interface_groups,
    make_victim,
    messages,
    principal,
    product_groups,
    subscribe_queue,
    wait_execution,
)

INSIDER_RIGHTS = ("dynamodb:PutItem", "states:StartExecution")


def _insider(stack):
    """Clients of a principal holding only INSIDER_RIGHTS."""
    return principal(stack, "insider", INSIDER_RIGHTS)


def _role(stack, name: str, policy_name: str, statement: dict) -> str:
    """An EC2 role holding one inline policy of one statement."""
    iam_admin = stack.client("iam")
    iam_admin.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(provision.EC2_TRUST))
    iam_admin.put_role_policy(RoleName=name, PolicyName=policy_name, PolicyDocument=json.dumps(
        {"Version": "2012-10-17", "Statement": [statement]}))
    return name


def _admin_profile(stack) -> str:
    role = _role(stack, "admin-role", "admin", {"Effect": "Allow", "Action": "*", "Resource": "*"})
    iam_admin = stack.client("iam")
    iam_admin.create_instance_profile(InstanceProfileName="admin-profile")
    iam_admin.add_role_to_instance_profile(InstanceProfileName="admin-profile", RoleName=role)
    return f"arn:aws:iam::{stack.account}:instance-profile/admin-profile"


def _guardrail_role(stack) -> str:
    return _role(stack, "guarded", "Guardrail", {"Effect": "Deny", "Action": "s3:*",
                                                  "Resource": "*"})


def _contained(stack, victim) -> dict:
    started = deliver_finding(stack, guardduty_event(victim["instance_id"]))
    assert started["decision"] == "acted", started
    wait_execution(stack, started["execution_arn"], timeout=90)
    stack.bridge.wait_idle()
    record = incidents.get(started["incident_id"])
    assert record["status"] == "CONTAINED", record["errors"]
    return record


def _stored_item(stack, incident_id: str) -> dict:
    return stack.client("dynamodb").get_item(TableName=stack.names["INCIDENTS_TABLE"],
                                             Key={"pk": {"S": incident_id}})["Item"]


def _as_item(value):
    from boto3.dynamodb.types import TypeSerializer

    return TypeSerializer().serialize(items.storable(value))


def _forge(insider, stack, incident_id: str, rewrite) -> None:
    """The insider rewrites the incident's item (PutItem: the only write they may make)."""
    from boto3.dynamodb.types import TypeDeserializer

    item = {k: TypeDeserializer().deserialize(v) for k, v in _stored_item(stack,
                                                                           incident_id).items()}
    rewrite(item)
    insider("dynamodb").put_item(TableName=stack.names["INCIDENTS_TABLE"],
                                 Item={k: _as_item(v) for k, v in item.items()})


def _release(stack, instance_id) -> dict:
    status, answer = api(stack, "POST", "/release", {"instance_id": instance_id,
                                                     "reason": "cleared"})
    assert status == 202, answer
    wait_execution(stack, answer["release_execution_arn"], timeout=90)
    stack.bridge.wait_idle()
    return answer


def _profiles(stack, instance_id):
    associations = stack.client("ec2").describe_iam_instance_profile_associations(Filters=[
        {"Name": "instance-id", "Values": [instance_id]},
        {"Name": "state", "Values": ["associated"]}])["IamInstanceProfileAssociations"]
    return [a["IamInstanceProfile"]["Arn"] for a in associations]


def _a_record_of(item: dict, action: str) -> dict:
    return next(c for c in item["changes"] if c["action"] == action)


FORGERIES = {
    # What the insider writes, and what must not happen.
    "an administrator profile": lambda item, ctx: _a_record_of(
        item, "detach-instance-profile").update(before=ctx["admin_profile"]),
    "the pre-incident profile too": lambda item, ctx: (
        _a_record_of(item, "detach-instance-profile").update(before=ctx["admin_profile"]),
        item["pre_state"].update(instance_profile=ctx["admin_profile"])),
    "a foreign role's guardrail": lambda item, ctx: item["changes"].append({
        **_a_record_of(item, "quarantine-tags"), "action": "revoke-role-sessions",
        "resource": ctx["guarded"], "attribute": "policy:Guardrail", "before": None}),
    "another instance's interface": lambda item, ctx: item["changes"].append({
        **_a_record_of(item, "isolate-interface"), "resource": ctx["other_eni"],
        "before": [ctx["open_group"]]}),
    "another account": lambda item, ctx: item.update(account_id="999999999999"),
}


@pytest.mark.parametrize("forgery", sorted(FORGERIES))
def test_a_forged_record_is_refused_and_nothing_is_restored(stack, forgery):
    queue = subscribe_queue(stack)
    stack.configure(MEMBER_ACCOUNTS="999999999999")  # an account check alone would not refuse
    victim, other = make_victim(stack), make_victim(stack, interfaces=1)
    (other_eni, other_groups), = other["interfaces"].items()
    context = {"admin_profile": _admin_profile(stack), "guarded": _guardrail_role(stack),
               "other_eni": other_eni}
    insider = _insider(stack)
    record = _contained(stack, victim)
    context["open_group"] = product_groups(stack, victim["vpc_id"])["open"]["GroupId"]
    isolated = {eni: interface_groups(stack, eni) for eni in victim["interfaces"]}
    with stack.enforce_iam():
        with pytest.raises(Exception, match="UnauthorizedOperation"):  # the insider cannot
            insider("ec2").associate_iam_instance_profile(
                IamInstanceProfile={"Arn": context["admin_profile"]},
                InstanceId=victim["instance_id"])
        _forge(insider, stack, record["incident_id"],
               lambda item: FORGERIES[forgery](item, context))
        _release(stack, victim["instance_id"])

    assert context["admin_profile"] not in _profiles(stack, victim["instance_id"])
    assert _profiles(stack, victim["instance_id"]) == []  # still cut
    assert stack.client("iam").list_role_policies(RoleName="guarded")["PolicyNames"] == [
        "Guardrail"]
    assert interface_groups(stack, other_eni) == other_groups
    assert {eni: interface_groups(stack, eni) for eni in victim["interfaces"]} == isolated
    after = incidents.get(record["incident_id"])
    assert after["status"] == "CONTAINED"
    refused = [e for e in after["errors"] if e["code"] in ("RecordRefused", "ExecutionRefused")]
    assert refused, after["errors"]
    report = messages(stack, queue)[-1]
    assert "refused" in report["Text"].lower() or "Refused" in report["Text"], report


def _crafted_input(binding: dict, **options) -> dict:
    return {"mode": "quarantine", "incident": binding,
            "notice": {"subject": "opened", "message": "opened"},
            "options": {"dry_run": False, "memory_capture": False, "snapshot_poll_seconds": 1,
                        "snapshot_deadline_seconds": 5, **options}, "memory": {}}


def test_a_crafted_execution_changes_nothing(stack):
    """An execution started with a made-up incident, or with a real dry run's sealed binding
    replayed in another execution, acts on nothing and ends refused."""
    queue = subscribe_queue(stack)
    stack.configure(MEMORY_CAPTURE_DOCUMENT="AWSSupport-ExampleMemoryCapture")
    victim = make_victim(stack)
    stack.manage_with_ssm(victim["instance_id"])
    insider = _insider(stack)
    status, dry = api(stack, "POST", "/quarantine", {"instance_id": victim["instance_id"],
                                                     "dry_run": True})
    assert status == 202, dry
    wait_execution(stack, dry["execution_arn"], timeout=90)
    stack.bridge.wait_idle()
    sealed = json.loads(stack.client("stepfunctions").describe_execution(
        executionArn=dry["execution_arn"])["input"])["incident"]
    made_up = {**sealed, "incident_id": "inc-000000000000", "seal": sealed["seal"]}
    machine = stack.names["STATE_MACHINE_ARN"]
    with stack.enforce_iam():
        runs = [insider("stepfunctions").start_execution(
            stateMachineArn=machine, name=name, input=json.dumps(_crafted_input(
                binding, memory_capture=True)))["executionArn"]
            for name, binding in (("replayed", sealed), ("made-up", made_up),
                                  ("unsealed", {k: v for k, v in sealed.items() if k != "seal"}))]
        ended = [wait_execution(stack, arn, timeout=90) for arn in runs]
        stack.bridge.wait_idle()

    assert [e["status"] for e in ended] == ["FAILED"] * 3, ended
    for eni, groups in victim["interfaces"].items():
        assert interface_groups(stack, eni) == groups  # never isolated
    assert stack.client("ssm").list_commands()["Commands"] == []  # no memory capture either
    assert not stack.client("ec2").describe_snapshots(Filters=[
        {"Name": "tag:QuarantineInstance", "Values": [victim["instance_id"]]}])["Snapshots"]
    assert incidents.get(dry["incident_id"])["status"] == "DRY_RUN"
    subjects = [m["Subject"] for m in messages(stack, queue)]
    assert sum("refused" in s for s in subjects) == 3, subjects


def test_a_record_sealed_by_a_compromised_step_must_still_belong_to_the_instance(stack):
    """A step's role may seal change records (it makes them): one that seals a record naming
    another instance's interface, or a foreign role's policy, still restores nothing."""
    from chalicelib import aws

    victim, other = make_victim(stack), make_victim(stack, interfaces=1)
    (other_eni, other_groups), = other["interfaces"].items()
    guarded = _guardrail_role(stack)
    record = _contained(stack, victim)
    tags = _a_record_of(record, "quarantine-tags")
    forged = [{**_a_record_of(record, "isolate-interface"), "resource": other_eni},
              {**tags, "action": "revoke-role-sessions", "resource": guarded,
               "attribute": "policy:Guardrail", "before": None}]
    with stack.enforce_iam():
        contain = names.function(stack.stage, "contain")
        with aws.acting_as(contain, stack.bridge.roles.credentials(contain)):
            incidents.record_step(record["incident_id"], "contain", incidents.now(), "again",
                                  forged)
        _release(stack, victim["instance_id"])

    assert interface_groups(stack, other_eni) == other_groups
    assert stack.client("iam").list_role_policies(RoleName=guarded)["PolicyNames"] == [
        "Guardrail"]
    after = incidents.get(record["incident_id"])
    assert after["status"] == "CONTAINED"
    reasons = [e["message"] for e in after["errors"] if e["code"] == "RecordRefused"]
    assert any("was not an interface" in r for r in reasons), after["errors"]
    assert any("revocation policy" in r for r in reasons), after["errors"]
