"""The CloudFormation template for what Chalice cannot create, built from the app's own code.

The state machine's definition comes from `deploy.statemachine` (what the tests run), the
table from `chalicelib.incidents`, every name from `deploy.names`: the functions and the
state machine refer to each other by deterministic names, so neither waits for the other.
The same template is the `--merge-template` of `make package`, which adds what wires Chalice's
functions to these resources (their names and environment).
"""

import json

from chalicelib import incidents
from deploy import names, records_key, signing_key, statemachine

REGION, ACCOUNT = "${AWS::Region}", "${AWS::AccountId}"  # resolved by Fn::Sub

# Stack output -> the setting it fills in every function's environment.
SETTINGS_FROM_OUTPUTS = {
    "StateMachineArn": "STATE_MACHINE_ARN",
    "TopicArn": "TOPIC_ARN",
    "IncidentsTable": "INCIDENTS_TABLE",
    "EvidenceBucket": "EVIDENCE_BUCKET",
    "DenyAllProfileArn": "DENY_ALL_PROFILE_ARN",
    "RecordsKeyArn": "RECORDS_KEY_ARN",
    "EvidenceSigningKeyArn": "EVIDENCE_SIGNING_KEY_ARN",
}
# Outlive the stack: evidence is never lost, and sealed records and signed manifests stay
# verifiable.
RETAINED = ("IncidentsTable", "EvidenceBucket", "RecordsKey", "RecordsKeyAlias",
            "EvidenceSigningKey", "EvidenceSigningKeyAlias")
EC2_TRUST = {"Version": "2012-10-17", "Statement": [{
    "Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"}]}
# The role of the instance profile that CREDENTIALS_MODE=deny-all swaps in.
DENY_ALL = {"Version": "2012-10-17",
            "Statement": [{"Effect": "Deny", "Action": "*", "Resource": "*"}]}


def stack_name(stage: str) -> str:
    return f"{names.APP_NAME}-{stage}-resources"


def _sub(text: str) -> dict:
    return {"Fn::Sub": text}


def _state_machine_definition(stage: str) -> dict:
    """The ASL, with this account's and region's ARNs substituted by CloudFormation."""
    function_arns = statemachine.step_function_arns(REGION, ACCOUNT, stage)
    topic_arn = names.topic_arn(REGION, ACCOUNT, stage)
    definition = statemachine.build(function_arns, topic_arn, names.incidents_table(stage))
    return _sub(json.dumps(definition, sort_keys=True))


def _state_machine_role_policy(stage: str) -> dict:
    function_arns = statemachine.step_function_arns(REGION, ACCOUNT, stage)
    document = statemachine.role_policy(
        function_arns, names.topic_arn(REGION, ACCOUNT, stage),
        names.incidents_table_arn(REGION, ACCOUNT, stage))
    for statement in document["Statement"]:
        resources = statement["Resource"]
        if isinstance(resources, list):
            statement["Resource"] = [_sub(arn) for arn in resources]
    return document


def _evidence_bucket(stage: str) -> dict:
    """Versioned, KMS-encrypted, private, owner-enforced; object lock when asked for."""
    return {
        "Type": "AWS::S3::Bucket",
        "DeletionPolicy": "RetainExceptOnCreate",  # a failed create leaves nothing
        "UpdateReplacePolicy": "Retain",
        "Properties": {
            "BucketName": _sub(names.evidence_bucket(REGION, ACCOUNT, stage)),
            "VersioningConfiguration": {"Status": "Enabled"},
            "BucketEncryption": {"ServerSideEncryptionConfiguration": [
                {"ServerSideEncryptionByDefault": {"SSEAlgorithm": "aws:kms"},
                 "BucketKeyEnabled": True}]},
            "PublicAccessBlockConfiguration": {
                "BlockPublicAcls": True, "IgnorePublicAcls": True,
                "BlockPublicPolicy": True, "RestrictPublicBuckets": True},
            "OwnershipControls": {"Rules": [{"ObjectOwnership": "BucketOwnerEnforced"}]},
            "ObjectLockEnabled": {"Fn::If": ["LockEvidence", True, {"Ref": "AWS::NoValue"}]},
            "ObjectLockConfiguration": {"Fn::If": ["LockEvidence", {
                "ObjectLockEnabled": "Enabled",
                "Rule": {"DefaultRetention": {"Mode": "GOVERNANCE",
                                              "Days": {"Ref": "EvidenceRetentionDays"}}}},
                {"Ref": "AWS::NoValue"}]},
        },
    }


def _tls_only_policy() -> dict:
    return {
        "Type": "AWS::S3::BucketPolicy",
        "Properties": {
            "Bucket": {"Ref": "EvidenceBucket"},
            "PolicyDocument": {"Version": "2012-10-17", "Statement": [{
                "Sid": "TlsOnly", "Effect": "Deny", "Principal": "*", "Action": "s3:*",
                "Resource": [{"Fn::GetAtt": ["EvidenceBucket", "Arn"]},
                             _sub("${EvidenceBucket.Arn}/*")],
                "Condition": {"Bool": {"aws:SecureTransport": "false"}}}]},
        },
    }


