"""The HTTP API's contract over real HTTP: codes, error shape, every error naming the value."""

import pytest

from tests.helpers import api, finish, make_victim

VALID = "i-0123456789abcdef0"


@pytest.mark.parametrize("body,code,named", [
    ({}, "InvalidInstanceId", "None"),
    ({"instance_id": "i-XYZ"}, "InvalidInstanceId", "'i-XYZ'"),
    ({"instance_id": "i-0123456789abcdef"}, "InvalidInstanceId", "'i-0123456789abcdef'"),
    ({"instance_id": 12345678}, "InvalidInstanceId", "12345678"),
    ({"instance_id": VALID, "region": "mars-north-1"}, "InvalidRegion", "'mars-north-1'"),
    ({"instance_id": VALID, "reason": "x" * 1025}, "InvalidReason", "'xxxx"),
    ({"instance_id": VALID, "reason": ["list"]}, "InvalidReason", "['list']"),
    ({"instance_id": VALID, "force": "true"}, "InvalidField", "'true'"),
    ({"instance_id": VALID, "force": 1}, "InvalidField", "force 1"),
    ({"instance_id": VALID, "dry_run": "yes"}, "InvalidField", "'yes'"),
    ({"instance_id": VALID, "account_id": "12345"}, "InvalidAccountId", "'12345'"),
    ({"instance_id": VALID, "extra": 1, "more": 2}, "UnknownField", "'extra', 'more'"),
])
def test_invalid_quarantine_requests_get_400_naming_the_value(stack, body, code, named):
    status, answer = api(stack, "POST", "/quarantine", body)
    assert status == 400
    assert answer["error"] == code and named in answer["message"]


@pytest.mark.parametrize("raw,code", [
    (b"{not json", "InvalidJson"), (b"[1, 2]", "InvalidBody"), (b'"text"', "InvalidBody"),
    (b"\xff\xfe", "InvalidJson"),
])
def test_bodies_that_are_not_json_objects_get_400(stack, raw, code):
    status, answer = api(stack, "POST", "/quarantine", raw=raw)
    assert (status, answer["error"]) == (400, code)


def test_body_over_64_kib_gets_413(stack):
    status, answer = api(stack, "POST", "/quarantine",
                         {"instance_id": VALID, "reason": "x" * 70_000})
    assert (status, answer["error"]) == (413, "BodyTooLarge")


def test_another_account_gets_403(stack):
    status, answer = api(stack, "POST", "/quarantine",
                         {"instance_id": VALID, "account_id": "210987654321"})
    assert status == 403 and answer["error"] == "AccountNotAllowed"
    assert "210987654321" in answer["message"]


def test_missing_instance_gets_404(stack):
    status, answer = api(stack, "POST", "/quarantine", {"instance_id": VALID})
    assert status == 404 and VALID in answer["message"]


def test_exempt_instance_needs_force(stack):
    stack.configure(TRUST_EXEMPT_TAG="true")  # the tag is trusted: the site protects the key
    victim = make_victim(stack, interfaces=1, volumes=1, tags={"QuarantineExempt": "true"})
    status, answer = api(stack, "POST", "/quarantine", {"instance_id": victim["instance_id"]})
    assert status == 409 and answer["error"] == "InstanceExempt"

    status, answer = api(stack, "POST", "/quarantine",
                         {"instance_id": victim["instance_id"], "force": True})
    assert status == 202
    record, _ = finish(stack, answer)
    assert record["status"] == "CONTAINED" and record["force"] is True


def test_terminated_instance_gets_409(stack):
    victim = make_victim(stack, interfaces=1, volumes=1)
    stack.client("ec2").terminate_instances(InstanceIds=[victim["instance_id"]])
    status, answer = api(stack, "POST", "/quarantine", {"instance_id": victim["instance_id"]})
    assert status == 409 and answer["error"] == "InstanceTerminated"


def test_instance_under_an_active_incident_gets_200_with_that_incident(stack):
    victim = make_victim(stack, interfaces=1, volumes=1)
    first_status, first = api(stack, "POST", "/quarantine", {"instance_id": victim["instance_id"]})
    second_status, second = api(stack, "POST", "/quarantine", {"instance_id": victim["instance_id"]})
    assert (first_status, second_status) == (202, 200)
    assert second["incident_id"] == first["incident_id"]
    finish(stack, first)


@pytest.mark.parametrize("incident_id,status,code", [
    ("inc-0123456789ab", 404, "IncidentNotFound"),
    ("inc-XYZ", 400, "InvalidIncidentId"),
    ("..%2F..%2Fetc", 400, "InvalidIncidentId"),
])
def test_unknown_or_invalid_incident_ids(stack, incident_id, status, code):
    got, answer = api(stack, "GET", f"/incidents/{incident_id}")
    assert (got, answer["error"]) == (status, code)


def test_aws_failure_is_a_503_not_a_500(stack):
    stack.faults.arm("dynamodb", "GetItem", "InternalServerError", count=10, status=500)
    status, answer = api(stack, "GET", "/incidents/inc-0123456789ab")
    assert status == 503 and answer["error"] == "ServiceUnavailable"
