"""Session revocation under moto's IAM enforcement: the revoking function alone writes role
policies, the Deny it writes is its own, and a compromised step can make it write nothing else:
no role but the one of the profile a sealed incident's instance had, no scope wider than the
revoker's own settings, and no lift in the name of an incident that is not that instance's.

IAM has no condition on a policy's content, so a function that may write a role policy may
grant itself anything on any role it reaches; here every other function tries, with its own
role's credentials, and is denied."""

import json

import boto3
import pytest
from botocore.exceptions import ClientError

from chalicelib import findings, incidents, revocation
from deploy import names, permissions
from local import iam, provision
from tests.helpers import (
    api,
    deliver_finding,
    guardduty_event,
    make_victim,
    messages,
    release,
    subscribe_queue,
    wait_execution,
)

REVOKER = "revoke_sessions"
OTHERS = sorted(set(permissions.needs()) - {REVOKER})
READS = {"dynamodb:GetItem", "kms:VerifyMac", "iam:GetInstanceProfile"}  # the revoker's checks
GRANT_ALL = json.dumps({"Version": "2012-10-17", "Statement": [
    {"Effect": "Allow", "Action": "*", "Resource": "*"}]})


def _deployed(stack, function: str) -> str:
    return names.api_function(stack.stage) if function == "api_handler" else names.function(
        stack.stage, function)


def _as(stack, function: str, service: str):
    """A client with `function`'s own role's credentials (as Lambda gives them)."""
    keys = stack.bridge.roles.credentials(_deployed(stack, function))
    return boto3.session.Session().client(
        service, region_name=stack.region, endpoint_url=stack.endpoint,
        aws_access_key_id=keys.access_key_id, aws_secret_access_key=keys.secret_access_key,
        aws_session_token=keys.session_token)


def _instance_role(stack, name="web") -> str:
    """An instance's role with an inline policy of its own."""
    iam_admin = stack.client("iam")
    iam_admin.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(provision.EC2_TRUST))
    iam_admin.put_role_policy(RoleName=name, PolicyName="own", PolicyDocument=json.dumps({
        "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:GetObject",
                                                "Resource": "*"}]}))
    return name


def _policies(stack, role: str) -> list[str]:
    return stack.client("iam").list_role_policies(RoleName=role)["PolicyNames"]


def _code(call) -> str:
    with pytest.raises(ClientError) as raised:
        call()
    return raised.value.response["Error"]["Code"]


@pytest.mark.parametrize("function", OTHERS)
def test_no_function_but_the_revoker_can_write_or_delete_a_role_policy(stack, function):
    role = _instance_role(stack)
    with stack.enforce_iam():
        as_function = _as(stack, function, "iam")
        assert _code(lambda: as_function.put_role_policy(
            RoleName=role, PolicyName="escalate", PolicyDocument=GRANT_ALL)) == "AccessDenied"
        assert _code(lambda: as_function.delete_role_policy(
            RoleName=role, PolicyName="own")) == "AccessDenied"
        own = names.function_role(stack.stage, function)
        assert _code(lambda: as_function.put_role_policy(
            RoleName=own, PolicyName="escalate", PolicyDocument=GRANT_ALL)) == "AccessDenied"
    assert _policies(stack, role) == ["own"]
    assert "escalate" not in _policies(stack, names.function_role(stack.stage, function))
    assert iam.authorizations.denied(names.function_role(stack.stage, function)) == {
        "iam:PutRolePolicy", "iam:DeleteRolePolicy"}


def test_the_revoker_may_write_on_an_instances_role_but_iam_denies_it_the_products_own(stack):
    """Even if its own refusal were bypassed, IAM denies it the product's roles."""
    role = _instance_role(stack)
    with stack.enforce_iam():
        as_revoker = _as(stack, REVOKER, "iam")
        as_revoker.put_role_policy(RoleName=role, PolicyName="probe", PolicyDocument=GRANT_ALL)
        for product_role in (names.function_role(stack.stage, REVOKER),
                             names.function_role(stack.stage, "contain")):
            assert _code(lambda: as_revoker.put_role_policy(
                RoleName=product_role, PolicyName="escalate",
                PolicyDocument=GRANT_ALL)) == "AccessDenied"
    assert sorted(_policies(stack, role)) == ["own", "probe"]
    assert "escalate" not in _policies(stack, names.function_role(stack.stage, "contain"))


