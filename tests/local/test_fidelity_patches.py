"""Each fidelity patch makes moto behave like AWS; each test here fails on plain moto."""

import json

import pytest
from botocore.exceptions import ClientError


def _vpc_with_groups(ec2, count=3):
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.0.1.0/24")["Subnet"]["SubnetId"]
    groups = [
        ec2.create_security_group(GroupName=f"g{n}", Description="t", VpcId=vpc)["GroupId"]
        for n in range(count)
    ]
    return vpc, subnet, groups


def _launch(ec2, subnet, groups):
    return ec2.run_instances(ImageId="ami-12345678", MinCount=1, MaxCount=1,
                             SubnetId=subnet, SecurityGroupIds=groups)["Instances"][0]


def _interface_groups(ec2, eni):
    described = ec2.describe_network_interfaces(NetworkInterfaceIds=[eni])["NetworkInterfaces"][0]
    return sorted(g["GroupId"] for g in described["Groups"])


def test_primary_interface_groups_read_back_exactly_as_set(stack):
    ec2 = stack.client("ec2")
    _, subnet, (launch_group, isolation, _) = _vpc_with_groups(ec2)
    instance = _launch(ec2, subnet, [launch_group])
    eni = instance["NetworkInterfaces"][0]["NetworkInterfaceId"]

    ec2.modify_network_interface_attribute(NetworkInterfaceId=eni, Groups=[isolation])

    assert _interface_groups(ec2, eni) == [isolation]
    described = ec2.describe_instances(InstanceIds=[instance["InstanceId"]])
    reservation = described["Reservations"][0]["Instances"][0]
    assert [g["GroupId"] for g in reservation["SecurityGroups"]] == [isolation]


def test_modify_instance_attribute_groups_replaces_the_primary_interfaces(stack):
    ec2 = stack.client("ec2")
    _, subnet, (first, second, third) = _vpc_with_groups(ec2)
    instance = _launch(ec2, subnet, [first, second])
    eni = instance["NetworkInterfaces"][0]["NetworkInterfaceId"]

    ec2.modify_instance_attribute(InstanceId=instance["InstanceId"], Groups=[third])

    assert _interface_groups(ec2, eni) == [third]


def test_secondary_interface_keeps_its_own_groups(stack):
    ec2 = stack.client("ec2")
    _, subnet, (primary_group, secondary_group, _) = _vpc_with_groups(ec2)
    instance = _launch(ec2, subnet, [primary_group])
    eni = ec2.create_network_interface(SubnetId=subnet, Groups=[secondary_group])[
        "NetworkInterface"]["NetworkInterfaceId"]
    ec2.attach_network_interface(NetworkInterfaceId=eni, InstanceId=instance["InstanceId"],
                                 DeviceIndex=1)
    assert _interface_groups(ec2, eni) == [secondary_group]


def test_snapshots_can_be_held_pending_for_n_polls(stack):
    ec2 = stack.client("ec2")
    _, subnet, (group, _, _) = _vpc_with_groups(ec2)
    instance = _launch(ec2, subnet, [group])
    stack.hold_snapshots(2)

    created = ec2.create_snapshots(InstanceSpecification={"InstanceId": instance["InstanceId"]})
    ids = [s["SnapshotId"] for s in created["Snapshots"]]
    assert [s["State"] for s in created["Snapshots"]] == ["pending"]

    states = [ec2.describe_snapshots(SnapshotIds=ids)["Snapshots"][0]["State"] for _ in range(3)]
    assert states == ["pending", "pending", "completed"]


def test_snapshots_complete_at_once_without_a_hold(stack):
    ec2 = stack.client("ec2")
    _, subnet, (group, _, _) = _vpc_with_groups(ec2)
    instance = _launch(ec2, subnet, [group])
    created = ec2.create_snapshots(InstanceSpecification={"InstanceId": instance["InstanceId"]})
    assert [s["State"] for s in created["Snapshots"]] == ["completed"]


@pytest.fixture
def iam_enforced(stack):
    """moto's IAM enforcement on, with an administrator's client; off again afterwards."""
    iam = stack.client("iam")
    iam.create_user(UserName="admin")
    iam.put_user_policy(UserName="admin", PolicyName="admin", PolicyDocument=json.dumps({
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}))
    key = iam.create_access_key(UserName="admin")["AccessKey"]
    stack.moto_api("reset-auth", b"0")
    try:
        yield lambda service: _client_as(stack, service, key)
    finally:
        stack.moto_api("reset-auth", b"inf")


def _client_as(stack, service, key):
    import boto3

    return boto3.session.Session().client(
        service, region_name=stack.region, endpoint_url=stack.endpoint,
        aws_access_key_id=key["AccessKeyId"], aws_secret_access_key=key["SecretAccessKey"])


