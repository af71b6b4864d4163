"""Member accounts, confused-deputy-proof, under moto's IAM enforcement: each function's member
role trusts that function's role only, so a compromised function (or any other principal of the
central account) cannot borrow another function's rights there; and `MEMBER_ACCOUNTS=*` admits
the accounts of the organization only, checked."""

import json

import boto3
import pytest
from botocore.exceptions import ClientError

from chalicelib import accounts, settings
from deploy import names, permissions
from local import iam
from tests.helpers import api, deliver_finding, guardduty_event, make_victim, wait_execution

MEMBER = "111111111111"
FOREIGN = "999999999999"


def _sts(stack, credentials):
    return boto3.session.Session().client(
        "sts", region_name=stack.region, endpoint_url=stack.endpoint,
        aws_access_key_id=credentials.access_key_id,
        aws_secret_access_key=credentials.secret_access_key,
        aws_session_token=credentials.session_token)


def _as_function(stack, function):
    return _sts(stack, stack.bridge.roles.credentials(names.deployed_function(stack.stage,
                                                                               function)))


def _member_role_arn(stack, function, account=MEMBER):
    role = permissions.member_role_name(stack.stage, function, settings.get())
    return f"arn:aws:iam::{account}:role/{role}"


def _assume(sts, role_arn):
    """The account the issued credentials act in (they work), or the error code."""
    try:
        issued = sts.assume_role(RoleArn=role_arn, RoleSessionName="attempt")["Credentials"]
    except ClientError as error:
        return error.response["Error"]["Code"]
    return boto3.session.Session().client(
        "sts", region_name="us-east-1", endpoint_url=sts.meta.endpoint_url,
        aws_access_key_id=issued["AccessKeyId"], aws_secret_access_key=issued["SecretAccessKey"],
        aws_session_token=issued["SessionToken"]).get_caller_identity()["Account"]


def _central_admin_role(stack):
    """Another role of the central account, allowed everything by its own policy."""
    iam_client = stack.client("iam")
    iam_client.create_role(RoleName="intruder", AssumeRolePolicyDocument=json.dumps({
        "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole",
                                                "Principal": {"Service": "ec2.amazonaws.com"}}]}))
    iam_client.put_role_policy(RoleName="intruder", PolicyName="admin",
                               PolicyDocument=json.dumps(iam.ADMIN_POLICY))
    return iam.assume(f"arn:aws:iam::{stack.account}:role/intruder", stack.region, "intruder")


def test_only_the_contain_function_may_assume_the_contain_member_role(stack):
    stack.configure(MEMBER_ACCOUNTS=MEMBER)
    iam.provision_member_account(stack, MEMBER)
    contain_role = _member_role_arn(stack, "contain")
    with stack.enforce_iam():
        intruder = _sts(stack, _central_admin_role(stack))
        assert _assume(_as_function(stack, "contain"), contain_role) == MEMBER
        # A compromised handler: its own member role works, contain's does not.
        assert _assume(_as_function(stack, "api_handler"),
                       _member_role_arn(stack, "api_handler")) == MEMBER
        for function in ("api_handler", "on_guardduty_finding", "release"):
            assert _assume(_as_function(stack, function), contain_role) == "AccessDenied"
        # Principals an account-root trust would let in, their own policies allowing anything:
        # the administrator user and another role of the central account. The member account's
        # admin role (trusting the central root) shows their policies would let them.
        admin = stack.client("sts")
        assert _assume(intruder, f"arn:aws:iam::{MEMBER}:role/admin") == MEMBER
        assert _assume(admin, f"arn:aws:iam::{MEMBER}:role/admin") == MEMBER
        assert _assume(intruder, contain_role) == "AccessDenied"
        assert _assume(admin, contain_role) == "AccessDenied"
    denied = {d.principal for d in iam.authorizations.decisions() if not d.allowed}
    assert denied == {names.function_role(stack.stage, f)
                      for f in ("api_handler", "on_guardduty_finding", "release")} | {
        "intruder", iam.ADMIN_USER}


def test_a_function_reaches_only_its_own_member_role_in_the_listed_accounts(stack):
    """The grant side alone: contain's policy names its own member role in MEMBER_ACCOUNTS'
    accounts, nothing else (the trust is not what refuses here: the role does not exist)."""
    stack.configure(MEMBER_ACCOUNTS=MEMBER)
    grant = [s for s in permissions.policy(stack.stage, "contain", settings.get())[
        "Statement"] if "sts:AssumeRole" in s["Action"]]
    assert grant == [{"Sid": "OwnMemberRole", "Effect": "Allow", "Action": ["sts:AssumeRole"],
                      "Resource": [_member_role_arn(stack, "contain")]}]
    with stack.enforce_iam():
        contain = _as_function(stack, "contain")
        assert _assume(contain, _member_role_arn(stack, "contain", FOREIGN)) == "AccessDenied"


