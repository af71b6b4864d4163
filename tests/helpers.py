"""Building blocks for tests on the embedded AWS: victims that look like real instances,
a queue subscribed to the report topic, GuardDuty events, waiting for executions."""

import json
import time

from deploy import names
from local.drive import (  # noqa: F401  (the tests import them from here)
    guardduty_event,
    history,
    messages,
    put_event,
    sample,
    stolen_credentials_event,
    subscribe_queue,
    wait_execution,
)
from local.victims import make_victim  # noqa: F401


def deliver_finding(stack, event: dict) -> dict:
    """PutEvents a finding and wait for the handler; returns what the handler decided. (Other
    deliveries meanwhile, such as CloudTrail's events of the handler's own calls, are not it.)"""
    handler = names.function(stack.stage, "on_guardduty_finding")
    before = len(stack.bridge.invocations)
    put_event(stack, event)
    stack.bridge.wait_idle()
    delivered = [i for i in stack.bridge.invocations[before:] if i.function_name == handler]
    assert len(delivered) <= 1
    if not delivered:
        return {"decision": "not delivered"}
    assert delivered[0].error is None, delivered[0].result
    return delivered[0].result


def incident(stack, incident_id: str) -> dict:
    from chalicelib import incidents

    return incidents.get(incident_id)


def release(stack, instance_id: str) -> dict:
    """POST /release for `instance_id` and wait until its execution succeeded; the answer."""
    status, answer = api(stack, "POST", "/release", {"instance_id": instance_id,
                                                     "reason": "cleared"})
    assert status == 202, answer
    assert wait_execution(stack, answer["release_execution_arn"])["status"] == "SUCCEEDED"
    stack.bridge.wait_idle()
    return answer


def finish(stack, result: dict, timeout: float = 90.0) -> tuple[dict, dict]:
    """Wait for the execution behind a handler's or the API's answer; (incident, execution)."""
    execution = wait_execution(stack, result["execution_arn"], timeout)
    stack.bridge.wait_idle()
    return incident(stack, result["incident_id"]), execution


def stop_execution(stack, execution_arn: str, attempts: int = 3) -> None:
    """Stop an execution a test left waiting. moto's server answered StopExecution with a 500
    once under two busy workers (not reproduced alone): a 5xx is tried again, as an SDK's
    retries would."""
    from botocore.exceptions import ClientError

    for attempt in range(attempts):
        try:
            stack.client("stepfunctions").stop_execution(executionArn=execution_arn)
            return
        except ClientError as error:
            status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
            if status < 500 or attempt == attempts - 1:
                raise
            time.sleep(0.5)


def interface_groups(stack, eni: str) -> list[str]:
    described = stack.client("ec2").describe_network_interfaces(NetworkInterfaceIds=[eni])
    return sorted(g["GroupId"] for g in described["NetworkInterfaces"][0]["Groups"])


def product_groups(stack, vpc_id: str) -> dict:
    groups = stack.client("ec2").describe_security_groups(Filters=[
        {"Name": "vpc-id", "Values": [vpc_id]},
        {"Name": "tag-key", "Values": ["ec2-quarantine"]}])["SecurityGroups"]
    return {next(t["Value"] for t in g["Tags"] if t["Key"] == "ec2-quarantine"): g for g in groups}


def instance_attribute(stack, instance_id: str, attribute: str):
    described = stack.client("ec2").describe_instance_attribute(InstanceId=instance_id,
                                                                Attribute=attribute)
    return described[attribute[0].upper() + attribute[1:]]["Value"]


def snapshots_of(stack, incident_id: str) -> list[dict]:
    return stack.client("ec2").describe_snapshots(Filters=[
        {"Name": "tag:QuarantineIncident", "Values": [incident_id]}])["Snapshots"]


def instance_tags(stack, instance_id: str) -> dict:
    described = stack.client("ec2").describe_instances(InstanceIds=[instance_id])
    tags = described["Reservations"][0]["Instances"][0].get("Tags", [])
    return {t["Key"]: t["Value"] for t in tags}


def api(stack, method: str, path: str, body=None, raw: bytes | None = None,
        keys: dict | None = None) -> tuple[int, dict]:
    """A request to the local API over real HTTP, signed with `keys` (`user_keys`; default
    unsigned); (status, JSON body)."""
    import urllib.error
    import urllib.request

    data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
    headers = {"Content-Type": "application/json"}
    if keys:
        from botocore.auth import SigV4Auth
        from botocore.awsrequest import AWSRequest
        from botocore.credentials import Credentials

        signed = AWSRequest(method=method, url=f"{stack.api_url}{path}", data=data,
                            headers=headers)
        SigV4Auth(Credentials(keys["AWS_ACCESS_KEY_ID"], keys["AWS_SECRET_ACCESS_KEY"]),
                  "execute-api", stack.region).add_auth(signed)
        headers = dict(signed.headers.items())
    request = urllib.request.Request(f"{stack.api_url}{path}", data=data, method=method,
                                     headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as error:
        return error.code, json.load(error)


def user_keys(stack, name: str, rights, account: str | None = None) -> dict:
    """The access key of a new IAM user (of `account`, default the home account) allowed
    `rights` (IAM actions) on everything, as AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY."""
    iam_admin = stack.client("iam", account=account or stack.account)
    iam_admin.create_user(UserName=name)
    iam_admin.put_user_policy(UserName=name, PolicyName="few", PolicyDocument=json.dumps({
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": sorted(rights), "Resource": "*"}]}))
    key = iam_admin.create_access_key(UserName=name)["AccessKey"]
    return {"AWS_ACCESS_KEY_ID": key["AccessKeyId"],
            "AWS_SECRET_ACCESS_KEY": key["SecretAccessKey"]}


def principal(stack, name: str, rights, account: str | None = None) -> object:
    """client(service) of a new IAM user (of `account`, default the home account) allowed
    `rights` (IAM actions) on everything: an insider with a few rights, or a host's role, as
    moto's IAM enforcement sees them."""
    import boto3

    keys = user_keys(stack, name, rights, account)
    session = boto3.session.Session(aws_access_key_id=keys["AWS_ACCESS_KEY_ID"],
                                    aws_secret_access_key=keys["AWS_SECRET_ACCESS_KEY"],
                                    region_name=stack.region)
    return lambda service: session.client(service, endpoint_url=stack.endpoint)


def remove_action(stack, role: str, action: str) -> None:
    """Take `action` out of the role's (one) inline policy, as a too-narrow deployment would."""
    iam_client = stack.client("iam")
    (name,) = iam_client.list_role_policies(RoleName=role)["PolicyNames"]
    document = iam_client.get_role_policy(RoleName=role, PolicyName=name)["PolicyDocument"]
    for statement in document["Statement"]:
        listed = statement["Action"] if isinstance(statement["Action"], list) else [
            statement["Action"]]
        if statement["Effect"] == "Allow":
            statement["Action"] = [a for a in listed if a != action]
    document["Statement"] = [s for s in document["Statement"] if s["Action"]]
    iam_client.put_role_policy(RoleName=role, PolicyName=name, PolicyDocument=json.dumps(document))
