"""What a caller or a finding sends means one thing, or it is refused: duplicate keys, numbers no
service takes, bytes that are not UTF-8, ids that only look like ids, fields without bounds."""

import copy
import json

import pytest

from chalicelib import (findings, http, instances, notices, report, strict_json,
                        workflow)
from chalicelib.outcomes import InvalidInput
from tests.helpers import sample

HOME, REGION = "123456789012", "us-east-1"
VICTIM = "i-0123456789abcdef0"
ARABIC_INDIC = "٠١٢٣٤٥٦٧٨٩"  # \d matches these: int() and re without ASCII take them as digits


def _refusal(raw: bytes) -> InvalidInput:
    with pytest.raises(InvalidInput) as refused:
        http.parse_json_object(raw)
    return refused.value


@pytest.mark.parametrize("raw,key", [
    (b'{"instance_id": "%s", "dry_run": true, "dry_run": false}' % VICTIM.encode(), "dry_run"),
    (b'{"finding": {"detail": {"severity": 8, "severity": 2}}}', "severity"),
    (b'{"finding": {"resource": {"instanceDetails": {"instanceId": "a", "instanceId": "b"}}}}',
     "instanceId"),
    (b'{"a": [{"b": 1}, {"c": 1, "c": 1}]}', "c"),
])
def test_a_duplicate_key_at_any_depth_is_refused_naming_it(raw, key):
    refusal = _refusal(raw)
    assert refusal.code == "DuplicateKey" and repr(key) in refusal.message
    assert http.status_of(refusal) == 400


@pytest.mark.parametrize("number", [b"NaN", b"Infinity", b"-Infinity", b"1e999", b"-1e999",
                                    b"1e200", b"1" * 39, b"-" + b"9" * 5000])
def test_numbers_no_store_takes_are_refused(number):
    refusal = _refusal(b'{"instance_id": "%s", "finding": {"severity": %s}}'
                       % (VICTIM.encode(), number))
    assert refusal.code == "InvalidNumber" and http.status_of(refusal) == 400


def test_numbers_in_range_are_read_as_they_are():
    assert strict_json.loads(b'{"a": 8.5, "b": -12, "c": 1e-999, "d": %s}' % (b"9" * 38)) == {
        "a": 8.5, "b": -12, "c": 0.0, "d": int("9" * 38)}


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-le", "utf-16-be", "utf-32", "utf-32-le"])
def test_only_utf8_bodies_are_read(encoding):
    raw = ('{"instance_id": "%s"}' % VICTIM).encode(encoding)
    assert strict_json.loads(raw.decode(encoding).encode()) == {"instance_id": VICTIM}
    assert _refusal(raw).code == "InvalidJson"


def test_a_byte_order_mark_is_refused():
    assert "byte order mark" in _refusal(b'\xef\xbb\xbf{"instance_id": "x"}').message


def _quarantine(**fields):
    return http.quarantine_request({"instance_id": VICTIM, **fields}, HOME, REGION, "")


@pytest.mark.parametrize("fields,code", [
    ({"instance_id": VICTIM + "\n"}, "InvalidInstanceId"),
    ({"instance_id": "i-" + ARABIC_INDIC[:8]}, "InvalidInstanceId"),
    ({"account_id": "123456789012\n"}, "InvalidAccountId"),
    ({"account_id": ARABIC_INDIC + "12"}, "InvalidAccountId"),
    ({"region": "us-east-1\n"}, "InvalidRegion"),
    ({"region": "us-east-" + ARABIC_INDIC[1]}, "InvalidRegion"),
])
def test_ids_that_only_look_like_ids_are_refused(fields, code):
    with pytest.raises(InvalidInput) as refused:
        _quarantine(**fields)
    assert refused.value.code == code


@pytest.mark.parametrize("incident_id", ["inc-0123456789ab\n", "inc-" + "٠" * 12])
def test_incident_ids_with_a_newline_or_other_digits_are_refused(incident_id):
    with pytest.raises(InvalidInput) as refused:
        http.incident(incident_id, lambda _: pytest.fail("looked up"))
    assert refused.value.code == "InvalidIncidentId"


@pytest.mark.parametrize("query,code", [
    ({"since": "2026-01-01\n"}, "InvalidSince"),
    ({"since": "٢٠٢٦-01-01"}, "InvalidSince"),
    ({"limit": "2\n"}, "InvalidLimit"),
    ({"limit": " 25"}, "InvalidLimit"),
    ({"limit": "2_5"}, "InvalidLimit"),
    ({"limit": "٢٥"}, "InvalidLimit"),
    ({"instance_id": VICTIM + "\n"}, "InvalidInstanceId"),
    ({"account_id": "123456789012\n"}, "InvalidAccountId"),
])
def test_list_parameters_that_only_look_valid_are_refused(query, code):
    with pytest.raises(InvalidInput) as refused:
        http.list_incidents(query, HOME, REGION, lambda *_: pytest.fail("searched"))
    assert refused.value.code == code


