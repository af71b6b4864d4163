"""The CloudFormation template for what Chalice cannot create, built from the app's own code.

The state machine's definition comes from `deploy.statemachine` (what the tests run), the
table from `chalicelib.incidents`, every name from `deploy.names`: the functions and the
state machine refer to each other by deterministic names, so neither waits for the other.
The same template is the `--merge-template` of `make package`, which adds what wires Chalice's
functions to these resources (their names and environment).
"""

import json

from chalicelib import incidents, securityhub
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
# Outlive the stack: evidence is never lost, nor the record of who touched it, and sealed
# records and signed manifests stay verifiable.
RETAINED = ("IncidentsTable", "EvidenceBucket", "AccessLogsBucket", "RecordsKey",
            "RecordsKeyAlias", "EvidenceSigningKey", "EvidenceSigningKeyAlias")
EC2_TRUST = {"Version": "2012-10-17", "Statement": [{
    "Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"}]}
# The role of the instance profile that CREDENTIALS_MODE=deny-all swaps in.
DENY_ALL = {"Version": "2012-10-17",
            "Statement": [{"Effect": "Deny", "Action": "*", "Resource": "*"}]}


def stack_name(stage: str) -> str:
    return f"{names.APP_NAME}-{stage}-resources"


def _sub(text: str) -> dict:
    return {"Fn::Sub": text}


def _topics(stage: str) -> statemachine.Topics:
    """The report topic, and the stage's Chatbot topic (CHATBOT_TOPIC_ARN, "" when off)."""
    from deploy import permissions  # it reads the stage's settings; it imports this module

    return statemachine.Topics(names.topic_arn(REGION, ACCOUNT, stage),
                               permissions.stage_setting(stage, "CHATBOT_TOPIC_ARN").strip())


def _state_machine_definition(stage: str) -> dict:
    """The ASL, with this account's and region's ARNs substituted by CloudFormation."""
    function_arns = statemachine.step_function_arns(REGION, ACCOUNT, stage)
    definition = statemachine.build(function_arns, _topics(stage), names.incidents_table(stage))
    return _sub(json.dumps(definition, sort_keys=True))


def _state_machine_role_policy(stage: str) -> dict:
    function_arns = statemachine.step_function_arns(REGION, ACCOUNT, stage)
    document = statemachine.role_policy(
        function_arns, _topics(stage), names.incidents_table_arn(REGION, ACCOUNT, stage))
    for statement in document["Statement"]:
        resources = statement["Resource"]
        if isinstance(resources, list):
            statement["Resource"] = [_sub(arn) for arn in resources]
    return document


FINDING_HANDLER = "on_guardduty_finding"  # the function EventBridge invokes asynchronously
LOCK_MODES = ("GOVERNANCE", "COMPLIANCE")
# A memory capture's multipart upload is completed or aborted within the step's 15 minutes; one
# left by a step that died (its parts are stored and billed, but no object) goes after this.
ABANDONED_UPLOAD_DAYS = 3
# Retained like the evidence: the access logs say who read or changed it.
KEPT = {"DeletionPolicy": "RetainExceptOnCreate",  # a failed create leaves nothing
        "UpdateReplacePolicy": "Retain"}
PRIVATE = {
    "PublicAccessBlockConfiguration": {
        "BlockPublicAcls": True, "IgnorePublicAcls": True,
        "BlockPublicPolicy": True, "RestrictPublicBuckets": True},
    "OwnershipControls": {"Rules": [{"ObjectOwnership": "BucketOwnerEnforced"}]},
}


def checkov_skip(*checks: tuple[str, str]) -> dict:
    """A resource's checkov suppressions, each (check id, why it does not apply)."""
    return {"checkov": {"skip": [{"id": check, "comment": why} for check, why in checks]}}


