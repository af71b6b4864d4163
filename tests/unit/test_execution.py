"""chalicelib.execution: every option is frozen into the input, the state machine hands it to
every step, and the steps act under it (the end-to-end proof is
tests/integration/test_frozen_options.py)."""

import json
import pathlib
import re

from chalicelib import execution, findings, settings
from deploy import names, statemachine

CHALICELIB = pathlib.Path(settings.__file__).parent
STAGE = {"STATE_MACHINE_ARN": "arn:aws:states:us-east-1:123456789012:stateMachine:sm",
         "TOPIC_ARN": "arn:aws:sns:us-east-1:123456789012:topic", "INCIDENTS_TABLE": "table",
         "EVIDENCE_BUCKET": "bucket",
         "DENY_ALL_PROFILE_ARN": "arn:aws:iam::123456789012:instance-profile/deny-all"}
STARTED_UNDER = {**STAGE, "CREDENTIALS_MODE": "deny-all", "AUTOSCALING_MODE": "standby",
                 "FORENSIC_ACCOUNT_ID": "210987654321", "SNAPSHOT_POLL_SECONDS": "5",
                 "MEMORY_CAPTURE_DOCUMENT": "AWSSupport-ExampleMemoryCapture"}
INCIDENT = {"incident_id": "inc-1", "status": "OPEN", "instance_id": "i-1", "account_id":
            "123456789012", "region": "us-east-1", "source": "http", "reason": "", "finding": None,
            "requested_by": "", "pre_state": {}, "findings": [{"id": "later"}]}


def _states(definition: dict):
    for name, state in definition["States"].items():
        yield name, state
        for branch in state.get("Branches", []):
            yield from _states(branch)


def test_every_option_is_frozen_into_the_input_and_survives_json():
    sent = json.loads(json.dumps(execution.quarantine(INCIDENT, settings.load(STARTED_UNDER))))
    assert set(sent["options"]) == set(settings.OPTIONS) | {"memory_capture"}
    assert sent["options"]["credentials_mode"] == "deny-all"
    assert sent["options"]["snapshot_poll_seconds"] == 5
    assert sent["options"]["memory_capture"] is True and sent["options"]["dry_run"] is False
    assert "findings" not in sent["incident"]  # further findings can grow: never in the input
    request = findings.QuarantineRequest("i-1", "123456789012", "us-east-1", "http", "done")
    released = execution.release(INCIDENT, request, True, settings.load(STARTED_UNDER))
    assert released["options"] == sent["options"]
    assert released["release"] == {"reason": "done", "reregister": True, "requested_by": ""}


def test_a_step_acts_under_the_frozen_options_and_the_environments_resources(monkeypatch):
    sent = json.loads(json.dumps(execution.quarantine(INCIDENT, settings.load(STARTED_UNDER))))
    moved = {**STAGE, "EVIDENCE_BUCKET": "bucket-2", "FORENSIC_ACCOUNT_ID": ""}
    monkeypatch.setattr(settings, "get", lambda: settings.load(moved))
    acting = execution.acting_settings({"incident": sent["incident"], "options": sent["options"]})
    assert (acting.credentials_mode, acting.autoscaling_mode, acting.forensic_account_id) == (
        "deny-all", "standby", "210987654321")
    assert acting.evidence_bucket == "bucket-2"  # a deployment fact, not an option


def test_the_state_machine_hands_the_options_to_every_step_that_acts():
    arns = statemachine.step_function_arns("us-east-1", "123456789012", "dev")
    definition = statemachine.build(arns, names.topic_arn("us-east-1", "123456789012", "dev"),
                                    names.incidents_table("dev"))
    tasks = {name: state for name, state in _states(definition)
             if state["Type"] == "Task" and state["Resource"] in arns.values()}
    records_only = {"ReportNotSent"}  # records that the report was not published; acts on nothing
    assert set(tasks) - records_only == {"Release", "CaptureMemory", "Contain", "CollectEvidence",
                                         "CheckSnapshots", "Report", "PlanApproval",
                                         "AskApproval", "Decide"}
    planning = {"PlanApproval": "$.plan_options"}  # the plan announced with an approval request
    for name in set(tasks) - records_only:
        assert tasks[name]["Parameters"].get("options.$") == planning.get(name, "$.options"), name
    waits = [state for _, state in _states(definition) if state["Type"] == "Wait"]
    assert sorted(w["SecondsPath"] for w in waits) == ["$.decided.pause_seconds",
                                                       "$.options.snapshot_poll_seconds"]


def test_steps_and_actions_read_only_options_and_deployment_facts():
    """A setting an action or step reads is an option (frozen) or a resource of the deployment;
    none reads the environment's settings itself."""
    allowed = set(settings.OPTIONS) | {name.lower() for name in settings.DEPLOYED}
    for path in [*CHALICELIB.glob("actions/*.py"), *CHALICELIB.glob("steps/*.py")]:
        source = path.read_text()
        assert "settings.get(" not in source, path.name
        read = set(re.findall(r"(?:settings|options)\.([a-z_]+)", source))
        assert read <= allowed, (path.name, read - allowed)
