"""The race, warm: the same GuardDuty finding for instances alike (1 interface with two groups,
1 volume) in one VPC, to ec2-quarantine (the finding put on the bus; its entry function cuts)
and to each Custodian policy (its handler in a responder process that has handled a finding
before: config loaded, account known, clients made). The app is warm too: a first remediation
in the VPC made its groups and its clients. Each round runs every contender once, each going
first in turn; every run is checked on the embedded AWS.

Time is from the event handed to the handler (the app's entry function starting; the line
written to the responder) to the embedded AWS answering the swap that left the last interface
isolated (Custodian's last swap, whether or not it isolated).
"""

import statistics
from dataclasses import dataclass

from bench import custodian, remediation

APP = "ec2-quarantine"


@dataclass
class Race:
    app: list  # remediation.Remediation, one a round
    custodian: dict  # variant -> [custodian.CustodianRun], one a round


def rotated(contenders: list, n: int) -> list:
    """The contenders in round `n`: each goes first in turn."""
    k = n % len(contenders)
    return contenders[k:] + contenders[:k]


def run(stack, clock, rounds: int = 20) -> Race:
    shape = remediation.SHAPES[remediation.CONTAINMENT_SHAPE]
    stack.reset()
    first = shape.make(stack)
    remediation.quarantine(stack, clock, first, 1)  # the app warm: its groups, its clients
    group = custodian.isolation_group(stack, first["vpc_id"])
    responders = {}
    try:
        for variant in custodian.VARIANTS:
            responders[variant] = custodian.Responder(stack, variant, group)
            custodian.run(stack, clock, responders[variant], shape.twin(stack, first))  # warm
        race = Race([], {variant: [] for variant in custodian.VARIANTS})
        for n in range(rounds):
            for contender in rotated([APP, *custodian.VARIANTS], n):
                victim = shape.twin(stack, first)
                if contender == APP:
                    race.app.append(remediation.quarantine(stack, clock, victim, 1))
                else:
                    race.custodian[contender].append(
                        custodian.run(stack, clock, responders[contender], victim))
        return race
    finally:
        for responder in responders.values():
            responder.close()


def median_run(runs: list, seconds) -> object:
    """The run whose `seconds(run)` is the median (the lower of the middle two)."""
    ordered = sorted(runs, key=seconds)
    return ordered[(len(ordered) - 1) // 2]


def fastest_isolating(runs: dict) -> str | None:
    """The variant of `runs` (variant -> runs) with the lowest median time to its last swap
    among those that isolated in every run; None if none did."""
    isolating = {variant: statistics.median(r.seconds_to_swap for r in variant_runs)
                 for variant, variant_runs in runs.items()
                 if variant_runs and all(r.isolated for r in variant_runs)}
    return min(isolating, key=isolating.get) if isolating else None


def in_flight(timeline: list[tuple[str, float, float]], until: float) -> float:
    """Seconds up to `until` during which at least one request of `timeline` was in flight
    (overlapping requests count once): the rest is the responder's own work."""
    busy, reached = 0.0, float("-inf")
    for _, sent, answered in sorted(timeline, key=lambda step: step[1]):
        start, end = max(sent, reached), min(answered, until)
        if end > start:
            busy += end - start
        reached = max(reached, answered)
    return busy
