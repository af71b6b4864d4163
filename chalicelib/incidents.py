"""The incidents table: one item per incident, found by id, listed per instance or overall.

The table definition lives here, once, for the embedded AWS and for deployment.
"""

import re

from chalicelib import aws, settings

INCIDENT_ID = re.compile(r"^inc-[0-9a-f]{12}$")
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


def _table():
    return aws.client("dynamodb")


def get(incident_id: str) -> dict | None:
    """The incident with this id, or None."""
    item = _table().get_item(
        TableName=settings.get().incidents_table,
        Key={"pk": {"S": incident_id}},
        ConsistentRead=True,
    ).get("Item")
    return _plain(item) if item else None


def _plain(item: dict) -> dict:
    """A DynamoDB item as plain JSON values."""
    from boto3.dynamodb.types import TypeDeserializer

    deserializer = TypeDeserializer()
    return {key: _jsonable(deserializer.deserialize(value)) for key, value in item.items()}


def _jsonable(value):
    from decimal import Decimal

    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, set, tuple)):
        return [_jsonable(v) for v in value]
    return value
