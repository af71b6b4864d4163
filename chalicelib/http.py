"""The HTTP edge: the API's status codes, its error shape and the validation of what callers send.

The one module that speaks HTTP: the workflow's outcomes and refusals (`outcomes`) become status
codes here and nowhere else. Every failure a caller can cause becomes
`{"error": "<Code>", "message": "<what to fix>"}` with a 4xx status naming the offending value; a
failure of AWS itself becomes a 503 (try again), so the API never answers 500.
"""

import json
import logging
import re

from chalice import Response

from chalicelib import incidents, outcomes, page, report, seals, strict_json
from chalicelib.outcomes import InvalidInput

log = logging.getLogger(__name__)


def _json(status: int, body) -> Response:
    return Response(
        body=json.dumps(body, default=str),
        status_code=status,
        headers={"Content-Type": "application/json"},
    )


class BodyTooLarge(InvalidInput):
    """A body over MAX_BODY: refused before it is read."""

    def __init__(self, message: str):
        super().__init__("BodyTooLarge", message)


# The status of each outcome and refusal; a class not listed takes its nearest listed base's.
STATUS = {
    outcomes.Opened: 202, outcomes.DryRun: 202, outcomes.ReleaseStarted: 202,
    outcomes.Recorded: 200, outcomes.ExemptAnnounced: 200, outcomes.Decided: 200,
    outcomes.AwaitingApproval: 202, outcomes.Notified: 202, outcomes.Ignored: 200,
    outcomes.ExemptionGranted: 201, outcomes.ExemptionRevoked: 200,
    InvalidInput: 400, BodyTooLarge: 413, outcomes.NotAllowed: 403, outcomes.NotFound: 404,
    outcomes.Conflict: 409, outcomes.Unavailable: 503,
}


def status_of(result) -> int:
    """The status code for an outcome or a refusal."""
    return next(STATUS[kind] for kind in type(result).__mro__ if kind in STATUS)


def answer(result) -> tuple[int, dict]:
    """(status, body) for what an action returned: a workflow outcome, or a read's body (200)."""
    if isinstance(result, dict):
        return 200, result
    return status_of(result), result.summary()


def refused(refusal: outcomes.Refusal) -> tuple[int, dict]:
    """(status, body) for a refusal: the API's error shape."""
    return status_of(refusal), {"error": refusal.code, "message": refusal.message}


def respond(action) -> Response:
    """Run `action` and answer what it returns; every failure takes the API's error shape."""
    try:
        return _json(*answer(action()))
    except outcomes.Refusal as refusal:
        status, body = refused(refusal)
        log.info("refused (%s %s): %s", status, refusal.code, refusal.message)
        return _json(status, body)
    except Exception:  # AWS or the app failed, not the caller: say so, never a 500
        log.exception("request failed")
        return _json(
            503,
            {"error": "ServiceUnavailable",
             "message": "the service failed to complete the request (logged); try again"},
        )


def _found(incident_id: str, lookup) -> dict:
    """The incident `lookup` finds under a valid id, or the refusal that says why not."""
    if not incidents.INCIDENT_ID.match(incident_id):
        raise InvalidInput(
            "InvalidIncidentId",
            f"incident id {incident_id!r} is not 'inc-' followed by 12 hexadecimal characters",
        )
    found = lookup(incident_id)
    if found is None:
        raise outcomes.IncidentNotFound(f"no incident {incident_id}")
    return found


def incident(incident_id: str, lookup) -> dict:
    """GET /incidents/{incident_id}."""
    return incidents.shown(_found(incident_id, lookup))


REPORT_FORMATS = ("text", "html")


def incident_report(incident_id: str, query: dict | None, lookup) -> dict:
    """GET /incidents/{incident_id}/report?format=text|html: the report of the incident as it
    stands (what email subscribers get), or its page (report.html) rendered from the record."""
    wanted = _parameters(query, ("format",)).get("format", "text")
    if wanted not in REPORT_FORMATS:
        raise InvalidInput("InvalidFormat", f"format {_shown(wanted)} is not one of "
                           f"{', '.join(REPORT_FORMATS)}")
    found = _found(incident_id, lookup)
    if wanted == "html":
        return {"incident_id": incident_id, "html": page.render(found).decode()}
    notice = report.current(found)
    return {"incident_id": incident_id, "event": notice["document"]["event"],
            "status": notice["document"]["status"], "subject": notice["subject"],
            "text": notice["text"]}


