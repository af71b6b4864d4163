"""Exemptions the product issues: who exempted which instance, why, and until when — sealed.

A tag is a claim anyone with `ec2:CreateTags` on the instance may make, the instance's own role
included: a host that tags itself `QuarantineExempt=true` must not escape containment. So the
product honours only exemptions it issued (POST /exemptions): an item in the incidents table,
sealed with the records key (`seals`, purpose "exemption"), which the claim transaction checks
(`incidents.claim`: a ConditionCheck on the item, no request more) and which is verified before
it stops anything: an item someone else wrote is ignored, logged and noted on the incident. The
tag is written as well, `until <expiry>`, for people to see and as a second factor: a record
holds only while its instance shows exactly that tag (`unshown`), since table writers can put an
old sealed record back but not the tag the guardrail SCP keeps to the product. A plain tag alone
exempts only where the site protects the key itself (`TRUST_EXEMPT_TAG=true`, with
deploy/guardrails-scp.json).
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


def unhonoured(exemption: dict, where: str) -> str | None:
    """Why the exemption `exemption`, found under the key of `where` (an instance key:
    account/region/instance), does not stop containment (None: its record does). Its seal does
    not hold (not the product's: someone wrote the table — logged as such), it names another
    instance than its key (a real one copied there), it was revoked, or it has expired."""
    try:
        seals.verify("exemption", document(exemption), exemption.get("seal"))
    except seals.Unverified as unverified:
        log.error("exemption record under %s ignored: %s (not issued by the product: check who "
                  "wrote the incidents table)", where, unverified)
        return (f"unverified exemption ignored: the exemption record for {where} does not carry "
                "the product's seal")
    named = incidents.instance_key(exemption["account_id"], exemption["region"],
                                   exemption["instance_id"])
    if named != where:
        log.error("exemption record of %s found under %s: ignored (copied there: check who "
                  "wrote the incidents table)", named, where)
        return f"misplaced exemption ignored: the record under {where} is the exemption of {named}"
    if exemption.get("revoked_at"):
        return f"revoked exemption ignored: {described(exemption)}"
    if not str(exemption.get("expires_at", "")) > now():
        return f"expired exemption ignored: {described(exemption)}"
    return None


def unshown(exemption: dict, tag: str | None, exempt_tag: str) -> str | None:
    """Why a standing exemption record does not stop containment of an instance whose exempt tag
    reads `tag` (None: it does). The product writes `until <expiry>` when it grants and takes it
    away when it revokes: a record put back after its revocation, or over a later grant, finds
    no tag or another expiry (table writers can replay records; the tag is EC2's, which the
    guardrail SCP keeps to the product)."""
    shown_as = MIRROR + str(exemption.get("expires_at"))
    if tag == shown_as:
        return None
    log.error("exemption record of %s stands but the instance shows %s=%r, not %r: ignored (an "
              "old record put back?)", exemption.get("instance_id"), exempt_tag, tag, shown_as)
    return (f"exemption ignored: its record stands but the instance does not show it "
            f"({exempt_tag}={tag!r}, not {shown_as!r}): revoked or replaced, then put back?")


def revoked(exemption: dict, by: str, why: str) -> dict:
    """`exemption` ended now by `by` for `why`, sealed: kept, so who granted and who revoked it
    stay on record (the claim's check passes an exemption whose expiry is past)."""
    at = now()
    return sealed({**document(exemption), "expires_at": at, "revoked_by": by, "revoked_at": at,
                   "revocation_reason": why})


def shown(exemption: dict) -> dict:
    """What the API answers about an exemption: what its seal covers, nothing written beside."""
    return {key: value for key, value in document(exemption).items() if value is not None}


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
