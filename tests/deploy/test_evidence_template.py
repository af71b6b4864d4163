"""The resources stack's evidence bucket (its lock, access logs and lifecycle) and the GuardDuty
function's failure queue, read from the template (the embedded AWS's CloudFormation ignores a
bucket's lock, logging, lifecycle and policies, so the rehearsal cannot show them)."""

import pytest

from deploy import names, permissions, resources

REGION, ACCOUNT = resources.REGION, resources.ACCOUNT


def _resources(stage):
    return resources.template(stage)["Resources"]


@pytest.mark.parametrize("stage", permissions.STAGES)
def test_evidence_is_object_locked_by_default_in_governance_and_compliance_is_a_parameter(stage):
    template = resources.template(stage)
    bucket = template["Resources"]["EvidenceBucket"]["Properties"]
    assert bucket["ObjectLockEnabled"] is True  # unconditionally: no Fn::If can turn it off
    assert bucket["VersioningConfiguration"] == {"Status": "Enabled"}
    lock = bucket["ObjectLockConfiguration"]
    assert lock["ObjectLockEnabled"] == "Enabled"
    assert lock["Rule"]["DefaultRetention"] == {"Mode": {"Ref": "EvidenceLockMode"},
                                                "Days": {"Ref": "EvidenceRetentionDays"}}
    mode, days = (template["Parameters"][name] for name in ("EvidenceLockMode",
                                                             "EvidenceRetentionDays"))
    assert (mode["Default"], mode["AllowedValues"]) == ("GOVERNANCE", ["GOVERNANCE", "COMPLIANCE"])
    assert days["Default"] >= 1 and days["MinValue"] == 1  # no "0 = unlocked"


@pytest.mark.parametrize("stage", permissions.STAGES)
def test_evidence_access_is_logged_to_a_bucket_only_s3_logging_may_write(stage):
    found = _resources(stage)
    logging = found["EvidenceBucket"]["Properties"]["LoggingConfiguration"]
    assert logging["DestinationBucketName"] == {"Ref": "AccessLogsBucket"}
    logs = found["AccessLogsBucket"]["Properties"]
    assert "LoggingConfiguration" not in logs  # never logs its own deliveries
    assert "ObjectLockEnabled" not in logs  # S3 delivers no logs to a locked bucket
    assert logs["BucketEncryption"]["ServerSideEncryptionConfiguration"][0][
        "ServerSideEncryptionByDefault"] == {"SSEAlgorithm": "AES256"}  # nor to an SSE-KMS one
    statements = found["AccessLogsBucketPolicy"]["Properties"]["PolicyDocument"]["Statement"]
    allows = [s for s in statements if s["Effect"] == "Allow"]
    assert [(s["Principal"], s["Action"]) for s in allows] == [
        ({"Service": "logging.s3.amazonaws.com"}, "s3:PutObject")]
    assert allows[0]["Resource"] == {"Fn::Sub": "${AccessLogsBucket.Arn}/"
                                                f"{logging['LogFilePrefix']}*"}
    assert allows[0]["Condition"]["ArnLike"]["aws:SourceArn"] == {
        "Fn::Sub": f"arn:aws:s3:::{names.evidence_bucket(REGION, ACCOUNT, stage)}"}
    assert "AccessLogsBucket" in resources.RETAINED


@pytest.mark.parametrize("stage", permissions.STAGES)
def test_only_the_rule_and_the_finding_functions_role_may_send_to_the_failures_queue(stage):
    statements = _resources(stage)["FindingFailuresPolicy"]["Properties"]["PolicyDocument"][
        "Statement"]
    allows = {s["Sid"]: s for s in statements if s["Effect"] == "Allow"}
    assert {s["Action"] for s in allows.values()} == {"sqs:SendMessage"}
    rule = allows["RuleDeadLetters"]
    assert rule["Principal"] == {"Service": "events.amazonaws.com"}
    assert rule["Condition"] == {"ArnEquals": {"aws:SourceArn": {"Fn::Sub": names.rule_arn(
        REGION, ACCOUNT, stage, resources.FINDING_HANDLER)}}}
    role = allows["FailedInvocations"]
    assert role["Condition"] == {"ArnEquals": {"aws:PrincipalArn": {"Fn::Sub": (
        f"arn:aws:iam::{ACCOUNT}:role/"
        f"{names.function_role(stage, resources.FINDING_HANDLER)}")}}}
    assert set(allows) == {"RuleDeadLetters", "FailedInvocations"}


@pytest.mark.parametrize("stage", permissions.STAGES)
def test_abandoned_multipart_uploads_are_aborted_and_no_evidence_ever_expires(stage):
    """A memory capture whose step died leaves an open multipart upload (parts billed, no
    object): aborted after a few days, bucket-wide; the rule expires nothing else."""
    (rule,) = _resources(stage)["EvidenceBucket"]["Properties"]["LifecycleConfiguration"][
        "Rules"]
    assert rule["Status"] == "Enabled"
    assert 1 <= rule["AbortIncompleteMultipartUpload"]["DaysAfterInitiation"] <= 7
    # no filter (every prefix), no Expiration, NoncurrentVersionExpiration or Transition
    assert set(rule) == {"Id", "Status", "AbortIncompleteMultipartUpload"}


@pytest.mark.parametrize("stage", permissions.STAGES)
def test_every_checkov_suppression_says_why(stage):
    skips = [(logical, skip) for logical, resource in _resources(stage).items()
             for skip in resource.get("Metadata", {}).get("checkov", {}).get("skip", [])]
    assert {(logical, skip["id"]) for logical, skip in skips} == {
        ("AccessLogsBucket", "CKV_AWS_18"), ("ApiAccessLogs", "CKV_AWS_158"),
        ("FindingFailures", "CKV_AWS_27")}
    assert all(len(skip["comment"].split()) >= 8 for _, skip in skips)
