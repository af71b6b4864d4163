"""Cost that stays flat (issue 16): each further finding is an item of its own, so recording one
writes the same small items at the first and the two-thousandth, and none is lost past the 20
an incident item used to keep; listing by status reads one Query per page however rare the
status. Sizes and request counts are asserted, never times."""

import json
import urllib.parse

import pytest

from chalicelib import incidents
from local import recording
from tests.helpers import api, deliver_finding, finish, guardduty_event, make_victim

KB = 1024
FURTHER = 2_000  # past the old bound (20 kept) and past where a growing item would fail


def _finding(n: int) -> dict:
    return {"id": f"{n:032x}", "type": "Backdoor:EC2/C&CActivity.B", "severity": 8,
            "title": "EC2 instance is querying a command and control server", "source":
            "guardduty", "reason": "", "at": incidents.now()}


def _item_size(stack, pk: str) -> int:
    """An item's size as DynamoDB counts it, bounded above by its JSON."""
    item = stack.client("dynamodb").get_item(TableName=stack.names["INCIDENTS_TABLE"],
                                             Key={"pk": {"S": pk}})["Item"]
    return len(json.dumps(item, ensure_ascii=False).encode())


def _recorded(stack, record):
    """The DynamoDB requests `record()` makes, as moto's recorder saw them."""
    recording.start(stack)
    try:
        record()
    finally:
        recording.stop(stack)
    return [call for call in recording.calls(stack) if call.service == "dynamodb"]


def _written(calls) -> tuple[int, int]:
    """(size of the finding item put, size of all the recording's requests)."""
    (put,) = [json.loads(c.body) for c in calls if c.action == "PutItem"]
    return len(json.dumps(put["Item"])), sum(len(c.body) for c in calls)


def _pages(stack, path: str, limit: int) -> list[dict]:
    """Every page of a listing, following next_token."""
    pages, token = [], None
    while True:
        query = {"limit": str(limit), **({"next_token": token} if token else {})}
        status, page = api(stack, "GET", f"{path}?{urllib.parse.urlencode(query)}")
        assert status == 200, page
        pages.append(page)
        token = page.get("next_token")
        if not token:
            return pages


@pytest.fixture
def contained(stack):
    """A real incident, contained by the whole pipeline: its item as large as one gets."""
    victim = make_victim(stack, interfaces=2, volumes=2)
    record, _ = finish(stack, deliver_finding(stack, guardduty_event(victim["instance_id"])))
    assert record["status"] == "CONTAINED" and record["findings_count"] == 0
    return record


def test_the_first_and_the_2000th_further_finding_cost_the_same_and_none_is_lost(stack,
                                                                                  contained):
    incident_id = contained["incident_id"]
    sizes, transactions = {}, {}
    for n in range(1, FURTHER + 1):
        if n in (1, 6, FURTHER):
            calls = _recorded(stack, lambda: incidents.record_finding(incident_id, _finding(n)))
            # the counter, then the finding's item beside its slot among the latest few
            assert calls[0].action == "UpdateItem" and sorted(c.action for c in calls[1:]) == [
                "PutItem", "UpdateItem"]
            sizes[n], transactions[n] = _written(calls)
            if n == 6:
                incident_after_6 = _item_size(stack, incident_id)
        else:
            incidents.record_finding(incident_id, _finding(n))

    assert abs(sizes[FURTHER] - sizes[1]) <= 8  # the finding item: only its number's digits
    assert abs(transactions[FURTHER] - transactions[6]) <= 16  # once the latest five are full
    incident_after_all = _item_size(stack, incident_id)
    # only the digits of its numbers grow: the count and the latest five's
    assert incident_after_all - incident_after_6 <= 24 and incident_after_all < 16 * KB
    assert _item_size(stack, f"finding#{incident_id}#{FURTHER:010d}") < 1 * KB

    status, shown = api(stack, "GET", f"/incidents/{incident_id}")
    assert status == 200 and shown["findings_count"] == FURTHER and "findings" not in shown
    assert [f["id"] for f in shown["latest_findings"]] == [
        f"{n:032x}" for n in range(FURTHER - 4, FURTHER + 1)]

    pages = _pages(stack, f"/incidents/{incident_id}/findings", 100)
    assert len(pages) == FURTHER // 100
    listed = [f for page in pages for f in page["findings"]]
    assert [f["sequence"] for f in listed] == list(range(FURTHER, 0, -1))  # newest first
    assert [f["id"] for f in listed] == [f"{n:032x}" for n in range(FURTHER, 0, -1)]
    assert all(page["findings_count"] == FURTHER for page in pages)


