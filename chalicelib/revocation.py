"""The revoking function: the one holder of `iam:PutRolePolicy` and `iam:DeleteRolePolicy`.

IAM has no condition on a policy's content, so whoever may write a role policy may write any
policy. Only this function may; the steps invoke it with (role, instance ARN, time) and it builds
the policy itself: a Deny of every action for sessions issued before that time, conditioned on
`ec2:SourceInstanceARN` (scope "instance", the default: other instances sharing the role keep
working) or on the time alone (scope "role": every session of the role). It never writes on the
product's own roles, only in accounts the app may act in, and only the policy named after the
incident, which is all that "lift" may delete. Every request is validated field by field; every
answer is a record (a refusal or failure too, never a stack trace), and every decision is logged.

It takes no one's word for what to revoke: it reads the incident itself (the record must exist,
its binding must carry the product's seal: the record's, or the one the step sends, since during
containment the record is not sealed yet), the request must name that incident's instance,
account and region and the role of the instance profile its sealed pre-incident state names (a
request naming no role gets that one), and the scope is the one its own settings give that
incident (`scope_for`; a request may narrow it to the instance, never widen it): none but a
credential exfiltration's while `REVOKE_ROLE_SESSIONS` is off. Whether an incident is one is
sealed with its binding (`bindings.binding`), or, for such a finding arriving on an incident
another finding opened, sealed on the incident by the entry function (`seal_stolen`): never read
from the table or the execution's options alone.
"""

import json
import logging
import re
from datetime import datetime, timedelta, timezone

from chalicelib import accounts, aws, bindings, findings, incidents, seals, settings

log = logging.getLogger(__name__)

FUNCTION = "revoke_sessions"  # its Chalice name
# Always, as RevokeRoleSessions' in the contain function's policy: any incident may be a
# credential exfiltration (the automatic path's, or one a responder pasted), which revokes
# whatever REVOKE_ROLE_SESSIONS says. What it revokes is this code's decision (`scope_for`).
REVOKE_PERMISSIONS = ("iam:PutRolePolicy",)
LIFT_PERMISSIONS = ("iam:DeleteRolePolicy", *accounts.ORGANIZATION_PERMISSIONS)  # always
PROFILE_PERMISSIONS = ("iam:GetInstanceProfile",)  # profile_role()
# What it reads before either: the incident, its seal, the role of the instance's profile.
READ_PERMISSIONS = (*incidents.GET_PERMISSIONS, *bindings.VERIFY_PERMISSIONS,
                    *PROFILE_PERMISSIONS)
INVOKE_PERMISSIONS = ("lambda:InvokeFunction",)  # what a step needs to ask it
POLICY_PREFIX = f"{aws.APP_NAME}-revoke-"
PRODUCT_ROLE_PREFIX = f"{aws.APP_NAME}-"  # its functions', member and deny-all roles
SCOPES = ("instance", "role")
TIME_FORMAT = "%Y-%m-%dT%H:%M:%SZ"
CLOCK_SKEW = timedelta(seconds=60)  # how far in the future "issued before" may be

ROLE_NAME = re.compile(r"\A[\w+=,.@-]{1,64}\Z", re.ASCII)  # IAM's pattern and length
REGION = re.compile(r"\A[a-z]{2}(-[a-z]+)+-[0-9]\Z")
INSTANCE_ARN = re.compile(
    r"\Aarn:aws:ec2:(?P<region>[a-z0-9-]+):(?P<account>[0-9]{12}):instance/i-[0-9a-f]{8,17}\Z")
SEAL = re.compile(r"\A[A-Za-z0-9+/=]{1,200}\Z")  # a MAC in base64
FIELDS = {"operation", "account_id", "region", "role_name", "instance_arn", "issued_before",
          "incident_id", "scope", "seal"}


class Refused(ValueError):
    """A request the revoking function will not act on."""


def policy_name(incident_id: str) -> str:
    return POLICY_PREFIX + incident_id


def instance_arn(region: str, account: str, instance_id: str) -> str:
    return f"arn:aws:ec2:{region}:{account}:instance/{instance_id}"


def profile_role(iam, profile_arn: str) -> str | None:
    """The role an instance profile carries (None: none)."""
    profile = iam.get_instance_profile(
        InstanceProfileName=profile_arn.rsplit("/", 1)[-1])["InstanceProfile"]
    return profile["Roles"][0]["RoleName"] if profile["Roles"] else None


def scope_for(incident: dict, current) -> str | None:
    """Whose sessions of `incident`'s role are revoked under `current` (None: nobody's): the
    `REVOKE_SCOPE` while `REVOKE_ROLE_SESSIONS` is on; else, for a credential exfiltration, the
    instance's own (its launch credentials were used elsewhere, and still carry
    `ec2:SourceInstanceARN` there, so denying them leaves the role's other instances working).
    The step plans by it under its execution's options, and this function checks by it under
    its own settings."""
    if current.revoke_role_sessions:
        return current.revoke_scope
    exfiltration = findings.is_credential_exfiltration(findings.incident_finding_type(incident))
    return "instance" if exfiltration or stolen_later(incident) else None


