"""The tamper watch: from a tampering call to its repair, on the embedded AWS.

One instance (2 interfaces) is contained once; then, each round, an IAM user of the account
(someone other than the product) undoes one thing, the kinds taking turns (`KINDS`): an
interface moved back to its own groups, all egress allowed on the VPC's isolation group, the
metadata endpoint turned on. The embedded AWS makes the call's CloudTrail event once it has
answered, EventBridge's rule hands it to `on_tampering`, which puts containment back.

Times run from the tampering call answered at the caller: the watch's function started with the
event (the bridge's `Invocation.started`); the watch's request that put it back answered (at its
client: `bench.clock`); and containment read back whole by a read polled every `POLL_SECONDS`.
IAM is not enforced, as in the rest of the bench. No sweep runs meanwhile (no ticker).
"""

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

import boto3
from deploy import names

from bench import remediation
from bench.clock import Flight, swapped_groups

WATCH = "on_tampering"
POLL_SECONDS = 0.002
EVERYTHING = [{"IpProtocol": "-1", "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}]


@dataclass(frozen=True)
class Scene:
    """The contained instance, its VPC's isolation group, the insider's and the poller's
    clients."""

    instance_id: str
    interface: str  # the interface moved back
    own_groups: list[str]  # its groups before containment
    isolation: str
    insider: object  # ec2 client of an IAM user
    reader: object  # the stack's ec2 client, polling


@dataclass(frozen=True)
class Kind:
    name: str
    tamper: Callable  # (scene) -> None: the insider's call
    repairs: Callable  # (scene, Flight) -> bool: the watch's request that puts it back
    whole: Callable  # (scene) -> bool: containment reads back whole (one request)


@dataclass(frozen=True)
class Round:
    kind: str
    delivered: float  # seconds after the tampering call answered: the watch started
    repaired: float  # the watch's repairing request answered
    read_back: float  # the poll that read containment whole again answered


def _interface_back(scene):
    scene.insider.modify_network_interface_attribute(NetworkInterfaceId=scene.interface,
                                                     Groups=scene.own_groups)


def _isolating_swap(scene, flight: Flight) -> bool:
    return flight.params.get("NetworkInterfaceId") == scene.interface and \
        swapped_groups(flight) == [scene.isolation]


def _interface_isolated(scene) -> bool:
    (interface,) = scene.reader.describe_network_interfaces(
        NetworkInterfaceIds=[scene.interface])["NetworkInterfaces"]
    return [g["GroupId"] for g in interface["Groups"]] == [scene.isolation]


def _egress_opened(scene):
    scene.insider.authorize_security_group_egress(GroupId=scene.isolation,
                                                  IpPermissions=EVERYTHING)


def _egress_revoked(scene, flight: Flight) -> bool:
    return flight.name == "ec2:RevokeSecurityGroupEgress" and flight.status == 200 and \
        flight.params.get("GroupId") == scene.isolation


def _isolation_bare(scene) -> bool:
    (group,) = scene.reader.describe_security_groups(GroupIds=[scene.isolation])[
        "SecurityGroups"]
    return not group["IpPermissions"] and not group["IpPermissionsEgress"]


def _metadata_on(scene):
    scene.insider.modify_instance_metadata_options(InstanceId=scene.instance_id,
                                                   HttpEndpoint="enabled")


def _metadata_turned_off(scene, flight: Flight) -> bool:
    return flight.name == "ec2:ModifyInstanceMetadataOptions" and flight.status == 200 and \
        flight.params.get("InstanceId") == scene.instance_id and \
        flight.params.get("HttpEndpoint") == "disabled"


def _metadata_off(scene) -> bool:
    (reservation,) = scene.reader.describe_instances(InstanceIds=[scene.instance_id])[
        "Reservations"]
    return reservation["Instances"][0]["MetadataOptions"]["HttpEndpoint"] == "disabled"


KINDS = (
    Kind("interface back to its own groups (ModifyNetworkInterfaceAttribute)",
         _interface_back, _isolating_swap, _interface_isolated),
    Kind("all egress on the isolation group (AuthorizeSecurityGroupEgress)",
         _egress_opened, _egress_revoked, _isolation_bare),
    Kind("metadata endpoint on (ModifyInstanceMetadataOptions)",
         _metadata_on, _metadata_turned_off, _metadata_off),
)


def first_answered(flights: list[Flight], repairs: Callable[[Flight], bool]) -> float:
    """When the first request `repairs` accepts was answered (at its client)."""
    answered = [f.answered for f in flights if repairs(f)]
    if not answered:
        raise RuntimeError("the watch sent no request that puts it back")
    return min(answered)


def first_started(invocations: list, function_name: str) -> float:
    """When the first invocation of `function_name` started."""
    started = [i.started for i in invocations if i.function_name == function_name]
    if not started:
        raise RuntimeError(f"{function_name} was not invoked")
    return min(started)


def spread(seconds: list[float]) -> str:
    """Milliseconds: the median, then the fastest and slowest ("12.3 (10.1–15.2)")."""
    return (f"{statistics.median(seconds) * 1000:.1f} "
            f"({min(seconds) * 1000:.1f}–{max(seconds) * 1000:.1f})")


def poll(whole: Callable[[], bool], since: float, timeout: float = 30.0) -> float:
    """Read until `whole()`, every POLL_SECONDS; returns when the read that found it answered."""
    while not whole():
        if time.monotonic() - since > timeout:
            raise TimeoutError(f"containment not whole again after {timeout} s")
        time.sleep(POLL_SECONDS)
    return time.monotonic()


def insider(stack, name: str = "insider"):
    """An ec2 client of a new IAM user of the account: not one of the product's roles, so the
    watch acts on its calls (CloudTrail names it an IAMUser)."""
    iam = stack.client("iam")
    iam.create_user(UserName=name)
    key = iam.create_access_key(UserName=name)["AccessKey"]
    return boto3.session.Session(
        aws_access_key_id=key["AccessKeyId"], aws_secret_access_key=key["SecretAccessKey"],
        region_name=stack.region).client("ec2", endpoint_url=stack.endpoint)


def run(stack, clock, rounds: int = 20) -> list[Round]:
    stack.reset()
    victim = remediation.SHAPES[remediation.interfaces_shape(2)].make(stack)
    remediation.quarantine(stack, clock, victim, 1)  # checks the instance is contained
    interface = next(iter(victim["interfaces"]))
    scene = Scene(victim["instance_id"], interface, victim["interfaces"][interface],
                  remediation.isolation_group(stack, victim["vpc_id"]), insider(stack),
                  stack.client("ec2"))
    watch = names.function(stack.stage, WATCH)
    measured = []
    for n in range(rounds):
        kind = KINDS[n % len(KINDS)]
        stack.bridge.wait_idle()
        stack.bridge.forget()
        clock.reset()
        kind.tamper(scene)
        tampered = time.monotonic()
        read_back = poll(lambda: kind.whole(scene), tampered)
        stack.bridge.wait_idle()
        measured.append(Round(
            kind.name, first_started(stack.bridge.invocations, watch) - tampered,
            first_answered(clock.flights(), lambda f: kind.repairs(scene, f)) - tampered,
            read_back - tampered))
    return measured
