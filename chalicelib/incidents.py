"""The incidents table: one item per incident, found by id, listed per instance, per status or
overall; beside it the claim items and one item per further finding.

The table definition lives here, once, for the embedded AWS and for deployment.
"""

import logging
import re
import time
from datetime import datetime, timedelta, timezone

from chalicelib import aws, bindings, items, settings

log = logging.getLogger(__name__)

INCIDENT_ID = re.compile(r"\Ainc-[0-9a-f]{12}\Z")  # \Z: $ would take a trailing "\n"
INSTANCE_INDEX = "instance-index"  # instance_key (account/region/instance) + opened_at
GROUP_INDEX = "group-index"  # group_id + opened_at: the incidents one finding about a group opened
GROUP_ID = re.compile(r"\Agrp-[0-9a-f]{12}\Z")
TIME_INDEX = "time-index"  # record_type + opened_at: every incident, newest first
STATUS_INDEX = "status-index"  # status + opened_at: the incidents of one status, newest first
# What a listing shows of each incident; the status index holds these alone (its keys beside).
LISTED_FIELDS = ("incident_id", "status", "instance_id", "account_id", "region", "opened_at",
                 "updated_at", "source", "reason")


def _index(name: str, partition: str, projection: dict) -> dict:
    return {"IndexName": name,
            "KeySchema": [{"AttributeName": partition, "KeyType": "HASH"},
                          {"AttributeName": "opened_at", "KeyType": "RANGE"}],
            "Projection": projection}


# Only incident items carry these keys (claims and further findings carry none), so each index
# holds incidents only. The status index projects what a listing shows: a status change moves
# a small entry, not the whole record.
GLOBAL_INDEXES = (
    _index(INSTANCE_INDEX, "instance_key", {"ProjectionType": "ALL"}),
    _index(TIME_INDEX, "record_type", {"ProjectionType": "ALL"}),
    _index(STATUS_INDEX, "status", {
        "ProjectionType": "INCLUDE",
        "NonKeyAttributes": [f for f in LISTED_FIELDS if f not in ("status", "opened_at")]}),
    _index(GROUP_INDEX, "group_id", {  # only a group's incidents carry its key
        "ProjectionType": "INCLUDE",
        "NonKeyAttributes": [f for f in LISTED_FIELDS if f != "opened_at"]}),
)


def table_definition(indexes=GLOBAL_INDEXES) -> dict:
    """The table with these global secondary indexes: its attribute definitions are exactly the
    keys they use (DynamoDB refuses any other)."""
    keys = ["pk"] + [key["AttributeName"] for index in indexes for key in index["KeySchema"]]
    return {
        "AttributeDefinitions": [{"AttributeName": name, "AttributeType": "S"}
                                 for name in dict.fromkeys(keys)],
        "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}],
        **({"GlobalSecondaryIndexes": [dict(index) for index in indexes]} if indexes else {}),
        "BillingMode": "PAY_PER_REQUEST",
    }


TABLE_DEFINITION = table_definition()


# IAM actions, declared next to the code that calls them (deploy/permissions.py collects them).
GET_PERMISSIONS = ("dynamodb:GetItem",)  # get()
READ_PERMISSIONS = (*GET_PERMISSIONS, "dynamodb:Query")  # get(), active_for(), search()
FINDINGS_PERMISSIONS = ("dynamodb:BatchGetItem",)  # further_findings()
# TransactWriteItems is authorized per item: the claim puts two, checks the exemption; put()
CLAIM_PERMISSIONS = ("dynamodb:PutItem", "dynamodb:ConditionCheckItem")
UPDATE_PERMISSIONS = ("dynamodb:UpdateItem",)
# record_finding(): the incident's counter updated, then the finding put beside its slot.
RECORD_PERMISSIONS = (*CLAIM_PERMISSIONS, *UPDATE_PERMISSIONS)


