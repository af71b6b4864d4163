"""EventBridge's schedules on the embedded AWS: rules with a ScheduleExpression fire.

moto keeps a scheduled rule and never fires it. AWS sends each of the rule's targets a "Scheduled
Event" at the rule's rate. Here `tick()` fires rules now and waits for their functions (tests
assert on what the handler did), and a `Ticker` fires each rule at its own rate in the background
(`make local`, `make demo`), as EventBridge does: an asynchronous invocation through the bridge.
LOCAL_TICK_SECONDS sets one period for every rule, so that an operator need not wait minutes.
Rules are read from moto's EventBridge as they are now (a disabled or deleted rule never
fires); Lambda targets only, the only kind the app's schedules have.
"""

import logging
import re
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone

from deploy import names

log = logging.getLogger("local.schedule")

DETAIL_TYPE = "Scheduled Event"
_RATE = re.compile(r"rate\((\d+) (minute|hour|day)s?\)")
_UNIT_SECONDS = {"minute": 60, "hour": 3600, "day": 86400}
_IDLE_SECONDS = 1.0  # the longest the ticker sleeps: rules made or changed meanwhile are seen


@dataclass(frozen=True)
class Schedule:
    """An enabled scheduled rule, as EventBridge holds it."""

    rule: str
    arn: str
    expression: str
    functions: tuple[str, ...]  # the ARNs of its Lambda targets

    def period(self) -> float | None:
        """Seconds between firings of a rate expression (None for a cron expression)."""
        match = _RATE.fullmatch(self.expression.strip())
        return int(match.group(1)) * _UNIT_SECONDS[match.group(2)] if match else None


def schedules(account: str, region: str) -> list[Schedule]:
    """The enabled scheduled rules of every bus of `account` in `region`, read in process (the
    scheduler is EventBridge itself: no API call, nothing recorded or authorized)."""
    from moto.events.models import events_backends

    found = []
    for bus in list(events_backends[account][region].event_buses.values()):
        for rule in list(bus.rules.values()):
            if rule.scheduled_expression and rule.state == "ENABLED":
                functions = tuple(t["Arn"] for t in rule.targets if ":lambda:" in t["Arn"])
                found.append(Schedule(rule.name, rule.arn, rule.scheduled_expression, functions))
    return found


def scheduled_event(schedule: Schedule, account: str, region: str) -> dict:
    """The event EventBridge sends a scheduled rule's target."""
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": DETAIL_TYPE,
        "source": "aws.events",
        "account": account,
        "time": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": region,
        "resources": [schedule.arn],
        "detail": {},
    }


def tick(stack, rule: str | None = None) -> dict:
    """Fire `rule` (the schedule's name in the app, "sweep", or its rule's name), or every
    scheduled rule, now; invoke each target synchronously through the bridge. Returns what each
    function returned (Lambda's error payload if it raised), by its name in the app."""
    wanted = None if rule is None else {rule, names.rule(stack.stage, rule)}
    fired = [s for s in schedules(stack.account, stack.region) if wanted is None or s.rule in wanted]
    if rule is not None and not fired:
        raise ValueError(f"no enabled scheduled rule {rule!r}")
    results = {}
    for schedule in fired:
        for function in schedule.functions:
            event = scheduled_event(schedule, stack.account, stack.region)
            results[_function_name(stack, function)] = stack.bridge.invoke(
                function, event, source="schedule")[0]
    return results


def _function_name(stack, function_arn: str) -> str:
    deployed = function_arn.rsplit(":", 1)[-1]
    return deployed.removeprefix(names.function(stack.stage, ""))


class Ticker:
    """Fires each scheduled rule of the stack at its own rate, or every `period` seconds."""

    def __init__(self, stack, period: float | None = None):
        self.stack = stack
        self.period = period
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="ticker")

    def start(self) -> "Ticker":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopped.set()
        self._thread.join()

    def _fire(self, schedule: Schedule) -> None:
        for function in schedule.functions:
            self.stack.bridge.invoke_async(
                function, scheduled_event(schedule, self.stack.account, self.stack.region),
                source="schedule")

    def _run(self) -> None:
        due: dict[str, float] = {}  # rule -> when it fires next
        while not self._stopped.is_set():
            now = time.monotonic()
            try:
                current = schedules(self.stack.account, self.stack.region)
            except Exception:  # moto being reset: try again
                log.exception("could not read the scheduled rules")
                current = []
            upcoming = {}
            for schedule in current:
                period = self.period or schedule.period()
                if period is None:
                    continue  # a cron expression: not ticked
                upcoming[schedule.rule] = due.get(schedule.rule, now + period)  # a period on
                if upcoming[schedule.rule] <= now:
                    upcoming[schedule.rule] = now + period
                    self._fire(schedule)
            due = upcoming
            wake = min(due.values(), default=now + _IDLE_SECONDS)
            self._stopped.wait(min(max(wake - time.monotonic(), 0.0), _IDLE_SECONDS))
