"""The Step Functions definition (ASL), built in one place for deployment, tests and local runs
(build time only: not packaged).

Function and topic ARNs are derived from deterministic names, so the state machine and the
functions can refer to each other without a dependency cycle.
"""

from typing import NamedTuple

from chalicelib import notices
from chalicelib.incidents import CLAIM_PREFIX
from deploy import names

# The app's @app.lambda_function names that the state machine invokes.
STEP_FUNCTIONS = (
    "capture_memory", "contain", "collect_evidence", "check_snapshots", "report", "release",
    "approval")


def _notice_states(name: str) -> tuple[str, ...]:
    """The states `_notify` builds for the notice `name`."""
    return (f"{name}Shape", f"Compose{name}", name, f"{name}Earlier", f"{name}Card")


# The steps the README names (its table of steps; Release), each with the states that make it
# up: an execution's history told in them (`make demo`). The other states are the choices and
# passes between steps.
README_STEPS = {
    "AwaitApproval": ("PlanApproval", "AskApproval", *_notice_states("NotifyApproval"),
                      "AwaitApproval", "PauseBeforeWaiting", "Decide", "ApprovalUndecided"),
    "CaptureMemory": ("CaptureMemory",),
    "NotifyDetected": _notice_states("NotifyDetected"),
    "Contain": ("Contain",),
    "CollectEvidence": ("CollectEvidence",),
    "WaitForSnapshots": ("WaitForSnapshots", "CheckSnapshots"),
    "Report": ("Report", "SettleStatus", "FreeClaim"),
    "NotifyReport": (*_notice_states("NotifyReport"), "ReportNotSent"),
    "Release": ("Release",),
    "NotifyRelease": _notice_states("NotifyRelease"),
}
STEP_OF_STATE = {state: step for step, states in README_STEPS.items() for state in states}

# Transient failures worth retrying, by error name (not every error: a denied call stays denied).
LAMBDA_TRANSIENT = [
    "Lambda.ServiceException",
    "Lambda.AWSLambdaException",
    "Lambda.SdkClientException",
    "Lambda.TooManyRequestsException",
    "Lambda.ClientExecutionTimeoutException",
]
DYNAMODB_TRANSIENT = [
    "DynamoDB.ProvisionedThroughputExceededException",
    "DynamoDB.ThrottlingException",
    "DynamoDB.InternalServerErrorException",
    "DynamoDB.RequestLimitExceeded",
]
SNS_TRANSIENT = [
    "SNS.ThrottledException",
    "SNS.ThrottlingException",
    "SNS.InternalErrorException",
    "SNS.KMSThrottlingException",
    "SNS.ServiceUnavailableException",
]


def step_function_arns(region: str, account: str, stage: str) -> dict[str, str]:
    """ARN of every function the state machine invokes, by its name in the app."""
    return {name: names.function_arn(region, account, stage, name) for name in STEP_FUNCTIONS}


STATES_TRUST = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Principal": {"Service": "states.amazonaws.com"},
                   "Action": "sts:AssumeRole"}],
}
LOG_DELIVERY_ACTIONS = (  # execution history to CloudWatch Logs: IAM takes no resource for these
    "logs:CreateLogDelivery", "logs:DeleteLogDelivery", "logs:DescribeLogGroups",
    "logs:DescribeResourcePolicies", "logs:GetLogDelivery", "logs:ListLogDeliveries",
    "logs:PutResourcePolicy", "logs:UpdateLogDelivery")


class Topics(NamedTuple):
    """Where notices go: the report topic, and the Chatbot topic ("" when there is none)."""

    report: str
    chatbot: str = ""


def role_policy(function_arns: dict[str, str], topics: Topics | str, table_arn: str) -> dict:
    """What the state machine's role may do: invoke its steps, publish reports (and cards),
    settle an incident whose report step failed, log history."""
    topics = Topics(topics) if isinstance(topics, str) else topics
    return {
        "Version": "2012-10-17",
        "Statement": [
            {"Sid": "InvokeSteps", "Effect": "Allow", "Action": ["lambda:InvokeFunction"],
             "Resource": sorted(function_arns.values())},
            {"Sid": "PublishReports", "Effect": "Allow", "Action": ["sns:Publish"],
             "Resource": [topic for topic in topics if topic]},
            {"Sid": "SettleIncidents", "Effect": "Allow", "Action": ["dynamodb:UpdateItem"],
             "Resource": [table_arn]},
            {"Sid": "ExecutionLogs", "Effect": "Allow", "Action": list(LOG_DELIVERY_ACTIONS),
             "Resource": "*"},
        ],
    }


