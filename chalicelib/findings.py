"""GuardDuty finding -> QuarantineRequest, and the automatic path's policy filter.

EventBridge delivers findings in camelCase; `aws guardduty get-findings` prints PascalCase. Both
are read here, field by field, never by parsing `title` or `description`. Two kinds of finding
name an instance to act on: one about the instance (`Instance`), and one about the instance's
launch credentials used from elsewhere (`AccessKey`, `CREDENTIAL_EXFILTRATION`).
"""

import json
import re
from dataclasses import asdict, dataclass, field, replace

from chalicelib.settings import ACCOUNT_ID  # one pattern of an account id, for all

# The instance's role credentials used outside it: `.OutsideAWS` (an IP outside AWS) and
# `.InsideAWS` (another AWS account). The finding is about the access key, and names the instance.
CREDENTIAL_EXFILTRATION = "UnauthorizedAccess:IAMUser/InstanceCredentialExfiltration"

ATTACK_SEQUENCE = "AttackSequence"  # resource.resourceType of a finding about a group

# EventBridge's `$or` takes whole sub-patterns, each matched at the level it sits (here `detail`).
EVENT_PATTERN = {
    "source": ["aws.guardduty"],
    "detail-type": ["GuardDuty Finding"],
    "detail": {"$or": [
        {"resource": {"resourceType": ["Instance", ATTACK_SEQUENCE]}},
        {"resource": {"resourceType": ["AccessKey"]},
         "type": [{"prefix": CREDENTIAL_EXFILTRATION}]},
    ]},
}

# ASCII only, anchored at the true end: Python's \d takes other scripts' digits, $ a final "\n".
INSTANCE_ID = re.compile(r"\Ai-(?:[0-9a-f]{8}|[0-9a-f]{17})\Z")
REGION = re.compile(r"\A[a-z]{2}(?:-[a-z]+)+-[0-9]{1,2}\Z")
ROLE_ID = re.compile(r"\AAROA[A-Z0-9]{1,124}\Z")  # a role's unique id, as principals begin
INSTANCE_ARN = re.compile(r"\Aarn:aws:ec2:(?P<region>[a-z]{2}(?:-[a-z]+)+-[0-9]{1,2}):"
                          r"(?P<account>[0-9]{12}):instance/(?P<id>i-(?:[0-9a-f]{8}|[0-9a-f]{17}))"
                          r"\Z", re.ASCII)
MAX_GROUP = 25  # instances one finding quarantines (GuardDuty's EC2 group sequences name 25)
MAX_SEQUENCE_RESOURCES = 400  # resources read of one sequence (GuardDuty's bound)
# A GuardDuty finding's own ARN: its Id once Security Hub imports it.
FINDING_ARN = re.compile(r"\Aarn:aws:guardduty:(?P<region>[a-z0-9-]{1,32}):(?P<account>[0-9]{12}):"
                         r"detector/[0-9a-f]{1,64}/finding/(?P<id>[0-9A-Za-z]{1,64})\Z")


class MalformedFinding(ValueError):
    """The finding lacks a field the product needs, or holds one it cannot trust."""


@dataclass(frozen=True)
class Actor:
    """Who used an instance's stolen credentials, as GuardDuty saw the call
    (`service.action.awsApiCallAction`); every field bounded, "" when the finding lacks it."""

    ip: str = ""  # remoteIpDetails.ipAddressV4 (or V6)
    asn_org: str = ""  # remoteIpDetails.organization.asnOrg
    isp: str = ""  # remoteIpDetails.organization.isp
    country: str = ""  # remoteIpDetails.country.countryName
    account_id: str = ""  # remoteAccountDetails.accountId (InsideAWS: the other account)
    api: str = ""
    service_name: str = ""
    caller_type: str = ""


@dataclass(frozen=True)
class Finding:
    id: str
    type: str
    severity: float
    title: str = ""
    resource_type: str = "Instance"  # "Instance", or "AccessKey" for CREDENTIAL_EXFILTRATION
    resource_role: str = ""  # service.resourceRole: "ACTOR", "TARGET" (bounded, as given)
    sample: bool = False  # service.additionalInfo says GuardDuty generated it as a sample
    archived: bool = False  # service.archived
    role: str = ""  # AccessKey: accessKeyDetails.userName, the instance's role
    actor: Actor | None = None  # AccessKey: who used the credentials
    remote: str = ""  # the remote IP or domain the finding names (for the report)
    updated_at: str = ""  # GuardDuty's updatedAt: when it last saw the activity
    arn: str = ""  # its ARN, when it names this finding in its account and region (Security Hub)