FINDINGS_PARAMETERS = ("limit", "next_token")


def incident_findings(incident_id: str, query: dict | None, lookup, page) -> dict:
    """GET /incidents/{incident_id}/findings?limit=&next_token=: its further findings, newest
    first, each with its sequence number (1 is the first further finding)."""
    query = _parameters(query, FINDINGS_PARAMETERS)
    limit = _limit(query)
    found = _found(incident_id, lookup)
    count, _ = incidents.findings_summary(found)
    listing = {"incident_id": incident_id, "of": "findings"}  # what a token continues
    before = (_start_key(query["next_token"], listing)["before"] if query.get("next_token")
              else count + 1)  # the token is sealed with this listing: its own key only
    body = {"incident_id": incident_id, "findings_count": count,
            "findings": page(found, before, limit)}
    if before - limit > 1:
        body["next_token"] = _page_token({"before": before - limit}, listing)
    return body


MAX_BODY = 64 * 1024
QUARANTINE_FIELDS = ("instance_id", "reason", "region", "account_id", "finding", "dry_run", "force")
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


def _only(given, allowed, kind: str = "field") -> None:
    unknown = sorted(set(given) - set(allowed))
    if unknown:
        raise InvalidInput(f"Unknown{kind.capitalize()}",
                           f"unknown {kind}(s) {', '.join(map(_shown, unknown))}; "
                           f"allowed: {', '.join(allowed)}")


def _instance_id(value) -> str:
    from chalicelib.findings import INSTANCE_ID

    if not isinstance(value, str) or not INSTANCE_ID.match(value):
        raise InvalidInput("InvalidInstanceId", f"instance_id {_shown(value)} is not "
                           "'i-' followed by 8 or 17 lowercase hexadecimal digits")
    return value


def _account_id(value) -> str:
    from chalicelib.findings import ACCOUNT_ID

    if not isinstance(value, str) or not ACCOUNT_ID.match(value):
        raise InvalidInput("InvalidAccountId",
                           f"account_id {_shown(value)} is not a 12-digit account id")
    return value


def _region(value, home_region: str) -> str:
    if not isinstance(value, str) or not known_region(value, home_region):
        raise InvalidInput("InvalidRegion", f"region {_shown(value)} is not an AWS region")
    return value


def parse_json_object(raw_body: bytes | None) -> dict:
    """The request body as a JSON object, or the error that says what is wrong with it."""
    raw_body = raw_body or b""
    if len(raw_body) > MAX_BODY:
        raise BodyTooLarge(f"body is {len(raw_body)} bytes; the limit is {MAX_BODY} bytes")
    body = strict_json.loads(raw_body or b"{}")
    if not isinstance(body, dict):
        raise InvalidInput("InvalidBody",
                           f"body must be a JSON object, not {type(body).__name__}")
    return body


def quarantine_request(body: dict, home_account: str, default_region: str, caller: str):
    """POST /quarantine's body, validated field by field, as a QuarantineRequest."""
    from chalicelib.findings import QuarantineRequest

    _only(body, QUARANTINE_FIELDS)
    instance_id = _instance_id(body.get("instance_id"))
    reason = body.get("reason", "")
    if not isinstance(reason, str) or len(reason) > MAX_REASON:
        raise InvalidInput("InvalidReason", f"reason {_shown(reason)} must be a string of "
                           f"at most {MAX_REASON} characters")
    finding = _attached_finding(body.get("finding"), instance_id) if "finding" in body else None
    region = _region(body.get("region", finding.region if finding else default_region),
                     default_region)
    for flag in ("force", "dry_run"):
        if flag in body and not isinstance(body[flag], bool):
            raise InvalidInput("InvalidField",
                               f"{flag} {_shown(body[flag])} must be true or false")
    account_id = _account_id(body.get("account_id",
                                      finding.account_id if finding else home_account))
    if finding and (finding.account_id, finding.region) != (account_id, region):
        raise InvalidInput("FindingMismatch",
                           f"finding is from account {finding.account_id} in {finding.region}, "
                           f"not account_id {account_id} in region {region}")
    return QuarantineRequest(instance_id=instance_id, account_id=account_id, region=region,
                             source="http", reason=reason,
                             finding=finding.finding if finding else None,
                             force=body.get("force", False),
                             dry_run=body.get("dry_run", False), requested_by=caller)


