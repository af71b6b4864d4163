"""The HTTP edge's reading of the workflow's outcomes and refusals: each one's status and body,
as the README's HTTP API section gives them, and the event path's decision for the same outcome."""

import inspect
import json

import pytest

from chalicelib import http, outcomes

INCIDENT = {"incident_id": "inc-0123456789ab", "status": "OPEN",
            "instance_id": "i-0123456789abcdef0", "account_id": "123456789012",
            "region": "us-east-1",
            "execution_arn": "arn:aws:states:us-east-1:123456789012:execution:m:inc-0123456789ab",
            "pre_state": {"interfaces": []}, "findings": [{"id": "f" * 32}]}
PUBLIC = {key: INCIDENT[key] for key in ("incident_id", "status", "instance_id", "account_id",
                                         "region", "execution_arn")}
PUBLIC["status_url"] = "/incidents/inc-0123456789ab"
RELEASE_ARN = "arn:aws:states:us-east-1:123456789012:execution:m:inc-0123456789ab-release-0a1b2c3d"


@pytest.mark.parametrize("outcome,status,body,decision", [
    (outcomes.Opened(INCIDENT), 202, PUBLIC, "acted"),
    (outcomes.DryRun({**INCIDENT, "status": "DRY_RUN"}), 202, {**PUBLIC, "status": "DRY_RUN"},
     "acted"),
    (outcomes.Recorded({**INCIDENT, "status": "CONTAINED"}), 200,
     {**PUBLIC, "status": "CONTAINED"}, "recorded"),
    (outcomes.ReleaseStarted({**INCIDENT, "status": "CONTAINED"}, RELEASE_ARN, 1), 202,
     {**PUBLIC, "status": "CONTAINED", "release_execution_arn": RELEASE_ARN,
      "releases_before": 1}, None),
    (outcomes.ExemptAnnounced("i-0123456789abcdef0"), 200,
     {"decision": "exempt", "instance_id": "i-0123456789abcdef0"}, "exempt"),
])
def test_each_outcome_has_its_status_and_body(outcome, status, body, decision):
    assert http.answer(outcome) == (status, body)
    response = http.respond(lambda: outcome)
    assert (response.status_code, json.loads(response.body)) == (status, body)
    assert response.headers["Content-Type"] == "application/json"
    if decision:  # what the event path answers for the same outcome
        assert outcome.decision == decision


def test_a_read_answers_what_it_found_with_200():
    assert http.answer({"incidents": []}) == (200, {"incidents": []})
    response = http.respond(lambda: INCIDENT)
    assert (response.status_code, json.loads(response.body)) == (200, INCIDENT)


@pytest.mark.parametrize("refusal,status,code", [
    (outcomes.InvalidInput("InvalidInstanceId", "instance_id 'i-XYZ' is not ..."), 400,
     "InvalidInstanceId"),
    (http.BodyTooLarge("body is 70000 bytes; the limit is 65536 bytes"), 413, "BodyTooLarge"),
    (outcomes.NotAllowed("account 210987654321 is not allowed"), 403, "AccountNotAllowed"),
    (outcomes.InstanceNotFound("instance i-0123456789abcdef0 not found in us-east-1"), 404,
     "InstanceNotFound"),
    (outcomes.IncidentNotFound("no incident inc-0123456789ab"), 404, "IncidentNotFound"),
    (outcomes.InstanceTerminated("instance i-0123456789abcdef0 is terminated"), 409,
     "InstanceTerminated"),
    (outcomes.InstanceExempt("instance i-0123456789abcdef0 carries QuarantineExempt=true"), 409,
     "InstanceExempt"),
    (outcomes.NothingToRelease("instance i-0123456789abcdef0 cannot be released"), 409,
     "NothingToRelease"),
    (outcomes.NotConfigured("STATE_MACHINE_ARN is not set: the app cannot act"), 503,
     "NotConfigured"),
    (outcomes.ExecutionNotStarted("incident inc-0123456789ab is claimed but ..."), 503,
     "ExecutionNotStarted"),
])
def test_each_refusal_has_its_status_and_the_error_shape(refusal, status, code):
    body = {"error": code, "message": refusal.message}
    assert http.refused(refusal) == (status, body)

    def refuse():
        raise refusal
    response = http.respond(refuse)
    assert (response.status_code, json.loads(response.body)) == (status, body)


def test_any_other_failure_is_a_503_not_a_500():
    def fail():
        raise RuntimeError("AWS failed")
    response = http.respond(fail)
    assert response.status_code == 503
    assert json.loads(response.body)["error"] == "ServiceUnavailable"


def test_every_outcome_and_refusal_the_domain_declares_has_a_status():
    declared = [cls for _, cls in inspect.getmembers(outcomes, inspect.isclass)
                if cls.__module__ == outcomes.__name__
                and cls not in (outcomes.Refusal, outcomes.Outcome)]
    assert len(declared) > 10
    for cls in declared:
        assert 200 <= http.status_of(cls.__new__(cls)) <= 599, cls