@dataclass(frozen=True)
class QuarantineRequest:
    """What to contain, where, and why: the one shape both entry points produce."""

    instance_id: str
    account_id: str
    region: str
    source: str  # "guardduty", "http" or "securityhub" (its custom action)
    reason: str = ""
    finding: Finding | None = None
    force: bool = False
    dry_run: bool = False
    requested_by: str = field(default="", compare=False)
    # Security Hub's findings this request comes from ({Id, ProductArn}; a custom action's):
    # they follow the incident (chalicelib/securityhub.py).
    security_hub_findings: tuple = field(default=(), compare=False)
    group_id: str = ""  # the incidents one finding about a group of instances opens share it

    def to_dict(self) -> dict:
        return asdict(self)


def _field(mapping, name):
    """`name` in camelCase, or in PascalCase as get-findings prints it; None if absent."""
    if not isinstance(mapping, dict):
        return None
    if name in mapping:
        return mapping[name]
    return mapping.get(name[0].upper() + name[1:])


def _path(mapping, *names):
    for name in names:
        mapping = _field(mapping, name)
    return mapping


def _shown(value) -> str:
    """A finding's value, quoted and cut short, for a reason (a finding may hold anything)."""
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _text(detail, name, pattern=None, *, required=True):
    value = _field(detail, name)
    if not required and (value is None or value == ""):
        return ""
    if not isinstance(value, str) or not value:
        raise MalformedFinding(f"finding field {name!r} is missing or not a string: "
                               f"{_shown(value)}")
    if pattern is not None and not pattern.match(value):
        raise MalformedFinding(f"finding field {name!r} has an invalid value: {_shown(value)}")
    return value


# What the product keeps of a finding, each bounded: a finding may hold anything (GuardDuty's
# ids are 32 hexadecimal characters, its types under 100 ASCII characters, severities 1 to 10).
FINDING_ID = re.compile(r"\A[\x21-\x7e]{1,300}\Z")
FINDING_TYPE = re.compile(r"\A[\x20-\x7e]{1,128}\Z")
MAX_TITLE = 256
MAX_FACT = 128  # each descriptive field kept (the resource role, a role's name, an actor's)
MAX_ADDITIONAL_INFO = 64 * 1024  # get-findings' additionalInfo.value, read only this long
SEVERITY_RANGE = (0.0, 10.0)
_CONTROL = re.compile(r"[\x00-\x1f\x7f]+")


def one_line(value, limit: int = MAX_FACT) -> str:
    """`value` as text on one line (no control characters: a value someone chose cannot forge a
    line of a report), cut to `limit` characters."""
    return " ".join(_CONTROL.sub(" ", str(value)[:4 * limit]).split())[:limit]


def _fact(mapping, *names) -> str:
    """A descriptive string at `names`, on one line and cut to MAX_FACT; "" if absent or not a
    string (it names, it decides nothing: an odd value costs the report a word, not the finding)."""
    value = _path(mapping, *names)
    return one_line(value) if isinstance(value, str) else ""


def severity_text(severity) -> str:
    """A severity in the one format every message uses: one decimal ("8.0")."""
    return f"{float(severity):.1f}" if isinstance(severity, (int, float)) and not isinstance(
        severity, bool) else "unknown"


def _severity(detail) -> float:
    severity = _field(detail, "severity")
    if isinstance(severity, bool) or not isinstance(severity, (int, float)):
        raise MalformedFinding(f"finding severity is not a number: {_shown(severity)}")
    low, high = SEVERITY_RANGE
    if not low <= severity <= high:  # False for NaN and the infinities too
        raise MalformedFinding(f"finding severity {_shown(severity)} is not a number from "
                               f"{low:g} to {high:g}")
    return float(severity)