def test_a_compromised_contain_step_gets_the_revoker_to_write_nothing_but_its_own_deny(stack):
    """As contain: the revoker refuses a product role and a policy of the caller's making;
    no other function may be invoked."""
    victim = make_victim(stack, interfaces=1, volumes=1)
    product_role = names.function_role(stack.stage, "contain")
    arn = revocation.instance_arn(stack.region, stack.account, victim["instance_id"])
    asked = {"operation": "revoke", "account_id": stack.account, "region": stack.region,
             "instance_arn": arn, "incident_id": "inc-0123456789ab",
             "issued_before": revocation.now(), "scope": "role"}
    with stack.enforce_iam():
        as_contain = _as(stack, "contain", "lambda")

        def invoke(request, function=REVOKER):
            answer = as_contain.invoke(FunctionName=names.function(stack.stage, function),
                                       Payload=json.dumps(request).encode())
            return json.load(answer["Payload"])

        for refused in ({**asked, "role_name": product_role},
                        {**asked, "role_name": product_role.upper()},
                        {**asked, "role_name": "web", "policy_document": GRANT_ALL}):
            answer = invoke(refused)
            assert (answer["status"], answer["code"]) == ("refused", "RevocationRefused"), answer
        assert _code(lambda: invoke(asked, function="report")) == "AccessDeniedException"
    assert _policies(stack, product_role) == [product_role]  # its generated policy, alone
    assert not iam.authorizations.allowed(names.function_role(stack.stage, REVOKER))


def _profile_role(stack, instance_id: str) -> tuple[str, str]:
    """The instance's profile and its role (make_victim names them alike)."""
    profile = stack.client("ec2").describe_iam_instance_profile_associations(Filters=[
        {"Name": "instance-id", "Values": [instance_id]}])[
        "IamInstanceProfileAssociations"][0]["IamInstanceProfile"]["Arn"]
    return profile, profile.rsplit("/", 1)[-1]


def _sharing(stack, profile: str) -> str:
    """A second instance launched with `profile`: it shares the role."""
    return stack.client("ec2").run_instances(ImageId="ami-12345678", MinCount=1, MaxCount=1,
                                             IamInstanceProfile={"Arn": profile})[
        "Instances"][0]["InstanceId"]


def _contained(stack, event: dict) -> dict:
    """The incident record once the finding `event` was contained (under IAM enforcement)."""
    started = deliver_finding(stack, event)
    wait_execution(stack, started["execution_arn"], timeout=90)
    stack.bridge.wait_idle()
    status, record = api(stack, "GET", f"/incidents/{started['incident_id']}")
    assert status == 200 and record["status"] == "CONTAINED", record
    return record


@pytest.mark.parametrize("scope", ["instance", "role"])
def test_revocation_contains_and_releases_through_the_revoker(stack, scope):
    queue = subscribe_queue(stack)
    stack.configure(REVOKE_ROLE_SESSIONS="true", REVOKE_SCOPE=scope)
    victim = make_victim(stack, interfaces=1, volumes=1)
    profile, role = _profile_role(stack, victim["instance_id"])
    sibling = _sharing(stack, profile)
    revoker_role = names.function_role(stack.stage, REVOKER)

    with stack.enforce_iam():
        record = _contained(stack, guardduty_event(victim["instance_id"]))
        name = revocation.policy_name(record["incident_id"])
        assert _policies(stack, role) == [name]
        [change] = [c for c in record["changes"] if c["action"] == "revoke-role-sessions"]
        document = stack.client("iam").get_role_policy(RoleName=role, PolicyName=name)[
            "PolicyDocument"]
        condition = {"DateLessThan": {
            "aws:TokenIssueTime": change["after"]["denies_sessions_issued_before"]}}
        if scope == "instance":
            condition["StringEquals"] = {"ec2:SourceInstanceARN": revocation.instance_arn(
                stack.region, stack.account, victim["instance_id"])}
        assert document["Statement"] == [{"Effect": "Deny", "Action": "*", "Resource": "*",
                                          "Condition": condition}]
        report = next(m for m in messages(stack, queue) if m["Subject"].endswith(": contained"))
        assert (f"ROLE-WIDE: every session of role {role}" in report["Text"]) == (
            scope == "role")
        assert (f"it also hits: {sibling}" if scope == "role" else
                f"the other instances sharing the role keep working ({sibling})") in report[
            "Text"]
        assert iam.authorizations.allowed(revoker_role) == {"iam:PutRolePolicy", *READS}

        release(stack, victim["instance_id"])
    assert _policies(stack, role) == []
    assert iam.authorizations.allowed(revoker_role) == {"iam:PutRolePolicy",
                                                        "iam:DeleteRolePolicy", *READS}
    writers = {d.principal for d in iam.authorizations.decisions()
               if d.action in ("iam:PutRolePolicy", "iam:DeleteRolePolicy")}
    assert writers == {revoker_role}
    assert [(i.caller, i.event["operation"]) for i in stack.bridge.invocations
            if i.function_name == names.function(stack.stage, REVOKER)] == [
        (names.function(stack.stage, "contain"), "revoke"),
        (names.function(stack.stage, "release"), "lift")]


