"""Exemptions the product issues: who exempted which instance, why, and until when — sealed.

A tag is a claim anyone with `ec2:CreateTags` on the instance may make, the instance's own role
included: a host that tags itself `QuarantineExempt=true` must not escape containment. So the
product honours only exemptions it issued (POST /exemptions): an item in the incidents table,
sealed with the records key (`seals`, purpose "exemption"), which the claim transaction checks
(`incidents.claim`: a ConditionCheck on the item, no request more) and which is verified before
it stops anything: an item someone else wrote is ignored, logged and noted on the incident. The
tag is written as well, `until <expiry>`, for people to see; it is read as an exemption only
where the site protects the key itself (`TRUST_EXEMPT_TAG=true`, with deploy/guardrails-scp.json).
"""

import logging
import re
from datetime import datetime, timedelta, timezone

from chalicelib import incidents, seals
from chalicelib.actions import narrowed

log = logging.getLogger(__name__)

TIME_FORMAT = incidents.EXEMPTION_TIME_FORMAT
EXPIRES = re.compile(r"\A[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z\Z")
MAX_DAYS = 90  # an exemption is renewed by a person, not left behind
SEALED = ("instance_id", "account_id", "region", "reason", "expires_at", "granted_by",
          "granted_at", "revoked_by", "revoked_at", "revocation_reason")
MIRROR = "until "  # the tag's value: "until 2026-12-31T00:00:00Z"
MIRROR_TAGGING = narrowed("ec2:CreateTags", "exempt-tag")  # the exempt tag key only
MIRROR_UNTAGGING = narrowed("ec2:DeleteTags", "exempt-tag")
# What granting, revoking and listing them needs (the API's function alone): incidents.py
# writes the items, the seal is made and verified here, the tag is mirrored on the instance.
PERMISSIONS = ("dynamodb:PutItem", "dynamodb:GetItem", "dynamodb:Query",
               *seals.SEAL_PERMISSIONS, *seals.VERIFY_PERMISSIONS, MIRROR_TAGGING,
               MIRROR_UNTAGGING)


def now() -> str:
    return datetime.now(timezone.utc).strftime(TIME_FORMAT)


def expiry(value, at: datetime | None = None) -> str:
    """`value` as an exemption's expiry, or ValueError saying what an expiry must be."""
    at = at or datetime.now(timezone.utc)
    if not isinstance(value, str) or not EXPIRES.match(value):
        raise ValueError(f"expires {value!r} is not a UTC time like 2026-12-31T00:00:00Z")
    try:
        when = datetime.strptime(value, TIME_FORMAT).replace(tzinfo=timezone.utc)
    except ValueError:
        raise ValueError(f"expires {value!r} is not a real time") from None
    if when <= at:
        raise ValueError(f"expires {value} is not in the future")
    if when > at + timedelta(days=MAX_DAYS):
        raise ValueError(f"expires {value} is more than {MAX_DAYS} days ahead: exemptions are "
                         "renewed, not left behind")
    return value


def document(exemption: dict) -> dict:
    return {name: exemption.get(name) for name in SEALED}


def sealed(exemption: dict) -> dict:
    return {**exemption, "seal": seals.seal("exemption", document(exemption))}


def unhonoured(exemption: dict) -> str | None:
    """Why `exemption` does not stop containment (None: it does): its seal does not hold (it is
    not the product's: someone wrote the table — logged as such), or it has expired."""
    try:
        seals.verify("exemption", document(exemption), exemption.get("seal"))
    except seals.Unverified as unverified:
        log.error("exemption record for %s ignored: %s (not issued by the product: check who "
                  "wrote the incidents table)", exemption.get("instance_id"), unverified)
        return (f"unverified exemption ignored: the exemption record for "
                f"{exemption.get('instance_id')} does not carry the product's seal")
    if exemption.get("revoked_at"):
        return f"revoked exemption ignored: {described(exemption)}"
    if not str(exemption.get("expires_at", "")) > now():
        return f"expired exemption ignored: {described(exemption)}"
    return None


def revoked(exemption: dict, by: str, why: str) -> dict:
    """`exemption` ended now by `by` for `why`, sealed: kept, so who granted and who revoked it
    stay on record (the claim's check passes an exemption whose expiry is past)."""
    at = now()
    return sealed({**shown(exemption), "expires_at": at, "revoked_by": by, "revoked_at": at,
                   "revocation_reason": why})


def shown(exemption: dict) -> dict:
    """What the API answers about an exemption: all but its seal."""
    return {key: value for key, value in exemption.items() if key != "seal"}


def described(exemption: dict) -> str:
    """One line for a person: by whom, until when, why (and who ended it)."""
    line = (f"exempted by {exemption.get('granted_by') or 'unknown'} until "
            f"{exemption.get('expires_at')}: {exemption.get('reason') or 'no reason given'}")
    if exemption.get("revoked_at"):
        line += (f"; revoked by {exemption.get('revoked_by') or 'unknown'} at "
                 f"{exemption['revoked_at']}: {exemption.get('revocation_reason') or ''}")
    return line


def tag_value(instance: dict, exempt_tag: str) -> str | None:
    """The instance's `exempt_tag` value as DescribeInstances shows it (None: no such tag)."""
    return next((str(t.get("Value", "")) for t in instance.get("Tags") or ()
                 if t.get("Key") == exempt_tag), None)


def trusted_tag(value: str | None, current) -> bool:
    """A plain tag exempts only where the site protects its key (TRUST_EXEMPT_TAG=true)."""
    return bool(current.trust_exempt_tag and value is not None
                and value.strip().lower() == "true")
