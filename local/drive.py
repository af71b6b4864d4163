"""Driving the embedded AWS as a user would: GuardDuty events, a queue on the report topic,
executions followed to their end. Shared by the demo, the tests and the benchmarks."""

import json
import os
import time

SAMPLES = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "samples")


def sample(name: str) -> dict:
    with open(os.path.join(SAMPLES, name)) as handle:
        return json.load(handle)


def guardduty_event(instance_id: str, severity: float = 8.0, account: str = "123456789012",
                    region: str = "us-east-1", finding_type: str = "Backdoor:EC2/C&CActivity.B!DNS",
                    finding_id: str = "ff80300610732a172d6ff2affd33b510") -> dict:
    """The high-severity sample, pointed at `instance_id` with the given fields."""
    event = sample("backdoor-cc-activity-high.json")
    detail = event["detail"]
    detail["resource"]["instanceDetails"]["instanceId"] = instance_id
    detail.update(severity=severity, accountId=account, region=region, type=finding_type,
                  id=finding_id)
    return event


def stolen_credentials_event(instance_id: str, account: str = "123456789012",
                             finding_type: str = "UnauthorizedAccess:IAMUser/"
                             "InstanceCredentialExfiltration.OutsideAWS") -> dict:
    """The credential exfiltration sample, for the role session of `instance_id`."""
    event = sample("instance-credential-exfiltration-outside-aws.json")
    detail = event["detail"]
    detail["resource"]["accessKeyDetails"]["principalId"] = f"AROAEXAMPLEROLEID1234:{instance_id}"
    detail.update(accountId=account, type=finding_type)
    return event


def put_event(stack, event: dict) -> None:
    response = stack.client("events").put_events(Entries=[{
        "Source": event["source"],
        "DetailType": event["detail-type"],
        "Detail": json.dumps(event["detail"]),
        "Resources": event.get("resources", []),
    }])
    assert response["FailedEntryCount"] == 0


def subscribe_queue(stack, name: str = "reports") -> str:
    """An SQS queue subscribed (raw delivery off) to the report topic; returns its URL."""
    sqs = stack.client("sqs")
    url = sqs.create_queue(QueueName=name)["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    stack.client("sns").subscribe(TopicArn=stack.names["TOPIC_ARN"], Protocol="sqs", Endpoint=arn)
    return url


def messages(stack, queue_url: str) -> list[dict]:
    """Every SNS notification waiting on the queue, as {"Subject", "Message", ...}."""
    sqs = stack.client("sqs")
    found = []
    while True:
        batch = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10).get("Messages", [])
        if not batch:
            return found
        for message in batch:
            found.append(json.loads(message["Body"]))
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])


def wait_execution(stack, execution_arn: str, timeout: float = 60.0) -> dict:
    sfn = stack.client("stepfunctions")
    deadline = time.monotonic() + timeout
    while True:
        described = sfn.describe_execution(executionArn=execution_arn)
        if described["status"] != "RUNNING":
            return described
        if time.monotonic() > deadline:
            raise TimeoutError(f"{execution_arn} still running after {timeout} s")
        time.sleep(0.05)


def history(stack, execution_arn: str) -> list[dict]:
    return stack.client("stepfunctions").get_execution_history(
        executionArn=execution_arn, maxResults=1000)["events"]
