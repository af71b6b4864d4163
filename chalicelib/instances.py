"""The live instance an incident is about: described once, and its pre-incident state (what
containment will change, as it was), which release restores and the incident's seal covers."""

from chalicelib import accounts, aws, findings, outcomes
from chalicelib.actions import instance as instance_actions, traffic

# The tags containment reads from the pre-incident state: no others are kept (50 tags of up
# to 384 characters would otherwise travel with every record, execution and report).
PRE_STATE_TAGS = (traffic.ASG_TAG, instance_actions.TAG_INCIDENT, instance_actions.TAG_STATUS,
                  instance_actions.TAG_FINDING)



def describe(request: findings.QuarantineRequest, home_account: str) -> dict:
    """The live instance; refusals for one that does not exist or is terminated."""
    ec2 = accounts.client("ec2", request.account_id, request.region, home_account)
    found = aws.tolerate(("InvalidInstanceID.NotFound", "InvalidInstanceID.Malformed"),
                         ec2.describe_instances, InstanceIds=[request.instance_id])
    reservations = (found or {}).get("Reservations")
    if not reservations:
        raise outcomes.InstanceNotFound(f"instance {request.instance_id} not found in "
                                        f"{request.region}")
    instance = reservations[0]["Instances"][0]
    if instance["State"]["Name"] in ("shutting-down", "terminated"):
        raise outcomes.InstanceTerminated(f"instance {request.instance_id} is "
                                          f"{instance['State']['Name']}")
    return instance


def pre_state(instance: dict) -> dict:
    """What containment will change, as it was: release restores exactly this."""
    interfaces = sorted(instance.get("NetworkInterfaces", []),
                        key=lambda n: n.get("Attachment", {}).get("DeviceIndex", 0))
    return {
        "interfaces": [{"id": n["NetworkInterfaceId"], "vpc_id": n["VpcId"],
                        "device_index": n.get("Attachment", {}).get("DeviceIndex", 0),
                        "groups": [g["GroupId"] for g in n.get("Groups", [])]}
                       for n in interfaces],
        "instance_profile": (instance.get("IamInstanceProfile") or {}).get("Arn"),
        "volumes": [{"id": m["Ebs"]["VolumeId"], "device": m["DeviceName"],
                     "delete_on_termination": m["Ebs"].get("DeleteOnTermination", False)}
                    for m in instance.get("BlockDeviceMappings", []) if "Ebs" in m],
        "vpc_id": instance.get("VpcId"),
        "subnet_id": instance.get("SubnetId"),
        "state": instance["State"]["Name"],
        "tags": [t for t in instance.get("Tags", []) if t["Key"] in PRE_STATE_TAGS],
    }
