"""Evidence: crash-consistent snapshots, the evidence store with hashes, and what follows
once the snapshots are safe (sharing them, stopping the instance)."""

import json

from chalicelib import aws, manifests, revocation
from chalicelib.actions import Action, OnRelease, PartialFailure, apply_each, change, memory
from chalicelib.actions.instance import TAG_INCIDENT

TAG_INSTANCE = "QuarantineInstance"


class Snapshots(Action):
    """CreateSnapshots: all volumes at one point in time, tagged with incident and instance."""

    name = "snapshots"
    permissions = ("ec2:CreateSnapshots", "ec2:CreateTags")
    on_release = OnRelease.KEPT

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


class EvidenceNotCaptured(Exception):
    """Pieces of evidence that could not be captured (the others were stored and listed)."""


class StoreEvidence(Action):
    """The evidence store: one prefix per incident in the evidence bucket, holding the instance's
    description, its interfaces with their (pre-incident) security groups, the subnet's route
    table and network ACL, the decoded console output, a console screenshot where the API gives
    one, and the manifest (chalicelib/manifests.py): every object's SHA-256, size and version id
    and the snapshot ids, signed with the stage's signing key."""

    name = "evidence-store"
    permissions = ("ec2:DescribeInstances", "ec2:DescribeNetworkInterfaces",
                   "ec2:DescribeSecurityGroups", "ec2:DescribeRouteTables",
                   "ec2:DescribeNetworkAcls", "ec2:GetConsoleOutput", "ec2:GetConsoleScreenshot",
                   "s3:PutObject", "s3:ListBucketVersions",
                   *manifests.SIGN_PERMISSIONS)
    on_release = OnRelease.KEPT

    def __init__(self, snapshot_ids=()):
        self.snapshot_ids = list(snapshot_ids)

    def _prefix(self, target):
        return f"{target.incident['incident_id']}/"

    def plan(self, target):
        return [change(self.name, target.settings.evidence_bucket, "prefix", None,
                       self._prefix(target))]

    def _collect(self, target):
        """(name, bytes, content type) of each piece, and notes on what could not be had."""
        import base64

        ec2, state = target.ec2, target.pre_state
        pieces, notes = [], []

        def piece(name, call, render, content_type="application/json"):
            try:
                pieces.append((name, render(call()), content_type))
            except Exception as error:  # one missing piece never loses the others
                notes.append(f"{name}: {aws.error_code(error) or error}")

        as_json = lambda value: json.dumps(value, indent=2, sort_keys=True, default=str).encode()
        instance = target.instance_id
        piece("instance.json", lambda: ec2.describe_instances(InstanceIds=[instance]), as_json)
        groups = sorted({g for i in state["interfaces"] for g in i["groups"]})
        piece("interfaces.json", lambda: {
            "interfaces": ec2.describe_network_interfaces(Filters=[
                {"Name": "attachment.instance-id", "Values": [instance]}])["NetworkInterfaces"],
            "pre_incident_groups": {i["id"]: i["groups"] for i in state["interfaces"]},
            "security_groups": ec2.describe_security_groups(GroupIds=groups)["SecurityGroups"]
            if groups else []}, as_json)
        subnet = [{"Name": "association.subnet-id", "Values": [state.get("subnet_id") or ""]}]
        main = [{"Name": "vpc-id", "Values": [state.get("vpc_id") or ""]},
                {"Name": "association.main", "Values": ["true"]}]
        piece("network.json", lambda: {
            "route_tables": ec2.describe_route_tables(Filters=subnet)["RouteTables"]
            or ec2.describe_route_tables(Filters=main)["RouteTables"],
            "network_acls": ec2.describe_network_acls(Filters=subnet)["NetworkAcls"]}, as_json)
        piece("console-output.txt",  # botocore decodes the base64 AWS sends
              lambda: ec2.get_console_output(InstanceId=instance, Latest=True).get("Output", ""),
              lambda output: output.encode("utf-8", "replace"), "text/plain")
        piece("console-screenshot.jpg",
              lambda: ec2.get_console_screenshot(InstanceId=instance, WakeUp=True)["ImageData"],
              base64.b64decode, "image/jpeg")
        return pieces, notes

    def apply(self, target):
        import hashlib

        bucket, prefix = target.settings.evidence_bucket, self._prefix(target)
        s3 = target.home_client("s3")  # the evidence bucket is the app's, in its own account
        memory_key = memory.CaptureMemory.object_key(target)
        others = self._written_by_others(s3, bucket, prefix, memory_key)  # before the app's own
        pieces, notes = self._collect(target)
        own = {prefix + name for name in (*(p[0] for p in pieces), manifests.MANIFEST,
                                          manifests.SIGNATURE)}
        others = [o for o in others if o["key"] not in own]  # a retry writes its own anew
        listed = []
        for name, data, content_type in pieces:
            digest = hashlib.sha256(data).hexdigest()
            written = s3.put_object(Bucket=bucket, Key=prefix + name, Body=data,
                                    ContentType=content_type, Metadata={"sha256": digest},
                                    ChecksumAlgorithm="SHA256")
            listed.append({"key": prefix + name, "sha256": digest, "size": len(data),
                           "version_id": written.get("VersionId")})
        manifest = manifests.encode({"incident_id": target.incident["incident_id"],
                                     "instance_id": target.instance_id,
                                     "objects": listed + others,
                                     "snapshot_ids": self.snapshot_ids, "not_captured": notes})
        digest = hashlib.sha256(manifest).hexdigest()
        s3.put_object(Bucket=bucket, Key=prefix + manifests.MANIFEST, Body=manifest,
                      ContentType="application/json", ChecksumAlgorithm="SHA256",
                      Metadata={"sha256": digest})
        stored = [change(self.name, f"s3://{bucket}/{o['key']}", "sha256", None, o["sha256"])
                  for o in listed + [{"key": prefix + manifests.MANIFEST, "sha256": digest}]]
        try:  # after the manifest: a signature names the bytes already stored
            signature = json.dumps(manifests.sign(target.settings.evidence_signing_key_arn,
                                                  manifest), indent=2, sort_keys=True).encode()
            s3.put_object(Bucket=bucket, Key=prefix + manifests.SIGNATURE, Body=signature,
                          ContentType="application/json", ChecksumAlgorithm="SHA256")
            stored.append(change(self.name, f"s3://{bucket}/{prefix}{manifests.SIGNATURE}",
                                 "signature", None, f"{manifests.ALGORITHM} {digest}"))
        except Exception as error:  # the evidence stays stored; its missing signature is told
            notes.append(f"{manifests.SIGNATURE}: {aws.error_code(error) or error}")
        if notes:  # stored, and reported: a missing piece is a failure someone must see
            raise PartialFailure(stored, EvidenceNotCaptured("; ".join(notes)))
        return stored

    @staticmethod
    def _written_by_others(s3, bucket, prefix, memory_key):
        """Objects already under the incident's prefix, before the step writes its own: the
        memory image at `memory_key` (written by the instance through presigned URLs) and
        anything else (`written_by` "unknown"), listed with S3's own size, checksum and current
        version, since a memory image is too large to hash here."""
        found = []
        for page in s3.get_paginator("list_object_versions").paginate(Bucket=bucket,
                                                                      Prefix=prefix):
            for item in page.get("Versions", []):
                if item.get("IsLatest"):  # a deleted object's latest is a delete marker
                    found.append({"key": item["Key"], "size": item["Size"],
                                  "etag": item.get("ETag", "").strip('"'), "sha256": None,
                                  "version_id": item["VersionId"],
                                  "written_by": memory.WRITTEN_BY if item["Key"] == memory_key
                                  else "unknown"})
        return found

    def undo(self, target, record):
        """Evidence is kept on release."""


