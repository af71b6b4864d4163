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
    assert "below" in findings.qualifies(finding, load({"SEVERITY_THRESHOLD": "7.5"})).reason
    assert "matches none" in findings.qualifies(
        finding, load({"FINDING_TYPE_PREFIXES": "Trojan:"})).reason
    assert findings.qualifies(finding, load({"FINDING_TYPE_PREFIXES": "Trojan:,Backdoor:EC2"})) is None


def _event_detail(name, **service):
    detail = copy.deepcopy(sample(name))
    detail = detail.get("detail", detail)
    (detail.get("service") or detail["Service"]).update(service)
    return detail


@pytest.mark.parametrize("name,service", [
    ("backdoor-cc-activity-sample-finding.json", {}),
    ("backdoor-cc-activity-high.json", {"additionalInfo": {"sample": True}}),
    ("backdoor-cc-activity-get-findings-pascalcase.json",
     {"AdditionalInfo": {"Value": '{"sample":true}', "Type": "default"}}),
    ("backdoor-cc-activity-get-findings-pascalcase.json", {"AdditionalInfo": {"Sample": True}}),
])
def test_a_sample_finding_is_known_in_either_casing(name, service):
    assert findings.parse(_event_detail(name, **service)).finding.sample is True


@pytest.mark.parametrize("info", [{"value": "{}"}, {"sample": "true"}, {"value": "{not json"},
                                  {"value": '{"sample": 1}'}, {"value": "[" * 60_000}, "sample",
                                  None])
def test_only_guardduty_s_mark_makes_a_sample(info):
    detail = _event_detail("backdoor-cc-activity-high.json", additionalInfo=info)
    assert findings.parse(detail).finding.sample is False


def test_archived_and_the_resource_role_are_read():
    target = findings.parse(sample("ssh-bruteforce-target-low.json")["detail"]).finding
    assert (target.resource_role, target.archived, target.sample) == ("TARGET", False, False)
    archived = findings.parse(_event_detail("backdoor-cc-activity-high.json", archived=True))
    assert archived.finding.archived is True and archived.finding.resource_role == "ACTOR"


def _finding(**fields):
    return findings.Finding(**{"id": "f", "type": "Backdoor:EC2/C&CActivity.B",
                               "severity": 8.0, **fields})


def test_a_sample_is_never_acted_on_and_announced_when_it_would_have_been():
    verdict = findings.qualifies(_finding(sample=True), load({}))
    assert verdict.decision == "sample" and verdict.headline == "sample finding"
    assert "would have been contained" in verdict.reason
    low = findings.qualifies(_finding(sample=True, severity=2.0), load({}))
    assert (low.decision, low.headline) == ("dropped", "") and "below" in low.reason
    target = findings.qualifies(_finding(sample=True, resource_role="TARGET"), load({}))
    assert target.decision == "sample" and "target" in target.reason


def test_an_archived_finding_is_dropped_unannounced():
    verdict = findings.qualifies(_finding(archived=True, sample=True), load({}))
    assert (verdict.decision, verdict.headline) == ("dropped", "")
    assert "archived" in verdict.reason


def test_a_target_finding_is_acted_on_only_for_the_listed_types():
    probe = _finding(type="UnauthorizedAccess:EC2/SSHBruteForce", resource_role="TARGET")
    verdict = findings.qualifies(probe, load({}))
    assert verdict.decision == "target" and verdict.headline == "the instance is the target"
    assert findings.qualifies(probe, load({"TARGET_FINDING_TYPES": "Recon:EC2"})).decision == \
        "target"
    assert findings.qualifies(probe, load({
        "TARGET_FINDING_TYPES": "Recon:EC2, UnauthorizedAccess:EC2/SSH"})) is None
    assert findings.qualifies(_finding(resource_role="ACTOR"), load({})) is None


EXFILTRATION = "instance-credential-exfiltration-outside-aws.json"


def test_stolen_instance_credentials_name_the_instance_its_role_and_who_used_them():
    request = findings.parse(sample(EXFILTRATION)["detail"])
    finding = request.finding
    assert request.instance_id == "i-0123456789abcdef0"
    assert findings.is_credential_exfiltration(finding.type)
    assert (finding.resource_type, finding.role) == ("AccessKey", "app-server")
    assert finding.actor == findings.Actor(
        ip="203.0.113.77", asn_org="EXAMPLE-HOSTING-AS", isp="Example Hosting",
        country="Netherlands", account_id="", api="ListBuckets", service_name="s3.amazonaws.com",
        caller_type="Remote IP")
    # the credentials are the target: the instance was taken, the role rule does not apply
    assert finding.resource_role == "TARGET" and findings.qualifies(finding, load({})) is None


def test_inside_aws_names_the_other_account_and_instance_details_win():
    detail = copy.deepcopy(sample(EXFILTRATION)["detail"])
    detail["type"] = findings.CREDENTIAL_EXFILTRATION + ".InsideAWS"
    detail["resource"]["instanceDetails"] = {"instanceId": "i-0fedcba9876543210"}
    detail["service"]["action"]["awsApiCallAction"]["remoteAccountDetails"] = {
        "accountId": "210987654321", "affiliated": False}
    request = findings.parse(detail)
    assert request.instance_id == "i-0fedcba9876543210"
    assert request.finding.actor.account_id == "210987654321"