def is_credential_exfiltration(finding_type) -> bool:
    """True for GuardDuty's findings of an instance's launch credentials used from elsewhere
    (`.OutsideAWS`, `.InsideAWS`): they revoke the instance's role sessions whatever
    REVOKE_ROLE_SESSIONS says (`revocation.scope_for`)."""
    return isinstance(finding_type, str) and finding_type.startswith(CREDENTIAL_EXFILTRATION)


def _instance_id(detail, resource_type: str, finding_type: str) -> str:
    """The instance the finding names: its own (`Instance`), or the one whose credentials were
    used (`AccessKey`): `instanceDetails.instanceId` when GuardDuty gives it, else the session
    name of the role's principal, which EC2 makes the instance id."""
    if resource_type == "AccessKey" and not is_credential_exfiltration(finding_type):
        raise MalformedFinding(f"finding {_shown(finding_type)} is about an AccessKey, and only "
                               f"{CREDENTIAL_EXFILTRATION}.* names an instance to act on")
    if resource_type not in ("Instance", "AccessKey"):
        raise MalformedFinding(f"finding is about a {_shown(resource_type)} resource, "
                               "not an Instance")
    instance_id = _path(detail, "resource", "instanceDetails", "instanceId")
    if instance_id is None and resource_type == "AccessKey":
        principal = _path(detail, "resource", "accessKeyDetails", "principalId")
        role_id, _, session = principal.partition(":") if isinstance(principal, str) else ("",) * 3
        if not (ROLE_ID.match(role_id) and INSTANCE_ID.match(session)):
            raise MalformedFinding("finding names no instance: no instanceDetails, and principalId "
                                   f"{_shown(principal)} is not an instance role's session")
        return session
    if not isinstance(instance_id, str) or not INSTANCE_ID.match(instance_id):
        raise MalformedFinding(f"finding names no valid instance id: {_shown(instance_id)}")
    return instance_id



def _is_sample(detail) -> bool:
    """GuardDuty's `create-sample-findings` marks its findings in `service.additionalInfo`:
    `sample: true` in an event, inside the JSON string `value` in get-findings output."""
    info = _path(detail, "service", "additionalInfo")
    if _field(info, "sample") is True:
        return True
    value = _field(info, "value")
    if not isinstance(value, str) or len(value) > MAX_ADDITIONAL_INFO:
        return False
    try:
        return _field(json.loads(value), "sample") is True
    except (ValueError, RecursionError):  # not JSON, or nested past what json reads
        return False


def _actor(detail) -> Actor:
    call = _path(detail, "service", "action", "awsApiCallAction")
    remote = _field(call, "remoteIpDetails")
    return Actor(
        ip=_fact(remote, "ipAddressV4") or _fact(remote, "ipAddressV6"),
        asn_org=_fact(remote, "organization", "asnOrg"),
        isp=_fact(remote, "organization", "isp"),
        country=_fact(remote, "country", "countryName"),
        account_id=_fact(call, "remoteAccountDetails", "accountId"),
        api=_fact(call, "api"),
        service_name=_fact(call, "serviceName"),
        caller_type=_fact(call, "callerType"),
    )


def _remote(detail) -> str:
    """The other end the finding names: a domain queried, an address connected to or calling,
    a port prober (the first); "" when it names none."""
    action = _path(detail, "service", "action")
    domain = _fact(action, "dnsRequestAction", "domain")
    if domain:
        return f"domain {domain}"
    probes = _path(action, "portProbeAction", "portProbeDetails")
    for where in (_path(action, "networkConnectionAction", "remoteIpDetails"),
                  _path(action, "awsApiCallAction", "remoteIpDetails"),
                  _field(probes[0], "remoteIpDetails") if isinstance(probes, list) and probes
                  else None):
        address = _fact(where, "ipAddressV4") or _fact(where, "ipAddressV6")
        if address:
            return f"IP {address}"
    return ""


def parse(detail) -> QuarantineRequest:
    """The request a GuardDuty finding about one instance (its `detail`, either casing) asks
    for, with what GuardDuty says of the finding itself (sample, archived, the instance's role
    in it)."""
    if not isinstance(detail, dict):
        raise MalformedFinding(f"finding is not an object: {type(detail).__name__}")
    resource_type = _path(detail, "resource", "resourceType")
    finding_type = _text(detail, "type", FINDING_TYPE)
    instance_id = _instance_id(detail, resource_type, finding_type)
    finding, account_id, region = _finding(detail, resource_type, finding_type)
    return QuarantineRequest(
        instance_id=instance_id,
        account_id=account_id,
        region=region,
        source="guardduty",
        reason=f"GuardDuty {finding.type} (severity {severity_text(finding.severity)})",
        finding=finding,
    )