@pytest.mark.parametrize("listed", ["", "*"])
def test_the_assume_grant_follows_member_accounts(listed):
    current = permissions.stage_settings("dev", {**settings.DEFAULTS, "MEMBER_ACCOUNTS": listed})
    found = permissions.member_assume_statements("dev", "contain", current)
    role = permissions.member_role_name("dev", "contain", current)
    if not listed:
        assert found == []
    else:
        assert found == [{"Sid": "OwnMemberRoleInOrganization", "Effect": "Allow",
                          "Action": ["sts:AssumeRole"], "Resource": [f"arn:aws:iam::*:role/{role}"],
                          "Condition": {"StringEquals": {
                              "aws:ResourceOrgID": "${aws:PrincipalOrgID}"}}}]


def test_any_account_without_an_organization_is_refused_with_403(stack):
    stack.configure(MEMBER_ACCOUNTS="*")
    with stack.enforce_iam():
        status, answer = api(stack, "POST", "/quarantine", {
            "instance_id": "i-0123456789abcdef0", "account_id": FOREIGN, "reason": "test"})
    assert status == 403, answer
    assert answer["error"] == "AccountNotAllowed"
    assert "MEMBER_ACCOUNTS=*" in answer["message"] and "no organization" in answer["message"]
    assert "organizations:DescribeOrganization" in iam.authorizations.allowed(
        names.function_role(stack.stage, "api_handler"))


def test_any_account_of_the_organization_is_acted_on_and_no_other(stack):
    organizations = stack.client("organizations")
    organization = organizations.create_organization(FeatureSet="ALL")["Organization"]["Id"]
    member = organizations.create_account(AccountName="workloads", Email="w@example.com")[
        "CreateAccountStatus"]["AccountId"]
    stack.configure(MEMBER_ACCOUNTS="*")
    iam.provision_member_account(stack, member, organization_id=organization)
    victim = make_victim(stack, interfaces=1, volumes=1, profile=False, account=member)
    with stack.enforce_iam():
        started = deliver_finding(stack, guardduty_event(victim["instance_id"], account=member))
        assert started["decision"] == "acted", started
        wait_execution(stack, started["execution_arn"], timeout=90)
        stack.bridge.wait_idle()
        status, record = api(stack, "GET", f"/incidents/{started['incident_id']}")
        assert status == 200 and record["status"] == "CONTAINED", record
        status, answer = api(stack, "POST", "/quarantine", {
            "instance_id": "i-0123456789abcdef0", "account_id": FOREIGN, "reason": "test"})
    assert status == 403 and organization in answer["message"], answer
    for function in ("api_handler", "on_guardduty_finding", "contain", "collect_evidence",
                     "report"):
        used = iam.authorizations.allowed(names.function_role(stack.stage, function))
        assert set(accounts.ORGANIZATION_PERMISSIONS) <= used, function
    assert not [d for d in iam.authorizations.decisions() if not d.allowed]


def test_the_member_role_trusts_the_organization_it_was_given(stack):
    """With OrganizationId, a function role outside that organization is refused (here: the
    central account is in none)."""
    stack.configure(MEMBER_ACCOUNTS=MEMBER)
    iam.provision_member_account(stack, MEMBER, organization_id="o-abcdefghij")
    with stack.enforce_iam():
        assert _assume(_as_function(stack, "contain"),
                       _member_role_arn(stack, "contain")) == "AccessDenied"


def test_once_warm_nothing_stands_between_a_finding_and_the_swap_but_the_swap(stack):
    """The second incident in a member account: the functions reuse their member credentials
    and the organization's answer, so no sts:AssumeRole or Organizations call comes first."""
    stack.configure(MEMBER_ACCOUNTS=MEMBER)
    iam.provision_member_account(stack, MEMBER)
    first, second = (make_victim(stack, interfaces=1, volumes=1, profile=False, account=MEMBER)
                     for _ in range(2))
    with stack.enforce_iam():
        for number, victim in enumerate((first, second)):
            iam.authorizations.clear()
            started = deliver_finding(stack, guardduty_event(victim["instance_id"],
                                                             account=MEMBER))
            assert started["decision"] == "acted", started
            wait_execution(stack, started["execution_arn"], timeout=90)
            stack.bridge.wait_idle()
            contain = names.function_role(stack.stage, "contain")
            assumed = {d.action for d in iam.authorizations.decisions()
                       if d.principal == contain and d.action.startswith(("sts:", "organizations:"))}
            assert assumed == ({"sts:AssumeRole"} if number == 0 else set()), number
    status, record = api(stack, "GET", f"/incidents/{started['incident_id']}")
    assert status == 200 and record["status"] == "CONTAINED", record
