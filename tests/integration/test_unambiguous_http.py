"""The HTTP edge over real HTTP: a body or a query that could mean two things is a 400, and
nothing in AWS changes — no incident, no execution, no change on the instance."""

import base64
import json

import pytest

from local import recording
from tests.helpers import api, finish, guardduty_event, interface_groups, make_victim


def _mutations(stack):
    return [c.name for c in recording.calls(stack)
            if c.service in {"ec2", "autoscaling", "elasticloadbalancing", "iam", "ssm", "states",
                             "dynamodb", "sns"}
            and not (c.action or "").startswith(("Describe", "Get", "List", "Query"))]


def _refused_and_nothing_changed(stack, victim, raw: bytes, code: str, named: str = ""):
    before = {eni: interface_groups(stack, eni) for eni in victim["interfaces"]}
    recording.start(stack)
    status, answer = api(stack, "POST", "/quarantine", raw=raw)
    recording.stop(stack)
    assert (status, answer["error"]) == (400, code), answer
    assert named in answer["message"]
    assert _mutations(stack) == []
    assert {eni: interface_groups(stack, eni) for eni in victim["interfaces"]} == before
    assert stack.client("stepfunctions").list_executions(
        stateMachineArn=stack.names["STATE_MACHINE_ARN"])["executions"] == []


def test_a_duplicate_dry_run_never_runs_a_real_containment(stack):
    victim = make_victim(stack, interfaces=2, volumes=1)
    raw = ('{"instance_id": "%s", "dry_run": true, "dry_run": false}'
           % victim["instance_id"]).encode()
    _refused_and_nothing_changed(stack, victim, raw, "DuplicateKey", "'dry_run'")


def test_a_duplicate_key_inside_a_pasted_finding_is_refused(stack):
    victim = make_victim(stack, interfaces=1, volumes=1)
    detail = json.dumps(guardduty_event(victim["instance_id"])["detail"])
    detail = detail.replace('"severity": 8.0', '"severity": 8.0, "severity": 2.0')
    raw = ('{"instance_id": "%s", "finding": %s}' % (victim["instance_id"], detail)).encode()
    _refused_and_nothing_changed(stack, victim, raw, "DuplicateKey", "'severity'")


@pytest.mark.parametrize("severity", ["NaN", "Infinity", "1e999"])
def test_a_finding_whose_severity_is_no_number_is_a_400_not_a_503(stack, severity):
    victim = make_victim(stack, interfaces=1, volumes=1)
    detail = json.dumps(guardduty_event(victim["instance_id"])["detail"])
    detail = detail.replace('"severity": 8.0', f'"severity": {severity}')
    raw = ('{"instance_id": "%s", "finding": %s}' % (victim["instance_id"], detail)).encode()
    _refused_and_nothing_changed(stack, victim, raw, "InvalidNumber")


@pytest.mark.parametrize("raw,code", [
    ('{"instance_id": "i-0123456789abcdef0"}'.encode("utf-16"), "InvalidJson"),
    ('{"instance_id": "i-0123456789abcdef0"}'.encode("utf-32-le"), "InvalidJson"),
    (b'\xef\xbb\xbf{"instance_id": "i-0123456789abcdef0"}', "InvalidJson"),
    ('{"instance_id": "i-0123456789abcdef0\\n"}'.encode(), "InvalidInstanceId"),
    ('{"instance_id": "i-0123456789abcdef0", "account_id": "١٢٣٤٥٦٧٨٩٠١٢"}'.encode(),
     "InvalidAccountId"),
])
def test_bodies_that_only_look_right_are_refused(stack, raw, code):
    status, answer = api(stack, "POST", "/quarantine", raw=raw)
    assert (status, answer["error"]) == (400, code), answer


# (The path parameter: chalice local passes it undecoded, API Gateway decoded; the unit tests
# give http.incident the decoded values.)
@pytest.mark.parametrize("path,code", [
    ("/incidents?since=2026-01-01%0A", "InvalidSince"),
    ("/incidents?limit=%D9%A2", "InvalidLimit"),
    ("/incidents?status=OPEN&status=FAILED", "DuplicateParameter"),
])
def test_query_values_that_only_look_right_are_refused(stack, path, code):
    status, answer = api(stack, "GET", path)
    assert (status, answer["error"]) == (400, code), answer


def _token(document) -> str:
    return base64.urlsafe_b64encode(json.dumps(document).encode()).decode()


def test_a_forged_or_altered_next_token_is_refused(stack):
    victims = [make_victim(stack, interfaces=1, volumes=1) for _ in range(3)]
    for victim in victims:
        finish(stack, api(stack, "POST", "/quarantine", {"instance_id": victim["instance_id"],
                                                        "dry_run": True})[1])
    status, page = api(stack, "GET", "/incidents?limit=1")
    assert status == 200 and len(page["incidents"]) == 1
    given = json.loads(base64.urlsafe_b64decode(page["next_token"]))
    status, rest = api(stack, "GET", f"/incidents?limit=5&next_token={page['next_token']}")
    assert status == 200 and len(rest["incidents"]) == 2

    newest = page["incidents"][0]
    skip_one = {**given["key"], "pk": {"S": rest["incidents"][0]["incident_id"]},
                "opened_at": {"S": rest["incidents"][0]["opened_at"]}}
    forged = [
        _token({"key": skip_one, "seal": given["seal"]}),  # the key changed, the seal kept
        _token({"key": given["key"], "seal": base64.b64encode(b"\0" * 32).decode()}),
        _token({"key": given["key"]}),
        _token(given["key"]),  # the old format: a bare LastEvaluatedKey
        page["next_token"][:-4],
    ]
    for token in forged:
        status, answer = api(stack, "GET", f"/incidents?limit=5&next_token={token}")
        assert (status, answer["error"]) == (400, "InvalidNextToken"), (token, answer)
    # a token given for one listing does not continue another
    status, answer = api(stack, "GET", f"/incidents?status=DRY_RUN&next_token={page['next_token']}")
    assert (status, answer["error"]) == (400, "InvalidNextToken")
    assert newest["incident_id"] not in [i["incident_id"] for i in rest["incidents"]]
