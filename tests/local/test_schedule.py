"""Scheduled rules on the embedded AWS: provisioned as Chalice deploys them, fired by `tick()`
and, at a rate, by the ticker of `make local` and `make demo`."""

import time

import pytest

from chalicelib import tamper
from deploy import names
from local.schedule import Schedule
from tests.helpers import guardduty_event, put_event

SWEEP_RULE = names.rule("dev", "sweep")
SWEEP = names.function("dev", "sweep")


def _sweeps(stack) -> list:
    return [i for i in stack.bridge.invocations if i.function_name == SWEEP]


def test_the_sweep_is_provisioned_as_a_rule_with_the_apps_schedule(stack):
    events = stack.client("events")
    rule = events.describe_rule(Name=SWEEP_RULE)
    assert (rule["ScheduleExpression"], rule["State"]) == (
        f"rate({tamper.SWEEP_MINUTES} minutes)", "ENABLED")
    assert "EventPattern" not in rule
    assert [t["Arn"] for t in events.list_targets_by_rule(Rule=SWEEP_RULE)["Targets"]] == [
        names.function_arn(stack.region, stack.account, "dev", "sweep")]


def test_tick_sends_the_sweep_the_scheduled_event_aws_sends(stack):
    results = stack.tick()

    (invocation,) = _sweeps(stack)
    assert invocation.source == "schedule"
    event = invocation.event
    assert set(event) == {"version", "id", "detail-type", "source", "account", "time", "region",
                          "resources", "detail"}
    assert (event["version"], event["detail-type"], event["source"], event["account"],
            event["region"], event["detail"]) == ("0", "Scheduled Event", "aws.events",
                                                  stack.account, stack.region, {})
    assert event["resources"] == [
        f"arn:aws:events:{stack.region}:{stack.account}:rule/{SWEEP_RULE}"]
    time.strptime(event["time"], "%Y-%m-%dT%H:%M:%SZ")
    assert invocation.error is None
    assert results == {"sweep": {"checked": 0, "repaired": [], "unchecked": [], "settled": [],
                                 "scans": []}}


def test_tick_fires_one_rule_by_its_name_in_the_app_or_its_own(stack):
    assert set(stack.tick("sweep")) == {"sweep"}
    assert set(stack.tick(SWEEP_RULE)) == {"sweep"}
    assert len(_sweeps(stack)) == 2
    with pytest.raises(ValueError):
        stack.tick("on_tampering")  # a pattern, not a schedule


def test_events_put_on_the_bus_never_reach_a_scheduled_rule(stack):
    """moto matched them against the schedule's missing pattern, which matches anything."""
    sqs, events = stack.client("sqs"), stack.client("events")
    url = sqs.create_queue(QueueName="every-hour")["QueueUrl"]
    events.put_rule(Name="every-hour", ScheduleExpression="rate(1 hour)")
    events.put_targets(Rule="every-hour", Targets=[{"Id": "queue", "Arn": sqs.get_queue_attributes(
        QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]}])
    put_event(stack, guardduty_event("i-0123456789abcdef0"))
    stack.bridge.wait_idle()
    assert [i.function_name for i in stack.bridge.invocations] == [
        names.function("dev", "on_guardduty_finding")]
    assert "Messages" not in sqs.receive_message(QueueUrl=url)


def test_a_disabled_rule_does_not_fire(stack):
    stack.client("events").disable_rule(Name=SWEEP_RULE)
    assert stack.tick() == {}
    assert _sweeps(stack) == []


def test_the_ticker_fires_at_the_period_given_and_stops(stack):
    stack.start_ticker({"LOCAL_TICK_SECONDS": "0.2"})
    try:
        deadline = time.monotonic() + 5
        while len(_sweeps(stack)) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        stack.stop_ticker()  # what stack.stop() does first
    stack.bridge.wait_idle()
    fired = _sweeps(stack)
    assert len(fired) >= 2
    assert {i.source for i in fired} == {"schedule"}
    assert fired[0].event["resources"] == [
        f"arn:aws:events:{stack.region}:{stack.account}:rule/{SWEEP_RULE}"]
    assert fired[0].event["id"] != fired[1].event["id"]
    time.sleep(0.5)
    assert len(_sweeps(stack)) == len(fired)


def test_without_a_period_given_each_rule_fires_at_its_own_rate():
    def period(expression):
        return Schedule("rule", "arn", expression, ()).period()

    assert [period(e) for e in ("rate(5 minutes)", "rate(1 minute)", "rate(2 hours)",
                                "rate(1 day)")] == [300, 60, 7200, 86400]
    assert period("cron(0 12 * * ? *)") is None  # not ticked