class Exempted(Exception):
    """The instance holds an unexpired exemption item; carries it (chalicelib/exemptions.py
    verifies it: the claim only says one is there)."""

    def __init__(self, exemption: dict):
        super().__init__(exemption.get("instance_id"))
        self.exemption = exemption


class AlreadyActive(Exception):
    """The instance is under an active incident; carries that incident's id."""

    def __init__(self, incident_id: str):
        super().__init__(incident_id)
        self.incident_id = incident_id


def new_id() -> str:
    import secrets

    return "inc-" + secrets.token_hex(6)


TIME_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"  # the records' times (they compare as strings)


def now() -> str:
    return datetime.now(timezone.utc).strftime(TIME_FORMAT)


def instance_key(account: str, region: str, instance_id: str) -> str:
    return f"{account}/{region}/{instance_id}"


CLAIM_PREFIX = "claim#"  # the claim item's key: CLAIM_PREFIX + instance_key(...)


def _claim_key(account, region, instance_id) -> dict:
    return {"pk": {"S": CLAIM_PREFIX + instance_key(account, region, instance_id)}}


def _db():
    return aws.client("dynamodb")


def _table_name() -> str:
    return settings.get().incidents_table


EXEMPTION_PREFIX = "exemption#"  # an exemption's key: EXEMPTION_PREFIX + instance_key(...)
EXEMPTION_RECORD = "exemption"  # its record_type: the time index lists them apart from incidents
EXEMPTION_TIME_FORMAT = "%Y-%m-%dT%H:%M:%SZ"  # its expiry and grant times (compare as strings)


def _exemption_key(account, region, instance_id) -> dict:
    return {"pk": {"S": EXEMPTION_PREFIX + instance_key(account, region, instance_id)}}


def claim(incident: dict, unless_exempt: bool = True) -> None:
    """Write `incident` and make it its instance's active incident, atomically, in one request.

    Raises AlreadyActive (with the active incident's id) when the instance has one: the claim
    item of an instance points at its incident and is free only while that incident is inactive.
    With `unless_exempt`, raises Exempted (with the item) when the instance holds an unexpired
    exemption, checked in the same transaction. Concurrent transactions on one claim item:
    DynamoDB cancels all but one with TransactionConflict; the next attempt sees the winner's
    claim.
    """
    return _retried(lambda: _claim_once(incident, unless_exempt), CLAIM_ATTEMPTS)


CLAIM_ATTEMPTS = 5


class _Conflict(Exception):
    """A concurrent write won: the attempt changed nothing and may be made again."""


def _retried(once, attempts: int):
    """once() until it does not raise _Conflict, with jittered backoff (at most a second)."""
    import random
    import time

    for attempt in range(attempts):
        try:
            return once()
        except _Conflict:
            time.sleep(random.uniform(0, min(1.0, 0.05 * 2 ** attempt)))
    return once()


def _claim_once(incident: dict, unless_exempt: bool) -> None:
    from datetime import datetime, timezone

    from botocore.exceptions import ClientError

    where = (incident["account_id"], incident["region"], incident["instance_id"])
    key = _claim_key(*where)
    exemption = [{"ConditionCheck": {
        "TableName": _table_name(), "Key": _exemption_key(*where),
        "ConditionExpression": "attribute_not_exists(pk) OR expires_at <= :now OR "
                               "attribute_exists(revoked_at)",
        "ExpressionAttributeValues": {":now": {"S": datetime.now(timezone.utc).strftime(
            EXEMPTION_TIME_FORMAT)}},
        "ReturnValuesOnConditionCheckFailure": "ALL_OLD"}}] if unless_exempt else []
    try:
        _db().transact_write_items(TransactItems=[
            {"Put": {
                "TableName": _table_name(),
                "Item": {**key, "incident_id": {"S": incident["incident_id"]},
                         "active": {"BOOL": True}},
                "ConditionExpression": "attribute_not_exists(pk) OR active = :no",
                "ExpressionAttributeValues": {":no": {"BOOL": False}},
                "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
            }},
            {"Put": {"TableName": _table_name(), "Item": _item(incident)}},
            *exemption,
        ])
    except ClientError as error:
        reasons = error.response.get("CancellationReasons") or []
        codes = [reason.get("Code") for reason in reasons]
        if codes and codes[0] == "ConditionalCheckFailed":
            raise AlreadyActive(reasons[0]["Item"]["incident_id"]["S"]) from None
        if exemption and codes[2:3] == ["ConditionalCheckFailed"]:
            raise Exempted(_exemption(reasons[2].get("Item") or {})) from None
        if "TransactionConflict" in codes:
            raise _Conflict() from None
        raise


