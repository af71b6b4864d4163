"""A burst of findings through the handler: 250 instances x 4 duplicates, shuffled, delivered by
8 concurrent invocations (the bridge's pool for EventBridge deliveries).

What is measured is the handler: describe, claim, start (or record and announce a duplicate).
The executions it starts are real StartExecution calls, but the embedded Step Functions is told
not to run them (moto config `execute_state_machine: false`, the state machine registered in
that mode too): 250 full pipelines in moto's threads would measure this 2-core machine, not the
handler. They are counted with ListExecutions (before the interpreter is turned back on), the
incidents with a Scan of the table.

Requests are counted per invocation on the client side (a botocore `before-send` hook on the
app's boto3 session, retries included, per invocation: a context variable, which
`aws.concurrently` carries into the threads it makes requests from), and the sum is checked
against the requests the embedded AWS answered (`bench.clock`'s stamps: moto's recorder file
takes concurrent requests' lines interleaved when they are long, as the first cut's are).
"""

import json
import random
import time
from concurrent.futures import ThreadPoolExecutor
from contextvars import ContextVar
from dataclasses import dataclass

from chalicelib import aws
from deploy import names
from local import drive

from bench.watch import without_tamper_watch

HANDLER = "on_guardduty_finding"


@dataclass
class Burst:
    findings: int
    instances: int
    seconds: float
    decisions: dict  # decision -> count
    errors: int
    incidents: int
    executions: int
    new_requests: list[int]  # per finding that opened an incident
    duplicate_requests: list[int]  # per finding recorded on an active incident
    recorded: int  # what the embedded AWS answered
    by_action: dict  # service:action -> count, of those

    @property
    def per_second(self) -> float:
        return self.findings / self.seconds


def _launch(stack, count: int) -> list[str]:
    ec2 = stack.client("ec2")
    vpc = ec2.create_vpc(CidrBlock="10.2.0.0/16")["Vpc"]["VpcId"]
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.2.0.0/20",
                               AvailabilityZone="us-east-1a")["Subnet"]["SubnetId"]
    group = ec2.create_security_group(GroupName="burst", Description="burst", VpcId=vpc)["GroupId"]
    launched = ec2.run_instances(ImageId="ami-12345678", InstanceType="t3.micro", SubnetId=subnet,
                                 SecurityGroupIds=[group], MinCount=count, MaxCount=count)
    return [i["InstanceId"] for i in launched["Instances"]]


def envelope(instance_id: str, finding_id: str) -> dict:
    """The event as EventBridge hands it to the function."""
    event = drive.guardduty_event(instance_id, finding_id=finding_id)
    return {"version": "0", "id": finding_id, "detail-type": event["detail-type"],
            "source": event["source"], "account": "123456789012",
            "time": "2026-01-01T00:00:00Z", "region": "us-east-1", "resources": [],
            "detail": json.loads(json.dumps(event["detail"]))}


_sent: ContextVar[list] = ContextVar("bench_burst_sent")  # one mark per request, per invocation


def _count_requests_per_invocation() -> None:
    """Count every request the app's clients send into the invocation's `_sent`."""
    aws.client("sts")  # makes the session every later client of the app is made from

    def sent(**_):
        marks = _sent.get(None)
        if marks is not None:
            marks.append(1)  # atomic: concurrent requests of one invocation count apart

    aws._session.events.register("before-send", sent)


def _register_without_interpreter(stack) -> None:
    """Turn the ASL interpreter off. moto then serves Step Functions from another backend, so
    the app's state machine is created there too (same name, definition and role)."""
    sfn = stack.client("stepfunctions")
    machine = sfn.describe_state_machine(stateMachineArn=stack.names["STATE_MACHINE_ARN"])
    stack.moto_api("config", {"stepfunctions": {"execute_state_machine": False}})
    sfn.create_state_machine(name=machine["name"], definition=machine["definition"],
                             roleArn=machine["roleArn"])


def run(stack, clock, instances: int = 250, duplicates: int = 4, workers: int = 8,
        seed: int = 7) -> Burst:
    stack.reset()
    ids = _launch(stack, instances)
    events = [envelope(i, f"{i}-{n}") for i in ids for n in range(duplicates)]
    random.Random(seed).shuffle(events)
    _count_requests_per_invocation()
    function = names.function(stack.stage, HANDLER)

    def deliver(event):
        marks = []
        _sent.set(marks)
        payload, error = stack.bridge.invoke(function, event, "eventbridge")
        return payload, error, len(marks)

    _register_without_interpreter(stack)
    try:
        with without_tamper_watch(stack):
            clock.reset()
            started = time.monotonic()
            with ThreadPoolExecutor(max_workers=workers) as pool:
                results = list(pool.map(deliver, events))
            seconds = time.monotonic() - started
            calls = [stamp.name for stamp in clock.stamps()]  # before the rule is enabled again
        executions = sum(len(page["executions"]) for page in stack.client("stepfunctions")
                         .get_paginator("list_executions")
                         .paginate(stateMachineArn=stack.names["STATE_MACHINE_ARN"]))
    finally:
        stack.moto_api("config", {"stepfunctions": {"execute_state_machine": True}})

    decisions: dict = {}
    for payload, error, _ in results:
        key = "crashed" if error else payload["decision"]
        decisions[key] = decisions.get(key, 0) + 1
    by_action: dict = {}
    for name in calls:
        by_action[name] = by_action.get(name, 0) + 1
    incidents = sum(page["Count"] for page in stack.client("dynamodb").get_paginator("scan")
                    .paginate(TableName=stack.names["INCIDENTS_TABLE"], Select="COUNT",
                              FilterExpression="record_type = :t",
                              ExpressionAttributeValues={":t": {"S": "incident"}}))
    counted = sum(n for _, _, n in results)
    if counted != len(calls):
        raise RuntimeError(f"the hook counted {counted} requests, the embedded AWS {len(calls)}")
    return Burst(
        findings=len(events), instances=instances, seconds=seconds, decisions=decisions,
        errors=sum(1 for payload, error, _ in results
                   if error or payload["decision"] not in ("acted", "recorded")),
        incidents=incidents, executions=executions,
        new_requests=[n for payload, _, n in results if payload.get("decision") == "acted"],
        duplicate_requests=[n for payload, _, n in results
                            if payload.get("decision") == "recorded"],
        recorded=len(calls), by_action=by_action)
