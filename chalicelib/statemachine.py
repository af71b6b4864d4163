"""The Step Functions definition (ASL), built in one place for deployment, tests and local runs.

Function and topic ARNs are derived from deterministic names, so the state machine and the
functions can refer to each other without a dependency cycle.
"""

from chalicelib import names

# The app's @app.lambda_function names that the state machine invokes.
STEP_FUNCTIONS = ("report",)

# Transient failures worth retrying, by error name (not every error: a denied call stays denied).
LAMBDA_TRANSIENT = [
    "Lambda.ServiceException",
    "Lambda.AWSLambdaException",
    "Lambda.SdkClientException",
    "Lambda.TooManyRequestsException",
    "Lambda.ClientExecutionTimeoutException",
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


def build(function_arns: dict[str, str], topic_arn: str) -> dict:
    """The ASL definition for the given step-function ARNs and report topic."""
    return {
        "Comment": f"{names.APP_NAME}: announce an incident",
        "StartAt": "RenderDetection",
        "States": {
            "RenderDetection": {
                "Type": "Task",
                "Resource": function_arns["report"],
                "Parameters": {"kind": "detection", "incident.$": "$.incident"},
                "ResultPath": "$.notice",
                "Retry": _retry(LAMBDA_TRANSIENT),
                "Next": "NotifyDetected",
            },
            "NotifyDetected": {
                "Type": "Task",
                "Resource": "arn:aws:states:::sns:publish",
                "Parameters": {
                    "TopicArn": topic_arn,
                    "Subject.$": "$.notice.subject",
                    "Message.$": "$.notice.message",
                },
                "ResultPath": None,
                "Retry": _retry(SNS_TRANSIENT),
                "End": True,
            },
        },
    }
