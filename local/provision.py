"""Provision the app's resources on the embedded AWS, as deployment would in a real account.

Names come from deploy.names and definitions from what deployment uses (the incidents table from
chalicelib, the state machine from deploy.statemachine), so the local stack runs exactly what is
deployed.
"""

import json
import os

from chalicelib import incidents, securityhub, settings
from deploy import names, statemachine
from deploy.resources import DENY_ALL, EC2_TRUST

def provision(stack) -> dict:
    """Create the incidents table, topic, state machine (with its role) and EventBridge rules
    (patterns and schedules); export their names into the environment the app's functions read.
    Returns the names.
    (Each function's role is made by `stack.enforce_iam()`: moto reads roles only then.)"""
    stage, region, account = stack.stage, stack.region, stack.account
    created = {
        "INCIDENTS_TABLE": names.incidents_table(stage),
        "TOPIC_ARN": names.topic_arn(region, account, stage),
        "STATE_MACHINE_ARN": names.state_machine_arn(region, account, stage),
        "EVIDENCE_BUCKET": names.evidence_bucket(region, account, stage),
        "DENY_ALL_PROFILE_ARN": f"arn:aws:iam::{account}:instance-profile/"
                                f"{names.deny_all_profile(stage)}",
    }
    evidence_bucket(stack, created["EVIDENCE_BUCKET"])
    deny_all_profile(stack)
    created["RECORDS_KEY_ARN"] = records_key(stack)
    created["EVIDENCE_SIGNING_KEY_ARN"] = evidence_signing_key(stack)

    dynamodb = stack.client("dynamodb")
    dynamodb.create_table(TableName=created["INCIDENTS_TABLE"], **incidents.TABLE_DEFINITION,
                          Tags=[{"Key": names.PROVISIONED_LOCALLY_TAG, "Value": "true"}])

    stack.client("sns").create_topic(Name=names.topic(stage))

    stack.client("iam").create_role(
        RoleName=names.state_machine_role(stage),
        AssumeRolePolicyDocument=json.dumps(statemachine.STATES_TRUST))
    state_machine(stack, statemachine.Topics(created["TOPIC_ARN"],
                                             os.environ.get("CHATBOT_TOPIC_ARN", "")))

    install_rules(stack)
    os.environ.update(created)
    if settings.reload().security_hub:
        security_hub(stack)
    return created


def security_hub(stack) -> str:
    """Security Hub on, and the stage's custom action made (as the resources stack makes it
    with SECURITY_HUB on); its ARN."""
    hub = stack.client("securityhub")
    try:
        hub.enable_security_hub(EnableDefaultStandards=False)
    except hub.exceptions.ResourceConflictException:
        pass  # on already
    arn = securityhub.action_arn(stack.region, stack.account)
    if not hub.describe_action_targets(ActionTargetArns=[arn])["ActionTargets"]:
        hub.create_action_target(Name=securityhub.ACTION_NAME, Id=securityhub.action_id(
            stack.stage), Description=f"{names.APP_NAME} ({stack.stage}): quarantine")
    return arn


def state_machine(stack, topics: statemachine.Topics) -> None:
    """The state machine and its role's policy, made or brought up to date for `topics` (as
    `make deploy` does when CHATBOT_TOPIC_ARN changes)."""
    stage, region, account = stack.stage, stack.region, stack.account
    function_arns = statemachine.step_function_arns(region, account, stage)
    iam, sfn = stack.client("iam"), stack.client("stepfunctions")
    iam.put_role_policy(
        RoleName=names.state_machine_role(stage), PolicyName="state-machine",
        PolicyDocument=json.dumps(statemachine.role_policy(
            function_arns, topics, names.incidents_table_arn(region, account, stage))))
    definition = json.dumps(statemachine.build(function_arns, topics,
                                               names.incidents_table(stage)))
    arn = names.state_machine_arn(region, account, stage)
    try:
        sfn.update_state_machine(stateMachineArn=arn, definition=definition)
    except sfn.exceptions.StateMachineDoesNotExist:
        sfn.create_state_machine(
            name=names.state_machine(stage), definition=definition, type="STANDARD",
            roleArn=iam.get_role(RoleName=names.state_machine_role(stage))["Role"]["Arn"])