def put_exemption(exemption: dict, replacing: dict | None = None) -> dict | None:
    """Write the instance's exemption; the time index lists it by when granted. With
    `replacing`, only in place of that very record (a concurrent change wins: LookupError).
    Returns the one it replaced (None: none)."""
    from botocore.exceptions import ClientError

    item = {**exemption, "pk": _exemption_key(exemption["account_id"], exemption["region"],
                                              exemption["instance_id"])["pk"]["S"],
            "record_type": EXEMPTION_RECORD, "opened_at": exemption["granted_at"]}
    condition = {"ConditionExpression": "seal = :seal", "ExpressionAttributeValues": {
        ":seal": {"S": str(replacing.get("seal"))}}} if replacing else {}
    try:
        old = _db().put_item(TableName=_table_name(), Item=_serialized(item),
                             ReturnValues="ALL_OLD", **condition).get("Attributes")
    except ClientError as error:
        if aws.error_code(error) == "ConditionalCheckFailedException":
            raise LookupError("the exemption changed meanwhile") from None
        raise
    return _exemption(old) if old else None


def get_exemption(account: str, region: str, instance_id: str) -> dict | None:
    item = _db().get_item(TableName=_table_name(), ConsistentRead=True,
                          Key=_exemption_key(account, region, instance_id)).get("Item")
    return _exemption(item) if item else None


def exemptions_page(limit: int, start_key: dict | None) -> tuple[list[dict], dict | None]:
    """Exemption items, newest grant first; (page, key of the next)."""
    query = {"TableName": _table_name(), "IndexName": TIME_INDEX, "Limit": limit,
             "KeyConditionExpression": "record_type = :r", "ScanIndexForward": False,
             "ExpressionAttributeValues": {":r": {"S": EXEMPTION_RECORD}},
             **({"ExclusiveStartKey": start_key} if start_key else {})}
    page = _db().query(**query)
    return [_exemption(item) for item in page.get("Items", [])], page.get("LastEvaluatedKey")


def _exemption(item: dict) -> dict:
    """An exemption item as stored, with `where`: the instance key it is stored under."""
    plain = items.plain(item)
    plain.pop("opened_at", None)
    return {**plain, "where": str(item.get("pk", {}).get("S", ""))[len(EXEMPTION_PREFIX):]}


def put(incident: dict) -> None:
    """Write an incident that claims nothing (a dry run: it never blocks a real incident)."""
    _db().put_item(TableName=_table_name(), Item=_item(incident),
                   ConditionExpression="attribute_not_exists(pk)")


LATEST_FINDINGS = 5  # further findings the incident item shows; every one is its own item
FINDING_PREFIX = "finding#"  # a further finding's key: finding#<incident>#<sequence, 10 digits>


def _finding_key(incident_id: str, sequence: int) -> dict:
    return {"pk": {"S": f"{FINDING_PREFIX}{incident_id}#{sequence:010d}"}}


