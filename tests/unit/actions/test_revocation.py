"""The revoking function (chalicelib/revocation.py) on moto in process: the Deny it writes, what
"lift" removes, and every request it refuses, answered as a record with IAM left unchanged."""

import json
from datetime import datetime, timedelta, timezone

import pytest

from chalicelib import revocation
from chalicelib.incidents import new_id
from tests.unit.actions.world import ACCOUNT, REGION

INSTANCE = "i-0123456789abcdef0"
ARN = f"arn:aws:ec2:{REGION}:{ACCOUNT}:instance/{INSTANCE}"


@pytest.fixture
def role(world):
    """An instance's role, with an inline policy of its own that revocation must leave alone."""
    iam = world.client("iam")
    iam.create_role(RoleName="app-server", AssumeRolePolicyDocument=json.dumps({
        "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole",
                                                "Principal": {"Service": "ec2.amazonaws.com"}}]}))
    iam.put_role_policy(RoleName="app-server", PolicyName="own", PolicyDocument=json.dumps({
        "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:GetObject",
                                                "Resource": "*"}]}))
    return "app-server"


def _request(**changes):
    return {"operation": "revoke", "account_id": ACCOUNT, "region": REGION,
            "role_name": "app-server", "instance_arn": ARN, "issued_before": revocation.now(),
            "incident_id": "inc-0123456789ab", **changes}


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


def test_role_wide_revocation_is_asked_for_and_has_no_instance_condition(world, role):
    request = _request(scope="role")

    assert revocation.handle(request, ACCOUNT)["status"] == "revoked"

    assert _policies(world, role)["ec2-quarantine-revoke-inc-0123456789ab"]["Statement"] == [{
        "Effect": "Deny", "Action": "*", "Resource": "*", "Condition": {
            "DateLessThan": {"aws:TokenIssueTime": request["issued_before"]}}}]


def test_lift_removes_only_that_incidents_policy(world, role):
    other = new_id()
    revocation.handle(_request(), ACCOUNT)
    revocation.handle(_request(incident_id=other), ACCOUNT)

    lift = {k: v for k, v in _request(operation="lift").items() if k != "issued_before"}
    assert revocation.handle(lift, ACCOUNT)["status"] == "lifted"

    assert sorted(_policies(world, role)) == [f"ec2-quarantine-revoke-{other}", "own"]
    again = revocation.handle(lift, ACCOUNT)  # a retried release finds it gone
    assert (again["status"], again["already_absent"]) == ("lifted", True)


FUTURE = (datetime.now(timezone.utc) + timedelta(minutes=10)).strftime("%Y-%m-%dT%H:%M:%SZ")


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
    ({"account_id": "111111111111",
      "instance_arn": f"arn:aws:ec2:{REGION}:111111111111:instance/{INSTANCE}"}, "may act in"),
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
    result = revocation.handle(_request(role_name="no-such-role"), ACCOUNT)

    assert (result["status"], result["code"]) == ("failed", "NoSuchEntity"), result
    assert _policies(world, role).keys() == {"own"}


def test_the_revoker_is_named_after_the_running_functions_stage():
    from chalicelib import aws
    from deploy import names

    for stage in ("dev", "prod"):
        for step in ("contain", "release"):
            with aws.acting_as(names.function(stage, step)):
                assert revocation.function_name() == names.function(stage, "revoke_sessions")