STOLEN = "stolen-credentials"  # the seal's purpose


def _stolen_document(incident: dict, finding: dict) -> dict:
    return {**{name: incident.get(name) for name in ("incident_id", "instance_id", "account_id",
                                                      "region")},
            "finding_id": finding.get("id"), "finding_type": finding.get("type")}


def seal_stolen(incident: dict, finding: dict) -> dict:
    """What the entry function records when a credential exfiltration finding arrives on an
    incident another finding opened (the incident's own seal says nothing of it): the finding,
    sealed with the incident's instance, for this function to revoke by."""
    return {"id": finding.get("id"), "type": finding.get("type"),
            "seal": seals.seal(STOLEN, _stolen_document(incident, finding))}


def stolen_later(incident: dict) -> bool:
    """True when the incident records, sealed by the product, a credential exfiltration finding
    that arrived after it opened."""
    stolen = incident.get("credentials_stolen")
    if not isinstance(stolen, dict) or not findings.is_credential_exfiltration(stolen.get("type")):
        return False
    try:
        seals.verify(STOLEN, _stolen_document(incident, stolen), stolen.get("seal"))
    except seals.Unverified:
        log.warning("incident %s records stolen credentials without the product's seal: ignored",
                    incident.get("incident_id"))
        return False
    return True


def now() -> str:
    return datetime.now(timezone.utc).strftime(TIME_FORMAT)


def policy(request: dict) -> dict:
    """The Deny this function writes: every action, for sessions issued before the time, from
    the instance (scope "instance") or from anywhere (scope "role")."""
    condition = {"DateLessThan": {"aws:TokenIssueTime": request["issued_before"]}}
    if request["scope"] == "instance":
        condition["StringEquals"] = {"ec2:SourceInstanceARN": request["instance_arn"]}
    return {"Version": "2012-10-17", "Statement": [{
        "Effect": "Deny", "Action": "*", "Resource": "*", "Condition": condition}]}


def _text(event: dict, name: str, pattern: re.Pattern) -> str:
    value = event.get(name)
    if not isinstance(value, str) or not pattern.match(value):
        raise Refused(f"{name} {value!r} is not valid")
    return value


def validated(event, home: str, current=None) -> dict:
    """The request, every field checked; Refused names the first that is not acceptable."""
    current = current or settings.get()
    if not isinstance(event, dict):
        raise Refused("the request is not an object")
    unknown = set(event) - FIELDS
    if unknown:
        raise Refused(f"unknown fields {sorted(unknown)}")
    operation = event.get("operation")
    if operation not in ("revoke", "lift"):
        raise Refused(f"operation {operation!r} is neither revoke nor lift")
    account = _text(event, "account_id", settings.ACCOUNT_ID)
    why = accounts.refusal(account, home, current)
    if why:
        raise Refused(f"account {account} is not one the app may act in: {why}")
    region = _text(event, "region", REGION)
    role = _text(event, "role_name", ROLE_NAME) if "role_name" in event else None
    if role:  # absent: the role of the incident's instance profile (check_incident names it)
        _not_the_products(role, current)
    arn = _text(event, "instance_arn", INSTANCE_ARN)
    named = INSTANCE_ARN.match(arn)
    if (named["account"], named["region"]) != (account, region):
        raise Refused(f"instance {arn} is not in account {account}, region {region}")
    incident_id = _text(event, "incident_id", incidents.INCIDENT_ID)
    scope = event.get("scope", "instance")
    if scope not in SCOPES:
        raise Refused(f"scope {scope!r} is neither instance nor role")
    seal = _text(event, "seal", SEAL) if "seal" in event else None
    request = {"operation": operation, "account_id": account, "region": region,
               "role_name": role, "instance_arn": arn, "incident_id": incident_id,
               "scope": scope, "seal": seal, "policy_name": policy_name(incident_id)}
    if operation == "revoke":
        issued = event.get("issued_before")
        try:
            when = datetime.strptime(issued, TIME_FORMAT).replace(tzinfo=timezone.utc)
        except (TypeError, ValueError):
            raise Refused(f"issued_before {issued!r} is not a UTC time like "
                          "2026-01-31T12:00:00Z") from None
        if when > datetime.now(timezone.utc) + CLOCK_SKEW:
            raise Refused(f"issued_before {issued} is in the future")
        request["issued_before"] = issued
    elif "issued_before" in event:
        raise Refused("issued_before belongs to revoke, not lift")
    return request


def _not_the_products(role: str, current) -> None:
    if role.lower().startswith((PRODUCT_ROLE_PREFIX, current.member_role_name.lower())):
        raise Refused(f"role {role} is one of the product's own roles: never revoked")


