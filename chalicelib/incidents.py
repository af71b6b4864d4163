"""The incidents table: one item per incident, found by id, listed per instance or overall.

The table definition lives here, once, for the embedded AWS and for deployment.
"""

import re

from chalicelib import aws, bindings, items, settings

INCIDENT_ID = re.compile(r"\Ainc-[0-9a-f]{12}\Z")  # \Z: $ would take a trailing "\n"
INSTANCE_INDEX = "instance-index"  # instance_key (account/region/instance) + opened_at
TIME_INDEX = "time-index"  # record_type + opened_at: every incident, newest first

TABLE_DEFINITION = {
    "AttributeDefinitions": [
        {"AttributeName": "pk", "AttributeType": "S"},
        {"AttributeName": "instance_key", "AttributeType": "S"},
        {"AttributeName": "record_type", "AttributeType": "S"},
        {"AttributeName": "opened_at", "AttributeType": "S"},
    ],
    "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}],
    "GlobalSecondaryIndexes": [
        {
            "IndexName": INSTANCE_INDEX,
            "KeySchema": [
                {"AttributeName": "instance_key", "KeyType": "HASH"},
                {"AttributeName": "opened_at", "KeyType": "RANGE"},
            ],
            "Projection": {"ProjectionType": "ALL"},
        },
        {
            "IndexName": TIME_INDEX,
            "KeySchema": [
                {"AttributeName": "record_type", "KeyType": "HASH"},
                {"AttributeName": "opened_at", "KeyType": "RANGE"},
            ],
            "Projection": {"ProjectionType": "ALL"},
        },
    ],
    "BillingMode": "PAY_PER_REQUEST",
}


# IAM actions, declared next to the code that calls them (deploy/permissions.py collects them).
GET_PERMISSIONS = ("dynamodb:GetItem",)  # get()
READ_PERMISSIONS = (*GET_PERMISSIONS, "dynamodb:Query")  # get(), active_for(), search()
CLAIM_PERMISSIONS = ("dynamodb:PutItem",)  # TransactWriteItems is authorized per item; put()
UPDATE_PERMISSIONS = ("dynamodb:UpdateItem",)


class AlreadyActive(Exception):
    """The instance is under an active incident; carries that incident's id."""

    def __init__(self, incident_id: str):
        super().__init__(incident_id)
        self.incident_id = incident_id


def new_id() -> str:
    import secrets

    return "inc-" + secrets.token_hex(6)


def now() -> str:
    from datetime import datetime, timezone

    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def instance_key(account: str, region: str, instance_id: str) -> str:
    return f"{account}/{region}/{instance_id}"


CLAIM_PREFIX = "claim#"  # the claim item's key: CLAIM_PREFIX + instance_key(...)


def _claim_key(account, region, instance_id) -> dict:
    return {"pk": {"S": CLAIM_PREFIX + instance_key(account, region, instance_id)}}


def _db():
    return aws.client("dynamodb")


def _table_name() -> str:
    return settings.get().incidents_table


def claim(incident: dict) -> None:
    """Write `incident` and make it its instance's active incident, atomically, in one request.

    Raises AlreadyActive (with the active incident's id) when the instance has one: the claim
    item of an instance points at its incident and is free only while that incident is inactive.
    """
    import random
    import time

    for attempt in range(CLAIM_ATTEMPTS):
        try:
            return _claim_once(incident)
        except _Conflict:
            # Concurrent transactions on one claim item: DynamoDB cancels all but one with
            # TransactionConflict. Try again: the next attempt sees the winner's claim.
            time.sleep(random.uniform(0, 0.05 * 2 ** attempt))
    return _claim_once(incident)


CLAIM_ATTEMPTS = 5


class _Conflict(Exception):
    pass


def _claim_once(incident: dict) -> None:
    from botocore.exceptions import ClientError

    key = _claim_key(incident["account_id"], incident["region"], incident["instance_id"])
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
        ])
    except ClientError as error:
        reasons = error.response.get("CancellationReasons") or []
        codes = [reason.get("Code") for reason in reasons]
        if codes and codes[0] == "ConditionalCheckFailed":
            raise AlreadyActive(reasons[0]["Item"]["incident_id"]["S"]) from None
        if "TransactionConflict" in codes:
            raise _Conflict() from None
        raise


def put(incident: dict) -> None:
    """Write an incident that claims nothing (a dry run: it never blocks a real incident)."""
    _db().put_item(TableName=_table_name(), Item=_item(incident),
                   ConditionExpression="attribute_not_exists(pk)")