def _retry(errors):
    """Exponential backoff with full jitter (statelint wants intervals of at least 1 s)."""
    return [
        {
            "ErrorEquals": errors,
            "IntervalSeconds": 1,
            "BackoffRate": 2.0,
            "MaxAttempts": 4,
            "JitterStrategy": "FULL",
        }
    ]


def _task(function_arn, parameters, result_path, next_state, retry=LAMBDA_TRANSIENT, catch=None):
    state = {"Type": "Task", "Resource": function_arn, "Parameters": parameters,
             "ResultPath": result_path, "Retry": _retry(retry)}
    state.update({"Next": next_state} if next_state else {"End": True})
    if catch:
        state["Catch"] = [{"ErrorEquals": ["States.ALL"], **catch}]
    return state


def _notify(name: str, topics: Topics, notice_path: str, next_state: str, unreadable: str,
            catch: dict | None = None) -> dict:
    """The states that publish the notice at `notice_path`, entered at f"{name}Shape": a notice
    in report.py's shape is composed (one message per protocol, as notices.message does) and
    published with its attributes, then, with a Chatbot topic, its card (a card that fails is
    only lost); one in the earlier shape (`subject`, `message`: an execution started by the
    previous version's entry function, during a deployment) is published as it is; anything
    else (an input someone crafted) goes to `unreadable`, since a missing path would fail the
    whole execution beyond any Catch."""
    notice = notice_path
    shape_name, compose_name, _, earlier_name, card_name = _notice_states(name)
    fields = ("subject", "text", "document", "attributes") + (("card",) if topics.chatbot else ())
    shape = {"Type": "Choice", "Default": unreadable, "Choices": [
        {"And": [{"Variable": f"{notice}.{field}", "IsPresent": True} for field in fields],
         "Next": compose_name},
        {"And": [{"Variable": f"{notice}.{field}", "IsPresent": True}
                 for field in ("subject", "message")], "Next": earlier_name}]}
    compose = {"Type": "Pass", "ResultPath": "$.composed", "Next": name, "Parameters": {
        **{f"{key}.$": f"{notice}.text" for key in notices.TEXT_PROTOCOLS},
        **{f"{key}.$": f"States.JsonToString({notice}.document)"
           for key in notices.DOCUMENT_PROTOCOLS}}}
    publish = {"Type": "Task", "Resource": "arn:aws:states:::sns:publish",
               "Parameters": {"TopicArn": topics.report, "Subject.$": f"{notice}.subject",
                              "Message.$": "States.JsonToString($.composed)",
                              "MessageStructure": "json",
                              "MessageAttributes.$": f"{notice}.attributes"},
               "ResultPath": None, "Retry": _retry(SNS_TRANSIENT)}
    earlier = {"Type": "Task", "Resource": "arn:aws:states:::sns:publish",
               "Parameters": {"TopicArn": topics.report, "Subject.$": f"{notice}.subject",
                              "Message.$": f"{notice}.message"},
               "ResultPath": None, "Retry": _retry(SNS_TRANSIENT), "Next": next_state}
    if catch:
        publish["Catch"] = earlier["Catch"] = [{"ErrorEquals": ["States.ALL"], **catch}]
    states = {shape_name: shape, compose_name: compose, name: publish, earlier_name: earlier}
    if not topics.chatbot:
        publish["Next"] = next_state
        return states
    publish["Next"] = card_name
    states[card_name] = {
        "Type": "Task", "Resource": "arn:aws:states:::sns:publish",
        "Parameters": {"TopicArn": topics.chatbot,
                       "Message.$": f"States.JsonToString({notice}.card)"},
        "ResultPath": None, "Retry": _retry(SNS_TRANSIENT), "Next": next_state,
        "Catch": [{"ErrorEquals": ["States.ALL"], "ResultPath": None, "Next": next_state}]}
    return states