def _invoke(stack, function: str, request: dict) -> dict:
    """The revoker's answer to `request`, asked with `function`'s own role's credentials."""
    answer = _as(stack, function, "lambda").invoke(
        FunctionName=names.function(stack.stage, REVOKER), Payload=json.dumps(request).encode())
    return json.load(answer["Payload"])


def test_a_compromised_step_cannot_point_the_revoker_at_another_role_or_incident(stack):
    """After a real containment of A (revocation on, scope instance): as contain, the revoker
    refuses to revoke an unrelated role, or A's own role-wide; as contain and as release, it
    refuses to lift on A's role for an incident that is not A's sealed one (none, or a record of
    the attacker's making). Nothing is written or deleted."""
    stack.configure(REVOKE_ROLE_SESSIONS="true")
    web = _instance_role(stack)
    victim = make_victim(stack, interfaces=1, volumes=1)
    profile, role = _profile_role(stack, victim["instance_id"])
    arn = revocation.instance_arn(stack.region, stack.account, victim["instance_id"])
    revoker_role = names.function_role(stack.stage, REVOKER)

    with stack.enforce_iam():
        started = deliver_finding(stack, guardduty_event(victim["instance_id"]))
        wait_execution(stack, started["execution_arn"], timeout=90)
        stack.bridge.wait_idle()
        own = revocation.policy_name(started["incident_id"])
        assert _policies(stack, role) == [own]
        writes = len([d for d in iam.authorizations.decisions() if d.principal == revoker_role
                      and d.action in ("iam:PutRolePolicy", "iam:DeleteRolePolicy")])

        revoke = {"operation": "revoke", "account_id": stack.account, "region": stack.region,
                  "instance_arn": arn, "incident_id": started["incident_id"],
                  "issued_before": revocation.now()}
        for asked, why in (({**revoke, "role_name": web, "scope": "role"},
                            f"role {web} is not the role of"),
                           ({**revoke, "role_name": web, "scope": "instance"},
                            f"role {web} is not the role of"),
                           ({**revoke, "role_name": role, "scope": "role"}, "wider than")):
            answer = _invoke(stack, "contain", asked)
            assert (answer["status"], answer["code"]) == ("refused", "RevocationRefused"), answer
            assert why in answer["message"], answer

        forged = incidents.new_id()  # contain may update the table: it writes a record of A
        _as(stack, "contain", "dynamodb").update_item(
            TableName=stack.names["INCIDENTS_TABLE"], Key={"pk": {"S": forged}},
            UpdateExpression="SET incident_id = :i, instance_id = :n, account_id = :a, "
                             "home_account = :a, #r = :r, pre_state = :p",
            ExpressionAttributeNames={"#r": "region"},
            ExpressionAttributeValues={
                ":i": {"S": forged}, ":n": {"S": victim["instance_id"]},
                ":a": {"S": stack.account}, ":r": {"S": stack.region},
                ":p": {"M": {"instance_profile": {"S": profile}}}})
        lift = {"operation": "lift", "account_id": stack.account, "region": stack.region,
                "instance_arn": arn, "role_name": role, "scope": "instance"}
        for function in ("contain", "release"):
            for incident_id, why in ((incidents.new_id(), "no incident"),
                                     (forged, "carries no seal")):
                answer = _invoke(stack, function, {**lift, "incident_id": incident_id})
                assert (answer["status"], answer["code"]) == ("refused", "RevocationRefused"), (
                    function, answer)
                assert why in answer["message"], answer
        stack.bridge.wait_idle()

    assert _policies(stack, web) == ["own"]
    assert _policies(stack, role) == [own]
    assert len([d for d in iam.authorizations.decisions() if d.principal == revoker_role
                and d.action in ("iam:PutRolePolicy", "iam:DeleteRolePolicy")]) == writes


EXFILTRATION = f"{findings.CREDENTIAL_EXFILTRATION}.OutsideAWS"


def _stored(stack, incident_id: str) -> dict:
    """The incident's item as the table holds it (read as an administrator)."""
    return stack.client("dynamodb").get_item(TableName=stack.names["INCIDENTS_TABLE"],
                                             Key={"pk": {"S": incident_id}})["Item"]


def _revoker_writes(revoker_role: str) -> list:
    return [d for d in iam.authorizations.decisions() if d.principal == revoker_role
            and d.action in ("iam:PutRolePolicy", "iam:DeleteRolePolicy")]