def template(stage: str) -> dict:
    """The resources stack of `stage` (deployed by `make deploy`, merged by `make package`)."""
    return {
        "AWSTemplateFormatVersion": "2010-09-09",
        "Description": f"{names.APP_NAME} ({stage}): state machine, report topic, incidents "
                       "table, evidence bucket, records key (generated by deploy/resources.py; "
                       "do not edit)",
        "Parameters": {
            "AlertEmail": {"Type": "String", "Default": "",
                           "Description": "an address subscribed to the reports (optional)"},
            "EvidenceRetentionDays": {"Type": "Number", "Default": 0, "MinValue": 0,
                                      "Description": "S3 object lock (governance) on evidence, "
                                                     "in days; 0 = none; set at first deploy"},
            "ExecutionLogRetentionDays": {"Type": "Number", "Default": 365,
                                          "AllowedValues": [30, 90, 180, 365, 731, 1827, 3653]},
        },
        "Conditions": {
            "HasAlertEmail": {"Fn::Not": [{"Fn::Equals": [{"Ref": "AlertEmail"}, ""]}]},
            "LockEvidence": {"Fn::Not": [{"Fn::Equals": [{"Ref": "EvidenceRetentionDays"},
                                                         "0"]}]},
        },
        "Resources": {
            "IncidentsTable": {
                "Type": "AWS::DynamoDB::Table",
                "DeletionPolicy": "RetainExceptOnCreate",  # a failed create leaves nothing
                "UpdateReplacePolicy": "Retain",
                "Properties": {
                    "TableName": names.incidents_table(stage),
                    **incidents.TABLE_DEFINITION,
                    "PointInTimeRecoverySpecification": {"PointInTimeRecoveryEnabled": True},
                    "SSESpecification": {"SSEEnabled": True},
                },
            },
            "ReportsTopic": {
                "Type": "AWS::SNS::Topic",
                "Properties": {"TopicName": names.topic(stage),
                               "KmsMasterKeyId": "alias/aws/sns"},
            },
            "ReportsEmail": {
                "Type": "AWS::SNS::Subscription",
                "Condition": "HasAlertEmail",
                "Properties": {"TopicArn": {"Ref": "ReportsTopic"}, "Protocol": "email",
                               "Endpoint": {"Ref": "AlertEmail"}},
            },
            "EvidenceBucket": _evidence_bucket(stage),
            "EvidenceBucketPolicy": _tls_only_policy(),
            "ExecutionLogs": {  # execution history: kept, like the incidents it tells of
                "Type": "AWS::Logs::LogGroup",
                "DeletionPolicy": "Retain",
                "UpdateReplacePolicy": "Retain",
                "Properties": {  # named by CloudFormation: a kept one never blocks a redeploy
                    "RetentionInDays": {"Ref": "ExecutionLogRetentionDays"},
                },
            },
            "StateMachineRole": {
                "Type": "AWS::IAM::Role",
                "Properties": {
                    "RoleName": names.state_machine_role(stage),
                    "AssumeRolePolicyDocument": statemachine.STATES_TRUST,
                    "Policies": [{"PolicyName": "state-machine",
                                  "PolicyDocument": _state_machine_role_policy(stage)}],
                },
            },
            "StateMachine": {
                "Type": "AWS::StepFunctions::StateMachine",
                "Properties": {
                    "StateMachineName": names.state_machine(stage),
                    "StateMachineType": "STANDARD",
                    "RoleArn": {"Fn::GetAtt": ["StateMachineRole", "Arn"]},
                    "DefinitionString": _state_machine_definition(stage),
                    "LoggingConfiguration": {
                        "Level": "ALL", "IncludeExecutionData": True,
                        "Destinations": [{"CloudWatchLogsLogGroup": {
                            "LogGroupArn": {"Fn::GetAtt": ["ExecutionLogs", "Arn"]}}}]},
                },
            },
            "DenyAllRole": {
                "Type": "AWS::IAM::Role",
                "Properties": {
                    "RoleName": names.deny_all_profile(stage),
                    "AssumeRolePolicyDocument": EC2_TRUST,
                    "Policies": [{"PolicyName": "deny-all", "PolicyDocument": DENY_ALL}],
                },
            },
            "DenyAllProfile": {
                "Type": "AWS::IAM::InstanceProfile",
                "Properties": {"InstanceProfileName": names.deny_all_profile(stage),
                               "Roles": [{"Ref": "DenyAllRole"}]},
            },
            **records_key.resources(stage, ACCOUNT),
            **signing_key.resources(stage, ACCOUNT),
        },
        "Outputs": {
            "StateMachineArn": {"Value": {"Ref": "StateMachine"}},
            "TopicArn": {"Value": {"Ref": "ReportsTopic"}},
            "IncidentsTable": {"Value": {"Ref": "IncidentsTable"}},
            "EvidenceBucket": {"Value": {"Ref": "EvidenceBucket"}},
            "DenyAllProfileArn": {"Value": {"Fn::GetAtt": ["DenyAllProfile", "Arn"]}},
            "RecordsKeyArn": {"Value": {"Fn::GetAtt": ["RecordsKey", "Arn"]}},
            # the public key: `ec2-quarantine evidence public-key --key-id <this ARN>`
            "EvidenceSigningKeyArn": {"Value": {"Fn::GetAtt": ["EvidenceSigningKey", "Arn"]}},
        },
    }
