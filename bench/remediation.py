"""One remediation end to end on the embedded AWS, counted and timed: a GuardDuty finding put on
the bus (PutEvents -> the app's rule -> handler -> Step Functions -> steps -> report), then the
same kind of instance handed to Cloud Custodian.

Requests are what moto's recorder saw, less the PutEvents that brings the finding (GuardDuty's
request, not ours), plus the Lambda invocations the in-process bridge answered (the handler and
every step). The victim is isolated when the last of its interfaces is answered (HTTP 200) a swap
to its VPC's isolation group alone (the group tagged ec2-quarantine=isolation): told by the
request's parameters, not by being the last ModifyNetworkInterfaceAttribute, since the swap to
the all-open group, the connection-tracking change and Contain's verifying swaps are that action
too, and an interface's later swaps do not move the moment. Made before isolation: the requests
sent and the functions invoked before that answer. The critical path is the requests sent up to
the isolating swap's sending, less the detection notice (not ours to wait for). In round trips,
requests in flight at the same time count once (`bench.clock.round_trips`, on times at the
client); each invocation before isolation counts as one, since its function's requests come
between its call and its answer.
Times run from the finding's arrival (PutEvents at the embedded AWS) to the moment the embedded
AWS answered the isolating swap, and the report's publish.
"""

import time
from collections.abc import Callable
from dataclasses import dataclass

from deploy import names
from local import drive, recording
from local.victims import make_fleet_member, make_victim

from bench import custodian
from bench.clock import Flight, last_of_firsts, round_trips, swapped_groups
from bench.watch import without_tamper_watch

FINDING_ARRIVAL = "events:PutEvents"
DETECTION_NOTICE = "sns:Publish"  # NotifyDetected, beside Contain or after it
ISOLATION_TAG = {"Name": "tag:ec2-quarantine", "Values": ["isolation"]}

@dataclass(frozen=True)
class Shape:
    make: Callable  # (stack) -> victim, first in a new VPC
    twin: Callable  # (stack, victim) -> another victim like it, in the same VPC
    custodian: bool  # Custodian's policy does the same job on it


def _victims(interfaces: int, volumes: int) -> tuple[Callable, Callable]:
    def make(stack):
        return make_victim(stack, interfaces=interfaces, volumes=volumes)

    def twin(stack, first):
        return make_victim(stack, interfaces=interfaces, volumes=volumes,
                           vpc={"vpc_id": first["vpc_id"], "subnet_id": first["subnet_id"]})
    return make, twin


def _other_member(stack, first: dict) -> dict:
    """The Auto Scaling group's other member (same VPC, same target group)."""
    instance_id = first["members"][1]
    described = stack.client("ec2").describe_instances(InstanceIds=[instance_id])[
        "Reservations"][0]["Instances"][0]
    return {"instance_id": instance_id, "vpc_id": first["vpc_id"],
            "interfaces": {n["NetworkInterfaceId"]: [g["GroupId"] for g in n["Groups"]]
                           for n in described["NetworkInterfaces"]}}


INTERFACES = (1, 2, 4, 8)  # shapes "N interface(s), 1 volume"


def interfaces_shape(count: int) -> str:
    return f"{count} interface{'s' if count > 1 else ''}, 1 volume"


SHAPES = {
    **{interfaces_shape(n): Shape(*_victims(n, 1), custodian=True) for n in INTERFACES},
    "1 interface, 8 volumes": Shape(*_victims(1, 8), custodian=True),
    "Auto Scaling group, target group": Shape(
        lambda stack: make_fleet_member(stack, target_groups=1), _other_member, custodian=False),
}
CONTAINMENT_SHAPE = "1 interface, 1 volume"  # timed over many runs, beside Custodian


