"""Evidence: crash-consistent snapshots of every attached volume, in one request."""

from chalicelib.actions import Action, change

TAG_INCIDENT = "QuarantineIncident"
TAG_INSTANCE = "QuarantineInstance"


class Snapshots(Action):
    """CreateSnapshots: all volumes at one point in time, tagged with incident and instance."""

    name = "snapshots"
    permissions = ("ec2:CreateSnapshots", "ec2:CreateTags", "ec2:DescribeSnapshots")

    def plan(self, target):
        return [change(self.name, volume["id"], "snapshot", None, "(new snapshot)")
                for volume in target.pre_state.get("volumes", [])]

    def apply(self, target):
        created = target.ec2.create_snapshots(
            InstanceSpecification={"InstanceId": target.instance_id, "ExcludeBootVolume": False},
            Description=f"ec2-quarantine {target.incident['incident_id']} {target.instance_id}",
            TagSpecifications=[{"ResourceType": "snapshot", "Tags": [
                {"Key": TAG_INCIDENT, "Value": target.incident["incident_id"]},
                {"Key": TAG_INSTANCE, "Value": target.instance_id}]}],
            CopyTagsFromSource="volume",
        )["Snapshots"]
        return [change(self.name, s["VolumeId"], "snapshot", None, s["SnapshotId"])
                for s in created]

    def undo(self, target, record):
        """Evidence is kept on release: nothing to undo."""