def _evidence_bucket(stage: str) -> dict:
    """Versioned, KMS-encrypted, private, owner-enforced, object-locked (governance by default),
    its server access logged to the access logs bucket; abandoned multipart uploads aborted (no
    object, nor any version, ever expires)."""
    return {
        "Type": "AWS::S3::Bucket", **KEPT,
        "DependsOn": "AccessLogsBucketPolicy",  # S3 may deliver logs as soon as it exists
        "Properties": {
            "BucketName": _sub(names.evidence_bucket(REGION, ACCOUNT, stage)),
            "VersioningConfiguration": {"Status": "Enabled"},
            "BucketEncryption": {"ServerSideEncryptionConfiguration": [
                {"ServerSideEncryptionByDefault": {"SSEAlgorithm": "aws:kms"},
                 "BucketKeyEnabled": True}]},
            **PRIVATE,
            "ObjectLockEnabled": True,
            "ObjectLockConfiguration": {
                "ObjectLockEnabled": "Enabled",
                "Rule": {"DefaultRetention": {"Mode": {"Ref": "EvidenceLockMode"},
                                              "Days": {"Ref": "EvidenceRetentionDays"}}}},
            "LoggingConfiguration": {"DestinationBucketName": {"Ref": "AccessLogsBucket"},
                                     "LogFilePrefix": "evidence/"},
            "LifecycleConfiguration": {"Rules": [{
                "Id": "AbortAbandonedUploads", "Status": "Enabled",
                "AbortIncompleteMultipartUpload": {
                    "DaysAfterInitiation": ABANDONED_UPLOAD_DAYS}}]},
        },
    }


