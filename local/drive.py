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
    detector = detail["arn"].split(":detector/", 1)[1].split("/", 1)[0]
    detail["arn"] = f"arn:aws:guardduty:{region}:{account}:detector/{detector}/finding/{finding_id}"
    return event


def attack_sequence_event(instance_ids, account: str = "123456789012",
                          region: str = "us-east-1", finding_id: str | None = None) -> dict:
    """The attack-sequence sample (AttackSequence:EC2/CompromisedInstanceGroup), naming
    `instance_ids` as its EC2_INSTANCE resources (every other one by ARN, as GuardDuty may) and
    its Auto Scaling group's instances."""
    import uuid

    event = sample("attack-sequence-ec2-compromised-instance-group.json")
    detail = event["detail"]
    finding_id = finding_id or uuid.uuid4().hex
    detail.update(accountId=account, region=region, id=finding_id,
                  arn=f"arn:aws:guardduty:{region}:{account}:detector/0ec2b5a9d1e84c3f/"
                      f"finding/{finding_id}")
    sequence = detail["service"]["detection"]["sequence"]
    template = sequence["resources"][0]
    others = [r for r in sequence["resources"] if r["resourceType"] != "EC2_INSTANCE"]
    sequence["resources"] = [
        {**template, "uid": instance_id if n % 2 == 0 else
         f"arn:aws:ec2:{region}:{account}:instance/{instance_id}", "name": f"web-{n + 1}",
         "accountId": account, "region": region} for n, instance_id in enumerate(instance_ids)]
    for other in others:
        other.update(accountId=account, region=region)
        if other["resourceType"] == "AUTOSCALING_AUTO_SCALING_GROUP":
            other["data"]["autoscalingAutoScalingGroup"]["ec2InstanceUids"] = list(instance_ids)
    sequence["resources"] += others
    return event


def security_hub_finding(instance_ids, account: str = "123456789012",
                         region: str = "us-east-1", finding_id: str | None = None,
                         product: str = "guardduty") -> dict:
    """A finding as Security Hub holds it (ASFF), naming `instance_ids` as AwsEc2Instance
    resources by ARN: GuardDuty's (its Id the GuardDuty finding's ARN) or another product's."""
    import uuid

    finding_id = finding_id or (
        f"arn:aws:guardduty:{region}:{account}:detector/0ec2b5a9d1e84c3f/finding/"
        f"{uuid.uuid4().hex}" if product == "guardduty" else f"{product}/{uuid.uuid4().hex}")
    return {
        "SchemaVersion": "2018-10-08", "Id": finding_id, "AwsAccountId": account,
        "ProductArn": f"arn:aws:securityhub:{region}::product/aws/{product}",
        "GeneratorId": f"arn:aws:{product}", "Region": region,
        "Types": ["TTPs/Command and Control/Backdoor:EC2-C&CActivity.B!DNS"],
        "CreatedAt": "2026-12-04T00:00:00.000Z", "UpdatedAt": "2026-12-04T00:00:00.000Z",
        "Severity": {"Label": "HIGH", "Normalized": 70}, "Title": "C&C activity",
        "Description": "an instance queried a command and control domain",
        "Workflow": {"Status": "NEW"}, "RecordState": "ACTIVE",
        "Resources": [{"Type": "AwsEc2Instance", "Region": region, "Partition": "aws",
                       "Id": f"arn:aws:ec2:{region}:{account}:instance/{instance_id}"}
                      for instance_id in instance_ids]}


def security_hub_action_event(action_arn: str, selected: list[dict]) -> dict:
    """The event Security Hub sends when an analyst sends `selected` findings to a custom
    action (EventBridge: `Security Hub Findings - Custom Action`)."""
    return {"source": "aws.securityhub", "detail-type": "Security Hub Findings - Custom Action",
            "resources": [action_arn],
            "detail": {"actionName": "Quarantine instance",
                       "actionDescription": "quarantine the instances", "findings": selected}}


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


