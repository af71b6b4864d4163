"""GuardDuty fidelity: Malware Protection's on-demand scans of an instance.

moto has no StartMalwareScan, GetMalwareScan or ListMalwareScans (404). AWS starts a scan of an
instance's volumes (StartMalwareScan, given the instance's ARN), refuses a second one of the same
instance within the hour (BadRequestException: GuardDuty-initiated scans, which fire on the same
findings, count too; the same client token is the same scan), makes its service-linked role on
an account's first scan (the caller needs iam:CreateServiceLinkedRole for it), answers its
state (`RUNNING`, then `COMPLETED` with `NO_THREATS_FOUND` or `THREATS_FOUND` and each
threat's name and paths), lists the scans of a resource, and reports
each threat found as a finding, `Execution:EC2/MaliciousFile`, on the event bus (here without a
`resourceRole`: which role GuardDuty gives the instance there is not settled). Here a scan
reads `RUNNING` for its first `local.scenario.scan_hold` polls, then completes; the threats it
finds are those `local.scenario.infect` planted on the instance. A volume tagged
`GuardDutyExcluded=true` when the scan starts is not snapshotted (GuardDuty's service-linked
role may snapshot only volumes without it): `SKIPPED` among the scan's `scannedResources`, the
scan `COMPLETED_WITH_ISSUES` (or `SKIPPED` when no volume was scanned).
"""

import json
import re
import threading
import time
import uuid

from local import scenario

WITHIN = 3600  # seconds: one scan of a resource per hour
INSTANCE_ARN = re.compile(r"\Aarn:aws:ec2:(?P<region>[a-z0-9-]+):(?P<account>[0-9]{12}):"
                          r"instance/(?P<id>i-[0-9a-f]{8,17})\Z")
PATHS = ("{0}/malware-scan/start$", "{0}/malware-scan/(?P<scan_id>[^/]+)$", "{0}/malware-scan$")
_lock = threading.Lock()


def _error(code: str, message: str):
    from moto.core.exceptions import JsonRESTError

    error = JsonRESTError(code, message)
    error.code = 404 if code == "ResourceNotFoundException" else 400
    return error


