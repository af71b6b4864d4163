"""The HTTP edge: the error shape of the API and the validation of what callers send.

Every failure a caller can cause becomes `{"error": "<Code>", "message": "<what to fix>"}` with
a 4xx status naming the offending value; a failure of AWS itself becomes a 503 (try again), so
the API never answers 500.
"""

import json
import logging

from chalice import Response

from chalicelib import incidents
from chalicelib.workflow import Refused

log = logging.getLogger(__name__)


def _json(status: int, body) -> Response:
    return Response(
        body=json.dumps(body, default=str),
        status_code=status,
        headers={"Content-Type": "application/json"},
    )


def respond(action) -> Response:
    """Run `action` (returning (status, body)) and turn every failure into the API's error shape."""
    try:
        status, body = action()
        return _json(status, body)
    except Refused as error:
        log.info("refused (%s %s): %s", error.status, error.code, error.message)
        return _json(error.status, {"error": error.code, "message": error.message})
    except Exception:  # AWS or the app failed, not the caller: say so, never a 500
        log.exception("request failed")
        return _json(
            503,
            {"error": "ServiceUnavailable",
             "message": "the service failed to complete the request (logged); try again"},
        )


def incident(incident_id: str, lookup) -> tuple[int, dict]:
    """GET /incidents/{incident_id}."""
    if not incidents.INCIDENT_ID.match(incident_id):
        raise Refused(
            400, "InvalidIncidentId",
            f"incident id {incident_id!r} is not 'inc-' followed by 12 hexadecimal characters",
        )
    found = lookup(incident_id)
    if found is None:
        raise Refused(404, "IncidentNotFound", f"no incident {incident_id}")
    return 200, found


MAX_BODY = 64 * 1024
QUARANTINE_FIELDS = ("instance_id", "reason", "region", "account_id", "finding", "dry_run", "force")
NOT_YET = {"dry_run": "dry_run is not supported yet", "finding": "finding is not supported yet"}
MAX_REASON = 1024


def _shown(value) -> str:
    """A caller's value, quoted and cut short, for an error message."""
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


_regions: dict = {}


def known_region(name, home_region: str) -> bool:
    """True for a real region in the home region's partition (the credentials reach no other)."""
    import botocore.session

    partition = ("aws-cn" if home_region.startswith("cn-") else
                 "aws-us-gov" if home_region.startswith("us-gov-") else "aws")
    if partition not in _regions:
        _regions[partition] = frozenset(
            botocore.session.get_session().get_available_regions("ec2", partition))
    return name in _regions[partition]


def parse_json_object(raw_body: bytes | None) -> dict:
    """The request body as a JSON object, or the error that says what is wrong with it."""
    raw_body = raw_body or b""
    if len(raw_body) > MAX_BODY:
        raise Refused(413, "BodyTooLarge",
                       f"body is {len(raw_body)} bytes; the limit is {MAX_BODY} bytes")
    try:
        body = json.loads(raw_body or b"{}")
    except (ValueError, UnicodeDecodeError, RecursionError) as error:
        raise Refused(400, "InvalidJson", f"body is not valid JSON: {error}") from None
    if not isinstance(body, dict):
        raise Refused(400, "InvalidBody", f"body must be a JSON object, not {type(body).__name__}")
    return body


def quarantine_request(body: dict, home_account: str, default_region: str, caller: str):
    """POST /quarantine's body, validated field by field, as a QuarantineRequest."""
    from chalicelib.findings import ACCOUNT_ID, INSTANCE_ID, QuarantineRequest

    unknown = sorted(set(body) - set(QUARANTINE_FIELDS))
    if unknown:
        raise Refused(400, "UnknownField", f"unknown field(s) {', '.join(map(_shown, unknown))}; "
                       f"allowed: {', '.join(QUARANTINE_FIELDS)}")
    instance_id = body.get("instance_id")
    if not isinstance(instance_id, str) or not INSTANCE_ID.match(instance_id):
        raise Refused(400, "InvalidInstanceId", f"instance_id {_shown(instance_id)} is not "
                       "'i-' followed by 8 or 17 lowercase hexadecimal digits")
    reason = body.get("reason", "")
    if not isinstance(reason, str) or len(reason) > MAX_REASON:
        raise Refused(400, "InvalidReason", f"reason {_shown(reason)} must be a string of at "
                       f"most {MAX_REASON} characters")
    region = body.get("region", default_region)
    if not isinstance(region, str) or not known_region(region, default_region):
        raise Refused(400, "InvalidRegion", f"region {_shown(region)} is not an AWS region")
    for flag in ("force", "dry_run"):
        if flag in body and not isinstance(body[flag], bool):
            raise Refused(400, "InvalidField", f"{flag} {_shown(body[flag])} must be true or false")
    account_id = body.get("account_id", home_account)
    if not isinstance(account_id, str) or not ACCOUNT_ID.match(account_id):
        raise Refused(400, "InvalidAccountId",
                       f"account_id {_shown(account_id)} is not a 12-digit account id")
    for field, message in NOT_YET.items():
        if field in body:
            raise Refused(400, "NotSupported", f"{message} (field {field!r})")
    if account_id != home_account:
        raise Refused(403, "AccountNotAllowed", f"account {account_id} is not allowed: this "
                       f"deployment acts in its home account {home_account} only")
    return QuarantineRequest(instance_id=instance_id, account_id=account_id, region=region,
                             source="http", reason=reason, force=body.get("force", False),
                             requested_by=caller)
