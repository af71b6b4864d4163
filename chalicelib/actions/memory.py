"""Memory capture: the one opt-in action that runs *before* isolation, because SSM needs the
network. Bounded by a timeout; an instance not managed by SSM is skipped with a note."""

import time

from chalicelib import aws
from chalicelib.actions import Action, OnRelease, Skipped, change

POLL_SECONDS = 2
DONE = ("Success", "Cancelled", "TimedOut", "Failed", "Cancelling", "Undeliverable", "Terminated")


class NotManaged(Skipped):
    """The instance has no online SSM agent: nothing to capture with."""


class CaptureMemory(Action):
    name = "capture-memory"
    permissions = ("ssm:DescribeInstanceInformation", "ssm:SendCommand",
                   "ssm:GetCommandInvocation", "ssm:CancelCommand")  # the agent writes to S3
    on_release = OnRelease.KEPT

    def _check_managed(self, target):
        found = target.client("ssm").describe_instance_information(Filters=[
            {"Key": "InstanceIds", "Values": [target.instance_id]}])["InstanceInformationList"]
        if not any(i.get("PingStatus") == "Online" for i in found):
            raise NotManaged(f"{target.instance_id} is not managed by SSM (no online agent)")

    def plan(self, target):
        self._check_managed(target)
        return [change(self.name, target.instance_id, "memory", None,
                       target.settings.memory_capture_document)]

    def apply(self, target):
        self._check_managed(target)
        ssm, settings = target.client("ssm"), target.settings
        prefix = f"{target.incident['incident_id']}/memory"
        command = ssm.send_command(
            InstanceIds=[target.instance_id], DocumentName=settings.memory_capture_document,
            TimeoutSeconds=max(30, settings.memory_capture_timeout_seconds),
            OutputS3BucketName=settings.evidence_bucket, OutputS3KeyPrefix=prefix,
            Comment=f"ec2-quarantine {target.incident['incident_id']}")["Command"]["CommandId"]
        deadline = time.monotonic() + settings.memory_capture_timeout_seconds
        status = "Pending"
        while time.monotonic() < deadline:
            status = self._status(ssm, command, target.instance_id)
            if status in DONE:
                break
            time.sleep(POLL_SECONDS)
        else:
            ssm.cancel_command(CommandId=command, InstanceIds=[target.instance_id])
            status = "TimedOut (cancelled by ec2-quarantine)"
        if status != "Success":
            raise RuntimeError(f"memory capture command {command} ended {status}")
        return [change(self.name, target.instance_id, "memory", None,
                       {"command_id": command, "output": f"s3://{settings.evidence_bucket}/{prefix}/"})]

    @staticmethod
    def _status(ssm, command, instance_id) -> str:
        """The invocation's status; right after SendCommand AWS may not know it yet."""
        found = aws.tolerate("InvocationDoesNotExist", ssm.get_command_invocation,
                             CommandId=command, InstanceId=instance_id)
        return found["Status"] if found else "Pending"

    def undo(self, target, record):
        """Evidence is kept on release."""
