"""Memory capture: the one opt-in action that runs *before* isolation, because SSM needs the
network. Bounded by a timeout; an instance not managed by SSM is skipped with a note.

The image goes to the evidence bucket without the instance's role needing any right there: the
step opens a multipart upload for one object, hands the document presigned UploadPart URLs (made
with the step's own credentials: each authorizes one PUT of one part of that object, until the
capture's timeout), completes the upload once the command succeeded, and aborts it otherwise."""

import time

from chalicelib import aws
from chalicelib.actions import Action, OnRelease, Skipped, change

POLL_SECONDS = 2
DONE = ("Success", "Cancelled", "TimedOut", "Failed", "Cancelling", "Undeliverable", "Terminated")
GIB = 1024 ** 3
PART_BYTES = 2 * GIB  # one PUT of a part (S3 takes up to 5 GiB): few URLs to hand over
MAX_IMAGE_BYTES = 64 * GIB  # the largest image the URLs cover
PARTS = MAX_IMAGE_BYTES // PART_BYTES
# Who wrote the image, for the manifest: its parts are PUT by the instance, through the URLs the
# step presigned, and the step completes it.
WRITTEN_BY = "instance via presigned upload"


class NotManaged(Skipped):
    """The instance has no online SSM agent: nothing to capture with."""


class CaptureMemory(Action):
    name = "capture-memory"
    permissions = ("ssm:DescribeInstanceInformation", "ssm:SendCommand",
                   "ssm:GetCommandInvocation", "ssm:CancelCommand",
                   # the upload: create, presigned parts, complete (PutObject), list, abort
                   "s3:PutObject", "s3:ListMultipartUploadParts", "s3:AbortMultipartUpload")
    on_release = OnRelease.KEPT

    def _check_managed(self, target):
        found = target.client("ssm").describe_instance_information(Filters=[
            {"Key": "InstanceIds", "Values": [target.instance_id]}])["InstanceInformationList"]
        if not any(i.get("PingStatus") == "Online" for i in found):
            raise NotManaged(f"{target.instance_id} is not managed by SSM (no online agent)")

    @staticmethod
    def object_key(target) -> str:
        """The one object the image becomes, under the incident's prefix."""
        return f"{target.incident['incident_id']}/memory/{target.instance_id}.mem"

    def plan(self, target):
        self._check_managed(target)
        return [change(self.name, target.instance_id, "memory", None,
                       target.settings.memory_capture_document)]

    def apply(self, target):
        self._check_managed(target)
        s3 = target.home_client("s3")  # the evidence bucket is the app's, in its own account
        bucket, key = target.settings.evidence_bucket, self.object_key(target)
        upload = s3.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"]
        try:
            command = self._run(target, s3, bucket, key, upload)
            parts = [{"PartNumber": p["PartNumber"], "ETag": p["ETag"], "Size": p["Size"]}
                     for page in s3.get_paginator("list_parts").paginate(
                         Bucket=bucket, Key=key, UploadId=upload) for p in page.get("Parts", [])]
            if not parts:
                raise RuntimeError(f"memory capture command {command} uploaded no part")
            done = s3.complete_multipart_upload(
                Bucket=bucket, Key=key, UploadId=upload, MultipartUpload={"Parts": [
                    {"PartNumber": p["PartNumber"], "ETag": p["ETag"]} for p in parts]})
        except Exception:
            s3.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=upload)
            raise
        return [change(self.name, target.instance_id, "memory", None, {
            "command_id": command, "object": f"s3://{bucket}/{key}",
            "size": sum(p["Size"] for p in parts), "version_id": done.get("VersionId")})]

    def _run(self, target, s3, bucket, key, upload) -> str:
        """Run the document with the part URLs; its id once it succeeded (else raise)."""
        ssm, settings = target.client("ssm"), target.settings
        timeout = settings.memory_capture_timeout_seconds
        urls = [s3.generate_presigned_url("upload_part", ExpiresIn=timeout, Params={
            "Bucket": bucket, "Key": key, "UploadId": upload, "PartNumber": number})
            for number in range(1, PARTS + 1)]
        command = ssm.send_command(
            InstanceIds=[target.instance_id], DocumentName=settings.memory_capture_document,
            TimeoutSeconds=max(30, timeout),
            Parameters={"UploadUrls": urls, "PartSize": [str(PART_BYTES)]},
            Comment=f"ec2-quarantine {target.incident['incident_id']}")["Command"]["CommandId"]
        deadline = time.monotonic() + timeout
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
        return command

    @staticmethod
    def _status(ssm, command, instance_id) -> str:
        """The invocation's status; right after SendCommand AWS may not know it yet."""
        found = aws.tolerate("InvocationDoesNotExist", ssm.get_command_invocation,
                             CommandId=command, InstanceId=instance_id)
        return found["Status"] if found else "Pending"

    def undo(self, target, record):
        """Evidence is kept on release."""