@dataclass
class Remediation:
    calls: list[str]  # service:action of every request after the finding's arrival, in order
    invocations: list[str]  # functions the bridge answered, in order
    requested_before: list[str]  # requests sent before isolation, in the order sent
    invoked_before: list[str]  # functions invoked before isolation
    critical_path: int  # requests and invocations the isolating swap waits for
    round_trips: int  # the critical path in sequential round trips
    total: int
    seconds_to_isolation: float  # from the finding's arrival at the embedded AWS
    seconds_to_report: float  # to the final report's publish answered
    seconds_from_handler: float  # from the entry function's start to the isolation answered
    timeline: list[tuple[str, float, float]]  # the critical path: (request or invoked function,
    #   sent or started, answered) in seconds after the entry function's start, in order sent

    @property
    def until_isolated(self) -> int:
        """Requests and invocations made before isolation."""
        return len(self.requested_before) + len(self.invoked_before)


def isolating(request, group: str) -> bool:
    """A swap of one interface to `group` alone, accepted (a `Stamp` or a `Flight`)."""
    return swapped_groups(request) == [group]


def isolation(requests: list, interfaces, group: str):
    """The isolating swap of `requests` that isolated the victim: of the first each of its
    `interfaces` was answered, the last answered."""
    return last_of_firsts(requests, interfaces, lambda request: isolating(request, group))


def before_isolation(flights: list[Flight], invocations: list, swap: Flight) -> tuple[list, list]:
    """The requests (less the finding's arrival) sent and the invocations started before `swap`
    was answered: what was made before isolation."""
    requested = [f.name for f in sorted(flights, key=lambda f: f.sent)
                 if f.sent < swap.answered and f.name != FINDING_ARRIVAL]
    return requested, [i for i in invocations if i.started < swap.answered]


def critical_path(flights: list[Flight], swap: Flight) -> list[Flight]:
    """The requests `swap` may have waited for: sent up to its sending, less the finding's
    arrival and the detection notice (not ours to wait for)."""
    return [f for f in flights if f.sent <= swap.sent
            and f.name not in (FINDING_ARRIVAL, DETECTION_NOTICE)]


def quarantine(stack, clock, victim: dict, volumes: int) -> Remediation:
    """Send a finding for `victim`, wait for its execution; checks the outcome on the AWS."""
    queue = drive.subscribe_queue(stack, f"reports-{time.monotonic_ns()}")
    stack.bridge.wait_idle()
    stack.bridge.forget()
    with without_tamper_watch(stack):
        recording.start(stack)
        clock.reset()
        drive.put_event(stack, drive.guardduty_event(victim["instance_id"]))
        stack.bridge.wait_idle()
        entry = next(i for i in stack.bridge.invocations if i.source == "eventbridge")
        decided = entry.result
        if decided.get("decision") != "acted":
            raise RuntimeError(f"the finding was not acted on: {decided}")
        wait_execution(stack, decided["execution_arn"])
        stack.bridge.wait_idle()
        recording.stop(stack)
        stamps, flights = clock.stamps(), clock.flights()  # before the rule is enabled again

    calls = [c.name for c in recording.calls(stack) if c.name != FINDING_ARRIVAL]
    if not len(stamps) == len(flights) == len(calls) + 1:
        raise RuntimeError(f"the clock saw {len(stamps)} requests arrive, {len(flights)} sent; "
                           f"the recorder {len(calls) + 1}")
    prefix = names.function(stack.stage, "")
    invoked = list(stack.bridge.invocations)
    group = isolation_group(stack, victim["vpc_id"])
    _check_outcome(stack, victim, group, decided["incident_id"], volumes, queue)

    arrival = next(s for s in stamps if s.name == FINDING_ARRIVAL).arrived
    report = [s for s in stamps if s.name == "sns:Publish"][-1]
    swap = isolation(flights, victim["interfaces"], group)
    requested, invoked_before = before_isolation(flights, invoked, swap)
    path = critical_path(flights, swap)
    isolated_at = isolation(stamps, victim["interfaces"], group).answered
    timeline = sorted([(f.name, f.sent - entry.started, f.answered - entry.started) for f in path]
                      + [(f"invoke {name}", i.started - entry.started, i.started - entry.started)
                         for name, i in zip(invoked_names(invoked_before, prefix), invoked_before)],
                      key=lambda step: step[1])
    return Remediation(
        calls, invoked_names(invoked, prefix), requested, invoked_names(invoked_before, prefix),
        len(path) + len(invoked_before), round_trips(path) + len(invoked_before),
        len(calls) + len(invoked), isolated_at - arrival, report.answered - arrival,
        isolated_at - entry.started, timeline)