def test_a_credential_exfiltration_revokes_on_the_instance_with_revocation_off(stack):
    """REVOKE_ROLE_SESSIONS off (REVOKE_SCOPE=role, which it does not widen): the instance's
    role gets the Deny of its sessions from the instance issued before now, the instance is
    contained, the report says so, and release lifts it."""
    queue = subscribe_queue(stack)
    stack.configure(REVOKE_SCOPE="role")
    victim = make_victim(stack, interfaces=1, volumes=1)
    profile, role = _profile_role(stack, victim["instance_id"])
    sibling = _sharing(stack, profile)
    arn = revocation.instance_arn(stack.region, stack.account, victim["instance_id"])

    with stack.enforce_iam():
        record = _contained(stack, guardduty_event(victim["instance_id"],
                                                   finding_type=EXFILTRATION))
        assert record["finding"]["type"] == EXFILTRATION
        name = revocation.policy_name(record["incident_id"])
        [change] = [c for c in record["changes"] if c["action"] == "revoke-role-sessions"]
        when = change["after"]["denies_sessions_issued_before"]
        assert (change["after"]["scope"], change["after"]["keep_working"]) == (
            "instance", [sibling])
        assert stack.client("iam").get_role_policy(RoleName=role, PolicyName=name)[
            "PolicyDocument"]["Statement"] == [{
                "Effect": "Deny", "Action": "*", "Resource": "*", "Condition": {
                    "StringEquals": {"ec2:SourceInstanceARN": arn},
                    "DateLessThan": {"aws:TokenIssueTime": when}}}]
        assert {c["action"] for c in record["changes"]} >= {"isolate-interface",
                                                            "detach-instance-profile"}
        report = next(m for m in messages(stack, queue) if m["Subject"].endswith(": contained"))
        assert (f"stolen credentials of role {role} used from elsewhere; sessions of role {role} "
                f"issued before {when} denied on instance {victim['instance_id']}") in \
            report["Text"]

        release(stack, victim["instance_id"])
    assert _policies(stack, role) == []
    assert [(i.caller, i.event["operation"], i.event["scope"]) for i in stack.bridge.invocations
            if i.function_name == names.function(stack.stage, REVOKER)] == [
        (names.function(stack.stage, "contain"), "revoke", "instance"),
        (names.function(stack.stage, "release"), "lift", "instance")]


def test_an_ordinary_incident_revokes_nothing_with_revocation_off_even_its_type_flipped(stack):
    """REVOKE_ROLE_SESSIONS off: an ordinary finding's containment writes no policy; asked
    directly with the incident's valid seal, the revoker refuses; and whoever may write the
    table (here, as contain) flips the stored finding type to a credential exfiltration: the
    seal no longer matches, the revoker still refuses."""
    victim = make_victim(stack, interfaces=1, volumes=1)
    _, role = _profile_role(stack, victim["instance_id"])
    revoker_role = names.function_role(stack.stage, REVOKER)

    with stack.enforce_iam():
        stored = _contained(stack, guardduty_event(victim["instance_id"]))
        assert _policies(stack, role) == []
        assert "revoke-role-sessions" not in {c["action"] for c in stored["changes"]}

        asked = {"operation": "revoke", "account_id": stack.account, "region": stack.region,
                 "role_name": role, "scope": "instance", "incident_id": stored["incident_id"],
                 "instance_arn": revocation.instance_arn(stack.region, stack.account,
                                                         victim["instance_id"]),
                 "seal": _stored(stack, stored["incident_id"])["seal"]["S"]}
        answer = _invoke(stack, "contain", {**asked, "issued_before": revocation.now()})
        assert answer["status"] == "refused", answer
        assert "is no credential exfiltration" in answer["message"], answer

        _as(stack, "contain", "dynamodb").update_item(
            TableName=stack.names["INCIDENTS_TABLE"], Key={"pk": {"S": stored["incident_id"]}},
            UpdateExpression="SET finding.#t = :t", ExpressionAttributeNames={"#t": "type"},
            ExpressionAttributeValues={":t": {"S": EXFILTRATION}})
        assert _stored(stack, stored["incident_id"])["finding"]["M"]["type"] == {
            "S": EXFILTRATION}
        answer = _invoke(stack, "contain", {**asked, "issued_before": revocation.now()})
        assert answer["status"] == "refused", answer
        assert "seal does not match" in answer["message"], answer
        stack.bridge.wait_idle()
    assert _policies(stack, role) == []
    assert _revoker_writes(revoker_role) == []
