"""The revoking function (chalicelib/revocation.py) on moto in process: the Deny it writes, what
"lift" removes, and every request it refuses, answered as a record with IAM left unchanged:
invalid fields, a scope wider than its own settings, and any request that is not about a sealed
incident's own instance and the role of the profile that instance had."""

import json
from datetime import datetime, timedelta, timezone

import pytest

from chalicelib import incidents, revocation
from chalicelib.incidents import new_id
from tests.unit.actions.world import ACCOUNT, EXFILTRATION, REGION

INSTANCE = "i-0123456789abcdef0"
OTHER_INSTANCE = "i-0fedcba9876543210"
ARN = f"arn:aws:ec2:{REGION}:{ACCOUNT}:instance/{INSTANCE}"
MEMBER = "111111111111"
PROFILE = f"arn:aws:iam::{ACCOUNT}:instance-profile/app-server"
INCIDENT = "inc-0123456789ab"  # the instance's sealed incident
# Incidents on record that a request may name but the revoker must not act for:
UNSEALED = "inc-00000000000a"  # the instance's, written to the table with no seal
MOVED = "inc-00000000000b"  # sealed for another instance, then its record says this one
IN_MEMBER = "inc-00000000000c"  # sealed, an instance of that id in an allowed member account
IN_REGION = "inc-00000000000d"  # sealed, an instance of that id in another region
NO_PROFILE = "inc-00000000000e"  # sealed, the instance had no instance profile
ABSENT = "inc-00000000000f"  # not on record at all


def _incident(incident_id, instance=INSTANCE, account=ACCOUNT, region=REGION, profile=PROFILE):
    return {"incident_id": incident_id, "instance_id": instance, "account_id": account,
            "home_account": ACCOUNT, "region": region, "opened_at": incidents.now(),
            "pre_state": {"instance_profile": profile} if profile else {}}


def _role(iam, name):
    """An instance's role, with an inline policy of its own that revocation must leave alone."""
    iam.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps({
        "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole",
                                                "Principal": {"Service": "ec2.amazonaws.com"}}]}))
    iam.put_role_policy(RoleName=name, PolicyName="own", PolicyDocument=json.dumps({
        "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:GetObject",
                                                "Resource": "*"}]}))
    return name


@pytest.fixture
def role(world, ledger, deployment):
    """The role of the profile the instance of INCIDENT had, a role `web` of no incident's, and
    the incidents above on record."""
    iam = world.client("iam")
    _role(iam, "app-server")
    _role(iam, "web")
    iam.create_instance_profile(InstanceProfileName="app-server")
    iam.add_role_to_instance_profile(InstanceProfileName="app-server", RoleName="app-server")
    deployment(MEMBER_ACCOUNTS=MEMBER)
    ledger(_incident(INCIDENT))
    ledger(_incident(IN_MEMBER, account=MEMBER))
    ledger(_incident(IN_REGION, region="eu-west-1"))
    ledger(_incident(NO_PROFILE, profile=None))
    incidents.put(_incident(UNSEALED))
    ledger(_incident(MOVED, instance=OTHER_INSTANCE))
    world.client("dynamodb").update_item(  # as anyone who may write the table could
        TableName="incidents", Key={"pk": {"S": MOVED}},
        UpdateExpression="SET instance_id = :i", ExpressionAttributeValues={":i": {"S": INSTANCE}})
    return "app-server"


def _request(**changes):
    return {"operation": "revoke", "account_id": ACCOUNT, "region": REGION,
            "role_name": "app-server", "instance_arn": ARN, "issued_before": revocation.now(),
            "incident_id": INCIDENT, **changes}


def _lift(**changes):
    return {k: v for k, v in _request(operation="lift", **changes).items()
            if k != "issued_before"}


def _policies(world, role):
    iam = world.client("iam")
    return {name: iam.get_role_policy(RoleName=role, PolicyName=name)["PolicyDocument"]
            for name in iam.list_role_policies(RoleName=role)["PolicyNames"]}


def test_revoke_writes_a_deny_scoped_to_the_instance_by_default(world, role):
    request = _request()

    result = revocation.handle(request, ACCOUNT)

    assert result["status"] == "revoked" and result["scope"] == "instance", result
    assert _policies(world, role)["ec2-quarantine-revoke-inc-0123456789ab"] == {
        "Version": "2012-10-17", "Statement": [{
            "Effect": "Deny", "Action": "*", "Resource": "*", "Condition": {
                "StringEquals": {"ec2:SourceInstanceARN": ARN},
                "DateLessThan": {"aws:TokenIssueTime": request["issued_before"]}}}]}