def invoked_names(invocations: list, prefix: str) -> list[str]:
    return [i.function_name.removeprefix(prefix) for i in invocations]


def wait_execution(stack, execution_arn: str, timeout: float = 120.0) -> None:
    """Wait reading moto's state in-process: polling DescribeExecution would be recorded."""
    from moto.stepfunctions.responses import get_backend

    backend = get_backend(stack.account, stack.region)
    deadline = time.monotonic() + timeout
    while backend.describe_execution(execution_arn).status == "RUNNING":
        if time.monotonic() > deadline:
            raise TimeoutError(f"{execution_arn} still running after {timeout} s")
        time.sleep(0.01)


def isolation_group(stack, vpc_id: str) -> str:
    """The VPC's isolation group, which the app made (tagged ec2-quarantine=isolation)."""
    return stack.client("ec2").describe_security_groups(Filters=[
        {"Name": "vpc-id", "Values": [vpc_id]}, ISOLATION_TAG])["SecurityGroups"][0]["GroupId"]


def _check_outcome(stack, victim: dict, group: str, incident_id: str, volumes: int,
                   queue: str) -> None:
    """A benchmark of a remediation that did not work would measure nothing: check it did."""
    ec2 = stack.client("ec2")
    for eni in ec2.describe_network_interfaces(
            NetworkInterfaceIds=list(victim["interfaces"]))["NetworkInterfaces"]:
        if [g["GroupId"] for g in eni["Groups"]] != [group]:
            raise RuntimeError(f"{eni['NetworkInterfaceId']} is not isolated: {eni['Groups']}")
    snapshots = ec2.describe_snapshots(Filters=[
        {"Name": "tag:QuarantineIncident", "Values": [incident_id]}])["Snapshots"]
    if len(snapshots) != volumes:
        raise RuntimeError(f"{len(snapshots)} snapshots of {volumes} volumes")
    subjects = [m["Subject"] for m in drive.messages(stack, queue)]
    if not any(s.endswith(": contained") for s in subjects):
        raise RuntimeError(f"no report 'contained' on the topic: {subjects}")


def volume_count(stack, instance_id: str) -> int:
    return len(stack.client("ec2").describe_instances(InstanceIds=[instance_id])[
        "Reservations"][0]["Instances"][0]["BlockDeviceMappings"])


@dataclass
class ShapeRun:
    first: Remediation  # the first instance of a new VPC, right after a reset: every client
    #                     (the app's and the embedded Step Functions') made anew, groups created
    then: Remediation  # a second instance in that VPC: clients made, the VPC's groups exist
    custodian: "dict[str, custodian.CustodianRun] | None"  # each policy on another twin, by a
    #                     responder process started for it: its cold start, first event


def run_shape(stack, clock, name: str) -> ShapeRun:
    """A fresh stack, then: a first remediation, a second in the same VPC, each Custodian policy
    on another twin (cold)."""
    shape = SHAPES[name]
    stack.reset()
    first = shape.make(stack)
    cold = quarantine(stack, clock, first, volume_count(stack, first["instance_id"]))
    second = shape.twin(stack, first)
    warm = quarantine(stack, clock, second, volume_count(stack, second["instance_id"]))
    theirs = {variant: custodian.cold_run(stack, clock, variant, shape.twin(stack, first))
              for variant in custodian.VARIANTS} if shape.custodian else None
    return ShapeRun(cold, warm, theirs)