def test_what_a_finding_says_of_its_caller_is_kept_bounded_on_one_line():
    detail = copy.deepcopy(sample(EXFILTRATION)["detail"])
    call = detail["service"]["action"]["awsApiCallAction"]
    call.update(api="A" * 5000, serviceName={"not": "a string"}, callerType="Remote\nIP\x1b[2J")
    actor = findings.parse(detail).finding.actor
    assert actor.api == "A" * findings.MAX_FACT and actor.service_name == ""
    assert actor.caller_type == "Remote IP [2J"


@pytest.mark.parametrize("mutate,expected", [
    (lambda d: d.update(type="UnauthorizedAccess:IAMUser/MaliciousIPCaller"),
     "only UnauthorizedAccess:IAMUser/InstanceCredentialExfiltration.* names an instance"),
    (lambda d: d["resource"]["accessKeyDetails"].update(principalId="AIDAEXAMPLEUSERID"),
     "not an instance role's session"),
    (lambda d: d["resource"]["accessKeyDetails"].update(principalId="AROAEXAMPLE:i-xyz"),
     "not an instance role's session"),
    (lambda d: d["resource"]["accessKeyDetails"].update(principalId="AROAEXAMPLE:i-0123\n"),
     "not an instance role's session"),
    (lambda d: d["resource"]["accessKeyDetails"].pop("principalId"), "names no instance"),
    (lambda d: d["resource"].update(instanceDetails={"instanceId": "i-xyz"}), "'i-xyz'"),
])
def test_other_access_key_findings_are_refused_with_the_reason(mutate, expected):
    detail = copy.deepcopy(sample(EXFILTRATION)["detail"])
    mutate(detail)
    with pytest.raises(findings.MalformedFinding) as raised:
        findings.parse(detail)
    assert expected in str(raised.value)


def test_an_attack_sequence_names_each_of_its_instances_once_in_its_account_and_region():
    """By id, by ARN, through its Auto Scaling group; never an instance of another account
    or region (the finding is the member's own), never a resource that is no instance."""
    from local.drive import attack_sequence_event

    ids = ["i-0a1b2c3d4e5f60001", "i-0a1b2c3d4e5f60002", "i-0a1b2c3d4e5f60003"]
    detail = attack_sequence_event(ids[:2])["detail"]
    sequence = detail["service"]["detection"]["sequence"]
    for resource in sequence["resources"]:
        if resource["resourceType"] == "AUTOSCALING_AUTO_SCALING_GROUP":
            resource["data"]["autoscalingAutoScalingGroup"]["ec2InstanceUids"] = ids
    sequence["resources"].append({"uid": "arn:aws:ec2:us-east-1:210987654321:instance/"
                                         "i-0a1b2c3d4e5f60009", "resourceType": "EC2_INSTANCE"})
    sequence["resources"].append({"uid": "i-0a1b2c3d4e5f60008", "region": "eu-west-1",
                                  "resourceType": "EC2_INSTANCE"})
    wanted, left = findings.parse_all(detail)
    assert [(r.instance_id, r.account_id, r.region) for r in wanted] == [
        (i, "123456789012", "us-east-1") for i in ids]
    assert len({r.group_id for r in wanted}) == 1 and wanted[0].group_id.startswith("grp-")
    assert wanted[0].group_id == findings.group_id("123456789012", "us-east-1", detail["id"])
    assert all(r.finding.resource_type == "AttackSequence" for r in wanted)
    assert len(left) == 2 and "i-0a1b2c3d4e5f60009" in left[0] and "60008" in left[1]


def test_an_attack_sequence_quarantines_25_instances_at_most_and_says_which_it_left():
    from local.drive import attack_sequence_event

    ids = [f"i-{n:017x}" for n in range(1, 31)]
    wanted, left = findings.parse_all(attack_sequence_event(ids)["detail"])
    assert [r.instance_id for r in wanted] == ids[:25]
    assert [why.split()[1] for why in left] == ids[25:]


def test_an_attack_sequence_without_an_instance_is_dropped_naming_why():
    from local.drive import attack_sequence_event

    detail = attack_sequence_event(["i-0a1b2c3d4e5f60001"])["detail"]
    detail["service"]["detection"]["sequence"]["resources"] = [
        {"uid": "bucket", "resourceType": "S3_BUCKET"}]
    with pytest.raises(findings.MalformedFinding, match="names no EC2 instance"):
        findings.parse_all(detail)
    (single,), _ = findings.parse_all(sample("backdoor-cc-activity-high.json")["detail"])
    assert single.group_id == ""


def test_an_auto_scaling_group_of_40_is_read_to_25_and_the_rest_named():
    from local.drive import attack_sequence_event

    ids = [f"i-{n:017x}" for n in range(1, 41)]
    detail = attack_sequence_event(ids[:1])["detail"]
    for resource in detail["service"]["detection"]["sequence"]["resources"]:
        if resource["resourceType"] == "AUTOSCALING_AUTO_SCALING_GROUP":
            resource["data"]["autoscalingAutoScalingGroup"]["ec2InstanceUids"] = ids
    wanted, left = findings.parse_all(detail)
    assert [r.instance_id for r in wanted] == ids[:25]
    assert [why.split()[1] for why in left] == ids[25:]