def parse_all(detail) -> tuple[list[QuarantineRequest], list[str]]:
    """The requests a GuardDuty finding asks for: one, or, for a finding that names a group of
    instances (an attack sequence: `service.detection.sequence.resources`), one per instance
    (at most MAX_GROUP), linked by a group id; and what of the group was not read."""
    if not isinstance(detail, dict) or \
            _path(detail, "resource", "resourceType") != ATTACK_SEQUENCE:
        return [parse(detail)], []
    finding_type = _text(detail, "type", FINDING_TYPE)
    finding, account_id, region = _finding(detail, ATTACK_SEQUENCE, finding_type)
    named, left = _sequence_instances(detail, account_id, region)
    if not named:
        raise MalformedFinding(f"attack sequence {finding.id} names no EC2 instance"
                               + (f" ({'; '.join(left)[:200]})" if left else ""))
    group = group_id(account_id, region, finding.id)
    reason = (f"GuardDuty {finding.type} (severity {severity_text(finding.severity)}), "
              f"{len(named)} instance(s), group {group}")
    return [QuarantineRequest(instance_id=instance, account_id=account, region=where,
                              source="guardduty", reason=reason, finding=finding,
                              group_id=group)
            for instance, account, where in named], left


def group_id(account_id: str, region: str, finding_id: str) -> str:
    """The group of the incidents one finding opens: the same finding always makes the same
    group (EventBridge may deliver it twice; GuardDuty updates it in place)."""
    import hashlib

    return "grp-" + hashlib.sha256(f"{account_id}/{region}/{finding_id}".encode()).hexdigest()[:12]


def _sequence_instances(detail, account_id: str, region: str) -> tuple[list[tuple], list[str]]:
    """(instance, account, region) of each EC2 instance an attack sequence names, in its
    order, once each: its `EC2_INSTANCE` resources (`uid` an instance id or ARN) and the
    instances of its Auto Scaling groups (`ec2InstanceUids`); what was not read."""
    resources = _path(detail, "service", "detection", "sequence", "resources")
    if not isinstance(resources, list):
        return [], ["no service.detection.sequence.resources"]
    named, left = [], []
    for resource in resources[:MAX_SEQUENCE_RESOURCES]:
        kind = _field(resource, "resourceType")
        if kind == "EC2_INSTANCE":
            uids = [_field(resource, "uid")]
        elif kind == "AUTOSCALING_AUTO_SCALING_GROUP":
            uids = _path(resource, "data", "autoscalingAutoScalingGroup", "ec2InstanceUids")
            uids = uids[:MAX_SEQUENCE_RESOURCES] if isinstance(uids, list) else []
        else:
            continue
        for uid in uids:
            where = _sequence_instance(uid, resource, account_id, region)
            if where is None:
                left.append(f"not an instance of {account_id}/{region}: {_shown(uid)}")
            elif where not in named:
                named.append(where)
    for instance, _, _ in named[MAX_GROUP:]:
        left.append(f"instance {instance} not quarantined: one finding quarantines "
                    f"{MAX_GROUP} at most")
    return named[:MAX_GROUP], left


def _sequence_instance(uid, resource, account_id: str, region: str) -> tuple | None:
    """(instance, account, region) of an instance id or ARN, in the finding's own account
    and region (GuardDuty reports a member's sequence in that member; anything else is not
    read), or None."""
    if not isinstance(uid, str):
        return None
    arn = INSTANCE_ARN.match(uid)
    instance = arn.group("id") if arn else uid
    where = (instance, arn.group("account") if arn else _field(resource, "accountId") or
             account_id, arn.group("region") if arn else _field(resource, "region") or region)
    if not INSTANCE_ID.match(instance) or where[1:] != (account_id, region):
        return None
    return where