def findings_summary(incident: dict) -> tuple[int, list]:
    """(further findings recorded, the latest few, oldest first), from either shape: an
    incident written before findings became items holds them all in `findings` (and counts in
    `findings_not_kept` those it could not keep), numbered 1.. in that order; those recorded
    since are numbered after them, the latest few kept in `latest_ring` by number."""
    legacy = list(incident.get("findings") or [])
    ring = sorted((incident.get("latest_ring") or {}).values(), key=lambda f: f["sequence"])
    latest = (legacy + [{k: v for k, v in f.items() if k != "sequence"} for f in ring])
    return len(legacy) + int(incident.get("findings_count") or 0), latest[-LATEST_FINDINGS:]


def shown(incident: dict) -> dict:
    """The incident as the API shows it, of either shape: the count and the latest few further
    findings (GET /incidents/{id}/findings pages them all), never a list that grows."""
    count, latest = findings_summary(incident)
    shown = {key: value for key, value in incident.items() if key not in UNSHOWN}
    return {**shown, "findings_count": count, "latest_findings": latest}


# Not shown: the findings list of the old shape, and the product's seals: nobody reading an
# incident needs them, and a binding's seal shown before its execution holds the incident's
# name would let a reader start that execution first; nor the token of a wait for approval
# (it decides nothing, but it is the waiting task's to hand out, not a reader's).
UNSHOWN = ("findings", "latest_ring", "seal", "restart_seal", "change_seals", "approval_token")


def record_finding(incident_id: str, finding: dict) -> dict:
    """Record a further finding on an incident as an item of its own: the incident's counter
    gives it its number (one atomic update, however many findings arrive at once), then the
    finding's item and its slot among the latest few are written beside each other. The same
    small writes at the first and the ten-thousandth, and no conflict to retry. Returns the
    incident as it now stands."""
    from botocore.exceptions import ClientError

    try:
        counted = _db().update_item(
            TableName=_table_name(), Key={"pk": {"S": incident_id}},
            UpdateExpression="SET findings_count = if_not_exists(findings_count, :zero) + :one, "
                             "latest_ring = if_not_exists(latest_ring, :empty), updated_at = :now",
            ConditionExpression="attribute_exists(pk)",
            ExpressionAttributeValues=_serialized({":zero": 0, ":one": 1, ":empty": {},
                                                   ":now": now()}),
            ReturnValues="ALL_NEW")["Attributes"]
    except ClientError as error:
        if aws.error_code(error) == "ConditionalCheckFailedException":
            raise LookupError(f"no incident {incident_id} to record a further finding on") \
                from None
        raise
    incident = items.plain(counted)
    sequence = len(incident.get("findings") or []) + int(incident["findings_count"])
    numbered = {**finding, "sequence": sequence}
    slot = str(sequence % LATEST_FINDINGS)
    aws.concurrently([
        lambda: _db().put_item(TableName=_table_name(), Item={
            **_finding_key(incident_id, sequence),
            **_serialized({**numbered, "incident_id": incident_id})}),
        lambda: aws.tolerate(  # a later finding may hold the slot already: it stays
            "ConditionalCheckFailedException", _db().update_item,
            TableName=_table_name(), Key={"pk": {"S": incident_id}},
            UpdateExpression="SET latest_ring.#slot = :finding",
            ConditionExpression="attribute_not_exists(latest_ring.#slot) OR "
                                "latest_ring.#slot.#sequence < :sequence",
            ExpressionAttributeNames={"#slot": slot, "#sequence": "sequence"},
            ExpressionAttributeValues=_serialized({":finding": numbered,
                                                   ":sequence": sequence}))])
    ring = dict(incident.get("latest_ring") or {})
    if sequence > int((ring.get(slot) or {}).get("sequence", 0)):
        ring[slot] = numbered
    return {**incident, "latest_ring": ring}


