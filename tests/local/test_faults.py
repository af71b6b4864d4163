"""Fault injection: named operations fail with a chosen error for N calls, then work again."""

import json
import urllib.request

import pytest
from botocore.exceptions import ClientError

from local import recording
from local.faults import denied, throttled


def _error_code(call):
    with pytest.raises(ClientError) as raised:
        call()
    return raised.value.response["Error"]["Code"]


def test_a_fault_fails_the_next_n_calls_then_disarms(stack):
    ec2 = stack.client("ec2")
    stack.faults.arm("ec2", "DescribeInstances", "AccessDenied", count=2)

    assert _error_code(ec2.describe_instances) == "AccessDenied"
    assert _error_code(ec2.describe_instances) == "AccessDenied"
    assert ec2.describe_instances()["Reservations"] == []
    assert ec2.describe_vpcs()["Vpcs"]  # other operations were never affected
    assert [f["action"] for f in stack.faults.fired] == ["DescribeInstances"] * 2


def test_a_fault_can_target_one_resource(stack):
    ec2 = stack.client("ec2")
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.0.1.0/24")["Subnet"]["SubnetId"]
    target, bystander = [
        ec2.run_instances(ImageId="ami-12345678", MinCount=1, MaxCount=1, SubnetId=subnet)[
            "Instances"][0]["InstanceId"] for _ in range(2)]
    stack.faults.arm("ec2", "CreateTags", "UnauthorizedOperation", resource=target)

    ec2.create_tags(Resources=[bystander], Tags=[{"Key": "k", "Value": "v"}])
    assert _error_code(lambda: ec2.create_tags(
        Resources=[target], Tags=[{"Key": "k", "Value": "v"}])) == "UnauthorizedOperation"


@pytest.mark.parametrize("service,action,call,error", [
    ("sns", "Publish",
     lambda s: s.client("sns").publish(TopicArn=s.names["TOPIC_ARN"], Message="m"), "Throttling"),
    ("dynamodb", "GetItem",
     lambda s: s.client("dynamodb").get_item(TableName=s.names["INCIDENTS_TABLE"],
                                              Key={"pk": {"S": "x"}}),
     "ProvisionedThroughputExceededException"),
    ("states", "StartExecution",
     lambda s: s.client("stepfunctions").start_execution(
         stateMachineArn=s.names["STATE_MACHINE_ARN"]), "ThrottlingException"),
    ("ec2", "DescribeInstances", lambda s: s.client("ec2").describe_instances(),
     "RequestLimitExceeded"),
])
def test_faults_speak_each_services_wire_format(stack, service, action, call, error):
    stack.faults.arm(service, action, error)
    assert _error_code(lambda: call(stack)) == error


def test_a_fault_can_target_one_function_of_the_app(stack):
    from chalicelib import aws

    stack.faults.arm("ec2", "DescribeVpcs", denied("ec2"), count=5, caller="contain")
    recording.start(stack)
    with aws.acting_as("ec2-quarantine-dev-contain"):
        assert _error_code(aws.client("ec2").describe_vpcs) == "UnauthorizedOperation"
    with aws.acting_as("ec2-quarantine-dev-collect_evidence"):
        assert aws.client("ec2").describe_vpcs()["Vpcs"]
    assert stack.client("ec2").describe_vpcs()["Vpcs"]  # a client that is not the app's
    recording.stop(stack)
    assert [f["caller"] for f in stack.faults.fired] == ["ec2-quarantine-dev-contain"]
    assert [c.caller for c in recording.calls(stack)] == [
        "ec2-quarantine-dev-collect_evidence", None]  # the denied call never reached moto