def patch_malware_scans():
    """Answer the three operations as Malware Protection does (see the module's docstring)."""
    from moto.guardduty import urls
    from moto.guardduty.models import GuardDutyBackend
    from moto.guardduty.responses import GuardDutyResponse

    for path in PATHS:
        urls.url_paths.setdefault(path, GuardDutyResponse.dispatch)

    def scans(self) -> dict:
        return self.__dict__.setdefault("_malware_scans", {})

    def start_malware_scan(self, resource_arn, initiated_by="ON_DEMAND", client_token=None
                           ) -> str:
        arn = INSTANCE_ARN.match(resource_arn or "")
        if not arn or (arn.group("account"), arn.group("region")) != (self.account_id,
                                                                      self.region_name):
            raise _error("BadRequestException", f"The request is rejected because the input "
                         f"resourceArn {resource_arn!r} is not an instance of this account")
        from moto.ec2.models import ec2_backends

        ec2 = ec2_backends[self.account_id][self.region_name]
        try:
            instance = ec2.get_instance(arn.group("id"))
        except Exception:
            raise _error("BadRequestException", f"The request is rejected because the "
                         f"resource {resource_arn} does not exist") from None
        volumes = {block.volume_id: ec2.tags.get(block.volume_id, {}).get(EXCLUDED) == "true"
                   for block in instance.block_device_mapping.values()}
        with _lock:
            same = [s for s in scans(self).values() if client_token
                    and s.get("client_token") == client_token]
            if same:  # the same request again: the same scan (or a token reused: refused)
                if same[0]["resourceArn"] != resource_arn:
                    raise _error("ConflictException", "The request is rejected because the "
                                 "client token was used for another resource")
                return same[0]["scanId"]
            recent = [s for s in scans(self).values() if s["resourceArn"] == resource_arn
                      and time.time() - s["scanStartedAt"] < WITHIN]
            if recent:
                raise _error("BadRequestException", "The request is rejected because a scan "
                             "of this resource was started within the last hour")
            scan_id = uuid.uuid4().hex
            scans(self)[scan_id] = {
                "scanId": scan_id, "resourceArn": resource_arn, "resourceType": "EC2_INSTANCE",
                "scanType": initiated_by, "scanStatus": "RUNNING",
                "scanStartedAt": time.time(), "polls": 0, "instance_id": arn.group("id"),
                "client_token": client_token, "volumes": volumes}
        service_linked_role(self.account_id)
        return scan_id

    def get_malware_scan(self, scan_id) -> dict:
        with _lock:
            scan = scans(self).get(scan_id)
            if scan is None:
                raise _error("ResourceNotFoundException", f"No scan {scan_id}")
            scan["polls"] += 1
            completing = scan["scanStatus"] == "RUNNING" and scan["polls"] > scenario.scan_hold[
                "polls"]
            if completing:
                skipped = {v for v, excluded in scan["volumes"].items() if excluded}
                scanned = scan["volumes"].keys() - skipped
                threats = scenario.infected.get(scan["instance_id"], []) if scanned else []
                scan.update(scanStatus="COMPLETED" if not skipped else
                            "COMPLETED_WITH_ISSUES" if scanned else "SKIPPED",
                            scanCompletedAt=time.time(),
                            scannedResourcesCount=len(scanned),
                            skippedResourcesCount=len(skipped),
                            scannedResources=[{
                                "scannedResourceArn": f"arn:aws:ec2:{self.region_name}:"
                                                      f"{self.account_id}:volume/{volume}",
                                "scannedResourceType": "EBS_VOLUME",
                                "scannedResourceStatus": "SKIPPED" if volume in skipped
                                else "COMPLETED"} for volume in sorted(scan["volumes"])],
                            **({"scanResultDetails": _result(scan["resourceArn"], threats)}
                               if scanned else {}))
        if completing and threats:
            _report_threats(self, scan, threats)
        return {k: v for k, v in scan.items() if k not in PRIVATE}

    def list_malware_scans(self, resource_arn=None) -> list:
        with _lock:
            found = [s for s in scans(self).values()
                     if resource_arn is None or s["resourceArn"] == resource_arn]
        return [{k: s.get(k) for k in ("resourceArn", "resourceType", "scanId", "scanStatus",
                                       "scanType", "scanStartedAt", "scanCompletedAt")}
                | {"scanResultStatus": (s.get("scanResultDetails") or {}).get(
                    "scanResultStatus")}
                for s in sorted(found, key=lambda s: -s["scanStartedAt"])]

    GuardDutyBackend.start_malware_scan = start_malware_scan
    GuardDutyBackend.get_malware_scan = get_malware_scan
    GuardDutyBackend.list_malware_scans = list_malware_scans

    def _body(self) -> dict:
        raw = self.body.decode() if isinstance(self.body, bytes) else (self.body or "")
        return json.loads(raw or "{}")

    def start_response(self):
        body = _body(self)
        return json.dumps({"scanId": self.guardduty_backend.start_malware_scan(
            body.get("resourceArn"), client_token=body.get("clientToken"))})

    def get_response(self):
        return json.dumps(self.guardduty_backend.get_malware_scan(
            self.path.rstrip("/").rsplit("/", 1)[-1]))

    def list_response(self):
        wanted = None
        for criterion in ((_body(self).get("filterCriteria") or {}).get("filterCriterion")
                          or []):
            if criterion.get("criterionKey") == "RESOURCE_ARN":
                wanted = (criterion.get("filterCondition") or {}).get("equalsValue")
        return json.dumps({"scans": self.guardduty_backend.list_malware_scans(wanted)})

    GuardDutyResponse.start_malware_scan = start_response
    GuardDutyResponse.get_malware_scan = get_response
    GuardDutyResponse.list_malware_scans = list_response