MAX_FURTHER_FINDINGS = 20  # kept on the item (400 KB at most); later ones are only counted


def record_finding(incident_id: str, finding: dict) -> dict:
    """Append a further finding to an active incident (past MAX_FURTHER_FINDINGS, count it in
    `findings_not_kept`); returns the incident as it now stands."""
    from botocore.exceptions import ClientError

    try:
        return _update(
            incident_id,
            "SET findings = list_append(if_not_exists(findings, :empty), :finding), "
            "updated_at = :now",
            {":finding": [finding], ":empty": [], ":now": now(), ":max": MAX_FURTHER_FINDINGS},
            condition="attribute_exists(pk) AND (attribute_not_exists(findings) OR "
                      "size(findings) < :max)")
    except ClientError as error:
        if aws.error_code(error) != "ConditionalCheckFailedException":
            raise
    return _update(incident_id, "SET updated_at = :now ADD findings_not_kept :one",
                   {":now": now(), ":one": 1})


def record_step(incident_id: str, step: str, started: str, outcome: str, changes=(), errors=(),
                fields: dict | None = None) -> dict:
    """Add a step to the incident's timeline with the changes (sealed together: release
    verifies them) and errors it brings, and set `fields` (dotted names set nested attributes); returns
    the incident as it now stands."""
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
    for n, (name, value) in enumerate(sorted((fields or {}).items())):
        parts = name.split(".")  # placeholders for every part: "status" is a reserved word
        names.update({f"#f{n}_{i}": part for i, part in enumerate(parts)})
        expression += ", " + ".".join(f"#f{n}_{i}" for i in range(len(parts))) + f" = :f{n}"
        values[f":f{n}"] = value
    return _update(incident_id, expression, values, names)


def active_for(account: str, region: str, instance_id: str) -> str | None:
    """The id of the instance's active incident, or None."""
    item = _db().get_item(TableName=_table_name(), Key=_claim_key(account, region, instance_id),
                          ConsistentRead=True).get("Item")
    if item and item["active"]["BOOL"]:
        return item["incident_id"]["S"]
    return None


STATUSES = ("OPEN", "CONTAINED", "PARTIAL", "FAILED", "RELEASED", "DRY_RUN")
RELEASABLE = ("CONTAINED", "PARTIAL")  # what release undoes; these and OPEN hold the instance
# An incident's final status in words: its report and its timeline's last step say it so.
OUTCOMES = {"CONTAINED": "contained", "PARTIAL": "partially contained", "FAILED": "failed"}


def search(instance_key_value: str | None, status: str | None, since: str | None, limit: int,
           start_key: dict | None) -> tuple[list[dict], dict | None]:
    """Incidents newest first (of one instance, or all), filtered; (page, key of the next)."""
    if instance_key_value:
        index, key_name, key_value = INSTANCE_INDEX, "instance_key", instance_key_value
    else:
        index, key_name, key_value = TIME_INDEX, "record_type", "incident"
    condition = "#k = :k" + (" AND opened_at >= :since" if since else "")
    values = {":k": {"S": key_value}}
    if since:
        values[":since"] = {"S": since}
    query = {"TableName": _table_name(), "IndexName": index, "KeyConditionExpression": condition,
             "ExpressionAttributeNames": {"#k": key_name}, "ExpressionAttributeValues": values,
             "ScanIndexForward": False}
    if status:
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


def _item(incident: dict) -> dict:
    from boto3.dynamodb.types import TypeSerializer

    item = {**incident, "pk": incident["incident_id"], "record_type": "incident",
            "instance_key": instance_key(incident["account_id"], incident["region"],
                                         incident["instance_id"])}
    serializer = TypeSerializer()
    return {key: serializer.serialize(items.storable(value)) for key, value in item.items()
            if value is not None}


def _update(incident_id: str, expression: str, values: dict, names=None,
            condition: str = "attribute_exists(pk)") -> dict:
    from boto3.dynamodb.types import TypeSerializer

    serializer = TypeSerializer()
    response = _db().update_item(
        TableName=_table_name(),
        Key={"pk": {"S": incident_id}},
        UpdateExpression=expression,
        ConditionExpression=condition,
        ExpressionAttributeValues={k: serializer.serialize(items.storable(v))
                                   for k, v in values.items()},
        **({"ExpressionAttributeNames": names} if names else {}),
        ReturnValues="ALL_NEW",
    )
    return items.plain(response["Attributes"])
