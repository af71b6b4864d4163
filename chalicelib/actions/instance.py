"""Instance-level containment: credentials cut, preservation attributes, quarantine tags.

Attributes DescribeInstances does not return are read just before each is changed (after the
network swap, never in front of it), and the value found is what release restores.
"""

from chalicelib.actions import Action, change

TAG_INCIDENT = "QuarantineIncident"
TAG_STATUS = "QuarantineStatus"
TAG_FINDING = "QuarantineFinding"


class DetachInstanceProfile(Action):
    """Cut the instance's role credentials off by disassociating its instance profile."""

    name = "detach-instance-profile"
    isolation = True
    permissions = ("ec2:DescribeIamInstanceProfileAssociations",
                   "ec2:DisassociateIamInstanceProfile")
    undo_permissions = ("ec2:AssociateIamInstanceProfile", "iam:PassRole")

    def _associations(self, target):
        return target.ec2.describe_iam_instance_profile_associations(Filters=[
            {"Name": "instance-id", "Values": [target.instance_id]},
            {"Name": "state", "Values": ["associated"]},
        ])["IamInstanceProfileAssociations"]

    def plan(self, target):
        return [change(self.name, target.instance_id, "instance-profile",
                       a["IamInstanceProfile"]["Arn"], None) for a in self._associations(target)]

    def apply(self, target):
        made = []
        for association in self._associations(target):
            target.ec2.disassociate_iam_instance_profile(AssociationId=association["AssociationId"])
            made.append(change(self.name, target.instance_id, "instance-profile",
                               association["IamInstanceProfile"]["Arn"], None))
        return made

    def undo(self, target, record):
        target.ec2.associate_iam_instance_profile(
            IamInstanceProfile={"Arn": record["before"]}, InstanceId=target.instance_id)


class InstanceAttribute(Action):
    """Set one instance attribute, remembering its previous value."""

    attribute = ""  # DescribeInstanceAttribute's name
    value = None
    permissions = ("ec2:DescribeInstanceAttribute", "ec2:ModifyInstanceAttribute")
    undo_permissions = ("ec2:ModifyInstanceAttribute",)

    def _current(self, target):
        described = target.ec2.describe_instance_attribute(
            InstanceId=target.instance_id, Attribute=self.attribute)
        key = self.attribute[0].upper() + self.attribute[1:]
        return described[key]["Value"]

    def _set(self, target, value):
        key = self.attribute[0].upper() + self.attribute[1:]
        target.ec2.modify_instance_attribute(InstanceId=target.instance_id, **{key: {"Value": value}})

    def plan(self, target):
        current = self._current(target)
        if current == self.value:
            return []
        return [change(self.name, target.instance_id, self.attribute, current, self.value)]

    def apply(self, target):
        current = self._current(target)
        if current == self.value:
            return []
        self._set(target, self.value)
        return [change(self.name, target.instance_id, self.attribute, current, self.value)]

    def undo(self, target, record):
        self._set(target, record["before"])


class TerminationProtection(InstanceAttribute):
    """Nobody terminates the evidence by accident (or on purpose, through the API)."""

    name = "termination-protection"
    attribute = "disableApiTermination"
    value = True


class ShutdownBehaviourStop(InstanceAttribute):
    """A shutdown from inside the instance stops it instead of terminating it."""

    name = "shutdown-behaviour"
    attribute = "instanceInitiatedShutdownBehavior"
    value = "stop"


class QuarantineTags(Action):
    """Mark the instance with its incident, status and finding, for people and for tooling."""

    name = "quarantine-tags"
    permissions = ("ec2:CreateTags",)
    undo_permissions = ("ec2:CreateTags", "ec2:DeleteTags")

    def __init__(self, status: str):
        self.status = status

    def _tags(self, target):
        incident = target.incident
        finding = (incident.get("finding") or {}).get("type") or "manual"
        return {TAG_INCIDENT: incident["incident_id"], TAG_STATUS: self.status,
                TAG_FINDING: finding[:256]}

    def _changes(self, target):
        before = {t["Key"]: t["Value"] for t in target.pre_state.get("tags", [])}
        return [change(self.name, target.instance_id, f"tag:{key}", before.get(key), value)
                for key, value in self._tags(target).items()]

    def plan(self, target):
        return self._changes(target)

    def apply(self, target):
        target.ec2.create_tags(Resources=[target.instance_id], Tags=[
            {"Key": k, "Value": v} for k, v in self._tags(target).items()])
        return self._changes(target)

    def undo(self, target, record):
        key = record["attribute"].split(":", 1)[1]
        if record["before"] is None:
            target.ec2.delete_tags(Resources=[target.instance_id], Tags=[{"Key": key}])
        else:
            target.ec2.create_tags(Resources=[target.instance_id],
                                   Tags=[{"Key": key, "Value": record["before"]}])