class ShareSnapshots(Action):
    """Let the forensic account create volumes from the snapshots (FORENSIC_ACCOUNT_ID)."""

    name = "share-snapshots"
    permissions = ("ec2:ModifySnapshotAttribute",)
    on_release = OnRelease.KEPT  # the forensic account may be working on the evidence

    def __init__(self, snapshot_ids=()):
        self.snapshot_ids = list(snapshot_ids)

    def plan(self, target):
        return [change(self.name, s, "createVolumePermission", None,
                       target.settings.forensic_account_id) for s in self.snapshot_ids]

    def apply(self, target):
        return apply_each(self.plan(target), lambda record: target.ec2.modify_snapshot_attribute(
            SnapshotId=record["resource"], Attribute="createVolumePermission",
            OperationType="add", UserIds=[target.settings.forensic_account_id]))

    def undo(self, target, record):
        """Sharing stays: the forensic account may be working on the evidence."""


class ScanOfOthers(Exception):
    """GuardDuty refused a scan because someone else's scan of the instance ran within the hour."""


class MalwareScan(Action):
    """GuardDuty Malware Protection's scan of the instance's volumes (MALWARE_SCAN=true), once
    its snapshots completed. GuardDuty scans an instance once an hour at most, and starts its
    own scans on the very findings that open incidents: refused (`BadRequestException`) while
    GuardDuty's own scan of the instance, started within the hour, is listed, that scan is the
    one followed (never a scan someone else asked for: whoever asked chose when it read the
    volumes). The record, sealed with the step's others, names the scan the sweep follows
    (chalicelib/malware.py); the token makes a retried step's request the same scan."""

    name = "malware-scan"
    # The first scan in an account makes GuardDuty's service-linked role (deploy/grants.py:
    # that role only).
    permissions = ("guardduty:StartMalwareScan", "guardduty:ListMalwareScans",
                   "iam:CreateServiceLinkedRole")
    on_release = OnRelease.KEPT
    WITHIN = 3600 + 60  # seconds: GuardDuty's one scan of a resource per hour (and a margin)
    PAGES = 10  # of ListMalwareScans, 50 scans each: the instance's latest are among them

    @staticmethod
    def arn(incident: dict) -> str:
        return revocation.instance_arn(incident["region"], incident["account_id"],
                                       incident["instance_id"])

    def plan(self, target):
        return [change(self.name, self.arn(target.incident), "scan", None, "(new scan)")]

    def apply(self, target):
        guardduty, arn = target.client("guardduty"), self.arn(target.incident)
        try:
            scan_id = guardduty.start_malware_scan(
                ResourceArn=arn, ClientToken=target.incident["incident_id"])["ScanId"]
        except Exception as error:
            if aws.error_code(error) != "BadRequestException":
                raise
            recent = self._recent(guardduty, arn)
            if not recent:  # refused for another reason: the error says which
                raise
            if recent["ScanType"] != "GUARDDUTY_INITIATED":
                raise ScanOfOthers(
                    f"GuardDuty refused a scan: {recent['ScanType']} scan {recent['ScanId']} "
                    f"of the instance started at {recent['ScanStartedAt']:%Y-%m-%d %H:%M:%S %Z}"
                    ", within the hour; it is not followed (someone else asked for it, and "
                    "chose when it read the volumes)") from error
            scan_id = recent["ScanId"]
        return [change(self.name, arn, "scan", None, scan_id)]

    def _recent(self, guardduty, arn: str) -> dict | None:
        """The latest scan of `arn` started within the hour (None: none)."""
        import datetime

        since = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(
            seconds=self.WITHIN)
        recent, token = [], None
        for _ in range(self.PAGES):
            listed = guardduty.list_malware_scans(MaxResults=50, FilterCriteria={
                "ListMalwareScansFilterCriterion": [{
                    "ListMalwareScansCriterionKey": "RESOURCE_ARN",
                    "FilterCondition": {"EqualsValue": arn}}]}, **(
                {"NextToken": token} if token else {}))
            recent += [s for s in listed.get("Scans", []) if s.get("ResourceArn") == arn
                       and s.get("ScanStartedAt") and s["ScanStartedAt"] >= since]
            token = listed.get("NextToken")
            if not token:
                break
        return max(recent, key=lambda s: s["ScanStartedAt"]) if recent else None

    def undo(self, target, record):
        """A scan is evidence: nothing to undo."""


class StopInstance(Action):
    """Stop the instance once its snapshots are safe (STOP_AFTER_EVIDENCE=true; off by default,
    because memory is evidence too)."""

    name = "stop-instance"
    permissions = ("ec2:StopInstances",)
    undo_permissions = ("ec2:StartInstances",)
    on_release = OnRelease.UNDONE

    def plan(self, target):
        return [change(self.name, target.instance_id, "state", "running", "stopped")]

    def apply(self, target):
        target.ec2.stop_instances(InstanceIds=[target.instance_id])
        return self.plan(target)

    def undo(self, target, record):
        target.ec2.start_instances(InstanceIds=[target.instance_id])
