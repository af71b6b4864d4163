"""Sizes: whatever a finding holds and however large the instance, every payload stays under
AWS's limits (moto enforces none of them), the report is delivered and the incident stays
readable. A 60 KB finding — huge title and description, big nested `service` blobs, characters
that JSON escapes to 6 or 12 bytes — on an instance with 25 interfaces, 40 volumes and the
largest tags EC2 allows, pasted through POST /quarantine and delivered through EventBridge.

Later issues extend this module: each new payload gets its limit checked here.
"""

import json

import pytest

from local import drive
from tests.helpers import (
    api,
    deliver_finding,
    finish,
    guardduty_event,
    history,
    make_victim,
    messages,
    subscribe_queue,
)

KB = 1024
STATE_LIMIT = 256 * KB  # Step Functions: an execution's input, each state's input and output
SNS_LIMIT = 256 * KB  # SNS: one message
ITEM_LIMIT = 400 * KB  # DynamoDB: one item
SUBJECT_LIMIT = 100  # SNS: fewer than 100 printable ASCII characters
INTERFACES, VOLUMES = 25, 40
# As many tags as EC2 allows (50, with the product's own), each as long as allowed (keys 128
# characters, values 256), in characters JSON escapes to 12 bytes.
# A Name and an Environment tag among them: the notices show those.
LARGEST_TAGS = {"Name": "🦠" * 256, "Environment": "🦠" * 256,
                **{f"{n:02d}" + "🦠" * 126: "🦠" * 256 for n in range(44)}}


def huge_finding(instance_id: str, size: int = 60 * KB) -> dict:
    """The high-severity sample pointed at `instance_id`, blown up to about `size` bytes."""
    event = guardduty_event(instance_id)
    detail = event["detail"]
    detail["title"] = "🦠" * 2_000  # 8 KB of UTF-8, 24 KB escaped
    detail["description"] = "\u2028\"<" * 2_000
    blob = {f"k{n}": {"nested": ["v" * 40, {"deeper": "🦠" * 10}]} for n in range(200)}
    detail["service"] = {**detail.get("service", {}), "additionalInfo": blob}
    detail["resource"]["instanceDetails"]["tags"] = [
        {"key": f"t{n}", "value": "x" * 200} for n in range(40)]
    detail["service"]["action"] = {"dnsRequestAction": {"domain": "🦠" * 1_000}}
    detail["service"]["evidence"] = {"filler": ""}
    filler = size - len(json.dumps(detail, ensure_ascii=False).encode())
    detail["service"]["evidence"]["filler"] = "f" * max(filler, 0)
    assert size - KB <= len(json.dumps(detail, ensure_ascii=False).encode()) <= size
    return event


def _post(stack, body: dict) -> tuple[int, dict]:
    """POST /quarantine with `body` as UTF-8 JSON (unescaped: it must fit the 64 KiB limit)."""
    raw = json.dumps(body, ensure_ascii=False).encode()
    assert len(raw) < 64 * KB
    return api(stack, "POST", "/quarantine", raw=raw)


def _payloads(stack, execution_arn: str) -> list[tuple[str, int]]:
    """(what, UTF-8 size) of the execution's input and every state's and task's input, output
    and parameters, from its history."""
    found = []
    for event in history(stack, execution_arn):
        for key, details in event.items():
            if key.endswith("EventDetails") and isinstance(details, dict):
                found += [(f"{event['type']}.{field}", len(details[field].encode()))
                          for field in ("input", "output", "parameters")
                          if isinstance(details.get(field), str)]
    return found


def _item_size(stack, incident_id: str) -> int:
    """The incident item's size as DynamoDB counts it, bounded above by its JSON."""
    item = stack.client("dynamodb").get_item(TableName=stack.names["INCIDENTS_TABLE"],
                                             Key={"pk": {"S": incident_id}})["Item"]
    return len(json.dumps(item, ensure_ascii=False).encode())