def evidence_bucket(stack, bucket: str) -> None:
    """Versioned, encrypted, public access blocked; object lock when EVIDENCE_RETENTION_DAYS is
    set (governance mode, so an administrator can still clean up a rehearsal)."""
    s3 = stack.client("s3")
    retention_days = int(os.environ.get("EVIDENCE_RETENTION_DAYS", "0") or 0)
    s3.create_bucket(Bucket=bucket, ObjectLockEnabledForBucket=retention_days > 0)
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    s3.put_bucket_encryption(Bucket=bucket, ServerSideEncryptionConfiguration={"Rules": [
        {"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "aws:kms"}}]})
    s3.put_public_access_block(Bucket=bucket, PublicAccessBlockConfiguration={
        "BlockPublicAcls": True, "IgnorePublicAcls": True, "BlockPublicPolicy": True,
        "RestrictPublicBuckets": True})
    if retention_days > 0:
        s3.put_object_lock_configuration(Bucket=bucket, ObjectLockConfiguration={
            "ObjectLockEnabled": "Enabled",
            "Rule": {"DefaultRetention": {"Mode": "GOVERNANCE", "Days": retention_days}}})


def records_key(stack) -> str:
    """The HMAC key that seals incident records (the deployed stack's key, without its policy:
    the embedded AWS checks no key policies)."""
    kms = stack.client("kms")
    arn = kms.create_key(KeySpec="HMAC_256", KeyUsage="GENERATE_VERIFY_MAC",
                         Description="ec2-quarantine: seals incident records")["KeyMetadata"]["Arn"]
    kms.create_alias(AliasName=names.records_key_alias(stack.stage), TargetKeyId=arn)
    return arn


def evidence_signing_key(stack) -> str:
    """The asymmetric key that signs evidence manifests (the deployed stack's key, without its
    policy)."""
    kms = stack.client("kms")
    arn = kms.create_key(KeySpec="ECC_NIST_P256", KeyUsage="SIGN_VERIFY",
                         Description="ec2-quarantine: signs evidence manifests")[
        "KeyMetadata"]["Arn"]
    kms.create_alias(AliasName=names.evidence_signing_key_alias(stack.stage), TargetKeyId=arn)
    return arn


def deny_all_profile(stack, account: str | None = None) -> None:
    """The instance profile CREDENTIALS_MODE=deny-all swaps in: its role may do nothing (in the
    home account, or in a member account, where the member template makes it)."""
    iam = stack.client("iam", account=account or stack.account)
    name = names.deny_all_profile(stack.stage)
    iam.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(EC2_TRUST))
    iam.put_role_policy(RoleName=name, PolicyName="deny-all", PolicyDocument=json.dumps(DENY_ALL))
    iam.create_instance_profile(InstanceProfileName=name)
    iam.add_role_to_instance_profile(InstanceProfileName=name, RoleName=name)


def install_rules(stack) -> list[str]:
    """One rule per `@app.on_cw_event`, with the app's own pattern, and per `@app.schedule`, with
    its schedule expression (and description), each targeting its function, as Chalice deploys
    them."""
    import app as chalice_app_module
    from chalice.app import CloudWatchEventConfig, ScheduledEventConfig, ScheduleExpression

    events = stack.client("events")
    rules = []
    for source in chalice_app_module.app.event_sources:
        if isinstance(source, CloudWatchEventConfig):
            trigger = {"EventPattern": json.dumps(source.event_pattern)}
        elif isinstance(source, ScheduledEventConfig):
            expression = source.schedule_expression
            trigger = {"ScheduleExpression": expression.to_string() if isinstance(
                expression, ScheduleExpression) else expression}
            if source.description is not None:
                trigger["Description"] = source.description
        else:
            continue
        rule = names.rule(stack.stage, source.name)
        events.put_rule(Name=rule, State="ENABLED", **trigger)
        events.put_targets(
            Rule=rule,
            Targets=[{
                "Id": "handler",
                "Arn": names.function_arn(stack.region, stack.account, stack.stage, source.name),
            }],
        )
        rules.append(rule)
    return rules