def further_findings(incident: dict, before: int, limit: int) -> list[dict]:
    """The incident's further findings numbered below `before`, newest first, at most `limit`
    (up to 100: one BatchGetItem), each with its `sequence`; those of an incident written
    before findings became items come from its list."""
    legacy = list(incident.get("findings") or [])
    wanted = range(before - 1, max(before - 1 - limit, 0), -1)
    found = {n: {**legacy[n - 1], "sequence": n} for n in wanted if n <= len(legacy)}
    keys = [_finding_key(incident["incident_id"], n) for n in wanted if n > len(legacy)]
    for _ in range(READ_ROUNDS):
        if not keys:
            return [found[n] for n in wanted if n in found]
        answer = _db().batch_get_item(RequestItems={
            _table_name(): {"Keys": keys, "ConsistentRead": True}})
        for item in answer["Responses"].get(_table_name(), []):
            plain = items.plain(item)
            plain.pop("incident_id", None)
            found[plain["sequence"]] = plain
        keys = answer.get("UnprocessedKeys", {}).get(_table_name(), {}).get("Keys", [])
    raise RuntimeError(f"DynamoDB left {len(keys)} findings of {incident['incident_id']} "
                       f"unread after {READ_ROUNDS} rounds")


READ_ROUNDS = 5  # BatchGetItem rounds for one page (DynamoDB may leave keys unprocessed)


def record_step(incident_id: str, step: str, started: str, outcome: str, changes=(), errors=(),
                fields: dict | None = None, only_if: tuple[str, dict, dict] | None = None) -> dict:
    """Add a step to the incident's timeline with the changes (sealed together: release
    verifies them) and errors it brings, and set `fields` (dotted names set nested attributes); returns
    the incident as it now stands. `only_if`: a further condition, its values and names (the
    sweep settles an incident only as it read it)."""
    changes = list(changes)
    entry = {"step": step, "start": started, "end": now(), "outcome": outcome}
    expression = ("SET timeline = list_append(if_not_exists(timeline, :empty), :entry), "
                  "changes = list_append(if_not_exists(changes, :empty), :changes), "
                  "change_seals = list_append(if_not_exists(change_seals, :empty), :sealed), "
                  "errors = list_append(if_not_exists(errors, :empty), :errors), updated_at = :now")
    values = {":entry": [entry], ":changes": changes, ":errors": list(errors),
              ":sealed": bindings.seal_changes(incident_id, changes), ":empty": [],
              ":now": entry["end"]}
    names = {}
    for assignment in _assignments(fields or {}, names, values):
        expression += ", " + assignment
    if only_if:
        condition, more, more_names = only_if
        values.update(more)
        names.update(more_names)
        return _update(incident_id, expression, values, names,
                       condition=f"attribute_exists(pk) AND ({condition})")
    return _update(incident_id, expression, values, names)


def _assignments(fields: dict, names: dict, values: dict) -> list[str]:
    """`path = :value` for each field (dotted names set nested attributes), adding their
    placeholders to `names` and `values`."""
    assignments = []
    for n, (name, value) in enumerate(sorted(fields.items())):
        parts = name.split(".")  # placeholders for every part: "status" is a reserved word
        names.update({f"#f{n}_{i}": part for i, part in enumerate(parts)})
        assignments.append(".".join(f"#f{n}_{i}" for i in range(len(parts))) + f" = :f{n}")
        values[f":f{n}"] = value
    return assignments


def join_group(incident_id: str, group_id: str) -> None:
    """List an incident opened before a finding about its instance's group among that group's
    (GET /incidents?group_id=), unless it is already another group's (it is listed there)."""
    _db().update_item(TableName=_table_name(), Key={"pk": {"S": incident_id}},
                      UpdateExpression="SET group_id = if_not_exists(group_id, :group)",
                      ConditionExpression="attribute_exists(pk)",
                      ExpressionAttributeValues={":group": {"S": group_id}})