def _fallback(event: str, status: str, subject: str, text: str) -> dict:
    """A notice the state machine writes itself (the step that renders notices failed): its
    subject and text are intrinsic expressions (States.Format), its document, attributes and
    card come from the execution's labels (execution.labels); `status` is a JSONPath."""
    def string(value: str) -> dict:
        return ({"DataType": "String", "StringValue.$": value} if value.startswith("$")
                else {"DataType": "String", "StringValue": value})
    return {
        "subject.$": subject, "text.$": text,
        "document": {"schema": notices.SCHEMA, "version": notices.VERSION, "event": event,
                     "status.$": status, "incident_id.$": "$.labels.incident_id",
                     "instance": {"id.$": "$.labels.instance_id",
                                  "account_id.$": "$.labels.account",
                                  "region.$": "$.labels.region"},
                     "message.$": text},
        "attributes": {"event": string(event), "status": string(status),
                       "account": string("$.labels.account"), "region": string("$.labels.region"),
                       "finding_type": string("$.labels.finding_type")},
        "card": {"version": "1.0", "source": "custom",
                 "content": {"textType": "client-markdown", "title.$": subject,
                             "description.$": text},
                 "metadata": {"threadId.$": "$.labels.incident_id", "eventType": event}},
    }


def _settle(table_name):
    """The report step failed for good: settle the incident from Contain's outcome, so it never
    stays OPEN; a FAILED containment also frees the instance's claim (as the report step would).
    Written by Step Functions itself (DynamoDB integration): the steps' Lambdas may be what failed.
    """
    settle = {
        "Type": "Task", "Resource": "arn:aws:states:::dynamodb:updateItem",
        "Parameters": {
            "TableName": table_name,
            "Key": {"pk": {"S.$": "$.incident.incident_id"}},
            # the seal too: release verifies with it when no step could record it
            "UpdateExpression": "SET #status = :final, containment = :final, "
                                "seal = if_not_exists(seal, :seal), "
                                "#errors = list_append(if_not_exists(#errors, :none), :failed)",
            # Only this incident's own execution settles it (a crafted one names another).
            "ConditionExpression": "#status = :open AND execution_arn = :execution",
            "ExpressionAttributeNames": {"#status": "status", "#errors": "errors"},
            "ExpressionAttributeValues": {
                ":final": {"S.$": "$.results.contain.status"}, ":open": {"S": "OPEN"},
                ":seal": {"S.$": "$.incident.seal"},
                ":execution": {"S.$": "$$.Execution.Id"},
                ":none": {"L": []},
                ":failed": {"L": [{"M": {
                    "action": {"S": "report-step"}, "resource": {"S.$": "$.incident.instance_id"},
                    "code": {"S.$": "$.report_error.Error"},
                    "message": {"S": "the report step failed; status settled from containment"},
                }}]}},
        },
        "ResultPath": None, "Retry": _retry(DYNAMODB_TRANSIENT),
        # Already settled (the report step set the status, then failed): the claim may still
        # be held, so the FAILED check follows either way.
        "Catch": [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.settle_error",
                   "Next": "SettledFailed"}],
        "Next": "SettledFailed",
    }
    free_claim = {
        "Type": "Task", "Resource": "arn:aws:states:::dynamodb:updateItem",
        "Parameters": {
            "TableName": table_name,
            "Key": {"pk": {"S.$": f"States.Format('{CLAIM_PREFIX}{{}}/{{}}/{{}}', "
                                  "$.incident.account_id, $.incident.region, "
                                  "$.incident.instance_id)"}},
            "UpdateExpression": "SET active = :no",
            "ConditionExpression": "incident_id = :id",
            "ExpressionAttributeValues": {":no": {"BOOL": False},
                                          ":id": {"S.$": "$.incident.incident_id"}}},
        "ResultPath": None, "Retry": _retry(DYNAMODB_TRANSIENT),
        "Catch": [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.settle_error",
                   "Next": "ReportNotRendered"}],
        "Next": "ReportNotRendered",
    }
    failed = {"Type": "Choice",
              "Choices": [{"Variable": "$.results.contain.status", "StringEquals": "FAILED",
                           "Next": "FreeClaim"}],
              "Default": "ReportNotRendered"}
    return {"SettleStatus": settle, "SettledFailed": failed, "FreeClaim": free_claim}


