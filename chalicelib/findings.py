"""GuardDuty finding -> QuarantineRequest, and the automatic path's policy filter.

EventBridge delivers findings in camelCase; `aws guardduty get-findings` prints PascalCase. Both
are read here, field by field, never by parsing `title` or `description`.
"""

import re
from dataclasses import asdict, dataclass, field

EVENT_PATTERN = {
    "source": ["aws.guardduty"],
    "detail-type": ["GuardDuty Finding"],
    "detail": {"resource": {"resourceType": ["Instance"]}},
}

INSTANCE_ID = re.compile(r"^i-(?:[0-9a-f]{8}|[0-9a-f]{17})$")
ACCOUNT_ID = re.compile(r"^\d{12}$")
REGION = re.compile(r"^[a-z]{2}(?:-[a-z]+)+-\d{1,2}$")


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


def _text(detail, name, pattern=None, *, required=True):
    value = _field(detail, name)
    if not required and (value is None or value == ""):
        return ""
    if not isinstance(value, str) or not value:
        raise MalformedFinding(f"finding field {name!r} is missing or not a string: {value!r}")
    if pattern is not None and not pattern.match(value):
        raise MalformedFinding(f"finding field {name!r} has an invalid value: {value!r}")
    return value


def parse(detail) -> QuarantineRequest:
    """The request a GuardDuty finding (its `detail`, either casing) asks for."""
    if not isinstance(detail, dict):
        raise MalformedFinding(f"finding is not an object: {type(detail).__name__}")
    resource_type = _path(detail, "resource", "resourceType")
    if resource_type != "Instance":
        raise MalformedFinding(f"finding is about a {resource_type!r} resource, not an Instance")
    instance_id = _path(detail, "resource", "instanceDetails", "instanceId")
    if not isinstance(instance_id, str) or not INSTANCE_ID.match(instance_id):
        raise MalformedFinding(f"finding names no valid instance id: {instance_id!r}")
    severity = _field(detail, "severity")
    if isinstance(severity, bool) or not isinstance(severity, (int, float)):
        raise MalformedFinding(f"finding severity is not a number: {severity!r}")
    finding = Finding(
        id=_text(detail, "id"),
        type=_text(detail, "type"),
        severity=float(severity),
        title=_text(detail, "title", required=False)[:256],
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


def is_exempt(tags, exempt_tag: str) -> bool:
    """True when the instance carries `exempt_tag` with the value `true` (any case)."""
    return any(
        tag.get("Key") == exempt_tag and str(tag.get("Value", "")).strip().lower() == "true"
        for tag in tags or ()
    )