PRIVATE = ("polls", "instance_id", "client_token", "volumes")  # the embedded AWS's own
EXCLUDED = "GuardDutyExcluded"  # a volume tagged so (`true`) is not scanned: GuardDuty skips it
SERVICE = "malware-protection.guardduty.amazonaws.com"
ROLE = "AWSServiceRoleForAmazonGuardDutyMalwareProtection"


def role_arn(account: str) -> str:
    return f"arn:aws:iam::{account}:role/aws-service-role/{SERVICE}/{ROLE}"


def has_service_linked_role(account: str) -> bool:
    from moto.iam.models import iam_backends

    return any(role.name == ROLE for role in iam_backends[account]["global"].roles.values())


def service_linked_role(account: str) -> None:
    """GuardDuty's role for scans, made by the account's first scan (its caller needs
    iam:CreateServiceLinkedRole for it: local/patches/iam.py)."""
    from moto.iam.models import iam_backends

    if not has_service_linked_role(account):  # moto's CreateServiceLinkedRole misnames it
        iam_backends[account]["global"].create_role(
            ROLE, json.dumps({"Version": "2012-10-17", "Statement": [{
                "Effect": "Allow", "Principal": {"Service": [SERVICE]},
                "Action": ["sts:AssumeRole"]}]}), f"/aws-service-role/{SERVICE}/", None,
            "The service-linked role of GuardDuty Malware Protection for EC2", [], "3600",
            linked_service=SERVICE)


def _result(resource_arn: str, threats: list[dict]) -> dict:
    if not threats:
        return {"scanResultStatus": "NO_THREATS_FOUND", "threatFoundFileCount": 0,
                "uniqueThreatCount": 0, "threats": []}
    return {"scanResultStatus": "THREATS_FOUND", "threatFoundFileCount": len(threats),
            "uniqueThreatCount": len({t["name"] for t in threats}),
            "threats": [{"name": t["name"], "source": "AMAZON", "count": 1,
                         "hash": t.get("hash", "0" * 64),
                         "itemDetails": [{"resourceArn": resource_arn, "itemPath": t["path"],
                                          "hash": t.get("hash", "0" * 64)}]}
                        for t in threats]}


def _report_threats(backend, scan: dict, threats: list[dict]) -> None:
    """The finding GuardDuty reports for the threats a scan found, on the default bus."""
    from moto.events.models import events_backends

    finding_id = uuid.uuid4().hex
    detail = {
        "schemaVersion": "2.0", "accountId": backend.account_id, "region": backend.region_name,
        "partition": "aws", "id": finding_id,
        "arn": f"arn:aws:guardduty:{backend.region_name}:{backend.account_id}:detector/"
               f"0ec2b5a9d1e84c3f/finding/{finding_id}",
        "type": "Execution:EC2/MaliciousFile", "severity": 8.0,
        "title": f"Malicious file detected on EC2 instance {scan['instance_id']}.",
        "resource": {"resourceType": "Instance",
                     "instanceDetails": {"instanceId": scan["instance_id"]}},
        "service": {"serviceName": "guardduty", "archived": False,
                    "featureName": "EbsMalwareProtection",
                    "ebsVolumeScanDetails": {
                        "scanId": scan["scanId"], "scanType": scan["scanType"],
                        "scanDetections": {"threatDetectedByName": {
                            "itemCount": len(threats),
                            "uniqueThreatNameCount": len({t["name"] for t in threats}),
                            "threatNames": [{"name": t["name"], "severity": "HIGH",
                                             "itemCount": 1,
                                             "filePaths": [{"filePath": t["path"],
                                                            "fileName": t["path"].rsplit(
                                                                "/", 1)[-1],
                                                            "hash": t.get("hash", "0" * 64)}]}
                                            for t in threats]}}}}}
    events_backends[backend.account_id][backend.region_name].put_events([{
        "Source": "aws.guardduty", "DetailType": "GuardDuty Finding",
        "Detail": json.dumps(detail), "Resources": []}])
