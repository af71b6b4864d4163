"""GuardDuty findings, either casing, into requests; malformed ones refused with the reason."""

import copy

import pytest

from chalicelib import findings
from chalicelib.settings import load
from tests.helpers import sample


def test_camel_case_event_detail_is_parsed():
    request = findings.parse(sample("backdoor-cc-activity-high.json")["detail"])
    assert request.instance_id == "i-0123456789abcdef0"
    assert request.account_id == "123456789012"
    assert request.region == "us-east-1"
    assert request.finding.type == "Backdoor:EC2/C&CActivity.B!DNS"
    assert request.finding.severity >= 7
    assert request.source == "guardduty"


def test_pascal_case_get_findings_output_is_parsed_the_same():
    camel = findings.parse(sample("backdoor-cc-activity-high.json")["detail"])
    pascal = findings.parse(sample("backdoor-cc-activity-get-findings-pascalcase.json"))
    assert (pascal.instance_id, pascal.finding.type) == (camel.instance_id, camel.finding.type)


def test_member_account_finding_keeps_its_account_and_region():
    detail = sample("cryptocurrency-member-account.json")["detail"]
    request = findings.parse(detail)
    assert request.account_id == detail["accountId"] and request.region == detail["region"]


@pytest.mark.parametrize("mutate,expected", [
    (lambda d: d["resource"].update(resourceType="S3Bucket"), "not an Instance"),
    (lambda d: d["resource"]["instanceDetails"].pop("instanceId"), "no valid instance id"),
    (lambda d: d["resource"]["instanceDetails"].update(instanceId="i-xyz"), "'i-xyz'"),
    (lambda d: d.update(severity="8"), "severity"),
    (lambda d: d.update(severity=True), "severity"),
    (lambda d: d.update(accountId="12"), "accountId"),
    (lambda d: d.update(region="../etc"), "region"),
    (lambda d: d.pop("type"), "'type'"),
])
def test_malformed_findings_are_refused_with_the_reason(mutate, expected):
    detail = copy.deepcopy(sample("backdoor-cc-activity-high.json")["detail"])
    mutate(detail)
    with pytest.raises(findings.MalformedFinding) as raised:
        findings.parse(detail)
    assert expected in str(raised.value)


def test_policy_by_severity_and_type_prefix():
    finding = findings.Finding(id="f", type="Backdoor:EC2/X", severity=7.0)
    assert findings.qualifies(finding, load({})) is None
    assert "below" in findings.qualifies(finding, load({"SEVERITY_THRESHOLD": "7.5"}))
    assert "matches none" in findings.qualifies(finding, load({"FINDING_TYPE_PREFIXES": "Trojan:"}))
    assert findings.qualifies(finding, load({"FINDING_TYPE_PREFIXES": "Trojan:,Backdoor:EC2"})) is None