def note_progress(incident_id: str, fields: dict,
                  condition: tuple[str, dict, dict] | None = None) -> dict:
    """Set `fields` on the incident without a timeline entry: how a step under way is doing
    (the snapshots polled so far, the token of a wait for approval), for whoever follows it.
    `condition`: a further condition, its values and names."""
    names, values = {}, {":now": now()}
    expression = "SET updated_at = :now, " + ", ".join(_assignments(fields, names, values))
    if condition:
        values.update(condition[1])
        names.update(condition[2])
        return _update(incident_id, expression, values, names,
                       condition=f"attribute_exists(pk) AND ({condition[0]})")
    return _update(incident_id, expression, values, names)


# Repair (the tamper watch) and release never act on one incident at once: each holds a lease
# on it while it changes the instance, and neither takes its lease while the other's runs.
REPAIR_LEASE_SECONDS = 60  # the watch's reads and repairs take a few seconds
RELEASE_LEASE_SECONDS = 900  # a release step lasts at most Lambda's 15 minutes
TAMPER_ENTRIES = 50  # tamper entries an incident keeps; later ones are counted and reported
WATCHED = ("CONTAINED", "PARTIAL")  # what the tamper watch keeps contained


class Held(Exception):
    """The other side holds the incident: a release (for a repair) or a repair (for a
    release); or the incident is no longer one to repair."""


def later(seconds: int) -> str:
    """The time `seconds` from now, as the records write it (a lease's end)."""
    return (datetime.now(timezone.utc) + timedelta(seconds=seconds)).strftime(TIME_FORMAT)


def lease_held(incident: dict, name: str, seconds: int) -> bool:
    """Whether the lease `name` on the incident holds now. One further ahead than such a lease
    can be was not taken by the product (the table's fields are not sealed): it holds nothing,
    and is logged."""
    until = incident.get(name)
    if not isinstance(until, str) or until <= now():
        return False
    if until > later(seconds + 60):
        log.warning("%s of %s is %s, further ahead than a lease can be: ignored", name,
                    incident.get("incident_id"), until[:40])
        return False
    return True


def _free(name: str, seconds: int) -> str:
    """The condition that lease `name` holds nothing (absent, ended, or further ahead than the
    product takes one: `lease_held`); its values are :now and :far_<name>."""
    return f"(attribute_not_exists({name}) OR {name} < :now OR {name} > :far_{name})"


def hold_for_repair(incident_id: str) -> str:
    """The repair's lease, with a token only its holder knows: only while the incident is
    still contained (or OPEN with Contain's outcome), no release step and no other repair
    holds it, and no release has restored part of it (the person releasing it decides what
    follows); returns the token. Held otherwise."""
    import secrets

    token = secrets.token_hex(8)
    try:
        _update(incident_id, "SET repairing_until = :until, repair_token = :token", {
            ":until": later(REPAIR_LEASE_SECONDS), ":token": token, ":now": now(),
            ":far_releasing_until": later(RELEASE_LEASE_SECONDS + 60),
            ":far_repairing_until": later(REPAIR_LEASE_SECONDS + 60),
            ":contained": WATCHED[0], ":partial": WATCHED[1], ":open": "OPEN", ":zero": 0},
            {"#status": "status", "#release": "release"},
            condition="(#status IN (:contained, :partial) OR (#status = :open AND "
                      "containment IN (:contained, :partial))) AND "
                      f"{_free('releasing_until', RELEASE_LEASE_SECONDS)} AND "
                      f"{_free('repairing_until', REPAIR_LEASE_SECONDS)} AND "
                      "(attribute_not_exists(#release.restored) OR "
                      "size(#release.restored) = :zero)")
    except _db().exceptions.ConditionalCheckFailedException:
        raise Held(f"{incident_id} is being released or repaired, or no longer contained") \
            from None
    return token