def _assert_under_limits(stack, answer: dict, queue: str, chatbot: str, final_subject: str):
    record, execution = finish(stack, answer, timeout=180)
    assert execution["status"] == "SUCCEEDED", execution
    payloads = _payloads(stack, execution["executionArn"])
    assert payloads and max(size for _, size in payloads) < STATE_LIMIT, max(payloads, key=lambda p: p[1])
    assert len(execution["input"].encode()) < STATE_LIMIT
    sent, published = messages(stack, queue), drive.published(stack)
    assert any(m["Subject"].endswith(final_subject) for m in sent), [m["Subject"] for m in sent]
    for message in sent:  # as SNS counts it: the whole per-protocol message and its attributes
        request = published[message["MessageId"]]
        size = len(request["raw"].encode()) + len(json.dumps(request["attributes"]).encode())
        assert size < SNS_LIMIT // 2, size
        assert len(message["Subject"]) < SUBJECT_LIMIT
        assert all(0x20 <= ord(c) <= 0x7e for c in message["Subject"])
    cards = drive.cards(stack, chatbot)
    assert len(cards) == len(sent) and all(len(json.dumps(c).encode()) < 16 * KB for c in cards)
    assert _item_size(stack, record["incident_id"]) < ITEM_LIMIT
    return record


def _still_readable(stack, record: dict, instance_id: str):
    """No 503 afterwards: the incident, the lists, a further finding on it."""
    status, got = api(stack, "GET", f"/incidents/{record['incident_id']}")
    assert status == 200 and got["incident_id"] == record["incident_id"]
    for path in ("/incidents", f"/incidents?instance_id={instance_id}"):
        status, listed = api(stack, "GET", path)
        assert status == 200 and record["incident_id"] in [i["incident_id"]
                                                           for i in listed["incidents"]]


@pytest.fixture
def big_victim(stack):
    victim = make_victim(stack, interfaces=INTERFACES, volumes=VOLUMES,
                         instance_type="p4d.24xlarge",  # a type that takes 25 interfaces
                         tags=LARGEST_TAGS)
    described = stack.client("ec2").describe_instances(InstanceIds=[victim["instance_id"]])
    instance = described["Reservations"][0]["Instances"][0]
    assert len(instance["NetworkInterfaces"]) == INTERFACES
    assert len(instance["BlockDeviceMappings"]) == VOLUMES
    return victim


def test_a_60_kb_finding_pasted_on_a_large_instance_stays_under_every_limit(stack, big_victim):
    queue, chatbot = subscribe_queue(stack), drive.subscribe_chatbot(stack)
    instance_id = big_victim["instance_id"]
    body = {"instance_id": instance_id, "reason": "🦠" * 500,
            "finding": huge_finding(instance_id)}
    status, answer = _post(stack, body)
    assert status == 202, answer

    record = _assert_under_limits(stack, answer, queue, chatbot, ": contained")
    assert record["status"] == "CONTAINED", record["errors"]
    assert len(record["finding"]["title"]) == 256
    _still_readable(stack, record, instance_id)
    status, again = _post(stack, body)
    assert (status, again["incident_id"]) == (200, record["incident_id"])
    _still_readable(stack, record, instance_id)


def test_a_60_kb_finding_through_eventbridge_stays_under_every_limit(stack, big_victim):
    queue, chatbot = subscribe_queue(stack), drive.subscribe_chatbot(stack)
    instance_id = big_victim["instance_id"]
    decided = deliver_finding(stack, huge_finding(instance_id))
    assert decided["decision"] == "acted", decided

    record = _assert_under_limits(stack, decided, queue, chatbot, ": contained")
    assert record["status"] == "CONTAINED", record["errors"]
    _still_readable(stack, record, instance_id)


def test_a_dry_run_of_a_60_kb_finding_plans_under_every_limit(stack, big_victim):
    queue, chatbot = subscribe_queue(stack), drive.subscribe_chatbot(stack)
    instance_id = big_victim["instance_id"]
    status, answer = _post(stack, {"instance_id": instance_id, "dry_run": True,
                                   "finding": huge_finding(instance_id)})
    assert status == 202, answer

    record = _assert_under_limits(stack, answer, queue, chatbot, "changes planned")
    assert record["status"] == "DRY_RUN"
    _still_readable(stack, record, instance_id)
