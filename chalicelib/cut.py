"""The first cut: every interface isolated, and beside the first swap the preservation
attributes and short connection tracking, made at once.

The entry function makes it as soon as the instance is claimed (the critical path is then the
describe, the claim and the two swaps), with rights that can only isolate: the product's
groups, the preservation attributes, the tracking timeouts. Contain makes it again for whatever
is still to do (an interface the entry function could not isolate, a stage whose execution
captures memory first), and there it may give an interface whose second swap keeps failing its
own groups back. Each change is recorded against the sealed pre-incident state: the entry
function records what its cut made (`changes`: the same actions' records, with no request more
when the cut succeeded), and Contain records the rest.
"""

import logging

from chalicelib import actions, aws
from chalicelib.actions import Target, failure_record, isolation
from chalicelib.actions.instance import (KeepVolumesOnTermination, ShutdownBehaviourStop,
                                         TerminationProtection, attribute_value)
from chalicelib.actions.isolation import ShortenConnectionTracking

log = logging.getLogger(__name__)

# Preservation made with the first swap: a dead-man `poweroff` when the network drops then
# stops the instance and keeps its volumes. The attributes' values before are read beside
# DescribeInstances (which does not return them) and sealed with the pre-incident state.
INSTANCE_CLASSES = (TerminationProtection, ShutdownBehaviourStop, KeepVolumesOnTermination)
AHEAD = tuple(cls.attribute for cls in INSTANCE_CLASSES if hasattr(cls, "attribute"))
OBSERVE_PERMISSIONS = ("ec2:DescribeInstances", "ec2:DescribeSecurityGroups",
                       "ec2:DescribeInstanceAttribute")  # observe()
PERMISSIONS = (*isolation.GROUP_PERMISSIONS, isolation.PRODUCT_GROUPS_ONLY,
               *(p for cls in (*INSTANCE_CLASSES, ShortenConnectionTracking)
                 for p in cls.permissions))


def entry_permissions(current) -> tuple[str, ...]:
    """What the entry functions need for the cut under the settings `current`: nothing when
    they never make it (every incident a dry run, or memory captured first), else the
    attribute reads beside the describe and the cut's own rights."""
    if current.dry_run:
        return ()
    return ("ec2:DescribeInstanceAttribute",
            *(PERMISSIONS if not current.memory_capture_document else ()))


def skipped(request, current, mode: str = "contain") -> str | None:
    """Why the entry function makes no cut for `request`, which the response rules said to
    meet with `mode` (None: it makes it; an exempt instance never gets this far unless a
    person forced it)."""
    if request.dry_run or current.dry_run:
        return "a dry run changes nothing"
    if mode != "contain":
        return f"a response rule says {mode}: nothing is changed unless it is approved"
    if current.memory_capture_document:
        return "memory is captured before isolation (MEMORY_CAPTURE_DOCUMENT)"
    return None


def remember(target: Target, instance: dict, groups: dict | None, attributes: dict,
             vpcs=None) -> None:
    """What was just read of the instance, for the cut and the actions to act on: the groups on
    each interface, its tracking, its volumes, the attributes read beside, the product's
    groups in `vpcs` (default: every VPC; None: not read, `ready_groups` reads them)."""
    interfaces = instance.get("NetworkInterfaces", [])
    target.cache.update({
        "live_groups": isolation.groups_by_interface(interfaces),
        "live_tracking": {n["NetworkInterfaceId"]: n.get("ConnectionTrackingConfiguration")
                          for n in interfaces},
        "live_volumes": {m["Ebs"]["VolumeId"]: m["Ebs"].get("DeleteOnTermination", False)
                         for m in instance.get("BlockDeviceMappings", []) if "Ebs" in m},
        "attributes": dict(attributes),
    })
    if groups is not None:
        isolation.remember(target, groups, vpcs)


def observe(target: Target) -> None:
    """Read the instance as it is now (Contain: after the entry function's cut), the product's
    groups in its VPCs and the preservation attributes, at once, and remember them."""
    ec2, instance_id = target.ec2, target.instance_id
    vpcs = {i["vpc_id"] for i in target.pre_state["interfaces"]}
    described, groups, *attributes = aws.concurrently([
        lambda: ec2.describe_instances(InstanceIds=[instance_id])["Reservations"][0][
            "Instances"][0],
        lambda: isolation.find_groups(ec2, vpcs),
        *(lambda name=name: ec2.describe_instance_attribute(InstanceId=instance_id,
                                                            Attribute=name) for name in AHEAD)])
    remember(target, described, groups, {
        name: attribute_value(answer, name) for name, answer in zip(AHEAD, attributes)}, vpcs)


def changes(target: Target) -> list[dict]:
    """The records of what the cut made, as Contain's actions would record them (a request
    beside the swaps that failed is made once more here; an interface not isolated records
    nothing)."""
    made, _ = actions.run([*(cls(i) for cls in (isolation.IsolateInterface,
                                                 ShortenConnectionTracking)
                             for i in target.pre_state["interfaces"]),
                           *(cls() for cls in INSTANCE_CLASSES)], target)
    return made


def containment(target: Target) -> str | None:
    """The status the cut alone earns, should Contain never run: CONTAINED when every interface
    is isolated and there is no profile to cut, PARTIAL when some interface is; None else."""
    isolated = [eni for eni, why in target.cache.get("isolated", {}).items() if not why]
    if not isolated:
        return None
    everything = len(isolated) == len(target.pre_state["interfaces"])
    return "CONTAINED" if everything and not target.pre_state.get("instance_profile") \
        else "PARTIAL"


def prepare(target: Target) -> None:
    """Make the instance's VPCs' groups ready (created if missing, rules put right) beside the
    claim: the first instance of a VPC waits one round trip less. Never raises (`make` tries
    again)."""
    try:
        isolation.ready_groups(target, {i["vpc_id"] for i in target.pre_state["interfaces"]})
    except Exception:
        log.warning("groups for %s not made ready beside the claim", target.instance_id,
                    exc_info=True)


def make(target: Target, restore: bool = False) -> list[dict]:
    """The cut on every interface of the instance, preservation and tracking beside the first
    swap. Never raises: returns a failure record for each interface left unisolated and each
    request beside that failed (each logged)."""
    interfaces = target.pre_state["interfaces"]
    beside = [(cls.name, target.instance_id, call)
              for cls in INSTANCE_CLASSES for call in cls().early(target)]
    beside += [(ShortenConnectionTracking.name, i["id"], call)
               for i in interfaces for call in ShortenConnectionTracking(i).early(target)]
    try:
        answers = isolation.two_step(target, interfaces, [call for *_, call in beside], restore)
    except Exception as error:  # the groups could not be made ready: Contain tries again
        log.exception("first cut on %s failed before any swap", target.instance_id)
        return [failure_record("first-cut", target.instance_id, aws.error_code(error) or
                               type(error).__name__, str(error))]
    failures = [failure_record(isolation.IsolateInterface.name, eni, "NotIsolated", why)
                for eni, why in target.cache["isolated"].items() if why]
    for (name, resource, _), answer in zip(beside, answers):
        if isinstance(answer, Exception):
            log.warning("%s on %s beside the first swap failed: %s", name, resource, answer)
            failures.append(failure_record(name, resource, aws.error_code(answer) or
                                           type(answer).__name__, str(answer)))
    return failures
