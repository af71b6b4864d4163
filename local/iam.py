"""IAM on the embedded AWS: each function under its own role, and moto's enforcement on demand.

In AWS each function runs with the credentials of the role Chalice deploys for it
(`ec2-quarantine-<stage>-<function>`, with the policy `deploy.permissions.policy` generates),
and every request is authorized against that role's policy. Here all functions share one
process, so the bridge and the local API hand each invocation its own role's credentials
(`FunctionRoles`, through `chalicelib.aws.acting_as`), issued by STS on moto.

moto authorizes requests only while its enforcement is on (`enforcement()`); then every request
needs valid keys, so tests act as an administrator user (`admin_keys`). What moto enforces: the
query and JSON protocol services, through `BaseResponse.call_action`, and S3 on its own path (the
bucket and key as the resource); tests/local/test_iam.py shows it for every service the app
calls (EC2, Auto Scaling, ELB, IAM, SSM, DynamoDB, Step Functions, SNS, S3, KMS; STS AssumeRole
in the least-privilege test). Not enforced by moto: Lambda invocations, which the in-process
bridge answers before they reach moto; `check()` authorizes them with moto's own rules instead;
KMS key policies, which moto does not evaluate (tests/deploy reads them).
moto's own API (`/moto-api/*`) and the fault control are never authorized.

`authorizations` records every decision moto (or `check`) makes, per role, so a test can compare
the actions each function used with the actions its policy grants.
"""

import contextlib
import json
import threading
from dataclasses import dataclass

from chalicelib import aws, settings
from deploy import member_role, names, permissions
from local import provision