def check_incident(request: dict, iam) -> None:
    """Refused unless the request names a sealed incident's own instance and the role of the
    profile that instance had (the sealed pre-incident state's, as IAM resolves it now), and a
    revocation no wider than `scope_for` gives that incident."""
    incident_id = request["incident_id"]
    incident = incidents.get(incident_id)
    if incident is None:
        raise Refused(f"no incident {incident_id}")
    try:
        bindings.verified_incident({**incident, "seal": request["seal"] or incident.get("seal")})
    except bindings.Refused as refusal:
        raise Refused(str(refusal)) from None
    own = instance_arn(incident["region"], incident["account_id"], incident["instance_id"])
    if request["instance_arn"] != own:
        raise Refused(f"instance {request['instance_arn']} is not incident {incident_id}'s "
                      f"({own})")
    profile = (incident.get("pre_state") or {}).get("instance_profile")
    if not profile:
        raise Refused(f"incident {incident_id}'s instance had no instance profile: no role")
    role = profile_role(iam, profile)
    if request["role_name"] is None and role:
        _not_the_products(role, settings.get())
        request["role_name"] = role
    if request["role_name"] != role:
        raise Refused(f"role {request['role_name']} is not the role of {profile}, the profile "
                      f"incident {incident_id}'s instance had ({role})")
    if request["operation"] == "lift":
        return
    current = settings.get()
    allowed = scope_for(incident, current)
    if allowed is None:
        raise Refused(f"revocation is off here (REVOKE_ROLE_SESSIONS=false) and incident "
                      f"{incident_id} is no credential exfiltration: it only lifts")
    if request["scope"] == "role" and allowed != "role":
        raise Refused(f"scope role is wider than incident {incident_id}'s here ({allowed}: "
                      f"REVOKE_SCOPE={current.revoke_scope}, REVOKE_ROLE_SESSIONS="
                      f"{str(current.revoke_role_sessions).lower()})")


def _refused(refusal: Refused, where: dict | None = None) -> dict:
    log.warning("revocation refused: %s (%s)", refusal, where or "invalid request")
    return {**(where or {}), "status": "refused", "code": "RevocationRefused",
            "message": str(refusal)}


def handle(event, home: str) -> dict:
    """Revoke or lift as `event` asks, in the home account `home` or a member account; the
    outcome as a record: status revoked, lifted, refused or failed."""
    try:
        request = validated(event, home)
    except Refused as refusal:
        return _refused(refusal)
    def where():
        return {key: request[key] for key in ("operation", "account_id", "role_name",
                                              "policy_name", "scope", "instance_arn")}
    try:
        client = accounts.client("iam", request["account_id"], request["region"], home)
        check_incident(request, client)
        if request["operation"] == "revoke":
            client.put_role_policy(RoleName=request["role_name"],
                                   PolicyName=request["policy_name"],
                                   PolicyDocument=json.dumps(policy(request)))
            result = {**where(), "status": "revoked", "issued_before": request["issued_before"]}
        else:
            gone = aws.tolerate("NoSuchEntity", client.delete_role_policy,
                                RoleName=request["role_name"], PolicyName=request["policy_name"])
            result = {**where(), "status": "lifted", "already_absent": gone is None}
    except Refused as refusal:
        return _refused(refusal, where())
    except Exception as error:  # answered as a record: the step reports it
        message = (getattr(error, "response", None) or {}).get("Error", {}).get("Message")
        log.warning("%s of %s on role %s failed: %s", request["operation"],
                    request["policy_name"], request["role_name"], error)
        return {**where(), "status": "failed", "code": aws.error_code(error) or
                type(error).__name__, "message": (message or str(error))[:500]}
    log.info("%s %s on role %s in %s (scope %s, %s)", result["status"], request["policy_name"],
             request["role_name"], request["account_id"], request["scope"],
             request["instance_arn"])
    return result


class Failed(Exception):
    """The revoking function refused or failed; `response` carries its code as AWS errors do,
    so the step's failure record names it."""

    def __init__(self, code: str, message: str):
        super().__init__(f"{code}: {message}")
        self.response = {"Error": {"Code": code, "Message": message}}


def invoke(request: dict) -> dict:
    """Ask the revoking function (synchronously) and return its result; Failed when it did not
    do what was asked."""
    answer = aws.client("lambda").invoke(FunctionName=settings.stage_function(FUNCTION),
                                         InvocationType="RequestResponse",
                                         Payload=json.dumps(request).encode())
    payload = json.loads(answer["Payload"].read() or b"null")
    if answer.get("FunctionError"):
        raise Failed("RevokerFailed", str((payload or {}).get("errorMessage", payload))[:500])
    if not isinstance(payload, dict) or payload.get("status") not in ("revoked", "lifted"):
        payload = payload if isinstance(payload, dict) else {}
        raise Failed(str(payload.get("code", "RevokerFailed")),
                     str(payload.get("message", "no result")))
    return payload