def _approval(function_arns: dict[str, str], topics: Topics) -> dict:
    """The wait for approval (chalicelib/steps/approval.py): the plan (Contain, planning only),
    the request announced, the wait on a task token (its timeout the approval's), then the
    decision read from the record: containment goes on (from MemoryCaptureWanted, the cut an
    approver made, if any, in `$.cut`), the incident closes (its notice as the report), or the
    wait goes on (woken without a decision). A step that fails never ends the wait early."""
    step = function_arns["approval"]
    incident_only = {"incident.$": "$.incident", "options.$": "$.options",
                     "execution.$": "$$.Execution.Id"}
    planning = {**incident_only, "options.$": "$.plan_options"}
    return {
        "PlanApproval": _task(function_arns["contain"], planning, "$.plan", "AskApproval",
                              catch={"ResultPath": "$.plan", "Next": "AskApproval"}),
        "AskApproval": _task(step, {**incident_only, "phase": "ask"}, "$.asking",
                             "NotifyApprovalShape",
                             catch={"ResultPath": "$.asking_error", "Next": "AwaitApproval"}),
        **_notify("NotifyApproval", topics, "$.asking", "AwaitApproval", "AwaitApproval",
                  catch={"ResultPath": "$.asking_error", "Next": "AwaitApproval"}),
        "AwaitApproval": {
            "Type": "Task", "Resource": "arn:aws:states:::lambda:invoke.waitForTaskToken",
            "Parameters": {"FunctionName": step, "Payload": {
                **incident_only, "phase": "wait", "token.$": "$$.Task.Token"}},
            "TimeoutSecondsPath": "$.wait_seconds", "ResultPath": "$.woken", "Next": "Decide",
            "Catch": [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.wait_error",
                       "Next": "Decide"}]},
        "Decide": {**_task(step, {**incident_only, "phase": "decide",
                                  "wait_error.$": "$.wait_error", "wakes.$": "$.wakes",
                                  "woken.$": "$.woken"},
                           "$.decided", "Decided",
                           retry=LAMBDA_TRANSIENT + ["States.TaskFailed"],
                           catch={"ResultPath": "$.decide_error",
                                  "Next": "ApprovalUndecided"})},
        "Decided": {"Type": "Choice", "Default": "Closed", "Choices": [
            {"Variable": "$.decided.next", "StringEquals": "contain", "Next": "ApprovedCut"},
            {"Variable": "$.decided.next", "StringEquals": "wait", "Next": "WaitOn"}]},
        "ApprovedCut": {"Type": "Pass", "InputPath": "$.decided.cut", "ResultPath": "$.cut",
                        "Next": "ApprovedNotice"},
        "ApprovedNotice": {"Type": "Pass", "InputPath": "$.decided.notice",
                           "ResultPath": "$.notice", "Next": "MemoryCaptureWanted"},
        "WaitOn": {"Type": "Pass", "InputPath": "$.decided.timeout_seconds",
                   "ResultPath": "$.wait_seconds", "Next": "CountWakes"},
        "CountWakes": {"Type": "Pass", "InputPath": "$.decided.wakes",
                       "ResultPath": "$.wakes", "Next": "ForgetWaitError"},
        "ForgetWaitError": {"Type": "Pass", "Result": {}, "ResultPath": "$.wait_error",
                            "Next": "PauseBeforeWaiting"},
        "PauseBeforeWaiting": {"Type": "Wait", "SecondsPath": "$.decided.pause_seconds",
                               "Next": "AwaitApproval"},
        "Closed": {"Type": "Pass", "InputPath": "$.decided.notice", "ResultPath": "$.report",
                   "Next": "NotifyReportShape"},
        # The decision step failed for good: the incident still awaits (deny still ends it).
        "ApprovalUndecided": {
            "Type": "Pass",
            "Parameters": _fallback(
                "approval-failed", "$.labels.status",
                "States.Format('[ec2-quarantine] {}: approval step failed', "
                "$.labels.instance_id)",
                "States.Format('The approval step of incident {} failed ({}): it still awaits "
                "approval and nothing was changed. Contain it by hand (POST /quarantine) or deny "
                "it (POST /incidents/{}/deny).', $.labels.incident_id, $.decide_error.Error, "
                "$.labels.incident_id)") | {"outcome": "approval failed"},
            "ResultPath": "$.report", "Next": "NotifyReportShape"},
    }