ADMIN_USER = "local-admin"
ADMIN_POLICY = {"Version": "2012-10-17",
                "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}


def assume(role_arn: str, region: str, session_name: str) -> aws.Credentials:
    """Credentials for `role_arn`, issued the way AWS's services get them (Lambda, Step
    Functions): by STS assuming it as the service, which no caller's policy is checked for."""
    from moto.sts.models import sts_backends
    from moto.utilities.utils import get_partition

    account = role_arn.split(":")[4]
    role = sts_backends[account][get_partition(region)].assume_role(
        region_name=region, role_session_name=session_name, role_arn=role_arn, policy=None,
        duration=3600, external_id=None)
    return aws.Credentials(role.access_key_id, role.secret_access_key, role.session_token)


class FunctionRoles:
    """Each function's role, as `chalice deploy` makes it, and credentials issued for it."""

    def __init__(self, stage: str, region: str, account: str):
        self.stage, self.region, self.account = stage, region, account
        # deployed function name -> Chalice's name (the API's function is `api_handler`)
        self.functions = {names.deployed_function(stage, name): name
                          for name in permissions.needs()}
        self._lock = threading.Lock()
        self._credentials: dict = {}

    def role_arn(self, function: str) -> str:
        return f"arn:aws:iam::{self.account}:role/{names.function_role(self.stage, function)}"

    def provision(self, iam_client) -> None:
        """One role per function with exactly its generated policy (for the settings in force
        now) and Lambda's trust, as `chalice deploy` creates them (`stack.enforce_iam()` calls
        this)."""
        from chalice.constants import LAMBDA_TRUST_POLICY

        for function in self.functions.values():
            iam_client.create_role(RoleName=names.function_role(self.stage, function),
                                   AssumeRolePolicyDocument=json.dumps(LAMBDA_TRUST_POLICY))
        self.grant(iam_client)

    def grant(self, iam_client) -> None:
        """Each role's policy as deployment generates it from the settings in force (the
        stack's `configure` calls this again: a redeploy with new settings)."""
        current = settings.get()
        for function in self.functions.values():
            role = names.function_role(self.stage, function)
            iam_client.put_role_policy(
                RoleName=role, PolicyName=role,
                PolicyDocument=json.dumps(permissions.policy(self.stage, function, current)))

    def credentials(self, deployed_name: str) -> aws.Credentials | None:
        """The credentials `deployed_name` runs with (None for a name that is no function)."""
        function = self.functions.get(deployed_name)
        if function is None:
            return None
        with self._lock:
            if function not in self._credentials:
                self._credentials[function] = assume(self.role_arn(function), self.region,
                                                     deployed_name)
            return self._credentials[function]

    def forget(self) -> None:
        """Drop issued credentials (they die with a moto reset)."""
        with self._lock:
            self._credentials.clear()


@dataclass(frozen=True)
class Decision:
    principal: str  # role name (assumed roles) or user name
    action: str  # service:Action as IAM names it
    resource: str
    allowed: bool


class AuthorizationLog:
    """Every authorization decision made while enforcement is on, in order."""

    def __init__(self):
        self._lock = threading.Lock()
        self._decisions: list[Decision] = []

    def record(self, principal_arn: str, action: str, resource: str, allowed: bool) -> None:
        # arn:aws:sts::<account>:assumed-role/<role>/<session> or arn:aws:iam::<account>:user/<u>
        kind, _, rest = principal_arn.split(":", 5)[5].partition("/")
        principal = rest.split("/")[0] if kind == "assumed-role" else rest
        with self._lock:
            self._decisions.append(Decision(principal, action, resource, allowed))

    def clear(self) -> None:
        with self._lock:
            self._decisions.clear()

    def decisions(self) -> list[Decision]:
        with self._lock:
            return list(self._decisions)

    def allowed(self, principal: str) -> set[str]:
        """The actions `principal` was allowed."""
        return {d.action for d in self.decisions() if d.principal == principal and d.allowed}

    def denied(self, principal: str) -> set[str]:
        return {d.action for d in self.decisions() if d.principal == principal and not d.allowed}


authorizations = AuthorizationLog()


def enforcing() -> bool:
    """Whether moto authorizes requests now."""
    from moto import settings as moto_settings
    from moto.core.authorization import ActionAuthenticatorMixin

    return ActionAuthenticatorMixin.request_count >= moto_settings.INITIAL_NO_AUTH_ACTION_COUNT


@contextlib.contextmanager
def enforcement():
    """moto's IAM enforcement on inside this block (for the whole in-process server), with an
    empty authorization log; the previous state comes back afterwards."""
    from moto.core.authorization import enable_iam_authentication

    authorizations.clear()
    with enable_iam_authentication():
        yield


def admin_keys(iam_client) -> tuple[str, str]:
    """Keys of a new administrator user, for a test's own calls."""
    iam_client.create_user(UserName=ADMIN_USER)
    iam_client.put_user_policy(UserName=ADMIN_USER, PolicyName="admin",
                               PolicyDocument=json.dumps(ADMIN_POLICY))
    key = iam_client.create_access_key(UserName=ADMIN_USER)["AccessKey"]
    return key["AccessKeyId"], key["SecretAccessKey"]


def identity(access_key: str, token: str | None, region: str) -> dict:
    """What API Gateway's IAM authorization puts in a request's `identity` for a caller
    signing with `access_key` (and `token`, for a role's session): the key's user or assumed
    role, as the embedded AWS knows it. A key it does not know gets the key alone, no caller:
    API Gateway would refuse such a request (the local API checks no signature)."""
    from moto.iam.access_control import CreateAccessKeyFailure, create_access_key
    from moto.iam.models import get_account_id_from
    from moto.utilities.utils import get_partition

    account = get_account_id_from(access_key)
    headers = {"X-Amz-Security-Token": token} if token else {}
    try:
        key = create_access_key(account, get_partition(region), access_key, headers)
    except CreateAccessKeyFailure:
        return {"accessKey": access_key}
    arn = key.arn
    return {"accessKey": access_key, "accountId": account, "userArn": arn,
            "caller": arn.rsplit("/", 1)[-1] if ":assumed-role/" in arn else access_key,
            "user": arn.split("/", 1)[-1]}


def check(credentials, action: str, resource: str, region: str) -> bool:
    """moto's authorization of `action` on `resource` for a request that never reaches moto
    (the bridge answers Lambda invocations in process); recorded like moto's own. True when
    allowed or when enforcement is off."""
    if not enforcing():
        return True
    from moto.core.exceptions import AccessDeniedError
    from moto.iam.access_control import CreateAccessKeyFailure, IAMRequest, create_access_key
    from moto.iam.models import get_account_id_from
    from moto.utilities.utils import get_partition

    request = IAMRequest.__new__(IAMRequest)  # the parts check_action_permitted reads
    request.account_id = get_account_id_from(credentials.access_key)
    request._region, request._action, request._data, request._body = region, action, {}, b""
    headers = {"X-Amz-Security-Token": credentials.token} if credentials.token else {}
    try:
        request._access_key = create_access_key(request.account_id, get_partition(region),
                                                credentials.access_key, headers)
    except CreateAccessKeyFailure:
        return False
    try:
        request.check_action_permitted(resource)
    except AccessDeniedError:
        return False
    return True


def provision_member_account(stack, account: str, organization_id: str = "") -> None:
    """A member account as deployed: the member roles of `deploy/member-role-<stage>.yaml`, each
    with its function's policy and trusting that function's role only, with the template's
    parameters the central deployment's (`ExternalId` its MEMBER_EXTERNAL_ID, `OrganizationId`
    `organization_id`); and an administrator role the stack's own clients assume there (moto
    needs the role to exist once enforcement is on)."""
    iam_client = stack.client("iam", account=account)
    admin_trust = member_role.trust(f"arn:aws:iam::{stack.account}:root", None)
    iam_client.create_role(RoleName="admin", AssumeRolePolicyDocument=json.dumps(admin_trust))
    iam_client.put_role_policy(RoleName="admin", PolicyName="admin",
                               PolicyDocument=json.dumps(ADMIN_POLICY))
    current = settings.get()
    condition = member_role.conditions({"ExternalId": current.member_external_id,
                                        "OrganizationId": organization_id})
    for role in permissions.member_roles(stack.stage, current):
        trust = member_role.trust(f"arn:aws:iam::{stack.account}:role/{role.trusted_role}",
                                  condition)
        iam_client.create_role(RoleName=role.name, AssumeRolePolicyDocument=json.dumps(trust))
        iam_client.put_role_policy(RoleName=role.name, PolicyName=member_role.POLICY_NAME,
                                   PolicyDocument=json.dumps(role.policy))
    provision.deny_all_profile(stack, account)