def _legacy_incident(stack, incident_id: str, status: str, kept: int, opened_at: str) -> None:
    """An incident item as written before further findings became items: all in `findings`."""
    item = {"pk": incident_id, "incident_id": incident_id, "record_type": "incident",
            "status": status, "instance_id": "i-0123456789abcdef0", "account_id": stack.account,
            "region": stack.region, "opened_at": opened_at, "updated_at": opened_at,
            "instance_key": incidents.instance_key(stack.account, stack.region,
                                                   "i-0123456789abcdef0"),
            "source": "guardduty", "reason": "", "findings_not_kept": 3,
            "findings": [_finding(n) for n in range(1, kept + 1)]}
    stack.client("dynamodb").put_item(TableName=stack.names["INCIDENTS_TABLE"],
                                      Item=incidents._serialized(item))


def test_an_incident_of_the_old_shape_is_read_and_recorded_on_as_before(stack):
    legacy = "inc-00000000000a"
    _legacy_incident(stack, legacy, "CONTAINED", 20, "2026-01-01T00:00:00.000000Z")

    status, shown = api(stack, "GET", f"/incidents/{legacy}")
    assert status == 200 and shown["findings_count"] == 20 and "findings" not in shown
    assert [f["id"] for f in shown["latest_findings"]] == [f"{n:032x}" for n in range(16, 21)]
    listed = [f for page in _pages(stack, f"/incidents/{legacy}/findings", 15)
              for f in page["findings"]]
    assert [f["sequence"] for f in listed] == list(range(20, 0, -1))

    incidents.record_finding(legacy, _finding(21))  # numbered after the list, which stays

    stored = incidents.get(legacy)
    assert len(stored["findings"]) == 20
    assert incidents.shown(stored)["findings_count"] == 21
    assert [f["id"] for f in incidents.shown(stored)["latest_findings"]] == [
        f"{n:032x}" for n in range(17, 22)]
    listed = [f for page in _pages(stack, f"/incidents/{legacy}/findings", 15)
              for f in page["findings"]]
    assert [f["id"] for f in listed] == [f"{n:032x}" for n in range(21, 0, -1)]
    status, listing = api(stack, "GET", "/incidents?status=CONTAINED")
    assert status == 200 and [i["incident_id"] for i in listing["incidents"]] == [legacy]


def _incidents(stack, count: int, rare_at: int) -> None:
    """`count` incidents, CONTAINED but the one at `rare_at` (FAILED), one a second."""
    for n in range(count):
        _legacy_incident(stack, f"inc-{n:012x}", "FAILED" if n == rare_at else "CONTAINED", 0,
                         f"2026-01-01T00:{n // 60:02d}:{n % 60:02d}.000000Z")


def _queries(stack, path: str) -> tuple[dict, int]:
    answers = []
    calls = _recorded(stack, lambda: answers.append(api(stack, "GET", path)))
    (status, body), = answers
    assert status == 200, body
    return body, sum(1 for c in calls if c.action == "Query")


def test_a_rare_status_is_listed_with_one_query_per_page(stack):
    _incidents(stack, 300, rare_at=7)

    rare, queries = _queries(stack, "/incidents?status=FAILED&limit=25")
    assert [i["incident_id"] for i in rare["incidents"]] == [f"inc-{7:012x}"]
    assert "next_token" not in rare and queries == 1  # filtering pages after reading: 13

    first, queries = _queries(stack, "/incidents?status=CONTAINED&limit=100")
    assert len(first["incidents"]) == 100 and queries == 1
    token = urllib.parse.quote(first["next_token"])
    second, queries = _queries(stack, f"/incidents?status=CONTAINED&limit=100&next_token={token}")
    assert queries == 1
    opened = [i["opened_at"] for i in first["incidents"] + second["incidents"]]
    assert opened == sorted(opened, reverse=True) and len(set(opened)) == 200
    assert set(first["incidents"][0]) == set(incidents.LISTED_FIELDS)
    assert {i["status"] for i in first["incidents"] + second["incidents"]} == {"CONTAINED"}

    since, queries = _queries(stack, "/incidents?status=CONTAINED&since=2026-01-01T00:04:50")
    assert len(since["incidents"]) == 10 and queries == 1


