"""Building blocks for tests on the embedded AWS: victims that look like real instances,
a queue subscribed to the report topic, GuardDuty events, waiting for executions."""

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


def make_victim(stack, interfaces: int = 2, volumes: int = 2, profile: bool = True,
                tags: dict | None = None, vpc: dict | None = None,
                shutdown_behaviour: str = "terminate") -> dict:
    """An instance like a real one: launched with SecurityGroupIds, further interfaces carrying
    other groups, extra volumes, an instance profile. Returns ids of what was made."""
    ec2 = stack.client("ec2")
    if vpc is None:
        vpc_id = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
        subnet = ec2.create_subnet(VpcId=vpc_id, CidrBlock="10.0.1.0/24",
                                   AvailabilityZone="us-east-1a")["Subnet"]["SubnetId"]
        vpc = {"vpc_id": vpc_id, "subnet_id": subnet}
    groups = [ec2.create_security_group(GroupName=f"app-{n}-{time.monotonic_ns()}",
                                        Description="app", VpcId=vpc["vpc_id"])["GroupId"]
              for n in range(interfaces + 1)]
    launch = {"ImageId": "ami-12345678", "MinCount": 1, "MaxCount": 1, "InstanceType": "t3.micro",
              "SubnetId": vpc["subnet_id"], "SecurityGroupIds": groups[:2],
              "InstanceInitiatedShutdownBehavior": shutdown_behaviour}
    if profile:
        iam = stack.client("iam")
        name = f"app-server-{time.monotonic_ns()}"
        iam.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps({
            "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole",
                                                    "Principal": {"Service": "ec2.amazonaws.com"}}]}))
        iam.create_instance_profile(InstanceProfileName=name)
        iam.add_role_to_instance_profile(InstanceProfileName=name, RoleName=name)
        launch["IamInstanceProfile"] = {"Name": name}
    if tags:
        launch["TagSpecifications"] = [{"ResourceType": "instance", "Tags": [
            {"Key": k, "Value": v} for k, v in tags.items()]}]
    instance = ec2.run_instances(**launch)["Instances"][0]
    instance_id = instance["InstanceId"]
    enis = {instance["NetworkInterfaces"][0]["NetworkInterfaceId"]: sorted(groups[:2])}
    for index in range(1, interfaces):
        eni = ec2.create_network_interface(SubnetId=vpc["subnet_id"], Groups=[groups[index + 1]])[
            "NetworkInterface"]["NetworkInterfaceId"]
        ec2.attach_network_interface(NetworkInterfaceId=eni, InstanceId=instance_id,
                                     DeviceIndex=index)
        enis[eni] = [groups[index + 1]]
    for index in range(1, volumes):
        volume = ec2.create_volume(AvailabilityZone="us-east-1a", Size=8)["VolumeId"]
        ec2.attach_volume(VolumeId=volume, InstanceId=instance_id, Device=f"/dev/sd{'fghijklmnop'[index]}")
    return {"instance_id": instance_id, "interfaces": enis, **vpc}


def deliver_finding(stack, event: dict) -> dict:
    """PutEvents a finding and wait for the handler; returns what the handler decided."""
    before = len(stack.bridge.invocations)
    put_event(stack, event)
    stack.bridge.wait_idle()
    delivered = [i for i in stack.bridge.invocations[before:] if i.source == "eventbridge"]
    assert len(delivered) <= 1
    if not delivered:
        return {"decision": "not delivered"}
    assert delivered[0].error is None, delivered[0].result
    return delivered[0].result


def incident(stack, incident_id: str) -> dict:
    from chalicelib import incidents

    return incidents.get(incident_id)


def finish(stack, result: dict, timeout: float = 90.0) -> tuple[dict, dict]:
    """Wait for the execution behind a handler's or the API's answer; (incident, execution)."""
    execution = wait_execution(stack, result["execution_arn"], timeout)
    stack.bridge.wait_idle()
    return incident(stack, result["incident_id"]), execution


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


def api(stack, method: str, path: str, body=None, raw: bytes | None = None) -> tuple[int, dict]:
    """A request to the local API over real HTTP; (status, JSON body)."""
    import urllib.error
    import urllib.request

    data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
    request = urllib.request.Request(f"{stack.api_url}{path}", data=data, method=method,
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as error:
        return error.code, json.load(error)
