"""What Chalice cannot set on what it creates, set by `make deploy` after each Chalice deploy
with the operator's credentials (no function gains a right): the REST API stage's access logs
and X-Ray tracing, and for the GuardDuty function its asynchronous on-failure destination and
its rule target's dead-letter queue (both the stack's FindingFailures queue).

`make package` writes the same into its template (deploy/package.py).

A later bare `chalice deploy` keeps the stage's access logs (its CreateDeployment deploys to the
stage, it does not recreate it) and the function's invoke config, but that CreateDeployment sends
`tracingEnabled=false` (the project sets no Chalice `xray`, which would trace every function
too), turning the stage's tracing off, and its PutTargets replaces the rule target and so drops
the dead-letter queue: `make deploy` sets both again.
"""

import json

from deploy import names, resources
from deploy.session import client, say

# One JSON line per request: who called (SigV4 caller), from where, what, and the answer.
ACCESS_LOG_FORMAT = json.dumps({
    "requestId": "$context.requestId", "extendedRequestId": "$context.extendedRequestId",
    "requestTime": "$context.requestTime", "caller": "$context.identity.caller",
    "userArn": "$context.identity.userArn", "accountId": "$context.identity.accountId",
    "sourceIp": "$context.identity.sourceIp", "userAgent": "$context.identity.userAgent",
    "httpMethod": "$context.httpMethod", "resourcePath": "$context.resourcePath",
    "status": "$context.status", "responseLength": "$context.responseLength",
    "errorMessage": "$context.error.message"}, sort_keys=True)
RETRIES = 2  # Lambda's own default for asynchronous invocations, stated


def _log_group(arn: str) -> str:
    """API Gateway wants a log group's ARN without CloudFormation's trailing `:*`."""
    return arn[:-2] if arn.endswith(":*") else arn


def rest_api_stage(rest_api_id: str, stage_name: str, log_group_arn: str,
                   logs_role_arn: str) -> None:
    """Access logs of the REST API's stage to `log_group_arn`, and X-Ray tracing (where a
    request's time went: API Gateway's share and the function's). API Gateway writes the logs
    with the region's account-wide logging role: `logs_role_arn` becomes it only when none is
    set."""
    gateway = client("apigateway")
    if not gateway.get_account().get("cloudwatchRoleArn"):
        gateway.update_account(patchOperations=[
            {"op": "replace", "path": "/cloudwatchRoleArn", "value": logs_role_arn}])
        say(f"API Gateway's logging role of this region was unset: now {logs_role_arn}")
    gateway.update_stage(restApiId=rest_api_id, stageName=stage_name, patchOperations=[
        {"op": "replace", "path": "/accessLogSettings/destinationArn",
         "value": _log_group(log_group_arn)},
        {"op": "replace", "path": "/accessLogSettings/format", "value": ACCESS_LOG_FORMAT},
        {"op": "replace", "path": "/tracingEnabled", "value": "true"}])
    say(f"REST API {rest_api_id} stage {stage_name}: access logs to {_log_group(log_group_arn)}, "
        "X-Ray tracing")


def finding_failures(stage: str, queue_arn: str) -> None:
    """The GuardDuty function's failed asynchronous invocations, and the events its rule could
    not deliver, both to `queue_arn`."""
    function = names.function(stage, resources.FINDING_HANDLER)
    client("lambda").put_function_event_invoke_config(
        FunctionName=function, MaximumRetryAttempts=RETRIES,
        DestinationConfig={"OnFailure": {"Destination": queue_arn}})
    events, rule = client("events"), names.rule(stage, resources.FINDING_HANDLER)
    targets = events.list_targets_by_rule(Rule=rule)["Targets"]
    events.put_targets(Rule=rule, Targets=[
        {**target, "DeadLetterConfig": {"Arn": queue_arn}} for target in targets])
    say(f"function {function} and rule {rule}: failures to {queue_arn}")


def _rest_api(deployed: dict) -> str | None:
    found = [r["rest_api_id"] for r in deployed.get("resources", [])
             if r.get("resource_type") == "rest_api"]
    return found[0] if found else None


def attach(stage: str, api_stage: str, deployed: dict, outputs: dict[str, str]) -> None:
    """Everything above, on what Chalice just `deployed` (its deployed record)."""
    rest_api = _rest_api(deployed)
    if rest_api is None:
        say("no REST API deployed: no access logs to set")
    else:
        rest_api_stage(rest_api, api_stage, outputs["ApiAccessLogsArn"],
                       outputs["ApiGatewayLogsRoleArn"])
    finding_failures(stage, outputs["FindingFailuresArn"])