def _access_logs_bucket(stage: str) -> dict:
    """The evidence bucket's server access logs. Not itself logged (it would log its own log
    deliveries), not object-locked and SSE-S3, not KMS: S3 delivers no logs to a bucket with
    either."""
    return {
        "Type": "AWS::S3::Bucket", **KEPT,
        "Metadata": checkov_skip(
            ("CKV_AWS_18", "the log target: logging it would log each delivery of its own logs")),
        "Properties": {
            "BucketName": _sub(names.access_logs_bucket(REGION, ACCOUNT, stage)),
            "VersioningConfiguration": {"Status": "Enabled"},
            "BucketEncryption": {"ServerSideEncryptionConfiguration": [
                {"ServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]},
            **PRIVATE,
        },
    }


def _tls_only(bucket: str) -> dict:
    return {"Sid": "TlsOnly", "Effect": "Deny", "Principal": "*", "Action": "s3:*",
            "Resource": [{"Fn::GetAtt": [bucket, "Arn"]}, _sub(f"${{{bucket}.Arn}}/*")],
            "Condition": {"Bool": {"aws:SecureTransport": "false"}}}


def _bucket_policy(bucket: str, *statements: dict) -> dict:
    return {
        "Type": "AWS::S3::BucketPolicy",
        "Properties": {"Bucket": {"Ref": bucket}, "PolicyDocument": {
            "Version": "2012-10-17", "Statement": [_tls_only(bucket), *statements]}},
    }


def _log_delivery(stage: str) -> dict:
    """S3's logging service may write the evidence bucket's logs, and nothing else."""
    return {
        "Sid": "EvidenceAccessLogs", "Effect": "Allow",
        "Principal": {"Service": "logging.s3.amazonaws.com"}, "Action": "s3:PutObject",
        "Resource": _sub("${AccessLogsBucket.Arn}/evidence/*"),
        "Condition": {
            "ArnLike": {"aws:SourceArn": _sub(
                f"arn:aws:s3:::{names.evidence_bucket(REGION, ACCOUNT, stage)}")},
            "StringEquals": {"aws:SourceAccount": {"Ref": "AWS::AccountId"}}}}


def _failures_queue_policy(stage: str) -> dict:
    """Who may send to the failed-findings queue: EventBridge for the app's rule (its DLQ), and
    the finding function's role (Lambda sends a failed asynchronous invocation with the
    function's own role; granted here, so the function's policy gains nothing). The role is
    named by condition: Chalice creates it after this stack."""
    queue = {"Fn::GetAtt": ["FindingFailures", "Arn"]}
    return {
        "Type": "AWS::SQS::QueuePolicy",
        "Properties": {"Queues": [{"Ref": "FindingFailures"}], "PolicyDocument": {
            "Version": "2012-10-17", "Statement": [
                {"Sid": "RuleDeadLetters", "Effect": "Allow",
                 "Principal": {"Service": "events.amazonaws.com"}, "Action": "sqs:SendMessage",
                 "Resource": queue, "Condition": {"ArnEquals": {"aws:SourceArn": _sub(
                     names.rule_arn(REGION, ACCOUNT, stage, FINDING_HANDLER))}}},
                {"Sid": "FailedInvocations", "Effect": "Allow",
                 "Principal": {"AWS": _sub(f"arn:aws:iam::{ACCOUNT}:root")},
                 "Action": "sqs:SendMessage", "Resource": queue,
                 "Condition": {"ArnEquals": {"aws:PrincipalArn": _sub(
                     f"arn:aws:iam::{ACCOUNT}:role/"
                     f"{names.function_role(stage, FINDING_HANDLER)}")}}},
                {"Sid": "TlsOnly", "Effect": "Deny", "Principal": "*", "Action": "sqs:*",
                 "Resource": queue, "Condition": {"Bool": {"aws:SecureTransport": "false"}}}]}},
    }


def _app_resources(stage: str) -> dict:
    """What `make deploy` attaches to Chalice's resources after Chalice (deploy/attach.py): the
    REST API's access log group (and the role API Gateway logs with), and the queue that keeps
    findings the GuardDuty function failed on or never received."""
    return {
        "ApiAccessLogs": {  # kept, like the execution history
            "Type": "AWS::Logs::LogGroup", "DeletionPolicy": "Retain",
            "UpdateReplacePolicy": "Retain",
            "Metadata": checkov_skip(("CKV_AWS_158", "request metadata only, encrypted at rest "
                                                     "by CloudWatch Logs; a customer key adds a "
                                                     "key policy for the logs service and "
                                                     "nothing read here is secret")),
            "Properties": {"RetentionInDays": {"Ref": "ExecutionLogRetentionDays"}},
        },
        "ApiGatewayLogsRole": {  # kept: it may become the region's API Gateway logging role
            "Type": "AWS::IAM::Role", "DeletionPolicy": "Retain",
            "UpdateReplacePolicy": "Retain",
            "Properties": {
                "AssumeRolePolicyDocument": {"Version": "2012-10-17", "Statement": [{
                    "Effect": "Allow", "Principal": {"Service": "apigateway.amazonaws.com"},
                    "Action": "sts:AssumeRole"}]},
                "ManagedPolicyArns": [
                    "arn:aws:iam::aws:policy/service-role/AmazonAPIGatewayPushToCloudWatchLogs"],
            },
        },
        "FindingFailures": {
            "Type": "AWS::SQS::Queue",
            "Metadata": checkov_skip(("CKV_AWS_27", "encrypted with SSE-SQS "
                                                    "(SqsManagedSseEnabled), which checkov does "
                                                    "not read; EventBridge cannot send dead "
                                                    "letters to a queue under the AWS managed "
                                                    "key alias/aws/sqs")),
            "Properties": {"SqsManagedSseEnabled": True,
                           "MessageRetentionPeriod": 14 * 24 * 3600},  # SQS's longest
        },
        "FindingFailuresPolicy": _failures_queue_policy(stage),
    }


ORGANIZATION_PARAMETER = "OrganizationId"  # declared, and found by `make deploy`, with `*`


def bus_arn(region: str, account: str) -> dict:
    """A default event bus (`region` and `account` are substituted by CloudFormation)."""
    return _sub(f"arn:${{AWS::Partition}}:events:{region}:{account}:event-bus/default")


def _tamper_bus_policies(stage: str, current) -> dict:
    """The home region's default bus admits the tamper events member accounts forward
    (deploy/member_role.py): from the accounts MEMBER_ACCOUNTS lists, and with `*` from any
    account of the home account's organization; nothing without members. Whole accounts, not
    the forwarding role: an event only prompts a check of the instance as it is now
    (chalicelib/tamper.py), so one a member's principal made up can cause a check, no more."""
    def policy(name: str, principal, condition: dict | None = None) -> dict:
        statement = {"Effect": "Allow", "Principal": principal, "Action": "events:PutEvents",
                     "Resource": bus_arn(REGION, ACCOUNT)}
        return {"Type": "AWS::Events::EventBusPolicy", "Properties": {
            "EventBusName": "default", "StatementId": f"{names.APP_NAME}-{stage}-{name}",
            "Statement": {**statement, **({"Condition": condition} if condition else {})}}}

    listed = [account for account in current.member_accounts if account != "*"]
    found = {}
    if listed:
        found["TamperFromMembers"] = policy("tamper-members", {"AWS": [
            f"arn:aws:iam::{account}:root" for account in listed]})
    if "*" in current.member_accounts:
        found["TamperFromOrganization"] = policy("tamper-organization", "*", {
            "StringEquals": {"aws:PrincipalOrgID": {"Ref": ORGANIZATION_PARAMETER}}})
    return found


def _security_hub_action(stage: str, current) -> dict:
    """The custom action "Quarantine instance" analysts choose findings for (SECURITY_HUB on;
    Security Hub must be on in the account and region, or the stack fails naming it). Its
    events reach `on_security_hub_action`, which acts on this stage's action alone."""
    if not current.security_hub:
        return {}
    return {"QuarantineAction": {"Type": "AWS::SecurityHub::ActionTarget", "Properties": {
        "Name": securityhub.ACTION_NAME, "Id": securityhub.action_id(stage),
        "Description": f"{names.APP_NAME} ({stage}): quarantine every EC2 instance the "
                       "selected findings name (isolated, evidence kept, never terminated)"}}}


def _organization_parameter(current) -> dict:
    """The home account's organization, which `*` admits (none without `*`)."""
    if "*" not in current.member_accounts:
        return {}
    return {ORGANIZATION_PARAMETER: {
        "Type": "String", "AllowedPattern": "^o-[a-z0-9]{10,32}$",
        "Description": "the home account's organization: MEMBER_ACCOUNTS=* admits its accounts' "
                       "tamper events to the default bus (`make deploy` finds it)"}}


def template(stage: str, current=None) -> dict:
    """The resources stack of `stage` (deployed by `make deploy`, merged by `make package`)
    under the settings `current` (default: the stage's)."""
    from deploy import permissions  # late: permissions -> member_role -> here

    current = current or permissions.stage_settings(stage)
    return {
        "AWSTemplateFormatVersion": "2010-09-09",
        "Description": f"{names.APP_NAME} ({stage}): state machine, report topic, incidents "
                       "table, evidence bucket, records key (generated by deploy/resources.py; "
                       "do not edit)",
        "Parameters": {
            "AlertEmail": {"Type": "String", "Default": "",
                           "Description": "an address subscribed to the reports (optional)"},
            "EvidenceRetentionDays": {"Type": "Number", "Default": 365, "MinValue": 1,
                                      "Description": "days S3 object lock keeps each evidence "
                                                     "object version"},
            "EvidenceLockMode": {"Type": "String", "Default": "GOVERNANCE",
                                 "AllowedValues": list(LOCK_MODES),
                                 "Description": "GOVERNANCE (s3:BypassGovernanceRetention may "
                                                "delete early) or COMPLIANCE (nobody may)"},
            "ExecutionLogRetentionDays": {"Type": "Number", "Default": 365,
                                          "AllowedValues": [30, 90, 180, 365, 731, 1827, 3653]},
            **_organization_parameter(current),
        },
        "Conditions": {
            "HasAlertEmail": {"Fn::Not": [{"Fn::Equals": [{"Ref": "AlertEmail"}, ""]}]},
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
            "EvidenceBucketPolicy": _bucket_policy("EvidenceBucket"),
            "AccessLogsBucket": _access_logs_bucket(stage),
            "AccessLogsBucketPolicy": _bucket_policy("AccessLogsBucket", _log_delivery(stage)),
            **_app_resources(stage),
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
            **_tamper_bus_policies(stage, current),
            **_security_hub_action(stage, current),
        },
        "Outputs": {
            "StateMachineArn": {"Value": {"Ref": "StateMachine"}},
            "TopicArn": {"Value": {"Ref": "ReportsTopic"}},
            "IncidentsTable": {"Value": {"Ref": "IncidentsTable"}},
            "EvidenceBucket": {"Value": {"Ref": "EvidenceBucket"}},
            "DenyAllProfileArn": {"Value": {"Fn::GetAtt": ["DenyAllProfile", "Arn"]}},
            "RecordsKeyArn": {"Value": {"Fn::GetAtt": ["RecordsKey", "Arn"]}},
            "AccessLogsBucket": {"Value": {"Ref": "AccessLogsBucket"}},
            "ApiAccessLogsArn": {"Value": {"Fn::GetAtt": ["ApiAccessLogs", "Arn"]}},
            "ApiGatewayLogsRoleArn": {"Value": {"Fn::GetAtt": ["ApiGatewayLogsRole", "Arn"]}},
            "FindingFailuresArn": {"Value": {"Fn::GetAtt": ["FindingFailures", "Arn"]}},
            # the public key: `ec2-quarantine evidence public-key --key-id <this ARN>`
            "EvidenceSigningKeyArn": {"Value": {"Fn::GetAtt": ["EvidenceSigningKey", "Arn"]}},
            **({"QuarantineActionArn": {"Value": {"Ref": "QuarantineAction"}}}
               if current.security_hub else {}),
        },
    }