def test_role_wide_revocation_is_asked_for_and_has_no_instance_condition(world, role,
                                                                          deployment):
    deployment(REVOKE_SCOPE="role")
    request = _request(scope="role")

    assert revocation.handle(request, ACCOUNT)["status"] == "revoked"

    assert _policies(world, role)["ec2-quarantine-revoke-inc-0123456789ab"]["Statement"] == [{
        "Effect": "Deny", "Action": "*", "Resource": "*", "Condition": {
            "DateLessThan": {"aws:TokenIssueTime": request["issued_before"]}}}]


def test_lift_removes_only_that_incidents_policy(world, role, ledger):
    other = ledger(_incident(new_id()))["incident_id"]  # an earlier incident of the instance
    revocation.handle(_request(), ACCOUNT)
    revocation.handle(_request(incident_id=other), ACCOUNT)

    lift = _lift()
    assert revocation.handle(lift, ACCOUNT)["status"] == "lifted"

    assert sorted(_policies(world, role)) == [f"ec2-quarantine-revoke-{other}", "own"]
    again = revocation.handle(lift, ACCOUNT)  # a retried release finds it gone
    assert (again["status"], again["already_absent"]) == ("lifted", True)


FUTURE = (datetime.now(timezone.utc) + timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ")


@pytest.mark.parametrize("changes, why", [
    ({"role_name": "ec2-quarantine-dev-contain"}, "product's own roles"),
    ({"role_name": "EC2-Quarantine-dev-deny-all"}, "product's own roles"),
    ({"role_name": "ec2-quarantine-member"}, "product's own roles"),
    ({"role_name": "web/../admin"}, "role_name"),
    ({"role_name": "r" * 65}, "role_name"),
    ({"instance_arn": f"arn:aws:ec2:{REGION}:{ACCOUNT}:instance/{INSTANCE}\n"}, "instance_arn"),
    ({"instance_arn": f"arn:aws:ec2:{REGION}:{ACCOUNT}:volume/vol-0123456789abcdef0"},
     "instance_arn"),
    ({"instance_arn": f"arn:aws:ec2:{REGION}:111111111111:instance/{INSTANCE}"}, "not in account"),
    ({"instance_arn": f"arn:aws:ec2:eu-west-1:{ACCOUNT}:instance/{INSTANCE}"}, "not in account"),
    ({"account_id": "222222222222",
      "instance_arn": f"arn:aws:ec2:{REGION}:222222222222:instance/{INSTANCE}"}, "may act in"),
    ({"account_id": "12345678901"}, "account_id"),
    ({"issued_before": FUTURE}, "in the future"),
    ({"issued_before": "2026-01-31 12:00:00"}, "UTC time"),
    ({"incident_id": "inc-0123456789ab/../x"}, "incident_id"),
    ({"scope": "account"}, "scope"),
    ({"operation": "put"}, "operation"),
    ({"operation": "lift"}, "belongs to revoke"),  # lift names no time
    ({"policy_document": "{}"}, "unknown fields"),
])
def test_a_request_it_must_not_act_on_is_refused_as_a_record_and_iam_is_unchanged(
        world, role, changes, why):
    before = _policies(world, role)

    result = revocation.handle(_request(**changes), ACCOUNT)

    assert result["status"] == "refused" and result["code"] == "RevocationRefused", result
    assert why in result["message"]
    assert _policies(world, role) == before


def test_a_request_that_is_no_object_is_refused(world):
    assert revocation.handle(["revoke"], ACCOUNT)["status"] == "refused"


def test_an_iam_failure_is_answered_as_a_record(world, role):
    from botocore.exceptions import ClientError

    from chalicelib import aws

    def refuse(model, **_):  # IAM refuses the revoking function's write, as AWS answers
        if model.name == "PutRolePolicy":
            raise ClientError({"Error": {"Code": "AccessDenied", "Message": "no"}}, model.name)
    aws.client("iam", REGION).meta.events.register_first("before-call", refuse)

    result = revocation.handle(_request(), ACCOUNT)

    assert (result["status"], result["code"]) == ("failed", "AccessDenied"), result
    assert _policies(world, role).keys() == {"own"}


NOT_ITS_INCIDENT = [  # each request names what is not a sealed incident's instance and role
    ({"incident_id": ABSENT}, f"no incident {ABSENT}"),
    ({"incident_id": UNSEALED}, "carries no seal"),
    ({"incident_id": MOVED}, "seal does not match"),
    ({"seal": "AAAA"}, "seal does not match"),  # a seal of the caller's making
    ({"instance_arn": f"arn:aws:ec2:{REGION}:{ACCOUNT}:instance/{OTHER_INSTANCE}"},
     f"is not incident {INCIDENT}'s"),
    ({"incident_id": IN_MEMBER}, f"is not incident {IN_MEMBER}'s"),  # its account is another
    ({"incident_id": IN_REGION}, f"is not incident {IN_REGION}'s"),  # its region is another
    ({"incident_id": NO_PROFILE}, "had no instance profile"),
    ({"role_name": "web"}, f"role web is not the role of {PROFILE}"),
]
EVERY_INCIDENT = (INCIDENT, UNSEALED, MOVED, IN_MEMBER, IN_REGION, NO_PROFILE, ABSENT)


def _every_role_policy(world):
    return {role: sorted(_policies(world, role)) for role in ("app-server", "web")}


@pytest.mark.parametrize("changes, why", [
    *NOT_ITS_INCIDENT,
    ({"scope": "role"}, "scope role is wider than incident inc-0123456789ab's here (instance: "
                         "REVOKE_SCOPE=instance"),
])
def test_a_revocation_not_of_a_sealed_incidents_instance_and_role_is_refused(
        world, role, changes, why):
    result = revocation.handle(_request(**changes), ACCOUNT)

    assert (result["status"], result["code"]) == ("refused", "RevocationRefused"), result
    assert why in result["message"], result
    assert _every_role_policy(world) == {"app-server": ["own"], "web": ["own"]}


@pytest.mark.parametrize("changes, why", NOT_ITS_INCIDENT)
def test_a_lift_not_of_a_sealed_incidents_instance_and_role_is_refused(
        world, role, changes, why):
    iam = world.client("iam")
    for name in ("app-server", "web"):  # what a lift wrongly let through would delete
        for incident_id in EVERY_INCIDENT:
            iam.put_role_policy(RoleName=name, PolicyName=revocation.policy_name(incident_id),
                                PolicyDocument=json.dumps(revocation.policy(
                                    _request(incident_id=incident_id, scope="instance"))))
    before = _every_role_policy(world)

    result = revocation.handle(_lift(**changes), ACCOUNT)

    assert (result["status"], result["code"]) == ("refused", "RevocationRefused"), result
    assert why in result["message"], result
    assert _every_role_policy(world) == before


def test_with_revocation_off_it_revokes_nothing_and_still_lifts(world, role, deployment):
    assert revocation.handle(_request(), ACCOUNT)["status"] == "revoked"
    deployment(REVOKE_ROLE_SESSIONS="false")

    refused = revocation.handle(_request(), ACCOUNT)
    role_wide = revocation.handle(_request(scope="role"), ACCOUNT)

    assert all(r["status"] == "refused" and "REVOKE_ROLE_SESSIONS=false" in r["message"]
               for r in (refused, role_wide)), (refused, role_wide)
    assert revocation.handle(_lift(), ACCOUNT)["status"] == "lifted"
    assert _every_role_policy(world) == {"app-server": ["own"], "web": ["own"]}


def test_a_step_may_narrow_the_scope_to_the_instance_never_widen_it(world, role, deployment):
    deployment(REVOKE_SCOPE="role")

    result = revocation.handle(_request(scope="instance"), ACCOUNT)

    assert (result["status"], result["scope"]) == ("revoked", "instance"), result
    [statement] = _policies(world, role)[revocation.policy_name(INCIDENT)]["Statement"]
    assert statement["Condition"]["StringEquals"] == {"ec2:SourceInstanceARN": ARN}


def test_the_functions_asked_are_named_after_the_stage_whichever_function_asks(deployment):
    """The API's function (`<app>-<stage>`, no suffix) asks them as well as the steps."""
    from chalicelib import aws, settings
    from deploy import names

    for stage in ("dev", "prod"):
        deployment(STATE_MACHINE_ARN=names.state_machine_arn(REGION, ACCOUNT, stage))
        for function in (names.api_function(stage), names.function(stage, "contain")):
            with aws.acting_as(function):
                for asked in ("revoke_sessions", "publish_page", "approval"):
                    assert settings.stage_function(asked) == names.function(stage, asked)


def _exfiltration(world, role, ledger, deployment, **settings):
    """INCIDENT's instance under a sealed credential exfiltration incident, revocation off."""
    deployment(REVOKE_ROLE_SESSIONS="false", **settings)
    return ledger({**_incident(new_id()), "finding": {"type": EXFILTRATION}})["incident_id"]


def test_with_revocation_off_a_credential_exfiltration_is_revoked_on_the_instance_alone(
        world, role, ledger, deployment):
    stolen = _exfiltration(world, role, ledger, deployment, REVOKE_SCOPE="role")
    request = _request(incident_id=stolen, scope="instance")

    result = revocation.handle(request, ACCOUNT)
    role_wide = revocation.handle(_request(incident_id=stolen, scope="role"), ACCOUNT)

    assert (result["status"], result["scope"]) == ("revoked", "instance"), result
    assert _policies(world, role)[revocation.policy_name(stolen)]["Statement"] == [{
        "Effect": "Deny", "Action": "*", "Resource": "*", "Condition": {
            "StringEquals": {"ec2:SourceInstanceARN": ARN},
            "DateLessThan": {"aws:TokenIssueTime": request["issued_before"]}}}]
    assert role_wide["status"] == "refused", role_wide
    assert f"scope role is wider than incident {stolen}'s here (instance" in role_wide["message"]
    assert revocation.handle(_request(), ACCOUNT)["status"] == "refused"  # an ordinary one
    assert sorted(_policies(world, role)) == sorted(["own", revocation.policy_name(stolen)])


def test_a_finding_type_flipped_in_the_table_breaks_the_seal_either_way(
        world, role, ledger, deployment):
    """Whoever may write the table makes an ordinary incident a credential exfiltration (to
    get a revocation with REVOKE_ROLE_SESSIONS off), or one ordinary: the seal no longer holds,
    nothing is revoked."""
    stolen = _exfiltration(world, role, ledger, deployment)
    flipped = {INCIDENT: EXFILTRATION, stolen: "Backdoor:EC2/C&CActivity.B!DNS"}
    for incident_id, kind in flipped.items():
        world.client("dynamodb").update_item(
            TableName="incidents", Key={"pk": {"S": incident_id}},
            UpdateExpression="SET finding = :f",
            ExpressionAttributeValues={":f": {"M": {"type": {"S": kind}}}})

        result = revocation.handle(_request(incident_id=incident_id, scope="instance"), ACCOUNT)

        assert result["status"] == "refused" and "seal does not match" in result["message"], (
            incident_id, result)
    assert _every_role_policy(world) == {"app-server": ["own"], "web": ["own"]}


def test_stolen_credentials_recorded_later_revoke_only_under_the_products_seal(
        world, role, deployment):
    """An exfiltration finding on an incident another finding opened: the entry function seals
    it on the incident (`seal_stolen`) and asks without naming a role (the revoker takes the
    sealed profile's). Written by anyone else — no seal, or another incident's — it revokes
    nothing with REVOKE_ROLE_SESSIONS off."""
    deployment(REVOKE_ROLE_SESSIONS="false")
    finding = {"id": "5ab8a2b0c1d2e3f4a5b6c7d8e9f00112", "type": EXFILTRATION}
    incident = incidents.get(INCIDENT)
    asked = {k: v for k, v in _request(scope="instance").items() if k != "role_name"}
    for forged in ({**finding, "seal": "Zm9yZ2Vk"},
                   revocation.seal_stolen({**incident, "incident_id": MOVED}, finding)):
        world.client("dynamodb").update_item(
            TableName="incidents", Key={"pk": {"S": INCIDENT}},
            UpdateExpression="SET credentials_stolen = :s",
            ExpressionAttributeValues=incidents._serialized({":s": forged}))
        assert revocation.handle(asked, ACCOUNT)["status"] == "refused"
    assert _every_role_policy(world) == {"app-server": ["own"], "web": ["own"]}

    incidents.record_step(INCIDENT, "stolen-credentials", incidents.now(), "sealed", fields={
        "credentials_stolen": revocation.seal_stolen(incident, finding)})
    result = revocation.handle(asked, ACCOUNT)
    assert (result["status"], result["role_name"], result["scope"]) == (
        "revoked", "app-server", "instance"), result