def _publishing_machine(stack, admin, name, role_actions):
    iam = admin("iam")
    trust = {"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Principal": {"Service": "states.amazonaws.com"},
        "Action": "sts:AssumeRole"}]}
    role = iam.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(trust))["Role"]["Arn"]
    iam.put_role_policy(RoleName=name, PolicyName="p", PolicyDocument=json.dumps({
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": role_actions, "Resource": "*"}]}))
    definition = {"StartAt": "Publish", "States": {"Publish": {
        "Type": "Task", "Resource": "arn:aws:states:::sns:publish",
        "Parameters": {"TopicArn": stack.names["TOPIC_ARN"], "Message": "hello"}, "End": True}}}
    return admin("stepfunctions").create_state_machine(
        name=name, roleArn=role, definition=json.dumps(definition))["stateMachineArn"]


def test_state_machine_integrations_are_signed_as_its_role(stack, iam_enforced):
    """Plain moto signs with the key "ak", which IAM enforcement rejects for every role."""
    admin = iam_enforced
    allowed = _publishing_machine(stack, admin, "may-publish", ["sns:Publish"])
    denied = _publishing_machine(stack, admin, "may-not-publish", ["sns:ListTopics"])
    sfn = admin("stepfunctions")

    ok = sfn.start_execution(stateMachineArn=allowed)["executionArn"]
    refused = sfn.start_execution(stateMachineArn=denied)["executionArn"]

    assert _wait_as(sfn, ok)["status"] == "SUCCEEDED"
    failed = _wait_as(sfn, refused)
    assert failed["status"] == "FAILED"
    assert failed["error"].startswith("SNS.")


def _wait_as(sfn, execution_arn):
    import time

    for _ in range(400):
        described = sfn.describe_execution(executionArn=execution_arn)
        if described["status"] != "RUNNING":
            return described
        time.sleep(0.05)
    raise TimeoutError(execution_arn)


def test_iam_enforcement_rejects_unknown_keys(stack, iam_enforced):
    """The enforcement the signing patch relies on is really on in the test above."""
    with pytest.raises(ClientError) as raised:
        stack.client("sns").list_topics()
    assert raised.value.response["Error"]["Code"] in ("InvalidClientTokenId", "AccessDenied")


def test_shutdown_behaviour_is_set_and_groups_are_left_alone(stack):
    """Plain moto ignores the attribute and wipes the instance's groups instead."""
    ec2 = stack.client("ec2")
    _, subnet, (group, _, _) = _vpc_with_groups(ec2)
    instance = ec2.run_instances(ImageId="ami-12345678", MinCount=1, MaxCount=1, SubnetId=subnet,
                                 SecurityGroupIds=[group],
                                 InstanceInitiatedShutdownBehavior="terminate")["Instances"][0]
    ec2.modify_instance_attribute(InstanceId=instance["InstanceId"],
                                  InstanceInitiatedShutdownBehavior={"Value": "stop"})
    described = ec2.describe_instance_attribute(InstanceId=instance["InstanceId"],
                                                Attribute="instanceInitiatedShutdownBehavior")
    assert described["InstanceInitiatedShutdownBehavior"]["Value"] == "stop"
    eni = instance["NetworkInterfaces"][0]["NetworkInterfaceId"]
    assert _interface_groups(ec2, eni) == [group]


def test_connection_tracking_is_kept_per_interface_within_awss_bounds(stack):
    """Plain moto accepts ConnectionTrackingSpecification and drops it (no configuration is
    ever read back) and takes any timeout."""
    ec2 = stack.client("ec2")
    _, subnet, (group, _, _) = _vpc_with_groups(ec2)
    instance = _launch(ec2, subnet, [group])
    eni = instance["NetworkInterfaces"][0]["NetworkInterfaceId"]
    other = ec2.create_network_interface(SubnetId=subnet)["NetworkInterface"]["NetworkInterfaceId"]

    def tracking(interface):
        return ec2.describe_network_interfaces(NetworkInterfaceIds=[interface])[
            "NetworkInterfaces"][0].get("ConnectionTrackingConfiguration")

    shortest = {"TcpEstablishedTimeout": 60, "UdpStreamTimeout": 60, "UdpTimeout": 30}
    ec2.modify_network_interface_attribute(NetworkInterfaceId=eni,
                                           ConnectionTrackingSpecification=shortest)
    assert tracking(eni) == shortest and tracking(other) is None
    described = ec2.describe_instances(InstanceIds=[instance["InstanceId"]])
    (interface,) = described["Reservations"][0]["Instances"][0]["NetworkInterfaces"]
    assert interface["ConnectionTrackingConfiguration"] == shortest
    for name, (low, high) in {"TcpEstablishedTimeout": (60, 432000),
                              "UdpStreamTimeout": (60, 180), "UdpTimeout": (30, 60)}.items():
        for outside in (low - 1, high + 1):
            with pytest.raises(ClientError) as refused:
                ec2.modify_network_interface_attribute(
                    NetworkInterfaceId=eni, ConnectionTrackingSpecification={name: outside})
            assert refused.value.response["Error"]["Code"] == "InvalidParameterValue"
    assert tracking(eni) == shortest
    ec2.modify_network_interface_attribute(
        NetworkInterfaceId=eni, ConnectionTrackingSpecification={"TcpEstablishedTimeout": 432000})
    assert tracking(eni) == {**shortest, "TcpEstablishedTimeout": 432000}  # the others stay


def test_metadata_options_a_request_does_not_name_are_kept(stack):
    """Plain moto builds the options afresh from the request: after setting the endpoint alone,
    HttpTokens and the tags option read back absent and the hop limit 1."""
    ec2 = stack.client("ec2")
    instance = ec2.run_instances(ImageId="ami-12345678", MinCount=1, MaxCount=1, MetadataOptions={
        "HttpTokens": "required", "HttpPutResponseHopLimit": 2,
        "InstanceMetadataTags": "enabled"})["Instances"][0]["InstanceId"]

    def options():
        described = ec2.describe_instances(InstanceIds=[instance])["Reservations"][0]
        return {k: v for k, v in described["Instances"][0]["MetadataOptions"].items()
                if k != "State"}

    launched = options()
    ec2.modify_instance_metadata_options(InstanceId=instance, HttpEndpoint="disabled")
    assert options() == {**launched, "HttpEndpoint": "disabled"}
    ec2.modify_instance_metadata_options(InstanceId=instance, HttpEndpoint="enabled")
    assert options() == launched == {"HttpTokens": "required", "HttpPutResponseHopLimit": 2,
                                     "HttpEndpoint": "enabled", "HttpProtocolIpv6": "disabled",
                                     "InstanceMetadataTags": "enabled"}


def test_block_device_mappings_are_described_with_delete_on_termination(stack):
    """Plain moto's DescribeInstanceAttribute blockDeviceMapping answers no mappings."""
    ec2 = stack.client("ec2")
    _, subnet, (group, _, _) = _vpc_with_groups(ec2)
    instance = _launch(ec2, subnet, [group])
    (root,) = instance["BlockDeviceMappings"]
    ec2.modify_instance_attribute(InstanceId=instance["InstanceId"], BlockDeviceMappings=[
        {"DeviceName": root["DeviceName"], "Ebs": {"DeleteOnTermination": False}}])
    described = ec2.describe_instance_attribute(InstanceId=instance["InstanceId"],
                                                Attribute="blockDeviceMapping")
    assert [(m["DeviceName"], m["Ebs"]["VolumeId"], m["Ebs"]["DeleteOnTermination"])
            for m in described["BlockDeviceMappings"]] == [
        (root["DeviceName"], root["Ebs"]["VolumeId"], False)]


def test_concurrent_updates_of_one_item_are_all_applied(stack):
    """Plain moto loses some of these concurrent list_append updates (a lost-update race)."""
    import threading

    dynamodb, table = stack.client("dynamodb"), stack.names["INCIDENTS_TABLE"]
    dynamodb.put_item(TableName=table, Item={"pk": {"S": "item"}, "seen": {"L": []}})
    barrier = threading.Barrier(20)

    def append(n):
        barrier.wait()
        dynamodb.update_item(TableName=table, Key={"pk": {"S": "item"}},
                             UpdateExpression="SET seen = list_append(seen, :n)",
                             ExpressionAttributeValues={":n": {"L": [{"N": str(n)}]}})

    threads = [threading.Thread(target=append, args=(n,)) for n in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    item = dynamodb.get_item(TableName=table, Key={"pk": {"S": "item"}}, ConsistentRead=True)
    assert sorted(int(v["N"]) for v in item["Item"]["seen"]["L"]) == list(range(20))


def test_ssm_lists_and_commands_only_managed_instances(stack):
    """Plain moto answers DescribeInstanceInformation with a 500 and runs commands anywhere."""
    ec2, ssm = stack.client("ec2"), stack.client("ssm")
    _, subnet, (group, _, _) = _vpc_with_groups(ec2)
    managed, unmanaged = [_launch(ec2, subnet, [group])["InstanceId"] for _ in range(2)]
    stack.manage_with_ssm(managed)

    listed = ssm.describe_instance_information(Filters=[
        {"Key": "InstanceIds", "Values": [managed, unmanaged]}])["InstanceInformationList"]
    assert [(i["InstanceId"], i["PingStatus"]) for i in listed] == [(managed, "Online")]
    with pytest.raises(ClientError) as raised:
        ssm.send_command(InstanceIds=[unmanaged], DocumentName="AWS-RunShellScript",
                         Parameters={"commands": ["true"]})
    assert raised.value.response["Error"]["Code"] == "InvalidInstanceId"
    ran = ssm.send_command(InstanceIds=[managed], DocumentName="AWS-RunShellScript",
                           Parameters={"commands": ["true"]})["Command"]["CommandId"]
    assert ssm.get_command_invocation(CommandId=ran, InstanceId=managed)["Status"] == "Success"


def _upload(s3, bucket, key):
    s3.create_bucket(Bucket=bucket)
    upload = s3.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"]
    url = s3.generate_presigned_url("upload_part", ExpiresIn=60, Params={
        "Bucket": bucket, "Key": key, "UploadId": upload, "PartNumber": 1})
    return upload, url


def test_an_agent_uploads_to_the_urls_it_is_given_and_a_command_can_be_cancelled(stack):
    """Plain moto's agent uploads nothing, never fails nor hangs, and moto has no
    CancelCommand."""
    from local import scenario

    ec2, ssm, s3 = stack.client("ec2"), stack.client("ssm"), stack.client("s3")
    _, subnet, (group, _, _) = _vpc_with_groups(ec2)
    managed = _launch(ec2, subnet, [group])["InstanceId"]
    stack.manage_with_ssm(managed)
    upload, url = _upload(s3, "memory-out", "image")

    sent = ssm.send_command(InstanceIds=[managed], DocumentName="Capture",
                            Parameters={"UploadUrls": [url], "PartSize": ["1048576"]})
    assert ssm.get_command_invocation(CommandId=sent["Command"]["CommandId"],
                                      InstanceId=managed)["Status"] == "Success"
    [part] = s3.list_parts(Bucket="memory-out", Key="image", UploadId=upload)["Parts"]
    assert part["Size"] == len(scenario.MEMORY_IMAGE)
    refused = ssm.send_command(InstanceIds=[managed], DocumentName="Capture", Parameters={
        "UploadUrls": [url.replace(upload, "no-such-upload")], "PartSize": ["1048576"]})
    assert ssm.get_command_invocation(CommandId=refused["Command"]["CommandId"],
                                      InstanceId=managed)["Status"] == "Failed"

    scenario.hang_ssm_commands()
    hung = ssm.send_command(InstanceIds=[managed], DocumentName="Capture",
                            Parameters={"UploadUrls": [url], "PartSize": ["1048576"]})
    hung_id = hung["Command"]["CommandId"]
    assert ssm.get_command_invocation(CommandId=hung_id, InstanceId=managed)[
        "Status"] == "InProgress"
    ssm.cancel_command(CommandId=hung_id, InstanceIds=[managed])
    assert ssm.get_command_invocation(CommandId=hung_id, InstanceId=managed)[
        "Status"] == "Cancelled"


def _s3_user(stack, iam, name, action):
    """An S3 client (SigV4, as the product's) of a new user allowed `action` only."""
    import boto3
    from botocore.config import Config

    iam.create_user(UserName=name)
    iam.put_user_policy(UserName=name, PolicyName="p", PolicyDocument=json.dumps({
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": action, "Resource": "*"}]}))
    key = iam.create_access_key(UserName=name)["AccessKey"]
    return boto3.session.Session().client(
        "s3", region_name=stack.region, endpoint_url=stack.endpoint,
        config=Config(signature_version="s3v4"), aws_access_key_id=key["AccessKeyId"],
        aws_secret_access_key=key["SecretAccessKey"])


def test_a_presigned_request_is_authorized_as_its_signer_for_that_request_only(stack,
                                                                               iam_enforced):
    """Under plain moto's enforcement a presigned request (no Authorization header) fails with
    a 500; AWS allows it as its signer, and refuses it once changed or signed by one who may
    not make it."""
    import requests

    iam = iam_enforced("iam")
    s3 = _s3_user(stack, iam, "writer", "s3:*")
    upload, url = _upload(s3, "presigned-out", "image")

    assert requests.put(url.replace("partNumber=1", "partNumber=2"), data=b"x",
                        timeout=10).status_code == 403  # not what was signed
    assert requests.put(url, data=b"image", timeout=10).status_code == 200
    reader = _s3_user(stack, iam, "reader", "s3:GetObject")
    not_allowed = reader.generate_presigned_url("upload_part", ExpiresIn=60, Params={
        "Bucket": "presigned-out", "Key": "image", "UploadId": upload, "PartNumber": 3})
    assert requests.put(not_allowed, data=b"x", timeout=10).status_code == 403
    parts = s3.list_parts(Bucket="presigned-out", Key="image", UploadId=upload)["Parts"]
    assert [(p["PartNumber"], p["Size"]) for p in parts] == [(1, 5)]


def test_console_screenshot_is_a_jpeg(stack):
    """Plain moto answers GetConsoleScreenshot with a 500."""
    import base64

    ec2 = stack.client("ec2")
    _, subnet, (group, _, _) = _vpc_with_groups(ec2)
    instance = _launch(ec2, subnet, [group])["InstanceId"]
    image = base64.b64decode(ec2.get_console_screenshot(InstanceId=instance)["ImageData"])
    assert image[:3] == b"\xff\xd8\xff"


def test_a_stacks_state_machine_is_served_and_retained_resources_outlive_it(stack):
    """Plain moto puts a stack's state machine where the API (executing) never looks, and
    deletes `RetainExceptOnCreate` resources with the stack."""
    template = {"Resources": {
        "Machine": {"Type": "AWS::StepFunctions::StateMachine", "Properties": {
            "StateMachineName": "from-a-stack", "RoleArn": "arn:aws:iam::123456789012:role/r",
            "DefinitionString": json.dumps(
                {"StartAt": "Done", "States": {"Done": {"Type": "Succeed"}}})}},
        "Kept": {"Type": "AWS::DynamoDB::Table", "DeletionPolicy": "RetainExceptOnCreate",
                 "Properties": {"TableName": "kept",
                                "AttributeDefinitions": [{"AttributeName": "k",
                                                          "AttributeType": "S"}],
                                "KeySchema": [{"AttributeName": "k", "KeyType": "HASH"}],
                                "BillingMode": "PAY_PER_REQUEST"}}}}
    cfn, sfn = stack.client("cloudformation"), stack.client("stepfunctions")
    cfn.create_stack(StackName="patched", TemplateBody=json.dumps(template))
    machines = {m["name"]: m["stateMachineArn"] for m in sfn.list_state_machines()["stateMachines"]}
    assert "from-a-stack" in machines
    execution = sfn.start_execution(stateMachineArn=machines["from-a-stack"])["executionArn"]
    assert _wait_as(sfn, execution)["status"] == "SUCCEEDED"

    cfn.delete_stack(StackName="patched")
    assert "from-a-stack" not in {m["name"] for m in sfn.list_state_machines()["stateMachines"]}
    assert "kept" in stack.client("dynamodb").list_tables()["TableNames"]


def test_a_cancelled_transaction_puts_back_its_items_without_copying_the_table(stack):
    """Plain moto backs a transaction up by deep-copying the whole table and swapping the copy
    in on cancellation (its cost grows with the table); the patch backs up the named items."""
    from moto.dynamodb.models import dynamodb_backends

    db = stack.client("dynamodb")
    db.create_table(TableName="t", AttributeDefinitions=[{"AttributeName": "k",
                                                          "AttributeType": "S"}],
                    KeySchema=[{"AttributeName": "k", "KeyType": "HASH"}],
                    BillingMode="PAY_PER_REQUEST")
    db.put_item(TableName="t", Item={"k": {"S": "a"}, "v": {"N": "1"}})
    backend = dynamodb_backends[stack.account][stack.region]
    table = backend.tables["t"]

    with pytest.raises(ClientError) as cancelled:
        db.transact_write_items(TransactItems=[
            {"Update": {"TableName": "t", "Key": {"k": {"S": "a"}}, "UpdateExpression": "SET v = :v",
                        "ExpressionAttributeValues": {":v": {"N": "2"}}}},
            {"Put": {"TableName": "t", "Item": {"k": {"S": "b"}}}},
            {"ConditionCheck": {"TableName": "t", "Key": {"k": {"S": "c"}},
                                "ConditionExpression": "attribute_exists(k)"}}])

    assert cancelled.value.response["Error"]["Code"] == "TransactionCanceledException"
    assert backend.tables["t"] is table  # the items were put back, not the table swapped
    assert db.get_item(TableName="t", Key={"k": {"S": "a"}})["Item"]["v"] == {"N": "1"}
    assert "Item" not in db.get_item(TableName="t", Key={"k": {"S": "b"}})


def test_a_lambda_tasks_service_error_is_named_as_step_functions_names_it(stack):
    """Plain moto names every Lambda service error of a task "Exception", so no Retry on
    `Lambda.TooManyRequestsException` ever matches."""
    function = f"arn:aws:lambda:{stack.region}:{stack.account}:function:ec2-quarantine-dev-report"
    definition = {"StartAt": "Invoke", "States": {"Invoke": {
        "Type": "Task", "Resource": function, "End": True}}}  # as the app's states are
    sfn = stack.client("stepfunctions")
    machine = sfn.create_state_machine(name="invokes", roleArn="arn:aws:iam::123456789012:role/r",
                                       definition=json.dumps(definition))["stateMachineArn"]
    stack.faults.arm("lambda", "Invoke", "TooManyRequestsException")

    failed = _wait_as(sfn, sfn.start_execution(stateMachineArn=machine)["executionArn"])

    assert (failed["status"], failed["error"]) == ("FAILED", "Lambda.TooManyRequestsException")



def test_any_lambda_client_invokes_the_apps_function_and_retries_a_throttled_call(stack):
    """Plain moto runs no function without Docker. Here a step's own client (as the revoking
    function's callers make it: standard retries) reaches the function, and a throttled Invoke
    is retried by botocore as Lambda's answer would be."""
    from chalicelib import aws
    from deploy import names

    stack.faults.arm("lambda", "Invoke", "TooManyRequestsException",
                     resource=names.function(stack.stage, "revoke_sessions"))
    with stack.bridge.acting_as(names.function(stack.stage, "contain")):
        answer = aws.client("lambda").invoke(
            FunctionName=names.function(stack.stage, "revoke_sessions"), Payload=b"{}")

    assert answer["StatusCode"] == 200 and "FunctionError" not in answer
    assert json.load(answer["Payload"])["status"] == "refused"  # the revoker's own answer
    assert [f["error"] for f in stack.faults.fired] == ["TooManyRequestsException"]
    [invocation] = [i for i in stack.bridge.invocations if i.source == "invoke"]
    assert invocation.caller == names.function(stack.stage, "contain")


def _kms_code(call) -> str | None:
    try:
        call()
    except ClientError as error:
        return error.response["Error"]["Code"]
    return None


def test_kms_takes_messages_of_1_to_4096_bytes(stack):
    """Plain moto MACs and signs a message of any length, an empty one too."""
    kms = stack.client("kms")
    key = stack.names["RECORDS_KEY_ARN"]
    mac = kms.generate_mac(KeyId=key, MacAlgorithm="HMAC_SHA_256", Message=b"x" * 4096)["Mac"]
    assert kms.verify_mac(KeyId=key, MacAlgorithm="HMAC_SHA_256", Message=b"x" * 4096,
                          Mac=mac)["MacValid"]
    signing = kms.create_key(KeySpec="ECC_NIST_P256", KeyUsage="SIGN_VERIFY")["KeyMetadata"]
    for message in (b"", b"x" * 4097):
        assert _kms_code(lambda: kms.generate_mac(
            KeyId=key, MacAlgorithm="HMAC_SHA_256", Message=message)) == "ValidationException"
        assert _kms_code(lambda: kms.verify_mac(
            KeyId=key, MacAlgorithm="HMAC_SHA_256", Message=message,
            Mac=mac)) == "ValidationException"
        assert _kms_code(lambda: kms.sign(
            KeyId=signing["KeyId"], Message=message,
            SigningAlgorithm="ECDSA_SHA_256")) == "ValidationException"


def test_kms_refuses_a_wrong_mac_as_aws_does(stack):
    """No patch: moto already answers KMSInvalidMacException (never MacValid false), as AWS."""
    kms = stack.client("kms")
    key = stack.names["RECORDS_KEY_ARN"]
    mac = kms.generate_mac(KeyId=key, MacAlgorithm="HMAC_SHA_256", Message=b"sealed")["Mac"]
    assert _kms_code(lambda: kms.verify_mac(KeyId=key, MacAlgorithm="HMAC_SHA_256",
                                            Message=b"forged", Mac=mac)) == (
        "KMSInvalidMacException")


def test_a_stacks_kms_key_is_the_key_its_template_declares(stack):
    """Plain moto's CloudFormation makes every key a symmetric encryption key, and stores a
    KeyPolicy object so that DescribeKey fails; it also takes no key ARN to ScheduleKeyDeletion."""
    policy = {"Version": "2012-10-17", "Statement": [{
        "Sid": "Administer", "Effect": "Allow", "Resource": "*", "Action": ["kms:DescribeKey"],
        "Principal": {"AWS": f"arn:aws:iam::{stack.account}:root"}}]}
    template = {
        "Resources": {
            "Key": {"Type": "AWS::KMS::Key", "Properties": {
                "KeySpec": "HMAC_256", "KeyUsage": "GENERATE_VERIFY_MAC", "KeyPolicy": policy}},
            "Alias": {"Type": "AWS::KMS::Alias", "Properties": {
                "AliasName": "alias/from-a-stack", "TargetKeyId": {"Ref": "Key"}}}},
        "Outputs": {"Arn": {"Value": {"Fn::GetAtt": ["Key", "Arn"]}}}}
    cfn, kms = stack.client("cloudformation"), stack.client("kms")
    cfn.create_stack(StackName="keyed", TemplateBody=json.dumps(template))
    arn = cfn.describe_stacks(StackName="keyed")["Stacks"][0]["Outputs"][0]["OutputValue"]

    key = kms.describe_key(KeyId="alias/from-a-stack")["KeyMetadata"]
    assert (key["Arn"], key["KeySpec"], key["KeyUsage"]) == (arn, "HMAC_256",
                                                             "GENERATE_VERIFY_MAC")
    assert json.loads(kms.get_key_policy(KeyId=arn, PolicyName="default")["Policy"]) == policy
    assert kms.generate_mac(KeyId="alias/from-a-stack", MacAlgorithm="HMAC_SHA_256",
                            Message=b"x")["Mac"]
    kms.schedule_key_deletion(KeyId=arn, PendingWindowInDays=7)
    assert kms.describe_key(KeyId=arn)["KeyMetadata"]["KeyState"] == "PendingDeletion"


def test_a_cross_account_trust_is_read_as_aws_reads_it(stack):
    """Plain moto checks no trust of a role in another account (any caller whose own policy
    allows sts:AssumeRole gets in), and never matches a role ARN or an account principal."""
    from local import iam as local_iam

    member = "111111111111"
    central_roles = {}
    for name in ("trusted", "other"):
        stack.client("iam").create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(
            {"Version": "2012-10-17", "Statement": []}))
        stack.client("iam").put_role_policy(RoleName=name, PolicyName="admin",
                                            PolicyDocument=json.dumps(local_iam.ADMIN_POLICY))
        central_roles[name] = f"arn:aws:iam::{stack.account}:role/{name}"
    member_iam = stack.client("iam", account=member)
    for name, principal in (("by-role", central_roles["trusted"]),
                            ("by-account", f"arn:aws:iam::{stack.account}:root")):
        member_iam.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps({
            "Version": "2012-10-17", "Statement": [{
                "Effect": "Allow", "Principal": {"AWS": principal}, "Action": "sts:AssumeRole",
                "Condition": {"StringEquals": {"sts:ExternalId": "shared"}}}]}))
    with stack.enforce_iam():
        def assume(caller, role, **kwargs):
            import boto3

            keys = local_iam.assume(central_roles[caller], stack.region, caller)
            sts = boto3.session.Session().client(
                "sts", region_name=stack.region, endpoint_url=stack.endpoint,
                aws_access_key_id=keys.access_key_id, aws_secret_access_key=keys.secret_access_key,
                aws_session_token=keys.session_token)
            try:
                sts.assume_role(RoleArn=f"arn:aws:iam::{member}:role/{role}",
                                RoleSessionName="session", **kwargs)
            except ClientError as error:
                return error.response["Error"]["Code"]
            return "ok"

        assert assume("trusted", "by-role", ExternalId="shared") == "ok"
        assert assume("other", "by-role", ExternalId="shared") == "AccessDenied"
        assert assume("trusted", "by-role") == "AccessDenied"  # the condition's key is absent
        assert assume("other", "by-account", ExternalId="shared") == "ok"


def test_kms_signs_a_digest_as_a_digest(stack):
    """Plain moto hashes a DIGEST message again: its signature fails the offline check with the
    public key that AWS's signature passes (ECDSA over the given SHA-256, prehashed)."""
    import hashlib

    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.asymmetric.utils import Prehashed

    kms = stack.client("kms")
    key = kms.create_key(KeySpec="ECC_NIST_P256", KeyUsage="SIGN_VERIFY")["KeyMetadata"]["Arn"]
    digest = hashlib.sha256(b"manifest").digest()
    signature = kms.sign(KeyId=key, Message=digest, MessageType="DIGEST",
                         SigningAlgorithm="ECDSA_SHA_256")["Signature"]
    public = serialization.load_der_public_key(kms.get_public_key(KeyId=key)["PublicKey"])

    public.verify(signature, digest, ec.ECDSA(Prehashed(hashes.SHA256())))
    with pytest.raises(InvalidSignature):
        public.verify(signature, hashlib.sha256(b"other").digest(),
                      ec.ECDSA(Prehashed(hashes.SHA256())))
    assert kms.verify(KeyId=key, Message=digest, MessageType="DIGEST", Signature=signature,
                      SigningAlgorithm="ECDSA_SHA_256")["SignatureValid"]
    assert kms.verify(KeyId=key, Message=b"manifest", Signature=signature,  # RAW: hashed first
                      SigningAlgorithm="ECDSA_SHA_256")["SignatureValid"]
    assert _kms_code(lambda: kms.sign(KeyId=key, Message=digest[:31], MessageType="DIGEST",
                                      SigningAlgorithm="ECDSA_SHA_256")) == "ValidationException"


def _deployed_rest_api(gateway, stage: str) -> str:
    api = gateway.create_rest_api(name="api")["id"]
    root = gateway.get_resources(restApiId=api)["items"][0]["id"]
    gateway.put_method(restApiId=api, resourceId=root, httpMethod="GET", authorizationType="NONE")
    gateway.put_integration(restApiId=api, resourceId=root, httpMethod="GET", type="MOCK")
    gateway.create_deployment(restApiId=api, stageName=stage)
    return api


def test_a_deployment_to_an_existing_stage_keeps_the_stage_and_sets_what_it_gives(stack):
    """Plain moto replaces the stage: its access logs, method settings and tracing are gone."""
    gateway = stack.client("apigateway")
    api = _deployed_rest_api(gateway, "live")
    gateway.update_stage(restApiId=api, stageName="live", patchOperations=[
        {"op": "replace", "path": "/accessLogSettings/destinationArn",
         "value": "arn:aws:logs:us-east-1:123456789012:log-group:access"},
        {"op": "replace", "path": "/accessLogSettings/format", "value": "$context.requestId"},
        {"op": "replace", "path": "/*/*/logging/loglevel", "value": "ERROR"},
        {"op": "replace", "path": "/tracingEnabled", "value": "true"}])
    before = gateway.get_stage(restApiId=api, stageName="live")

    deployment = gateway.create_deployment(restApiId=api, stageName="live")["id"]
    after = gateway.get_stage(restApiId=api, stageName="live")
    assert after["deploymentId"] == deployment != before["deploymentId"]
    kept = ("accessLogSettings", "methodSettings", "tracingEnabled")
    assert {k: after.get(k) for k in kept} == {k: before.get(k) for k in kept}

    gateway.create_deployment(restApiId=api, stageName="live", tracingEnabled=False,
                              stageDescription="second")
    given = gateway.get_stage(restApiId=api, stageName="live")
    assert (given["tracingEnabled"], given["description"]) == (False, "second")
    assert given["accessLogSettings"] == before["accessLogSettings"]


def test_put_rest_api_takes_a_swagger_2_definition(stack):
    """Plain moto answers "Only OpenAPI 3.x.x are currently supported"."""
    gateway = stack.client("apigateway")
    api = gateway.create_rest_api(name="api")["id"]
    function = "arn:aws:lambda:us-east-1:123456789012:function:handler"
    swagger = {"swagger": "2.0", "info": {"version": "1.0", "title": "api"}, "paths": {
        "/things/{id}": {"get": {"responses": {"200": {"description": "ok"}},
                                 "x-amazon-apigateway-integration": {
                                     "type": "aws_proxy", "httpMethod": "POST",
                                     "uri": f"arn:aws:apigateway:us-east-1:lambda:path/"
                                            f"2015-03-31/functions/{function}/invocations"}}}}}
    gateway.put_rest_api(restApiId=api, mode="overwrite", body=json.dumps(swagger))
    resources = {r["path"]: r for r in gateway.get_resources(restApiId=api)["items"]}
    assert sorted(resources) == ["/", "/things", "/things/{id}"]
    integration = gateway.get_integration(restApiId=api, httpMethod="GET",
                                          resourceId=resources["/things/{id}"]["id"])
    assert function in integration["uri"]


def test_import_rest_api_takes_a_definition_without_a_description(stack):
    """Plain moto fails with a 500 (it reads `info.description`, which Chalice's Swagger lacks
    and AWS does not require), so a first `chalice deploy` failed."""
    gateway = stack.client("apigateway")
    swagger = {"swagger": "2.0", "info": {"version": "1.0", "title": "imported"}, "paths": {
        "/things": {"get": {"responses": {"200": {"description": "ok"}}}}}}
    api = gateway.import_rest_api(body=json.dumps(swagger))
    assert (api["name"], api.get("description")) == ("imported", None)
    assert sorted(r["path"] for r in gateway.get_resources(restApiId=api["id"])["items"]) == [
        "/", "/things"]


def test_a_stacks_table_gains_one_index_per_update_usable_once_backfilled(stack):
    """Plain moto ignores a stack update's change to a table: the index never appears."""
    import time

    from chalicelib import incidents
    from local.patches import cloudformation

    def template(indexes):
        return json.dumps({"Resources": {"Table": {
            "Type": "AWS::DynamoDB::Table",
            "Properties": {"TableName": "indexed", **incidents.table_definition(indexes)}}}})

    cfn, dynamodb = stack.client("cloudformation"), stack.client("dynamodb")
    one, two, three, _ = incidents.GLOBAL_INDEXES
    cfn.create_stack(StackName="indexed", TemplateBody=template([one]))
    cfn.update_stack(StackName="indexed", TemplateBody=template([one, three]))

    def statuses():
        return {index["IndexName"]: index["IndexStatus"] for index in dynamodb.describe_table(
            TableName="indexed")["Table"]["GlobalSecondaryIndexes"]}

    def by_status():
        return dynamodb.query(TableName="indexed", IndexName=incidents.STATUS_INDEX,
                              KeyConditionExpression="#s = :s",
                              ExpressionAttributeNames={"#s": "status"},
                              ExpressionAttributeValues={":s": {"S": "OPEN"}})["Items"]

    dynamodb.put_item(TableName="indexed", Item={"pk": {"S": "inc-1"}, "status": {"S": "OPEN"},
                                                 "opened_at": {"S": "2026"}})
    assert statuses() == {incidents.INSTANCE_INDEX: "ACTIVE", incidents.STATUS_INDEX: "CREATING"}
    with pytest.raises(ClientError, match="backfilling global secondary index"):
        by_status()
    with pytest.raises(ClientError, match="Only 1 online index"):  # not before it is ACTIVE
        cfn.update_stack(StackName="indexed", TemplateBody=template([one, two, three]))
    time.sleep(cloudformation.BACKFILL_SECONDS)
    assert statuses()[incidents.STATUS_INDEX] == "ACTIVE"
    assert [item["pk"]["S"] for item in by_status()] == ["inc-1"]  # items from before it too

    with pytest.raises(ClientError, match="more than one GSI"):  # one out, one in: two changes
        cfn.update_stack(StackName="indexed", TemplateBody=template([two, three]))
    assert set(statuses()) == {incidents.INSTANCE_INDEX, incidents.STATUS_INDEX}


def test_an_update_keeps_a_parameters_previous_value_its_default_too(stack):
    """Plain moto fails the update: it knows only the parameters given at creation."""
    def template(topic):
        return json.dumps({"Parameters": {"Mode": {"Type": "String", "Default": "GOVERNANCE"}},
                           "Resources": {"Topic": {"Type": "AWS::SNS::Topic",
                                                   "Properties": {"TopicName": topic}}},
                           "Outputs": {"Mode": {"Value": {"Ref": "Mode"}}}})

    cfn = stack.client("cloudformation")
    cfn.create_stack(StackName="defaults", TemplateBody=template("first"))
    cfn.update_stack(StackName="defaults", TemplateBody=template("second"),
                     Parameters=[{"ParameterKey": "Mode", "UsePreviousValue": True}])
    described = cfn.describe_stacks(StackName="defaults")["Stacks"][0]
    assert described["StackStatus"] == "UPDATE_COMPLETE"
    assert described["Parameters"] == [{"ParameterKey": "Mode", "ParameterValue": "GOVERNANCE"}]
    assert described["Outputs"][0]["OutputValue"] == "GOVERNANCE"


def test_a_disabled_rule_delivers_nothing(stack):
    """moto delivers to a disabled rule's targets; AWS does not (a half-deployed app's rules
    are disabled so that no finding reaches it; a test turns CloudTrail's delivery off so)."""
    import json as _json

    sqs, events = stack.client("sqs"), stack.client("events")
    queue = sqs.create_queue(QueueName="disabled-rule")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])[
        "Attributes"]["QueueArn"]
    events.put_rule(Name="off", EventPattern=_json.dumps({"source": ["test.off"]}),
                    State="DISABLED")
    events.put_targets(Rule="off", Targets=[{"Id": "q", "Arn": arn}])

    def delivered():
        events.put_events(Entries=[{"Source": "test.off", "DetailType": "t", "Detail": "{}"}])
        return sqs.receive_message(QueueUrl=queue, WaitTimeSeconds=0).get("Messages", [])

    assert delivered() == []
    events.enable_rule(Name="off")
    assert len(delivered()) == 1


def _guardduty_in_security_hub(stack, finding_id="f" * 32) -> dict:
    """A GuardDuty finding as Security Hub imports it (Id: the GuardDuty finding's ARN)."""
    finding = {
        "SchemaVersion": "2018-10-08", "AwsAccountId": stack.account,
        "Id": f"arn:aws:guardduty:{stack.region}:{stack.account}:detector/0ec2/finding/"
              f"{finding_id}",
        "ProductArn": f"arn:aws:securityhub:{stack.region}::product/aws/guardduty",
        "GeneratorId": "arn:aws:guardduty", "Types": ["TTPs/Command and Control"],
        "CreatedAt": "2026-12-04T00:00:00Z", "UpdatedAt": "2026-12-04T00:00:00Z",
        "Severity": {"Label": "HIGH"}, "Title": "t", "Description": "d",
        "Workflow": {"Status": "NEW"},
        "Resources": [{"Type": "AwsEc2Instance", "Id": f"arn:aws:ec2:{stack.region}:"
                                                       f"{stack.account}:instance/i-0123456789abcdef0"}]}
    stack.client("securityhub").batch_import_findings(Findings=[finding])
    return finding


def test_security_hub_updates_findings_and_makes_custom_actions_only_while_on(stack):
    hub = stack.client("securityhub")
    with pytest.raises(ClientError) as off:
        hub.create_action_target(Name="Quarantine instance", Description="d", Id="Quarantine")
    assert off.value.response["Error"]["Code"] == "InvalidAccessException"
    with pytest.raises(ClientError) as off:
        hub.batch_update_findings(FindingIdentifiers=[{"Id": "x", "ProductArn": "y"}],
                                  Workflow={"Status": "NOTIFIED"})
    assert off.value.response["Error"]["Code"] == "InvalidAccessException"

    hub.enable_security_hub(EnableDefaultStandards=False)
    arn = hub.create_action_target(Name="Quarantine instance", Description="d",
                                   Id="Quarantine")["ActionTargetArn"]
    assert arn == f"arn:aws:securityhub:{stack.region}:{stack.account}:action/custom/Quarantine"
    with pytest.raises(ClientError) as twice:
        hub.create_action_target(Name="Quarantine instance", Description="d", Id="Quarantine")
    assert twice.value.response["Error"]["Code"] == "ResourceConflictException"
    assert [t["Name"] for t in hub.describe_action_targets()["ActionTargets"]] == [
        "Quarantine instance"]

    finding = _guardduty_in_security_hub(stack)
    mine = {"Id": finding["Id"], "ProductArn": finding["ProductArn"]}
    absent = {"Id": finding["Id"] + "0", "ProductArn": finding["ProductArn"]}
    answer = hub.batch_update_findings(FindingIdentifiers=[mine, absent],
                                       Workflow={"Status": "NOTIFIED"},
                                       Note={"Text": "inc-1", "UpdatedBy": "me"})
    assert answer["ProcessedFindings"] == [mine]
    assert [u["FindingIdentifier"] for u in answer["UnprocessedFindings"]] == [absent]
    (held,) = hub.get_findings()["Findings"]
    assert held["Workflow"] == {"Status": "NOTIFIED"} and held["Note"]["Text"] == "inc-1"
    hub.batch_update_findings(FindingIdentifiers=[mine], Workflow={"Status": "RESOLVED"})
    (first, second) = hub.get_finding_history(FindingIdentifier=mine)["Records"]
    assert [(u["UpdatedField"], u["OldValue"], u["NewValue"]) for u in first["Updates"]] == [
        ("Workflow.Status", "NEW", "NOTIFIED"), ("Note.Text", "", "inc-1")]
    assert [(u["UpdatedField"], u["NewValue"]) for u in second["Updates"]] == [
        ("Workflow.Status", "RESOLVED")]
    with pytest.raises(ClientError) as bad:
        hub.batch_update_findings(FindingIdentifiers=[mine], Workflow={"Status": "DONE"})
    assert bad.value.response["Error"]["Code"] == "InvalidInputException"
    hub.delete_action_target(ActionTargetArn=arn)
    assert hub.describe_action_targets()["ActionTargets"] == []


def test_a_stack_makes_its_security_hub_custom_action(stack):
    stack.client("securityhub").enable_security_hub(EnableDefaultStandards=False)
    cfn = stack.client("cloudformation")
    cfn.create_stack(StackName="with-action", TemplateBody=json.dumps({"Resources": {
        "Action": {"Type": "AWS::SecurityHub::ActionTarget", "Properties": {
            "Name": "Quarantine instance", "Id": "QuarantineDev", "Description": "d"}}},
        "Outputs": {"Arn": {"Value": {"Ref": "Action"}}}}))
    (made,) = cfn.describe_stacks(StackName="with-action")["Stacks"][0]["Outputs"]
    assert made["OutputValue"].endswith(":action/custom/QuarantineDev")
    assert [t["ActionTargetArn"] for t in stack.client("securityhub").describe_action_targets()[
        "ActionTargets"]] == [made["OutputValue"]]
    cfn.delete_stack(StackName="with-action")
    assert stack.client("securityhub").describe_action_targets()["ActionTargets"] == []


def test_guardduty_scans_an_instance_once_an_hour_and_reports_what_it_planted(stack):
    """StartMalwareScan of an instance (a second within the hour refused, as GuardDuty refuses
    it), GetMalwareScan RUNNING then COMPLETED, ListMalwareScans by resource; the threats
    planted on an instance reported by the scan and as an Execution:EC2/MaliciousFile finding
    on the bus."""
    from local import scenario
    from local.victims import make_victim

    guardduty = stack.client("guardduty")
    clean, infected = (make_victim(stack, interfaces=1, volumes=1)["instance_id"]
                       for _ in range(2))
    arn = f"arn:aws:ec2:{stack.region}:{stack.account}:instance/{clean}"
    scenario.hold_scans(1)
    scan = guardduty.start_malware_scan(ResourceArn=arn)["ScanId"]
    with pytest.raises(ClientError) as again:
        guardduty.start_malware_scan(ResourceArn=arn)
    assert again.value.response["Error"]["Code"] == "BadRequestException"
    assert "within the last hour" in again.value.response["Error"]["Message"]
    assert guardduty.get_malware_scan(ScanId=scan)["ScanStatus"] == "RUNNING"
    done = guardduty.get_malware_scan(ScanId=scan)
    assert done["ScanStatus"] == "COMPLETED" and done["ResourceArn"] == arn
    assert done["ScanResultDetails"]["ScanResultStatus"] == "NO_THREATS_FOUND"
    (listed,) = guardduty.list_malware_scans(FilterCriteria={"ListMalwareScansFilterCriterion": [
        {"ListMalwareScansCriterionKey": "RESOURCE_ARN",
         "FilterCondition": {"EqualsValue": arn}}]})["Scans"]
    assert listed["ScanId"] == scan and listed["ScanResultStatus"] == "NO_THREATS_FOUND"

    stack.bridge.forget()
    scenario.infect(infected, [{"name": "EICAR-Test-File (not a virus)",
                                "path": "/tmp/eicar.com"}])
    scenario.hold_scans(0)
    scan = guardduty.start_malware_scan(
        ResourceArn=f"arn:aws:ec2:{stack.region}:{stack.account}:instance/{infected}")["ScanId"]
    found = guardduty.get_malware_scan(ScanId=scan)["ScanResultDetails"]
    assert found["ScanResultStatus"] == "THREATS_FOUND"
    (threat,) = found["Threats"]
    assert threat["Name"] == "EICAR-Test-File (not a virus)"
    assert threat["ItemDetails"][0]["ItemPath"] == "/tmp/eicar.com"
    stack.bridge.wait_idle()
    delivered = [i for i in stack.bridge.invocations
                 if i.function_name.endswith("on_guardduty_finding")]
    events = [i.event for i in delivered]
    assert [e["detail"]["type"] for e in events] == ["Execution:EC2/MaliciousFile"], events
    assert events[0]["detail"]["resource"]["instanceDetails"]["instanceId"] == infected
    with pytest.raises(ClientError) as bad:
        guardduty.start_malware_scan(ResourceArn="arn:aws:ec2:us-east-1:123456789012:instance/i-0")
    assert bad.value.response["Error"]["Code"] == "BadRequestException"


def test_a_first_malware_scan_needs_the_right_to_make_guardduty_s_role_and_makes_it(stack):
    """An account's first StartMalwareScan makes GuardDuty's service-linked role: the caller
    needs iam:CreateServiceLinkedRole (for that service) then, not once the role exists; the
    same client token is the same scan; GetMalwareScan, a GET with neither body nor query
    string, passes moto's signature check under enforcement; a volume tagged
    GuardDutyExcluded=true is skipped."""
    from local.patches import guardduty as embedded
    from local.victims import make_victim
    from tests.helpers import principal

    first, second = (make_victim(stack, interfaces=1, volumes=2)["instance_id"]
                     for _ in range(2))
    arn = f"arn:aws:ec2:{stack.region}:{stack.account}:instance/{{}}".format
    ec2 = stack.client("ec2")
    excluded, kept = sorted(m["Ebs"]["VolumeId"] for m in ec2.describe_instances(
        InstanceIds=[second])["Reservations"][0]["Instances"][0]["BlockDeviceMappings"])
    ec2.create_tags(Resources=[excluded], Tags=[{"Key": "GuardDutyExcluded", "Value": "true"}])
    with stack.enforce_iam():
        scanner = principal(stack, "scanner", ["guardduty:StartMalwareScan",
                                               "guardduty:GetMalwareScan"])("guardduty")
        with pytest.raises(ClientError) as denied:
            scanner.start_malware_scan(ResourceArn=arn(first))
        assert denied.value.response["Error"]["Code"] == "AccessDeniedException"
        assert "iam:CreateServiceLinkedRole" in denied.value.response["Error"]["Message"]
        assert not embedded.has_service_linked_role(stack.account)
        maker = principal(stack, "maker", ["guardduty:StartMalwareScan",
                                           "iam:CreateServiceLinkedRole"])("guardduty")
        scan = maker.start_malware_scan(ResourceArn=arn(first), ClientToken="t1")["ScanId"]
        assert maker.start_malware_scan(ResourceArn=arn(first), ClientToken="t1")[
            "ScanId"] == scan
        assert embedded.has_service_linked_role(stack.account)
        other = scanner.start_malware_scan(ResourceArn=arn(second))["ScanId"]  # the role exists
        assert scanner.get_malware_scan(ScanId=scan)["ResourceArn"] == arn(first)
        partly = scanner.get_malware_scan(ScanId=other)  # one volume tagged GuardDutyExcluded
    assert partly["ScanStatus"] == "COMPLETED_WITH_ISSUES"
    assert {r["ScannedResourceArn"].rsplit("/", 1)[-1]: r["ScannedResourceStatus"]
            for r in partly["ScannedResources"]} == {excluded: "SKIPPED", kept: "COMPLETED"}
    (role,) = [r for r in stack.client("iam").list_roles()["Roles"]
               if r["RoleName"] == embedded.ROLE]
    assert role["Path"] == f"/aws-service-role/{embedded.SERVICE}/"
