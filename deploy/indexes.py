"""The incidents table's global secondary indexes, brought to the app's one at a time.

CloudFormation (DynamoDB) creates or deletes one global secondary index per table update (more
fails the update), and returns before a new index is backfilled: it is unusable until ACTIVE.
So a deployment first steps the table alone toward the app's indexes, one update per index
added or deleted (an index whose keys or projection changed is deleted, then added), waiting
for each to be ACTIVE; the rest of the stack follows in one more update, and the app last.
"""

import time

from chalicelib import incidents
from deploy.session import DeployError, client, rehearsal


def _shape(index: dict) -> tuple:
    projection = index["Projection"]
    return (index["IndexName"], tuple((k["AttributeName"], k["KeyType"])
                                      for k in index["KeySchema"]),
            projection["ProjectionType"], tuple(sorted(projection.get("NonKeyAttributes", []))))


def live(table: str) -> list[dict] | None:
    """The table's global secondary indexes as DynamoDB describes them (None: no table)."""
    from chalicelib import aws

    described = aws.tolerate("ResourceNotFoundException", client("dynamodb").describe_table,
                             TableName=table)
    if described is None:
        return None
    return [{key: index[key] for key in ("IndexName", "KeySchema", "Projection")}
            for index in described["Table"].get("GlobalSecondaryIndexes", [])]


def next_step(current: list[dict], wanted=incidents.GLOBAL_INDEXES) -> list[dict] | None:
    """The indexes of the next table update toward `wanted` (one deleted or one added), or None
    when the table has them already."""
    shapes = {_shape(index) for index in wanted}
    for index in current:
        if _shape(index) not in shapes:
            return [kept for kept in current if kept is not index]
    have = {_shape(index) for index in current}
    for index in wanted:
        if _shape(index) not in have:
            return [*current, index]
    return None


def wait_active(table: str, timeout: float = 3600) -> None:
    """Until the table and every index of it are ACTIVE (a new index is being backfilled)."""
    delay, deadline = (0.2 if rehearsal() else 10), time.monotonic() + timeout
    while True:
        described = client("dynamodb").describe_table(TableName=table)["Table"]
        pending = [index["IndexName"] for index in described.get("GlobalSecondaryIndexes", [])
                   if index.get("IndexStatus", "ACTIVE") != "ACTIVE"]
        if described["TableStatus"] == "ACTIVE" and not pending:
            return
        if time.monotonic() > deadline:
            raise DeployError(f"table {table} is still {described['TableStatus']} (indexes not "
                              f"active: {', '.join(pending) or 'none'}) after {timeout:.0f} s; "
                              "rerun the command once they are")
        time.sleep(delay)