def _attached_finding(value, instance_id: str):
    """The GuardDuty finding a responder pasted (an EventBridge event, its detail, or
    get-findings output; either casing); it must be about the same instance."""
    from chalicelib.findings import MalformedFinding, parse_all

    if isinstance(value, dict) and isinstance(value.get("detail"), dict):
        value = value["detail"]
    if isinstance(value, dict) and isinstance(value.get("Findings"), list) and value["Findings"]:
        value = value["Findings"][0]
    try:
        parsed, _ = parse_all(value)
    except MalformedFinding as error:
        raise InvalidInput("InvalidFinding", f"finding: {error}") from None
    mine = [request for request in parsed if request.instance_id == instance_id]
    if not mine:
        raise InvalidInput("FindingMismatch", f"finding is about "
                           f"{', '.join(r.instance_id for r in parsed)[:200]}, not instance_id "
                           f"{instance_id}")
    return mine[0]


RELEASE_FIELDS = ("instance_id", "reason", "region", "account_id", "reregister")


def release_request(body: dict, home_account: str, default_region: str, caller: str):
    """POST /release's body: (QuarantineRequest for the instance, whether to re-register)."""
    _only(body, RELEASE_FIELDS)
    _reason_required(body, "the instance is released")
    reregister = body.get("reregister", False)
    if not isinstance(reregister, bool):
        raise InvalidInput("InvalidField",
                           f"reregister {_shown(reregister)} must be true or false")
    fields = {k: v for k, v in body.items() if k != "reregister"}
    return quarantine_request(fields, home_account, default_region, caller), reregister


DECISION_FIELDS = ("reason",)


def decision_request(incident_id: str, body: dict) -> tuple[str, str]:
    """POST /incidents/{id}/approve or …/deny: (the incident's id, the reason given)."""
    _found(incident_id, lambda _: {})  # the id's shape: the workflow looks it up
    _only(body, DECISION_FIELDS)
    _reason_required(body, "you decide so")
    if len(body["reason"]) > MAX_REASON:
        raise InvalidInput("InvalidReason", f"reason {_shown(body['reason'])} must be a string "
                           f"of at most {MAX_REASON} characters")
    return incident_id, body["reason"].strip()


def _reason_required(body: dict, what: str) -> None:
    if not isinstance(body.get("reason"), str) or not body["reason"].strip():
        raise InvalidInput("MissingReason", f"reason is required: say why {what}")


EXEMPTION_FIELDS = ("instance_id", "reason", "expires", "region", "account_id")


def exemption_request(body: dict, home_account: str, default_region: str, caller: str):
    """POST /exemptions' body: (QuarantineRequest naming the instance and why, its expiry)."""
    from chalicelib import exemptions

    _only(body, EXEMPTION_FIELDS)
    _reason_required(body, "the instance is exempted")
    try:
        expires = exemptions.expiry(body.get("expires"))
    except ValueError as error:
        raise InvalidInput("InvalidExpiry", str(error)) from None
    fields = {k: v for k, v in body.items() if k != "expires"}
    return quarantine_request(fields, home_account, default_region, caller), expires


def exemption_revocation(instance_id: str, query: dict | None, body: dict, home_account: str,
                         default_region: str, caller: str):
    """DELETE /exemptions/{instance_id}?account_id=&region= with {"reason"}: the request."""
    query = _parameters(query, ("account_id", "region"))
    _only(body, ("reason",))
    _reason_required(body, "the exemption is revoked")
    return quarantine_request({**query, "instance_id": instance_id, "reason": body["reason"]},
                              home_account, default_region, caller)


EXEMPTION_LIST_PARAMETERS = ("limit", "next_token")


def list_exemptions(query: dict | None, page) -> dict:
    """GET /exemptions?limit=&next_token=: every exemption, newest first, each saying whether
    it stands."""
    query = _parameters(query, EXEMPTION_LIST_PARAMETERS)
    limit = _limit(query)
    listing = {"of": "exemptions"}  # what a token continues
    start = _start_key(query["next_token"], listing) if query.get("next_token") else None
    found, last = page(limit, start)
    body = {"exemptions": found}
    if last:
        body["next_token"] = _page_token(last, listing)
    return body


LIST_PARAMETERS = ("instance_id", "group_id", "status", "since", "account_id", "region", "limit",
                   "next_token")