def hold_for_release(incident_id: str, wait_seconds: float = REPAIR_LEASE_SECONDS + 5) -> None:
    """The release step's lease: taken once no repair holds the incident (waiting for one
    that does, at most its lease); Held if one still does."""
    deadline = time.monotonic() + wait_seconds
    while True:
        try:
            _update(incident_id, "SET releasing_until = :until",
                    {":until": later(RELEASE_LEASE_SECONDS), ":now": now(),
                     ":far_repairing_until": later(REPAIR_LEASE_SECONDS + 60)},
                    condition=f"attribute_exists(pk) AND "
                              f"{_free('repairing_until', REPAIR_LEASE_SECONDS)}")
            return
        except _db().exceptions.ConditionalCheckFailedException:
            if time.monotonic() > deadline:
                raise Held(f"a repair of {incident_id} still holds it") from None
            time.sleep(0.5)


def record_tamper(incident_id: str, entry: dict, token: str) -> dict:
    """Keep one tamper entry on the incident and end the repair's lease, if it is still this
    repair's (`token`). Past TAMPER_ENTRIES the entry is counted, not kept (an attacker
    undoing the cut in a loop must not grow the record past DynamoDB's item size and stop
    every later write to it)."""
    append = "SET tamper = list_append(if_not_exists(tamper, :empty), :entry), updated_at = :now"
    count = "SET tamper_unkept = if_not_exists(tamper_unkept, :zero) + :one, updated_at = :now"
    end = " REMOVE repairing_until, repair_token"
    room, ours = "(attribute_not_exists(tamper) OR size(tamper) < :max)", "repair_token = :token"
    kept = {":entry": [entry], ":empty": [], ":max": TAMPER_ENTRIES}
    counted = {":zero": 0, ":one": 1}
    attempts = ((append + end, f"{ours} AND {room}", {**kept, ":token": token}),
                (count + end, ours, {**counted, ":token": token}),
                (append, room, kept),  # the lease was lost: the entry is kept all the same
                (count, "attribute_exists(pk)", counted))
    for expression, condition, values in attempts:
        try:
            return _update(incident_id, expression, {**values, ":now": now()},
                           condition=condition)
        except _db().exceptions.ConditionalCheckFailedException:
            continue
    raise RuntimeError(f"{incident_id} is gone")


def active_for(account: str, region: str, instance_id: str) -> str | None:
    """The id of the instance's active incident, or None."""
    item = _db().get_item(TableName=_table_name(), Key=_claim_key(account, region, instance_id),
                          ConsistentRead=True).get("Item")
    if item and item["active"]["BOOL"]:
        return item["incident_id"]["S"]
    return None


STATUSES = ("OPEN", "CONTAINED", "PARTIAL", "FAILED", "RELEASED", "DRY_RUN", "AWAITING_APPROVAL",
            "NOTIFIED")
RELEASABLE = ("CONTAINED", "PARTIAL")  # what release undoes; these and OPEN hold the instance
AWAITING = "AWAITING_APPROVAL"  # holds the instance too (a second incident is recorded on it)
NOTIFIED = "NOTIFIED"  # announced, nothing changed: a notify rule, a denial, a timeout's close
# An incident's final status in words: its report and its timeline's last step say it so.
OUTCOMES = {"CONTAINED": "contained", "PARTIAL": "partially contained", "FAILED": "failed"}


def listing_index(instance_key_value: str | None, status: str | None,
                  group_id: str | None = None) -> str:
    """The index a listing reads: the group's or the instance's (any status filtered after:
    bounded by that group's or instance's incidents), else the status's, else every
    incident's."""
    return (GROUP_INDEX if group_id else INSTANCE_INDEX if instance_key_value
            else STATUS_INDEX if status else TIME_INDEX)


