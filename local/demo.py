"""`make demo`: the product end to end on the embedded AWS, exiting 0 only if it all worked.

So far the product receives GuardDuty findings through its real EventBridge pattern and decides
on them, and its state machine announces an incident over SNS; each step is shown as it happens.
"""

import json
import os
import sys
import time

from local import stack

SAMPLES = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "samples")


def sample(name: str) -> dict:
    with open(os.path.join(SAMPLES, name)) as handle:
        return json.load(handle)


def put_event(running, event: dict) -> None:
    running.client("events").put_events(Entries=[{
        "Source": event["source"],
        "DetailType": event["detail-type"],
        "Detail": json.dumps(event["detail"]),
        "Resources": event.get("resources", []),
    }])


def main() -> int:
    running = stack.start(aws_port=0, api_port=0, verbose=True)
    failures = []

    print("\n1. A high-severity GuardDuty finding about an EC2 instance, sent with PutEvents")
    put_event(running, sample("backdoor-cc-activity-high.json"))
    print("2. A finding about an S3 bucket (the rule's pattern must not match it)")
    put_event(running, sample("s3-finding-not-ec2.json"))
    running.bridge.wait_idle()
    delivered = [i for i in running.bridge.invocations if i.source == "eventbridge"]
    for invocation in delivered:
        print(f"   -> {invocation.function_name} decided: {invocation.result}")
    if len(delivered) != 1 or (delivered[0].result or {}).get("decision") != "qualifies":
        failures.append(f"expected one qualifying delivery, got {len(delivered)}")

    print("\n3. The state machine announces an incident over SNS")
    sqs = running.client("sqs")
    queue = sqs.create_queue(QueueName="demo-reports")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])[
        "Attributes"]["QueueArn"]
    running.client("sns").subscribe(TopicArn=running.names["TOPIC_ARN"], Protocol="sqs",
                                    Endpoint=queue_arn)
    sfn = running.client("stepfunctions")
    execution = sfn.start_execution(
        stateMachineArn=running.names["STATE_MACHINE_ARN"],
        name="demo",
        input=json.dumps({"incident": {"incident_id": "inc-0123456789ab",
                                       "instance_id": "i-0123456789abcdef0",
                                       "account_id": running.account, "region": running.region}}),
    )["executionArn"]
    status = "RUNNING"
    for _ in range(300):
        status = sfn.describe_execution(executionArn=execution)["status"]
        if status != "RUNNING":
            break
        time.sleep(0.1)
    for event in sfn.get_execution_history(executionArn=execution)["events"]:
        if event["type"] in ("TaskStateEntered", "TaskSucceeded", "TaskFailed"):
            name = event.get("stateEnteredEventDetails", {}).get("name", "")
            print(f"   {event['type']} {name}")
    messages = sqs.receive_message(QueueUrl=queue, WaitTimeSeconds=1).get("Messages", [])
    for message in messages:
        body = json.loads(message["Body"])
        print(f"   SNS: {body['Subject']}")
    if status != "SUCCEEDED" or not messages:
        failures.append(f"execution {status}, {len(messages)} report(s) received")

    running.stop()
    print("\nDemo " + ("FAILED: " + "; ".join(failures) if failures else "succeeded."))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