SINCE = re.compile(r"\A[0-9]{4}-[0-9]{2}-[0-9]{2}(T[0-9]{2}:[0-9]{2}(:[0-9]{2}(\.[0-9]+)?)?Z?)?\Z")
LIMIT = re.compile(r"\A[0-9]{1,3}\Z")  # int() would take " 25\n", "2_5" and other digits


def _parameters(query: dict | None, allowed) -> dict:
    """A GET's query parameters: only those `allowed`, each given once."""
    query = query or {}
    _only(query, allowed, "parameter")
    values_of = getattr(query, "getlist", None)  # Chalice's MultiDict: the last value wins
    repeated = sorted(k for k in query if values_of and len(values_of(k)) > 1)
    if repeated:
        raise InvalidInput("DuplicateParameter", f"parameter(s) {', '.join(map(_shown, repeated))} "
                           "given more than once; give each once")
    return query


def _limit(query: dict) -> int:
    limit = query.get("limit", "25")
    if not LIMIT.match(limit) or not 1 <= int(limit) <= 100:
        raise InvalidInput("InvalidLimit", f"limit {_shown(limit)} is not a number from 1 "
                           "to 100")
    return int(limit)


def list_incidents(query: dict | None, home_account: str, default_region: str, search):
    """GET /incidents?instance_id=|group_id=&status=&since=&limit=&next_token= (newest
    first)."""
    from chalicelib.incidents import GROUP_ID, STATUSES, instance_key

    query = _parameters(query, LIST_PARAMETERS)
    instance_id, group_id = query.get("instance_id"), query.get("group_id")
    if instance_id is not None:
        _instance_id(instance_id)
    if group_id is not None and not GROUP_ID.match(group_id):
        raise InvalidInput("InvalidGroupId", f"group_id {_shown(group_id)} is not a group id "
                           "(grp- and 12 hex characters, as a group's incidents carry)")
    if instance_id is not None and group_id is not None:
        raise InvalidInput("InvalidQuery", "give instance_id or group_id, not both")
    status = query.get("status")
    if status is not None and status not in STATUSES:
        raise InvalidInput("InvalidStatus", f"status {_shown(status)} is not one of "
                           f"{', '.join(STATUSES)}")
    since = query.get("since")
    if since is not None and not SINCE.match(since):
        raise InvalidInput("InvalidSince", f"since {_shown(since)} is not an ISO 8601 UTC "
                           "time such as 2026-11-30T04:00:00Z")
    account = _account_id(query.get("account_id", home_account))
    region = _region(query.get("region", default_region), default_region)
    limit = _limit(query)
    key = instance_key(account, region, instance_id) if instance_id else None
    listing = {"instance_key": key, "status": status, "since": since,  # what a token continues
               "index": incidents.listing_index(key, status, group_id),
               **({"group_id": group_id} if group_id else {})}
    start = _start_key(query["next_token"], listing) if query.get("next_token") else None
    page, last = search(key, status, since, limit, start,  # ISO times compare as strings
                        **({"group_id": group_id} if group_id else {}))
    shown = (*incidents.LISTED_FIELDS, *(("group_id",) if group_id else ()))
    body = {"incidents": [{k: i.get(k) for k in shown} for i in page]}
    if last:
        body["next_token"] = _page_token(last, listing)
    return body


# The list's page token carries DynamoDB's LastEvaluatedKey, sealed with the listing it
# continues: a token the API did not give, or given for another listing, is refused.
PERMISSIONS = (*seals.SEAL_PERMISSIONS, *seals.VERIFY_PERMISSIONS)


def _page_token(last: dict, listing: dict) -> str:
    import base64

    sealed = seals.seal("next-token", {"key": last, "listing": listing})
    return base64.urlsafe_b64encode(json.dumps({"key": last, "seal": sealed}).encode()).decode()


def _invalid_token() -> InvalidInput:
    return InvalidInput("InvalidNextToken", "next_token is not one this API gave for this "
                        "listing; start again without it")


def _start_key(token: str, listing: dict) -> dict:
    import base64

    refused = _invalid_token()
    try:
        found = strict_json.loads(base64.urlsafe_b64decode(token.encode()))
    except (InvalidInput, ValueError):  # binascii.Error is a ValueError
        raise refused from None
    if not (isinstance(found, dict) and set(found) == {"key", "seal"}
            and isinstance(found["key"], dict)):
        raise refused
    try:
        seals.verify("next-token", {"key": found["key"], "listing": listing}, found["seal"])
    except seals.Unverified:
        raise refused from None
    return found["key"]