def search(instance_key_value: str | None, status: str | None, since: str | None, limit: int,
           start_key: dict | None, group_id: str | None = None
           ) -> tuple[list[dict], dict | None]:
    """Incidents newest first (of one group, of one instance, of one status, or all); (page,
    key of the next). Only a group's or an instance's listing filters by status: the status
    index holds that status alone, so a page of it is one Query however rare the status."""
    index = listing_index(instance_key_value, status, group_id)
    key_name, key_value = {GROUP_INDEX: ("group_id", group_id),
                           INSTANCE_INDEX: ("instance_key", instance_key_value),
                           STATUS_INDEX: ("status", status),
                           TIME_INDEX: ("record_type", "incident")}[index]
    condition = "#k = :k" + (" AND opened_at >= :since" if since else "")
    values = {":k": {"S": key_value}}
    if since:
        values[":since"] = {"S": since}
    query = {"TableName": _table_name(), "IndexName": index, "KeyConditionExpression": condition,
             "ExpressionAttributeNames": {"#k": key_name}, "ExpressionAttributeValues": values,
             "ScanIndexForward": False}
    if status and index in (INSTANCE_INDEX, GROUP_INDEX):
        query["FilterExpression"] = "#s = :s"
        query["ExpressionAttributeNames"]["#s"] = "status"
        values[":s"] = {"S": status}
    found, last = [], start_key
    while True:  # DynamoDB limits before it filters: read on until the page is full
        if last:
            query["ExclusiveStartKey"] = last
        query["Limit"] = limit - len(found)
        page = _db().query(**query)
        found += [items.plain(item) for item in page.get("Items", [])]
        last = page.get("LastEvaluatedKey")
        if not last or len(found) >= limit:
            return found, last


def with_running_scan(since: str) -> list[str]:
    """The ids of the incidents opened `since` whose `malware_scan` says RUNNING, whatever their
    status (chalicelib/malware.py): one Query of the time index (it holds whole incidents),
    page by page."""
    query = {"TableName": _table_name(), "IndexName": TIME_INDEX,
             "KeyConditionExpression": "record_type = :incident AND opened_at >= :since",
             "FilterExpression": "malware_scan.#scan_status = :running",
             "ProjectionExpression": "incident_id",
             "ExpressionAttributeNames": {"#scan_status": "status"},
             "ExpressionAttributeValues": {":incident": {"S": "incident"},
                                           ":since": {"S": since}, ":running": {"S": "RUNNING"}}}
    found = []
    for page in _db().get_paginator("query").paginate(**query):
        found += [item["incident_id"]["S"] for item in page.get("Items", [])]
    return found


def release_claim(incident: dict) -> None:
    """Let the instance be claimed again (its incident ended inactive)."""
    _db().update_item(
        TableName=_table_name(),
        Key=_claim_key(incident["account_id"], incident["region"], incident["instance_id"]),
        UpdateExpression="SET active = :no",
        ConditionExpression="incident_id = :id",
        ExpressionAttributeValues={":no": {"BOOL": False}, ":id": {"S": incident["incident_id"]}},
    )


def get(incident_id: str) -> dict | None:
    """The incident with this id, or None."""
    item = _db().get_item(
        TableName=_table_name(), Key={"pk": {"S": incident_id}}, ConsistentRead=True
    ).get("Item")
    return items.plain(item) if item else None


def _serialized(values: dict) -> dict:
    """Plain values as DynamoDB's typed ones (floats as Decimals)."""
    from boto3.dynamodb.types import TypeSerializer

    serializer = TypeSerializer()
    return {key: serializer.serialize(items.storable(value)) for key, value in values.items()}


def _item(incident: dict) -> dict:
    item = {**incident, "pk": incident["incident_id"], "record_type": "incident",
            "instance_key": instance_key(incident["account_id"], incident["region"],
                                         incident["instance_id"])}
    return _serialized({key: value for key, value in item.items() if value is not None})


def _update(incident_id: str, expression: str, values: dict, names=None,
            condition: str = "attribute_exists(pk)") -> dict:
    response = _db().update_item(
        TableName=_table_name(),
        Key={"pk": {"S": incident_id}},
        UpdateExpression=expression,
        ConditionExpression=condition,
        ExpressionAttributeValues=_serialized(values),
        **({"ExpressionAttributeNames": names} if names else {}),
        ReturnValues="ALL_NEW",
    )
    return items.plain(response["Attributes"])
