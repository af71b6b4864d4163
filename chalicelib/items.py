"""Incident records as DynamoDB stores them, and back: floats as Decimals, no table keys."""


def storable(value):
    """Floats become Decimals (DynamoDB has no float type)."""
    from decimal import Decimal

    if isinstance(value, float):
        return Decimal(str(value))
    if isinstance(value, dict):
        return {k: storable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [storable(v) for v in value]
    return value


def plain(item: dict) -> dict:
    """A DynamoDB item as plain JSON values, without the table's own keys."""
    from boto3.dynamodb.types import TypeDeserializer

    deserializer = TypeDeserializer()
    plain = {key: jsonable(deserializer.deserialize(value)) for key, value in item.items()}
    for internal in ("pk", "record_type", "instance_key"):
        plain.pop(internal, None)
    return plain


def jsonable(value):
    from decimal import Decimal

    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, set, tuple)):
        return [jsonable(v) for v in value]
    return value