@pytest.mark.parametrize("service,call", [
    ("ec2", lambda s: s.client("ec2").describe_vpcs()),
    ("sns", lambda s: s.client("sns").list_topics()),
    ("s3", lambda s: s.client("s3").list_buckets()),
    ("iam", lambda s: s.client("iam").list_roles()),
    ("autoscaling", lambda s: s.client("autoscaling").describe_auto_scaling_groups()),
    ("elasticloadbalancing", lambda s: s.client("elbv2").describe_target_groups()),
    ("dynamodb", lambda s: s.client("dynamodb").list_tables()),
    ("states", lambda s: s.client("stepfunctions").list_state_machines()),
    ("ssm", lambda s: s.client("ssm").describe_instance_information()),
], ids=lambda v: v if isinstance(v, str) else "")
@pytest.mark.parametrize("code_for", [denied, throttled], ids=["denied", "throttled"])
def test_denials_and_throttling_speak_each_services_wire_format(stack, service, call, code_for):
    from botocore.exceptions import ClientError

    with pytest.raises(ClientError) as raised:  # the first call made by `call`
        stack.faults.arm(service, _first_action(stack, call), code_for(service))
        call(stack)
    assert raised.value.response["Error"]["Code"] == code_for(service)


def _first_action(stack, call) -> str:
    """The action `call` sends, as the fault control names it (read from moto's recorder)."""
    recording.start(stack)
    call(stack)
    recording.stop(stack)
    return recording.calls(stack)[0].action


def test_s3_object_writes_can_fail(stack):
    s3 = stack.client("s3")
    s3.create_bucket(Bucket="evidence")
    stack.faults.arm("s3", "PutObject", "AccessDenied")
    assert _error_code(lambda: s3.put_object(Bucket="evidence", Key="a/b", Body=b"x")) == (
        "AccessDenied")
    s3.put_object(Bucket="evidence", Key="a/b", Body=b"x")


def test_lambda_invocations_can_fail_through_the_bridge(stack):
    import boto3
    from botocore.config import Config

    client = boto3.session.Session().client(  # no retries: the first throttled call fails
        "lambda", region_name=stack.region, endpoint_url=stack.endpoint,
        aws_access_key_id="k", aws_secret_access_key="s",
        config=Config(retries={"mode": "standard", "total_max_attempts": 1}))
    stack.faults.arm("lambda", "Invoke", "TooManyRequestsException")

    assert _error_code(lambda: client.invoke(FunctionName="ec2-quarantine-dev-report",
                                             Payload=b"{}")) == "TooManyRequestsException"
    answered = client.invoke(FunctionName="ec2-quarantine-dev-report", Payload=b"[]")
    # the call reached the handler this time, which raised on an event that is not an object
    # (an empty one is refused without raising), as Lambda reports
    assert answered["StatusCode"] == 200 and answered["FunctionError"] == "Unhandled"
    assert json.load(answered["Payload"])["errorType"] == "AttributeError"


def _control(stack, method, payload=None):
    data = None if payload is None else json.dumps(payload).encode()
    request = urllib.request.Request(f"{stack.endpoint}/_local/faults", data=data, method=method,
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.load(response)


def test_http_control_arms_lists_and_resets(stack):
    sns = stack.client("sns")
    listed = _control(stack, "POST", {"service": "sns", "action": "ListTopics",
                                      "error": "Throttling", "count": 3})
    assert listed["armed"][0]["count"] == 3

    assert _error_code(sns.list_topics) == "Throttling"
    assert _control(stack, "GET")["armed"][0]["count"] == 2
    _control(stack, "DELETE")
    assert _control(stack, "GET")["armed"] == []
    assert sns.list_topics()["Topics"]


def test_http_control_refuses_a_bad_fault(stack):
    with pytest.raises(urllib.error.HTTPError) as raised:
        _control(stack, "POST", {"service": "sns", "action": "Publish", "error": "X", "count": 0})
    assert raised.value.code == 400


def test_moto_request_recorder_is_reachable_as_usual(stack):
    recording.start(stack)
    stack.client("ec2").describe_vpcs()
    stack.client("sns").list_topics()
    recording.stop(stack)
    assert [c.name for c in recording.calls(stack)] == ["ec2:DescribeVpcs", "sns:ListTopics"]