def test_a_repeated_list_parameter_is_refused():
    from chalice.app import MultiDict

    with pytest.raises(InvalidInput) as refused:
        http.list_incidents(MultiDict({"status": ["OPEN", "FAILED"]}), HOME, REGION,
                            lambda *_: pytest.fail("searched"))
    assert refused.value.code == "DuplicateParameter" and "'status'" in refused.value.message


def _detail(**fields):
    detail = copy.deepcopy(sample("backdoor-cc-activity-high.json")["detail"])
    detail.update(fields)
    return detail


@pytest.mark.parametrize("fields", [
    {"severity": float("nan")}, {"severity": float("inf")}, {"severity": float("-inf")},
    {"severity": 10 ** 400}, {"severity": 10.5}, {"severity": -1},
    {"id": "f" * 301}, {"id": "ff80\n"}, {"type": "T" * 129}, {"type": "Backdoor:EC2/🦠"},
    {"accountId": "123456789012\n"}, {"region": "us-east-1\n"},
])
def test_a_finding_with_an_unbounded_or_ambiguous_field_is_malformed(fields):
    with pytest.raises(findings.MalformedFinding) as malformed:
        findings.parse(_detail(**fields))
    assert len(str(malformed.value)) < 300  # the reason quotes the value cut short


@pytest.mark.parametrize("fields", [{"severity": float("nan")}, {"severity": 10 ** 400},
                                    {"id": "x" * 60_000}])
def test_the_automatic_path_drops_such_a_finding(fields):
    decided = workflow.handle_finding(_detail(**fields), HOME)
    assert decided["decision"] == "dropped"


def test_a_pasted_finding_with_such_a_field_is_a_400():
    with pytest.raises(InvalidInput) as refused:
        _quarantine(finding=_detail(severity=float("nan")))
    assert refused.value.code == "InvalidFinding"


def test_the_stored_finding_keeps_bounded_fields_only():
    detail = _detail(title="T" * 60_000, description="D" * 60_000,
                     service={"blob": "S" * 60_000})
    detail["resource"]["instanceDetails"]["instanceId"] = VICTIM
    request = findings.parse(detail)
    ref = workflow._finding_ref(request)
    assert set(ref) == {"id", "type", "severity", "title", "resource_type", "resource_role",
                        "sample", "archived", "role", "actor", "remote", "updated_at"}
    assert len(ref["title"]) == 256 and len(ref["remote"]) < 200 and len(ref["updated_at"]) < 200


def test_only_the_tags_containment_reads_are_kept_in_the_pre_incident_state():
    tags = [{"Key": f"k{n}-" + "🦠" * 120, "Value": "v" * 256} for n in range(48)] + [
        {"Key": "aws:autoscaling:groupName", "Value": "web"},
        {"Key": "QuarantineStatus", "Value": "OPEN"}]
    instance = {"State": {"Name": "running"}, "Tags": tags}
    assert instances.pre_state(instance)["tags"] == tags[-2:]


def test_the_report_counts_further_findings_of_either_shape():
    incident = {"incident_id": "inc-0123456789ab", "instance_id": VICTIM, "status": "CONTAINED"}
    flat = {**incident, "findings_count": 2_000, "latest_findings": [{}] * 5}
    legacy = {**incident, "findings": [{}] * 20, "findings_not_kept": 3}  # before they were items
    assert "Further findings recorded on this incident: 2000" in report.final(flat)["text"]
    assert "Further findings recorded on this incident: 23" in report.final(legacy)["text"]


def test_a_report_on_a_huge_incident_stays_under_its_limit_and_says_where_the_rest_is():
    changes = [{"action": "isolate-interfaces", "resource": f"eni-{n:017x}", "attribute": "groups",
                "before": [f"sg-{g:017x}" for g in range(16)], "after": ["sg-1"]}
               for n in range(2000)]
    incident = {"incident_id": "inc-0123456789ab", "instance_id": VICTIM, "status": "CONTAINED",
                "reason": '"🦠' * 1024, "changes": changes, "errors": [],
                "pre_state": {"tags": [{"Key": "k", "Value": "\u2028" * 50_000}]}}
    for notice in (report.final(incident), report.detection(incident), report.plan(incident),
                   report.released(incident, changes, [], [])):
        assert len(notice["text"].encode()) <= notices.TEXT_LIMIT
        assert len(json.dumps(notice["document"]).encode()) <= notices.DOCUMENT_LIMIT
        assert len(json.dumps(notice["card"]).encode()) <= 2 * notices.CARD_LIMIT
        # the whole message, as SNS counts it (bytes, attributes included), far below 256 KB
        sent = notices.message(notice).encode() + json.dumps(notice["attributes"]).encode()
        assert len(sent) < 128 * 1024
    text, document = report.final(incident)["text"], report.final(incident)["document"]
    assert "GET /incidents/inc-0123456789ab has them all" in text
    assert document["changes_not_shown"] == 2000 - len(document["changes"]) > 0
    small = {**incident, "changes": changes[:3], "reason": "r", "pre_state": {}}
    assert report.final(small)["document"]["changes"] == changes[:3]  # a small one travels whole
    assert "changes_not_shown" not in report.final(small)["document"]
