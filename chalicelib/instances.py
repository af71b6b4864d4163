"""The live instance an incident is about: described once, and its pre-incident state (what
containment will change, as it was), which release restores and the incident's seal covers."""

import logging
from typing import NamedTuple

from chalicelib import accounts, aws, findings, outcomes
from chalicelib.actions import instance as instance_actions, isolation, traffic

log = logging.getLogger(__name__)

# The tags containment reads from the pre-incident state: no others are kept (50 tags of up
# to 384 characters would otherwise travel with every record, execution and report).
PRE_STATE_TAGS = (traffic.ASG_TAG, instance_actions.TAG_INCIDENT, instance_actions.TAG_STATUS,
                  instance_actions.TAG_FINDING)


def describe(request: findings.QuarantineRequest, home_account: str) -> dict:
    """The live instance; refusals for one that does not exist or is terminated."""
    return observe(request, home_account).instance


class Observed(NamedTuple):
    instance: dict  # DescribeInstances' answer
    groups: dict | None  # the product's groups in every VPC (isolation.find_groups), if read
    attributes: dict  # the preservation attributes' values read beside (name: value)


def observe(request: findings.QuarantineRequest, home_account: str,
            attributes: tuple[str, ...] = (), groups: bool = False) -> Observed:
    """The live instance (refusals for one that does not exist or is terminated), and beside it,
    in the same round trip, what the first cut needs that DescribeInstances does not say: the
    product's groups (with `groups`) and the `attributes`' values before the incident."""
    ec2 = accounts.client("ec2", request.account_id, request.region, home_account)
    reads = [lambda: isolation.find_groups(ec2)] if groups else []
    reads += [lambda name=name: ec2.describe_instance_attribute(
        InstanceId=request.instance_id, Attribute=name) for name in attributes]
    described, *beside = aws.settled([lambda: aws.tolerate(
        ("InvalidInstanceID.NotFound", "InvalidInstanceID.Malformed"), ec2.describe_instances,
        InstanceIds=[request.instance_id]), *reads])
    if isinstance(described, Exception):
        raise described
    reservations = (described or {}).get("Reservations")
    if not reservations:
        raise outcomes.InstanceNotFound(f"instance {request.instance_id} not found in "
                                        f"{request.region}")
    instance = reservations[0]["Instances"][0]
    if instance["State"]["Name"] in ("shutting-down", "terminated"):
        raise outcomes.InstanceTerminated(f"instance {request.instance_id} is "
                                          f"{instance['State']['Name']}")
    found = beside.pop(0) if groups else None
    values = {name: instance_actions.attribute_value(answer, name)
              for name, answer in zip(attributes, beside) if not isinstance(answer, Exception)}
    for failed in (b for b in (found, *beside) if isinstance(b, Exception)):  # read again later
        log.warning("read beside %s failed: %s", request.instance_id, failed)
    return Observed(instance, None if isinstance(found, Exception) else found, values)


# Tags a person reads to know what the instance is (matched without regard to case); the Name
# tag first. Only these travel with the incident, each bounded.
SHOWN_TAGS = ("Name", "Environment", "Env", "Stage", "Application", "App", "Service", "Owner",
              "Team", "Project")
SHOWN_VALUE = 128
SHOWN_IPS = 20


def summary(instance: dict) -> dict:
    """What a person needs to know which instance this is: its Name tag, the environment-like
    tags, its addresses, its VPC and the names of its groups (the report shows names, not only
    ids). Shown, never acted on."""
    wanted = {key.lower() for key in SHOWN_TAGS}
    tags = {t["Key"]: findings.one_line(t.get("Value", ""), SHOWN_VALUE)
            for t in instance.get("Tags", []) if t.get("Key", "").lower() in wanted}
    interfaces = instance.get("NetworkInterfaces", [])
    private = [a["PrivateIpAddress"] for n in interfaces for a in n.get("PrivateIpAddresses", [])
               if a.get("PrivateIpAddress")] or [ip for ip in [instance.get("PrivateIpAddress")]
                                                 if ip]
    public = sorted({a["Association"]["PublicIp"] for n in interfaces
                     for a in n.get("PrivateIpAddresses", [])
                     if (a.get("Association") or {}).get("PublicIp")}
                    | ({instance["PublicIpAddress"]} if instance.get("PublicIpAddress") else set()))
    name = next((v for k, v in tags.items() if k.lower() == "name"), "")
    return {"name": name, "tags": {k: v for k, v in tags.items() if k.lower() != "name"},
            "private_ips": private[:SHOWN_IPS], "public_ips": public[:SHOWN_IPS],
            "vpc_id": instance.get("VpcId"), "instance_type": instance.get("InstanceType"),
            "group_names": {g["GroupId"]: findings.one_line(g.get("GroupName", ""), SHOWN_VALUE)
                            for n in interfaces for g in n.get("Groups", [])}}


def pre_state(instance: dict, attributes: dict | None = None) -> dict:
    """What containment will change, as it was: release restores exactly this. `attributes`:
    instance attributes read beside DescribeInstances (which lacks them), by name."""
    interfaces = sorted(instance.get("NetworkInterfaces", []),
                        key=lambda n: n.get("Attachment", {}).get("DeviceIndex", 0))
    return {
        "interfaces": [{"id": n["NetworkInterfaceId"], "vpc_id": n["VpcId"],
                        "device_index": n.get("Attachment", {}).get("DeviceIndex", 0),
                        "groups": [g["GroupId"] for g in n.get("Groups", [])],
                        "tracking": n.get("ConnectionTrackingConfiguration")}
                       for n in interfaces],
        "instance_profile": (instance.get("IamInstanceProfile") or {}).get("Arn"),
        "volumes": [{"id": m["Ebs"]["VolumeId"], "device": m["DeviceName"],
                     "delete_on_termination": m["Ebs"].get("DeleteOnTermination", False)}
                    for m in instance.get("BlockDeviceMappings", []) if "Ebs" in m],
        "vpc_id": instance.get("VpcId"),
        "subnet_id": instance.get("SubnetId"),
        "state": instance["State"]["Name"],
        "tags": [t for t in instance.get("Tags", []) if t["Key"] in PRE_STATE_TAGS],
        "attributes": dict(attributes or {}),
        "metadata": {"HttpEndpoint": (instance.get("MetadataOptions") or {}).get(
            "HttpEndpoint")},  # the one metadata option containment changes
    }