def _finding(detail, resource_type: str, finding_type: str) -> tuple[Finding, str, str]:
    """(the finding, its account, its region)."""
    credentials = resource_type == "AccessKey"
    finding = Finding(
        id=_text(detail, "id", FINDING_ID),
        type=finding_type,
        severity=_severity(detail),
        title=_text(detail, "title", required=False)[:MAX_TITLE],
        resource_type=resource_type,
        resource_role=_fact(detail, "service", "resourceRole"),
        sample=_is_sample(detail),
        archived=_path(detail, "service", "archived") is True,
        role=_fact(detail, "resource", "accessKeyDetails", "userName") if credentials else "",
        actor=_actor(detail) if credentials else None,
        remote=_remote(detail),
        updated_at=_fact(detail, "updatedAt"),
    )
    account_id, region = _text(detail, "accountId", ACCOUNT_ID), _text(detail, "region", REGION)
    arn = _field(detail, "arn")
    named = FINDING_ARN.match(arn) if isinstance(arn, str) else None
    if named and named.group("id", "account", "region") == (finding.id, account_id, region):
        finding = replace(finding, arn=arn)
    return finding, account_id, region


@dataclass(frozen=True)
class NotActedOn:
    """Why the automatic path leaves a finding alone: `decision` names it in the handler's answer
    and log; with a `headline`, it is also announced (a person should hear of it), as the
    report's "not acted on: <headline>"."""

    decision: str
    reason: str
    headline: str = ""


def qualifies(finding: Finding, settings, response=None) -> NotActedOn | None:
    """Why the automatic path must not act on `finding`, or None if it qualifies: under the
    response rules' decision `response` (chalicelib/rules.py) when there are rules, else under
    SEVERITY_THRESHOLD and the type lists.

    An archived finding is only logged: a person (or their suppression rule) already judged it,
    and announcing each recurrence of what they dismissed would teach them to ignore the topic.
    A sample is judged like a real finding, then left alone, and announced when it would have
    been acted on (or announced): a drill shows what the policy does and changes nothing."""
    from chalicelib import rules

    if finding.archived:
        return NotActedOn("dropped", "the finding is archived in GuardDuty")
    if response is None:
        why_not, would = _policy(finding, settings), rules.WOULD["contain"]
    else:
        why_not = NotActedOn("ignored", response.reason) if response.mode == "ignore" and \
            not response.needs_tags else None  # with tags still to read, start() decides
        would = f"{rules.WOULD[response.mode]} ({response.reason})"
    if not finding.sample:
        return why_not
    if why_not is None:
        return NotActedOn("sample", f"sample finding: not acted on; had it been real, {would}",
                          "sample finding")
    return NotActedOn("sample" if why_not.headline else "dropped",
                      f"sample finding: not acted on; had it been real: {why_not.reason}",
                      why_not.headline and "sample finding")


def _policy(finding: Finding, settings) -> NotActedOn | None:
    if finding.severity < settings.severity_threshold:
        return NotActedOn("dropped", f"severity {severity_text(finding.severity)} is below "
                          f"SEVERITY_THRESHOLD {settings.severity_threshold:g}")
    prefixes = settings.finding_type_prefixes
    if prefixes and not finding.type.startswith(prefixes):
        return NotActedOn("dropped", f"type {finding.type!r} matches none of "
                          f"FINDING_TYPE_PREFIXES {list(prefixes)}")
    return _role(finding, settings)


def _role(finding: Finding, settings) -> NotActedOn | None:
    """An instance that is the TARGET of a finding (a probe, a brute force from the internet) was
    attacked, not taken: acted on only for the types TARGET_FINDING_TYPES lists. The role is
    that of the resource the finding is about. A credential exfiltration is about the access key
    (the credentials are its target), and it says the instance was taken: the rule does not
    apply. An attack sequence (`resourceType` AttackSequence) marks TARGET the group it names,
    which it says is compromised: the rule does not apply there either."""
    if finding.resource_type != "Instance" or finding.resource_role != "TARGET":
        return None
    listed = settings.target_finding_types
    if listed and finding.type.startswith(listed):
        return None
    return NotActedOn("target", f"not acted on: the instance is the target of {finding.type}, "
                      f"not its actor, and TARGET_FINDING_TYPES {list(listed)} does not list it",
                      "the instance is the target")


def incident_finding_type(incident: dict) -> str | None:
    """The type of the finding an incident names (None: it names none)."""
    finding = incident.get("finding")
    return finding.get("type") if isinstance(finding, dict) else None
