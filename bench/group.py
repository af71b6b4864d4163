"""A finding about a group of instances (GuardDuty's attack sequence, 25 instances) beside a
finding about one instance alone: the time from the finding's arrival to the moment AWS answered
the last instance's isolating swap, and the AWS requests of the whole remediation (every step,
to the report) per instance. The instances share a VPC whose groups exist (the app warm), each
with one interface and one volume; the tamper watch is kept out, as in every remediation
measure. Goal: the group under 2x the one instance."""

from dataclasses import dataclass

from local import drive, recording

from bench import remediation
from bench.clock import round_trips
from bench.watch import without_tamper_watch

SIZES = (1, 25)
GOAL = 2.0  # the group's time to its last isolated instance over one instance's


@dataclass(frozen=True)
class Run:
    instances: int
    seconds: float  # the finding's arrival to the last instance isolated
    round_trips: int  # sequential round trips on the path to the last isolating swap
    requests: int  # every AWS request of the remediation, the finding's arrival aside

    @property
    def per_instance(self) -> float:
        return self.requests / self.instances


def run(stack, clock, runs: int = 5) -> dict[int, list[Run]]:
    """`runs` of each size (after one to warm the app and make the VPC's groups)."""
    shape = remediation.SHAPES[remediation.CONTAINMENT_SHAPE]
    stack.reset()
    first = shape.make(stack)
    remediation.quarantine(stack, clock, first, 1)  # warm: clients, the VPC's groups
    return {size: [_once(stack, clock, [shape.twin(stack, first) for _ in range(size)])
                   for _ in range(runs)] for size in SIZES}


def _once(stack, clock, victims: list[dict]) -> Run:
    ids = [v["instance_id"] for v in victims]
    event = drive.attack_sequence_event(ids) if len(ids) > 1 else drive.guardduty_event(ids[0])
    stack.bridge.wait_idle()
    stack.bridge.forget()
    with without_tamper_watch(stack):
        recording.start(stack)
        clock.reset()
        drive.put_event(stack, event)
        stack.bridge.wait_idle()
        decided = next(i for i in stack.bridge.invocations if i.source == "eventbridge").result
        started = decided.get("instances") or [decided]
        if len(started) != len(ids) or {r.get("decision") for r in started} != {"acted"}:
            raise RuntimeError(f"not every instance was acted on: {decided}")
        for result in started:
            remediation.wait_execution(stack, result["execution_arn"])
        stack.bridge.wait_idle()
        recording.stop(stack)
        stamps, flights = clock.stamps(), clock.flights()
    group = remediation.isolation_group(stack, victims[0]["vpc_id"])
    arrival = next(s for s in stamps if s.name == remediation.FINDING_ARRIVAL).arrived
    isolated = max(remediation.isolation(stamps, v["interfaces"], group).answered
                   for v in victims)
    last_swap = max((remediation.isolation(flights, v["interfaces"], group) for v in victims),
                    key=lambda flight: flight.answered)
    path = remediation.critical_path(flights, last_swap)
    calls = [c for c in recording.calls(stack) if c.name != remediation.FINDING_ARRIVAL]
    return Run(len(ids), isolated - arrival, round_trips(path), len(calls))
