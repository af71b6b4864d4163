"""The embedded AWS itself: Step Functions running app code, EventBridge delivery, the bridge."""

import json

from chalicelib import findings, workflow
from tests.helpers import (
    guardduty_event,
    make_victim,
    history,
    messages,
    put_event,
    sample,
    subscribe_queue,
    wait_execution,
)


def test_execution_invokes_app_functions_and_publishes_to_sns(stack):
    queue = subscribe_queue(stack)
    victim = make_victim(stack, interfaces=1, volumes=1)
    request = findings.parse(guardduty_event(victim["instance_id"])["detail"])
    started = workflow.start(request, stack.account).summary()

    assert wait_execution(stack, started["execution_arn"])["status"] == "SUCCEEDED"
    stack.bridge.wait_idle()  # the page, asked by the report asynchronously
    invoked = [(i.function_name, i.caller) for i in stack.bridge.invocations
               if i.source == "invoke"]
    assert invoked == [("ec2-quarantine-dev-contain", None),
                       ("ec2-quarantine-dev-collect_evidence", None),
                       ("ec2-quarantine-dev-check_snapshots", None),
                       ("ec2-quarantine-dev-report", None),
                       ("ec2-quarantine-dev-publish_page", "ec2-quarantine-dev-report")]
    assert all(i.error is None for i in stack.bridge.invocations if i.source == "invoke")
    succeeded = [e for e in history(stack, started["execution_arn"]) if e["type"] == "TaskSucceeded"]
    assert [e["taskSucceededEventDetails"]["resourceType"] for e in succeeded] == ["sns", "sns"]
    received = messages(stack, queue)
    assert len(received) == 2
    assert all(victim["instance_id"] in m["Subject"] for m in received)


def test_guardduty_finding_reaches_the_handler_through_the_apps_own_pattern(stack):
    put_event(stack, guardduty_event("i-0123456789abcdef0"))
    put_event(stack, sample("s3-finding-not-ec2.json"))
    put_event(stack, {"source": "aws.ec2", "detail-type": "EC2 Instance State-change Notification",
                      "detail": {"instance-id": "i-0123456789abcdef0", "state": "running"}})
    stack.bridge.wait_idle()

    delivered = [i for i in stack.bridge.invocations if i.source == "eventbridge"]
    assert [i.function_name for i in delivered] == ["ec2-quarantine-dev-on_guardduty_finding"]
    assert delivered[0].error is None
    assert delivered[0].result["decision"] == "refused"  # no such instance on this AWS
    assert "i-0123456789abcdef0" in delivered[0].result["reason"]
    rules = stack.client("events").list_rules()["Rules"]
    assert json.loads(rules[0]["EventPattern"]) == findings.EVENT_PATTERN


def test_delivered_event_carries_the_envelope_chalice_needs(stack):
    """Plain moto drops `account` from the event it delivers; Chalice cannot parse it then."""
    put_event(stack, guardduty_event("i-0123456789abcdef0"))
    stack.bridge.wait_idle()
    (delivered,) = [i for i in stack.bridge.invocations if i.source == "eventbridge"]
    envelope = delivered.event
    assert envelope["account"] == stack.account
    assert envelope["region"] == stack.region
    assert envelope["source"] == "aws.guardduty"
    assert envelope["time"].endswith("Z")
    assert delivered.error is None


def test_bridge_context_looks_like_lambdas(stack):
    context = stack.bridge.context("ec2-quarantine-dev-report")
    assert context.invoked_function_arn == (
        "arn:aws:lambda:us-east-1:123456789012:function:ec2-quarantine-dev-report")
    assert context.function_name == "ec2-quarantine-dev-report"
    assert 0 < context.get_remaining_time_in_millis() <= 900_000


def test_bridge_reports_an_unknown_function_like_lambda(stack):
    payload, error = stack.bridge.invoke("ec2-quarantine-dev-nope", {})
    assert error == "ResourceNotFoundException"
    assert "ec2-quarantine-dev-nope" in payload["errorMessage"]


def test_moto_port_matches_the_port_served(stack):
    import os

    assert stack.endpoint.endswith(":" + os.environ["MOTO_PORT"])
