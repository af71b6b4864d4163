"""`make package`: one deployable template (Chalice's SAM merged with the resources stack) and
the deployment zip, for CloudFormation pipelines and StackSets."""

import json
import os
import subprocess
import sys

from deploy import attach, names, permissions, resources
from deploy.project import PROJECT_DIR, without_bytecode
from deploy.resources import ACCOUNT, FINDING_HANDLER, REGION, checkov_skip
from deploy.session import say

API_LOGICAL_ID, REST_API_LOGICAL_ID = "APIHandler", "RestAPI"  # Chalice's logical ids
FAILURES_QUEUE = {"Fn::GetAtt": ["FindingFailures", "Arn"]}
# Why checkov's findings on the packaged functions and API do not apply.
ON_EVERY_FUNCTION = (
    ("CKV_AWS_117", "it calls only AWS APIs, over TLS and signed: a VPC would add a NAT or a "
                    "dozen endpoints and protect nothing it holds"),
    ("CKV_AWS_115", "a concurrency cap would throttle containment in a burst of findings, when "
                    "it matters most; the account's own limit bounds it"),
    ("CKV_AWS_173", "its environment holds settings and resource names, no secret (the member "
                    "external id is not one), encrypted at rest by Lambda's AWS managed key"),
)
INVOKED_SYNCHRONOUSLY = ("CKV_AWS_116", "invoked synchronously (by the state machine, API "
                                        "Gateway or a step), so the caller gets and records "
                                        "the error: a dead-letter queue never receives one")
FAILURES_TO_THE_QUEUE = ("CKV_AWS_116", "its failed asynchronous invocations go to the "
                                        "FindingFailures queue as its EventInvokeConfig "
                                        "on-failure destination, which checkov does not read")
NOT_CACHED = ("CKV_AWS_120", "a security API must not answer from a cache: an incident changes "
                             "with every step, and a cache cluster is billed by the hour")


def merge_template(stage: str) -> dict:
    """The resources stack plus what wires Chalice's functions to it: their deterministic
    names (the state machine invokes them by name), their roles' names (the key and queue
    policies grant the roles by name, as `chalice deploy` names them) and their settings (from
    the resources)."""
    from chalice.utils import to_cfn_resource_name

    template = resources.template(stage)
    settings = {setting: template["Outputs"][output]["Value"]
                for output, setting in resources.SETTINGS_FROM_OUTPUTS.items()}
    for function in permissions.needs():
        if function == "api_handler":
            logical_id, name = API_LOGICAL_ID, names.api_function(stage)
        else:
            logical_id, name = to_cfn_resource_name(function), names.function(stage, function)
        dead_letters = (FAILURES_TO_THE_QUEUE if function == FINDING_HANDLER
                        else INVOKED_SYNCHRONOUSLY)
        template["Resources"][logical_id] = {
            "Metadata": checkov_skip(dead_letters, *ON_EVERY_FUNCTION),
            "Properties": {"FunctionName": name, "Environment": {"Variables": dict(settings)}}}
        template["Resources"][to_cfn_resource_name(f"{function}_role")] = {
            "Properties": {"RoleName": names.function_role(stage, function)}}
    template["Resources"][to_cfn_resource_name(FINDING_HANDLER)]["Properties"].update(
        _finding_failures(stage, to_cfn_resource_name(f"{FINDING_HANDLER}-event")))
    template["Resources"].update(_api_stage())
    return template


def _finding_failures(stage: str, event: str) -> dict:
    """What `attach.finding_failures` sets after `chalice deploy`, as the GuardDuty function's
    properties: its failed asynchronous invocations and the events its rule could not deliver
    go to the FindingFailures queue. The rule is named as `chalice deploy` names it (SAM's
    EventBridgeRule, the same rule as Chalice's CloudWatchEvent, takes a name): the queue's
    policy admits dead letters from that rule only. `event`: Chalice's name of the rule."""
    return {
        "EventInvokeConfig": {"MaximumRetryAttempts": attach.RETRIES, "DestinationConfig": {
            "OnFailure": {"Type": "SQS", "Destination": FAILURES_QUEUE}}},
        "Events": {event: {
            "Type": "EventBridgeRule",
            "Properties": {"RuleName": names.rule(stage, FINDING_HANDLER),
                           "DeadLetterConfig": {"Arn": FAILURES_QUEUE}}}},
    }


def _api_stage() -> dict:
    """What `attach.rest_api_stage` sets after `chalice deploy`, on the REST API's stage:
    access logs to the stack's retained log group and X-Ray tracing. API Gateway writes the logs
    with the region's account-wide logging role, so the template sets it to the stack's
    (retained, with AWS's managed logging policy: any API of the region keeps logging with it)
    before the stage. Unlike `make deploy`, this replaces a role the region already had."""
    return {
        "ApiGatewayAccount": {
            "Type": "AWS::ApiGateway::Account",
            "Properties": {"CloudWatchRoleArn": {"Fn::GetAtt": ["ApiGatewayLogsRole", "Arn"]}},
        },
        REST_API_LOGICAL_ID: {
            "DependsOn": "ApiGatewayAccount",
            "Metadata": checkov_skip(NOT_CACHED),
            "Properties": {
                "AccessLogSetting": {  # the group's ARN without CloudFormation's ":*"
                    "DestinationArn": {"Fn::Sub": f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:"
                                                  "${ApiAccessLogs}"},
                    "Format": attach.ACCESS_LOG_FORMAT},
                "TracingEnabled": True},
        },
    }


def build(stage: str, out_dir: str | None = None) -> str:
    """build/<stage>/ (or out_dir): sam.json (one deployable template) and deployment.zip."""
    out_dir = out_dir or os.path.join(PROJECT_DIR, "build", stage)
    os.makedirs(out_dir, exist_ok=True)
    merge_path = os.path.join(out_dir, "merge-template.json")
    with open(merge_path, "w") as handle:
        json.dump(merge_template(stage), handle, indent=1, sort_keys=True)
    chalice = os.path.join(os.path.dirname(sys.executable), "chalice")
    environ = {"AWS_DEFAULT_REGION": "us-east-1", **os.environ,  # the template is region-free
               "PYTHONDONTWRITEBYTECODE": "1"}
    without_bytecode(PROJECT_DIR)
    subprocess.run([chalice, "package", "--stage", stage, "--merge-template", merge_path,
                    out_dir], cwd=PROJECT_DIR, env=environ, check=True)
    say(f"wrote {out_dir}/sam.json and {out_dir}/deployment.zip")
    return out_dir
