"""`GET /incidents?status=FAILED&limit=100` through the local API at 0, 1,000 and 10,000
incidents, one in a thousand of them failed (the rest released): its requests (DynamoDB queries
among them) and time. The largest page (100) keeps the run short where the listing reads the
whole table (each of moto's queries reads every item of the index: at the default 25 there would
be 4 times the queries, each as slow). The incidents are written straight into the table, 25 to a BatchWriteItem, in the table's
own item shape (`chalicelib.incidents._item`), newest first one second apart.
"""

import datetime
import time
from dataclasses import dataclass

from chalicelib import incidents

from bench.further import api_get

RARE = "FAILED"
LIMIT = 100
EVERY = 1000  # one incident in EVERY has the RARE status
BATCH = 25  # DynamoDB's BatchWriteItem at most
START = datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.utc)


@dataclass
class Listing:
    incidents: int
    found: int  # incidents on the first page
    requests: int  # every AWS request the API's function sent
    queries: int  # of which DynamoDB queries
    seconds: float  # the HTTP request, answered


def incident(n: int) -> dict:
    """The nth incident seeded: released, or RARE one time in EVERY."""
    opened = (START - datetime.timedelta(seconds=n)).strftime("%Y-%m-%dT%H:%M:%S.000000Z")
    return {"incident_id": incidents.new_id(), "status": RARE if n % EVERY == EVERY - 1 else
            "RELEASED", "instance_id": f"i-{n:017x}", "account_id": "123456789012",
            "home_account": "123456789012", "region": "us-east-1", "opened_at": opened,
            "updated_at": opened, "source": "guardduty", "reason": "seeded by bench/listing.py"}


def seed(stack, first: int, count: int) -> None:
    dynamodb, table = stack.client("dynamodb"), stack.names["INCIDENTS_TABLE"]
    for start in range(first, first + count, BATCH):
        batch = [{"PutRequest": {"Item": incidents._item(incident(n))}}
                 for n in range(start, min(start + BATCH, first + count))]
        pending = {table: batch}
        while pending:
            pending = dynamodb.batch_write_item(RequestItems=pending).get("UnprocessedItems")


def run(stack, clock, sizes=(0, 1000, 10000)) -> list[Listing]:
    stack.reset()
    path = f"/incidents?status={RARE}&limit={LIMIT}"
    api_get(stack, path)  # the API's function warm: its clients made
    seeded, listings = 0, []
    for size in sorted(sizes):
        seed(stack, seeded, size - seeded)
        seeded = size
        clock.reset()
        started = time.monotonic()
        status, body = api_get(stack, path, timeout=600)
        seconds = time.monotonic() - started
        if status != 200:
            raise RuntimeError(f"GET {path} answered {status}: {body}")
        flights = clock.flights()
        listings.append(Listing(size, len(body["incidents"]), len(flights),
                                sum(f.name == "dynamodb:Query" for f in flights), seconds))
    return listings