def subscribe_queue(stack, name: str = "reports", topic_arn: str | None = None,
                    **attributes: str) -> str:
    """An SQS queue subscribed to the report topic (or `topic_arn`), with the subscription's
    `attributes` (raw delivery off unless given: `RawMessageDelivery="true"`); its URL."""
    sqs = stack.client("sqs")
    url = sqs.create_queue(QueueName=name)["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"]
    stack.client("sns").subscribe(TopicArn=topic_arn or stack.names["TOPIC_ARN"],
                                  Protocol="sqs", Endpoint=arn, Attributes=attributes)
    return url


def subscribe_chatbot(stack, name: str = "chatbot") -> str:
    """A Chatbot topic (CHATBOT_TOPIC_ARN set, the state machine redeployed with it) and an SQS
    queue in Chatbot's place, raw delivery on: it gets each card as Chatbot would. Returns the
    queue's URL."""
    topic = stack.client("sns").create_topic(
        Name=f"{stack.names['TOPIC_ARN'].rsplit(':', 1)[1]}-{name}")["TopicArn"]
    url = subscribe_queue(stack, f"{name}-cards", topic, RawMessageDelivery="true")
    stack.configure(CHATBOT_TOPIC_ARN=topic)
    return url


def cards(stack, queue_url: str) -> list[dict]:
    """Every Chatbot card waiting on a `subscribe_chatbot` queue, parsed."""
    return [json.loads(body) for body in _drain(stack, queue_url)]


def _drain(stack, queue_url: str) -> list[str]:
    """The bodies of every message waiting on the queue, received and deleted."""
    sqs, bodies = stack.client("sqs"), []
    while True:
        batch = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10).get("Messages", [])
        if not batch:
            return bodies
        for message in batch:
            bodies.append(message["Body"])
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])


def messages(stack, queue_url: str) -> list[dict]:
    """Every SNS notification waiting on the queue, as the queue got it (its envelope:
    "Subject", "MessageAttributes", "Message" the document SNS delivers to SQS), with "Document"
    that document parsed and "Text" what an email subscriber reads of the same publish (a plain
    message, not per protocol: "Document" None, "Text" the message)."""
    sent, found = published(stack), []
    for body in _drain(stack, queue_url):
        envelope = json.loads(body)
        structured = sent.get(envelope.get("MessageId"), {}).get("message")
        if not isinstance(structured, dict):  # published as plain text (a crafted execution's)
            found.append({**envelope, "Document": None, "Text": envelope["Message"]})
            continue
        found.append({**envelope, "Document": json.loads(envelope["Message"]),
                      "Text": structured.get("email")})
    return found


def published(stack, topic_arn: str | None = None) -> dict[str, dict]:
    """Every message published to the report topic (or `topic_arn`), by message id, as the
    embedded AWS recorded the Publish request: {"message" (parsed when it is JSON), "subject",
    "attributes", "raw"}."""
    from moto.sns.models import sns_backends

    arn = topic_arn or stack.names["TOPIC_ARN"]
    _, _, _, region, account, _ = arn.split(":")
    topic = sns_backends[account][region].topics[arn]
    found = {}
    for message_id, raw, subject, attributes, _ in list(topic.sent_notifications):
        try:
            message = json.loads(raw)
        except ValueError:
            message = None
        found[message_id] = {"message": message, "subject": subject, "attributes": attributes,
                             "raw": raw}
    return found


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


def steps_taken(events: list[dict]) -> list[dict]:
    """An execution's history told in the README's steps (`statemachine.README_STEPS`), in the
    order they started: each with its start and end (seconds after the execution started) and
    how many times it was entered (WaitForSnapshots: once per check)."""
    from deploy.statemachine import STEP_OF_STATE

    started = next(e["timestamp"] for e in events if e["type"] == "ExecutionStarted")
    steps: dict[str, dict] = {}
    for event in events:
        entered = event.get("stateEnteredEventDetails")
        exited = event.get("stateExitedEventDetails")
        step = STEP_OF_STATE.get((entered or exited or {}).get("name"))
        if step is None:
            continue
        at = (event["timestamp"] - started).total_seconds()
        taken = steps.setdefault(step, {"step": step, "start": at, "end": at, "entered": 0})
        taken["end"] = max(taken["end"], at)
        taken["entered"] += bool(entered) and entered["name"] == step
    return sorted(steps.values(), key=lambda s: s["start"])
