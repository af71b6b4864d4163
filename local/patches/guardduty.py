"""GuardDuty fidelity: Malware Protection's on-demand scans of an instance.

moto has no StartMalwareScan, GetMalwareScan or ListMalwareScans (404). AWS starts a scan of an
instance's volumes (StartMalwareScan, given the instance's ARN), refuses a second one of the same
instance within the hour (BadRequestException: GuardDuty-initiated scans, which fire on the same
findings, count too), answers its state (`RUNNING`, then `COMPLETED` with `NO_THREATS_FOUND` or
`THREATS_FOUND` and each threat's name and paths), lists the scans of a resource, and reports
each threat found as a finding, `Execution:EC2/MaliciousFile`, on the event bus (here without a
`resourceRole`: which role GuardDuty gives the instance there is not settled). Here a scan
reads `RUNNING` for its first `local.scenario.scan_hold` polls, then completes; the threats it
finds are those `local.scenario.infect` planted on the instance.
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

    def start_malware_scan(self, resource_arn, initiated_by="ON_DEMAND") -> str:
        arn = INSTANCE_ARN.match(resource_arn or "")
        if not arn or (arn.group("account"), arn.group("region")) != (self.account_id,
                                                                      self.region_name):
            raise _error("BadRequestException", f"The request is rejected because the input "
                         f"resourceArn {resource_arn!r} is not an instance of this account")
        from moto.ec2.models import ec2_backends

        try:
            ec2_backends[self.account_id][self.region_name].get_instance(arn.group("id"))
        except Exception:
            raise _error("BadRequestException", f"The request is rejected because the "
                         f"resource {resource_arn} does not exist") from None
        with _lock:
            recent = [s for s in scans(self).values() if s["resourceArn"] == resource_arn
                      and time.time() - s["scanStartedAt"] < WITHIN]
            if recent:
                raise _error("BadRequestException", "The request is rejected because a scan "
                             "of this resource was started within the last hour")
            scan_id = uuid.uuid4().hex
            scans(self)[scan_id] = {
                "scanId": scan_id, "resourceArn": resource_arn, "resourceType": "EC2_INSTANCE",
                "scanType": initiated_by, "scanStatus": "RUNNING",
                "scanStartedAt": time.time(), "polls": 0, "instance_id": arn.group("id")}
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
                threats = scenario.infected.get(scan["instance_id"], [])
                scan.update(scanStatus="COMPLETED", scanCompletedAt=time.time(),
                            scanResultDetails=_result(scan["resourceArn"], threats))
        if completing and threats:
            _report_threats(self, scan, threats)
        return {k: v for k, v in scan.items() if k not in ("polls", "instance_id")}

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
        return json.dumps({"scanId": self.guardduty_backend.start_malware_scan(
            _body(self).get("resourceArn"))})

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
