"""GuardDuty finding -> QuarantineRequest, and the automatic path's policy filter.

EventBridge delivers findings in camelCase; `aws guardduty get-findings` prints PascalCase. Both
are read here, field by field, never by parsing `title` or `description`.
"""

import re
from dataclasses import asdict, dataclass, field

from chalicelib.settings import ACCOUNT_ID  # one pattern of an account id, for all

EVENT_PATTERN = {
    "source": ["aws.guardduty"],
    "detail-type": ["GuardDuty Finding"],
    "detail": {"resource": {"resourceType": ["Instance"]}},
}

# ASCII only, anchored at the true end: Python's \d takes other scripts' digits, $ a final "\n".
INSTANCE_ID = re.compile(r"\Ai-(?:[0-9a-f]{8}|[0-9a-f]{17})\Z")
REGION = re.compile(r"\A[a-z]{2}(?:-[a-z]+)+-[0-9]{1,2}\Z")


class MalformedFinding(ValueError):
    """The finding lacks a field the product needs, or holds one it cannot trust."""


@dataclass(frozen=True)
class Finding:
    id: str
    type: str
    severity: float
    title: str = ""


@dataclass(frozen=True)
class QuarantineRequest:
    """What to contain, where, and why: the one shape both entry points produce."""

    instance_id: str
    account_id: str
    region: str
    source: str  # "guardduty" or "http"
    reason: str = ""
    finding: Finding | None = None
    force: bool = False
    dry_run: bool = False
    requested_by: str = field(default="", compare=False)

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
SEVERITY_RANGE = (0.0, 10.0)


def _severity(detail) -> float:
    severity = _field(detail, "severity")
    if isinstance(severity, bool) or not isinstance(severity, (int, float)):
        raise MalformedFinding(f"finding severity is not a number: {_shown(severity)}")
    low, high = SEVERITY_RANGE
    if not low <= severity <= high:  # False for NaN and the infinities too
        raise MalformedFinding(f"finding severity {_shown(severity)} is not a number from "
                               f"{low:g} to {high:g}")
    return float(severity)


def parse(detail) -> QuarantineRequest:
    """The request a GuardDuty finding (its `detail`, either casing) asks for."""
    if not isinstance(detail, dict):
        raise MalformedFinding(f"finding is not an object: {type(detail).__name__}")
    resource_type = _path(detail, "resource", "resourceType")
    if resource_type != "Instance":
        raise MalformedFinding(f"finding is about a {_shown(resource_type)} resource, "
                               "not an Instance")
    instance_id = _path(detail, "resource", "instanceDetails", "instanceId")
    if not isinstance(instance_id, str) or not INSTANCE_ID.match(instance_id):
        raise MalformedFinding(f"finding names no valid instance id: {_shown(instance_id)}")
    finding = Finding(
        id=_text(detail, "id", FINDING_ID),
        type=_text(detail, "type", FINDING_TYPE),
        severity=_severity(detail),
        title=_text(detail, "title", required=False)[:MAX_TITLE],
    )
    return QuarantineRequest(
        instance_id=instance_id,
        account_id=_text(detail, "accountId", ACCOUNT_ID),
        region=_text(detail, "region", REGION),
        source="guardduty",
        reason=f"GuardDuty {finding.type} (severity {finding.severity:g})",
        finding=finding,
    )


def qualifies(finding: Finding, settings) -> str | None:
    """Why the automatic path must not act on `finding`, or None if it qualifies."""
    if finding.severity < settings.severity_threshold:
        return (
            f"severity {finding.severity:g} is below SEVERITY_THRESHOLD "
            f"{settings.severity_threshold:g}"
        )
    prefixes = settings.finding_type_prefixes
    if prefixes and not finding.type.startswith(prefixes):
        return f"type {finding.type!r} matches none of FINDING_TYPE_PREFIXES {list(prefixes)}"
    return None


CREDENTIAL_EXFILTRATION = "UnauthorizedAccess:IAMUser/InstanceCredentialExfiltration"


def incident_finding_type(incident: dict) -> str | None:
    """The type of the finding an incident names (None: it names none)."""
    finding = incident.get("finding")
    return finding.get("type") if isinstance(finding, dict) else None


def is_credential_exfiltration(finding_type) -> bool:
    """True for GuardDuty's findings of an instance's launch credentials used from elsewhere
    (`.OutsideAWS`, `.InsideAWS`): they revoke the instance's role sessions whatever
    REVOKE_ROLE_SESSIONS says (`revocation.scope_for`)."""
    return isinstance(finding_type, str) and finding_type.startswith(CREDENTIAL_EXFILTRATION)


def is_exempt(tags, exempt_tag: str) -> bool:
    """True when the instance carries `exempt_tag` with the value `true` (any case)."""
    return any(
        tag.get("Key") == exempt_tag and str(tag.get("Value", "")).strip().lower() == "true"
        for tag in tags or ()
    )