def test_an_instances_incidents_of_one_status_are_its_own(stack):
    victim = make_victim(stack, interfaces=1, volumes=1)["instance_id"]
    _incidents(stack, 30, rare_at=3)  # another instance's, FAILED among them
    status, opened = api(stack, "POST", "/quarantine", {"instance_id": victim})
    assert status == 202
    finish(stack, opened)

    mine, _ = _queries(stack, f"/incidents?instance_id={victim}&status=CONTAINED")
    assert [i["incident_id"] for i in mine["incidents"]] == [opened["incident_id"]]
    none, _ = _queries(stack, f"/incidents?instance_id={victim}&status=FAILED")
    assert none["incidents"] == []


@pytest.mark.parametrize("query,code", [
    ("limit=0", "InvalidLimit"), ("limit=101", "InvalidLimit"), ("limit=abc", "InvalidLimit"),
    ("limit=%205", "InvalidLimit"), ("limit=5%0A", "InvalidLimit"),
    ("next_token=bm90IGEgdG9rZW4", "InvalidNextToken"), ("next_token=%25%25", "InvalidNextToken"),
    ("status=OPEN", "UnknownParameter"), ("limit=5&limit=6", "DuplicateParameter"),
])
def test_a_bad_findings_query_is_a_400_naming_it(stack, contained, query, code):
    status, answer = api(stack, "GET", f"/incidents/{contained['incident_id']}/findings?{query}")
    assert (status, answer["error"]) == (400, code), answer


def test_a_findings_token_continues_only_its_own_listing(stack, contained):
    for n in range(1, 4):
        incidents.record_finding(contained["incident_id"], _finding(n))
    other = "inc-00000000000b"
    _legacy_incident(stack, other, "CONTAINED", 3, "2026-01-01T00:00:00.000000Z")
    status, page = api(stack, "GET", f"/incidents/{contained['incident_id']}/findings?limit=1")
    assert status == 200 and [f["sequence"] for f in page["findings"]] == [3]
    token = urllib.parse.quote(page["next_token"])
    status, listing = api(stack, "GET", "/incidents?limit=1")
    assert status == 200 and listing.get("next_token")

    for path in (f"/incidents/{other}/findings?next_token={token}",  # another incident's
                 f"/incidents/{contained['incident_id']}/findings?next_token="
                 f"{urllib.parse.quote(listing['next_token'])}",  # the incidents listing's
                 f"/incidents?next_token={token}"):  # a findings token for the incidents
        status, answer = api(stack, "GET", path)
        assert (status, answer["error"]) == (400, "InvalidNextToken"), path
    status, rest = api(stack, "GET",
                       f"/incidents/{contained['incident_id']}/findings?next_token={token}")
    assert status == 200 and [f["sequence"] for f in rest["findings"]] == [2, 1]


@pytest.mark.parametrize("incident_id,status,code", [
    ("inc-XYZ", 400, "InvalidIncidentId"), ("inc-0123456789ab", 404, "IncidentNotFound")])
def test_findings_of_a_bad_or_unknown_incident(stack, incident_id, status, code):
    got, answer = api(stack, "GET", f"/incidents/{incident_id}/findings")
    assert (got, answer["error"]) == (status, code)


def test_findings_arriving_at_once_are_each_numbered_once_and_none_is_lost(stack, contained):
    """Fifty findings on one incident at the same moment: the counter numbers each, none is
    retried away or refused, and the latest few are the five highest numbers."""
    import threading

    incident_id = contained["incident_id"]
    failures = []

    def record(n):
        try:
            incidents.record_finding(incident_id, _finding(n))
        except Exception as error:  # pragma: no cover - what the test must not see
            failures.append(error)

    threads = [threading.Thread(target=record, args=(n,)) for n in range(1, 51)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert failures == []
    listed = [f for page in _pages(stack, f"/incidents/{incident_id}/findings", 100)
              for f in page["findings"]]
    assert [f["sequence"] for f in listed] == list(range(50, 0, -1))
    assert sorted(f["id"] for f in listed) == sorted(f"{n:032x}" for n in range(1, 51))
    shown = incidents.shown(incidents.get(incident_id))
    assert shown["findings_count"] == 50 and len(shown["latest_findings"]) == 5