def build(function_arns: dict[str, str], topics: Topics | str, table_name: str) -> dict:
    """The ASL definition for the given step-function ARNs and report topic.

    Detect: NotifyDetected runs beside Contain, never in front of it. Every step catches its own
    failure and the flow goes on: evidence after a failed containment, the report after failed
    evidence. The execution fails only when containment did (the report's outcome says so).
    A report that cannot be published is recorded on the incident; a report step that fails for
    good is settled by Step Functions itself (SettleStatus): no incident stays OPEN.
    Memory capture (opt-in) is the one step in front of containment: SSM needs the network.
    A release (mode "release") undoes an incident's changes and reports.
    A dry run walks the same path with every action's plan and reports the plan.
    Execution input: `chalicelib.execution` (its options go to every Lambda step).
    """
    topics = Topics(topics) if isinstance(topics, str) else topics
    # Every Lambda step is told its own execution: it acts only for the incident bound to it.
    incident_only = {"incident.$": "$.incident", "options.$": "$.options",
                     "execution.$": "$$.Execution.Id"}
    detection_branch = {
        "StartAt": "DetectionWanted",
        "States": {
            # A notify rule's incident is announced once, with its plan, by the report.
            "DetectionWanted": {"Type": "Choice", "Default": "NotifyDetectedShape", "Choices": [
                {"Variable": "$.labels.status", "StringEquals": "NOTIFIED",
                 "Next": "DetectionNotWanted"}]},
            "DetectionNotWanted": {"Type": "Pass", "Result": {"sent": False, "wanted": False},
                                   "End": True},
            **_notify("NotifyDetected", topics, "$.notice", "DetectionSent",
                      "DetectionUnreadable",
                      catch={"ResultPath": "$.error", "Next": "DetectionNotSent"}),
            "DetectionUnreadable": {"Type": "Pass", "End": True, "Parameters": {
                "sent": False, "error": {"Error": "NoticeUnreadable",
                                         "Cause": "the execution's notice is in no shape this "
                                                  "state machine publishes"}}},
            "DetectionSent": {"Type": "Pass", "Result": {"sent": True}, "End": True},
            "DetectionNotSent": {"Type": "Pass", "Parameters": {"sent": False, "error.$": "$.error"},
                                 "End": True},
        },
    }
    contain_branch = {
        "StartAt": "Contain",
        "States": {
            "Contain": {**_task(function_arns["contain"], {**incident_only, "cut.$": "$.cut"},
                                "$.result", None,
                                catch={"ResultPath": "$.error", "Next": "ContainCrashed"}),
                        "OutputPath": "$.result"},
            # Crashed, or never ran: the entry function's cut may have isolated the instance
            # (and recorded it): the status is what the cut earned, else FAILED.
            "ContainCrashed": {"Type": "Choice",
                               "Choices": [{"Variable": "$.cut.containment",
                                            "StringEquals": earned,
                                            "Next": f"ContainCrashedAfterCut{earned.title()}"}
                                           for earned in ("CONTAINED", "PARTIAL")],
                               "Default": "ContainCrashedNothingCut"},
            # the status only from a fixed set, whatever the input says
            **{f"ContainCrashedAfterCut{earned.title()}": {
                "Type": "Pass", "Parameters": {"status": earned, "error.$": "$.error"},
                "End": True} for earned in ("CONTAINED", "PARTIAL")},
            "ContainCrashedNothingCut": {"Type": "Pass",
                                         "Parameters": {"status": "FAILED", "error.$": "$.error"},
                                         "End": True},
        },
    }
    return {
        "Comment": f"{names.APP_NAME}: contain an instance, preserve evidence, report",
        "StartAt": "Mode",
        "States": {
            "Mode": {
                "Type": "Choice",
                "Choices": [{"Variable": "$.mode", "StringEquals": "release", "Next": "Release"},
                            {"Variable": "$.wait_seconds", "IsPresent": True,
                             "Next": "PlanApproval"}],
                "Default": "MemoryCaptureWanted"},
            **_approval(function_arns, topics),
            "Release": _task(
                function_arns["release"],
                {**incident_only, "release.$": "$.release"}, "$.report",
                "NotifyReleaseShape",
                catch={"ResultPath": "$.release_error", "Next": "ReleaseFailed"}),
            "ReleaseFailed": {
                "Type": "Pass",
                "Parameters": _fallback(
                    "release-failed", "$.labels.status",
                    "States.Format('[ec2-quarantine] {}: release failed', "
                    "$.labels.instance_id)",
                    "States.Format('The release of incident {} failed ({}): the instance may be "
                    "partly restored; see the incident record (GET /incidents/{}) and ask for the "
                    "release again.', $.labels.incident_id, $.release_error.Error, "
                    "$.labels.incident_id)")
                | {"outcome": "release failed"},
                "ResultPath": "$.report", "Next": "NotifyReleaseShape"},
            **_notify("NotifyRelease", topics, "$.report", "Released", "Released"),
            "Released": {"Type": "Succeed"},
            "MemoryCaptureWanted": {
                "Type": "Choice",
                "Choices": [{"Variable": "$.options.memory_capture", "BooleanEquals": True,
                             "Next": "CaptureMemory"}],
                "Default": "Detect"},
            "CaptureMemory": _task(
                function_arns["capture_memory"], incident_only, "$.memory", "Detect",
                catch={"ResultPath": "$.memory.error", "Next": "Detect"}),
            "Detect": {
                "Type": "Parallel",
                "Branches": [detection_branch, contain_branch],
                "ResultSelector": {"detection.$": "$[0]", "contain.$": "$[1]"},
                "ResultPath": "$.results",
                "Next": "CollectEvidence",
            },
            "CollectEvidence": _task(
                function_arns["collect_evidence"],
                incident_only, "$.evidence",
                "SnapshotsDone", catch={"ResultPath": "$.evidence_error", "Next": "EvidenceCrashed"}),
            "EvidenceCrashed": {
                "Type": "Pass",
                "Parameters": {"snapshot_ids": [], "done": True, "error.$": "$.evidence_error"},
                "ResultPath": "$.evidence", "Next": "Report"},
            "SnapshotsDone": {
                "Type": "Choice",
                "Choices": [{"Variable": "$.evidence.done", "BooleanEquals": True, "Next": "Report"}],
                "Default": "WaitForSnapshots"},
            "WaitForSnapshots": {"Type": "Wait", "SecondsPath": "$.options.snapshot_poll_seconds",
                                 "Next": "CheckSnapshots"},
            "CheckSnapshots": _task(
                function_arns["check_snapshots"],
                {**incident_only, "evidence.$": "$.evidence"}, "$.evidence",
                "SnapshotsDone", catch={"ResultPath": "$.evidence.error", "Next": "Report"}),
            "Report": _task(
                function_arns["report"],
                {**incident_only, "results.$": "$.results", "evidence.$": "$.evidence",
                 "memory.$": "$.memory"},
                "$.report", "NotifyReportShape",
                retry=LAMBDA_TRANSIENT + ["States.TaskFailed"],  # a crash too: it settles status
                catch={"ResultPath": "$.report_error", "Next": "SettleStatus"}),
            **_settle(table_name),
            "ReportNotRendered": {
                "Type": "Pass",
                "Parameters": _fallback(
                    "report-failed", "$.results.contain.status",
                    "States.Format('[ec2-quarantine] {}: report step failed', "
                    "$.labels.instance_id)",
                    "States.Format('The report step of incident {} failed ({}); the status was "
                    "settled from containment. Check the incident record (GET /incidents/{}) and "
                    "the execution history.', $.labels.incident_id, $.report_error.Error, "
                    "$.labels.incident_id)")
                | {"outcome.$": "$.results.contain.status"},
                "ResultPath": "$.report", "Next": "NotifyReportShape"},
            **_notify("NotifyReport", topics, "$.report", "Outcome", "ReportUnreadable",
                      catch={"ResultPath": "$.notify_error", "Next": "ReportNotSent"}),
            "ReportUnreadable": {"Type": "Pass", "ResultPath": "$.notify_error",
                                 "Parameters": {"Error": "NoticeUnreadable",
                                                "Cause": "the report step's notice is in no "
                                                         "shape this state machine publishes"},
                                 "Next": "ReportNotSent"},
            # A report that could not be published, retries spent, is recorded on the incident.
            "ReportNotSent": _task(
                function_arns["report"],
                {"incident.$": "$.incident", "notify_error.$": "$.notify_error",
                 "execution.$": "$$.Execution.Id"}, None, "Outcome",
                catch={"ResultPath": None, "Next": "Outcome"}),
            "Outcome": {
                "Type": "Choice",
                "Choices": [{"Or": [{"Variable": "$.report.outcome", "StringEquals": "failed"},
                                    {"Variable": "$.report.outcome", "StringEquals": "FAILED"}],
                             "Next": "ContainmentFailed"},
                            {"Variable": "$.report.outcome", "StringEquals": "refused",
                             "Next": "Refused"}],
                "Default": "Done"},
            "Refused": {"Type": "Fail", "Error": "ExecutionRefused",
                        "Cause": "the execution is not bound to its incident; nothing was done"},
            "ContainmentFailed": {"Type": "Fail", "Error": "ContainmentFailed",
                                  "Cause": "containment changed nothing; see the report"},
            "Done": {"Type": "Succeed"},
        },
    }
