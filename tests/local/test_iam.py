"""IAM on the embedded AWS: enforcement on and off, what moto enforces, each function under its
own role, and the fidelity patches (resources, implied actions) that make moto judge as AWS."""

import json

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from chalicelib import aws, seals
from deploy import grants, names, permissions
from local import iam


_session = boto3.session.Session()  # one session: service models are loaded once


def _role_keys(stack, actions, name):
    """Credentials of a fresh role allowed `actions` (on every resource) and nothing else."""
    return _policy_keys(stack, name, [{"Effect": "Allow", "Action": list(actions or [
        "cloudwatch:ListMetrics"]), "Resource": "*"}])


def _policy_keys(stack, name, statements):
    """Credentials of a fresh role whose one policy is `statements`."""
    iam_client = stack.client("iam")
    iam_client.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps({
        "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole",
                                                "Principal": {"Service": "lambda.amazonaws.com"}}]}))
    iam_client.put_role_policy(RoleName=name, PolicyName=name, PolicyDocument=json.dumps(
        {"Version": "2012-10-17", "Statement": statements}))
    return iam.assume(f"arn:aws:iam::{stack.account}:role/{name}", stack.region, name)


def _role_client(stack, service, actions, name="probe", keys=None):
    """A client acting as a fresh role allowed `actions` (or with `keys`)."""
    keys = keys or _role_keys(stack, actions, name)
    return _session.client(
        service, region_name=stack.region, endpoint_url=stack.endpoint,
        aws_access_key_id=keys.access_key_id, aws_secret_access_key=keys.secret_access_key,
        aws_session_token=keys.session_token,
        config=Config(retries={"total_max_attempts": 1}))


def _denied(call) -> bool:
    """Whether `call` is refused as AWS refuses: AccessDenied (query protocol),
    AccessDeniedException (JSON protocol) or UnauthorizedOperation (EC2)."""
    try:
        call()
    except ClientError as error:
        return error.response["Error"]["Code"] in ("AccessDenied", "AccessDeniedException",
                                                   "UnauthorizedOperation")
    return False


def _refusal(call) -> tuple[str, str]:
    """The error code and message `call` is refused with."""
    with pytest.raises(ClientError) as refused:
        call()
    return refused.value.response["Error"]["Code"], refused.value.response["Error"]["Message"]


def test_enforcement_is_on_only_inside_the_block(stack):
    assert not iam.enforcing()
    with stack.enforce_iam():
        assert iam.enforcing()
        assert stack.client("sns").list_topics()["Topics"]  # the administrator's keys
        anonymous = boto3.session.Session().client(
            "sns", region_name=stack.region, endpoint_url=stack.endpoint,
            aws_access_key_id="testing", aws_secret_access_key="testing")
        with pytest.raises(ClientError, match="InvalidClientTokenId"):
            anonymous.list_topics()
    assert not iam.enforcing()
    assert anonymous.list_topics()["Topics"]  # any keys again, for the next test
    assert stack.client("sns").list_topics()["Topics"]


# One harmless call per service the app uses, with the IAM action AWS checks for it.
CALLS = [
    ("ec2", "ec2:DescribeVpcs", lambda c: c.describe_vpcs()),
    ("autoscaling", "autoscaling:DescribeAutoScalingGroups",
     lambda c: c.describe_auto_scaling_groups()),
    ("elbv2", "elasticloadbalancing:DescribeTargetGroups", lambda c: c.describe_target_groups()),
    ("elb", "elasticloadbalancing:DescribeLoadBalancers", lambda c: c.describe_load_balancers()),
    ("iam", "iam:ListRoles", lambda c: c.list_roles()),
    ("ssm", "ssm:DescribeInstanceInformation", lambda c: c.describe_instance_information()),
    ("dynamodb", "dynamodb:ListTables", lambda c: c.list_tables()),
    ("stepfunctions", "states:ListStateMachines", lambda c: c.list_state_machines()),
    ("sns", "sns:ListTopics", lambda c: c.list_topics()),
    ("s3", "s3:ListBucket", lambda c: c.list_objects_v2(Bucket=c.evidence_bucket)),
    ("kms", "kms:GenerateMac", lambda c: c.generate_mac(
        KeyId=c.records_key, MacAlgorithm="HMAC_SHA_256", Message=b"x")),
]


def test_moto_enforces_every_service_the_app_calls(stack):
    nothing = _role_keys(stack, (), "nothing")
    needed = _role_keys(stack, [action for _, action, _ in CALLS], "needed")
    probes = [(call, action, _role_client(stack, service, (), keys=nothing),
               _role_client(stack, service, (), keys=needed)) for service, action, call in CALLS]
    bucket = stack.names["EVIDENCE_BUCKET"]
    with stack.enforce_iam():
        for call, action, refused, allowed in probes:
            refused.evidence_bucket = allowed.evidence_bucket = bucket
            refused.records_key = allowed.records_key = stack.names["RECORDS_KEY_ARN"]
            assert _denied(lambda: call(refused)), f"{action} was not enforced"
            call(allowed)


def test_the_records_key_grant_allows_each_mac_it_names_and_no_other(stack):
    """The statement deploy/grants.py scopes to the records key authorizes the MACs it lists on
    the embedded AWS (moto ignores its alias condition and the key policy: the static policy
    tests read those)."""
    key = stack.names["RECORDS_KEY_ARN"]
    for name, actions in (("seals", grants.RECORDS_KEY_ACTIONS), ("only-seals",
                                                                  seals.SEAL_PERMISSIONS)):
        stack.client("iam").create_role(RoleName=name, AssumeRolePolicyDocument="{}")
        stack.client("iam").put_role_policy(RoleName=name, PolicyName=name, PolicyDocument=(
            json.dumps({"Version": "2012-10-17",
                        "Statement": permissions.statements(set(actions), stack.stage)})))
    macs = {name: _role_client(stack, "kms", (), keys=iam.assume(
        f"arn:aws:iam::{stack.account}:role/{name}", stack.region, name))
        for name in ("seals", "only-seals")}
    with stack.enforce_iam():
        mac = macs["seals"].generate_mac(KeyId=key, MacAlgorithm="HMAC_SHA_256",
                                         Message=b"x")["Mac"]
        assert macs["seals"].verify_mac(KeyId=key, MacAlgorithm="HMAC_SHA_256", Message=b"x",
                                        Mac=mac)["MacValid"]
        assert macs["only-seals"].generate_mac(KeyId=key, MacAlgorithm="HMAC_SHA_256",
                                               Message=b"x")["Mac"] == mac
        assert _denied(lambda: macs["only-seals"].verify_mac(
            KeyId=key, MacAlgorithm="HMAC_SHA_256", Message=b"x", Mac=mac))


def test_lambda_invocations_are_authorized_by_the_bridge(stack):
    for allowed in ((), ("lambda:InvokeFunction",)):
        client = _role_client(stack, "lambda", allowed, name=f"invoker-{len(allowed)}")
        function = names.function(stack.stage, "report")
        with stack.enforce_iam():
            if allowed:
                assert client.invoke(FunctionName=function, Payload=b"{}")["StatusCode"] == 200
            else:
                assert _denied(lambda: client.invoke(FunctionName=function, Payload=b"{}"))
                assert iam.authorizations.denied(f"invoker-{len(allowed)}") == {
                    "lambda:InvokeFunction"}


def test_each_function_acts_with_its_own_roles_credentials(stack):
    for deployed, function in ((names.function(stack.stage, "contain"), "contain"),
                               (names.api_function(stack.stage), "api_handler")):
        with stack.bridge.acting_as(deployed):
            identity = aws.client("sts").get_caller_identity()["Arn"]
        assert identity.split("/")[1] == names.function_role(stack.stage, function)
    assert ":assumed-role/" not in aws.client("sts").get_caller_identity()["Arn"]  # default


def test_a_statement_scoped_to_an_arn_allows_what_it_names(stack):
    """Plain moto matches "*" against the statement's ARN and denies."""
    table = stack.names["INCIDENTS_TABLE"]
    stack.client("iam").create_role(RoleName="scoped", AssumeRolePolicyDocument="{}")
    stack.client("iam").put_role_policy(RoleName="scoped", PolicyName="scoped", PolicyDocument=(
        json.dumps({"Version": "2012-10-17", "Statement": [{
            "Effect": "Allow", "Action": "dynamodb:GetItem",
            "Resource": f"arn:aws:dynamodb:*:*:table/{table}"}]})))
    keys = iam.assume(f"arn:aws:iam::{stack.account}:role/scoped", stack.region, "scoped")
    with stack.enforce_iam(), aws.acting_as("scoped", keys):
        aws.client("dynamodb").get_item(TableName=table, Key={"pk": {"S": "x"}})
        assert _denied(lambda: aws.client("dynamodb").scan(TableName=table))


def test_transactions_are_authorized_per_item_action(stack):
    table = stack.names["INCIDENTS_TABLE"]
    items = [{"Put": {"TableName": table, "Item": {"pk": {"S": "a"}}}}]
    by_item = _role_client(stack, "dynamodb", ("dynamodb:PutItem",), name="put-item")
    by_name = _role_client(stack, "dynamodb", ("dynamodb:TransactWriteItems",), name="transact")
    with stack.enforce_iam():
        by_item.transact_write_items(TransactItems=items)
        with pytest.raises(ClientError) as refused:
            by_name.transact_write_items(TransactItems=items)
    assert refused.value.response["Error"]["Code"] == "AccessDeniedException"  # JSON, as AWS
    assert refused.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400


def test_tags_on_create_need_create_tags_and_profiles_need_pass_role(stack):
    ec2 = stack.client("ec2")
    vpc = ec2.create_vpc(CidrBlock="10.9.0.0/16")["Vpc"]["VpcId"]
    instance = ec2.run_instances(ImageId="ami-12345678", MinCount=1, MaxCount=1)[
        "Instances"][0]["InstanceId"]
    iam_client = stack.client("iam")
    iam_client.create_instance_profile(InstanceProfileName="probe-profile")
    tagged = {"GroupName": "g", "Description": "g", "VpcId": vpc, "TagSpecifications": [
        {"ResourceType": "security-group", "Tags": [{"Key": "k", "Value": "v"}]}]}
    profile = {"IamInstanceProfile": {"Name": "probe-profile"}, "InstanceId": instance}
    narrow = _role_client(stack, "ec2", ("ec2:CreateSecurityGroup",
                                         "ec2:AssociateIamInstanceProfile"), name="narrow")
    wide = _role_client(stack, "ec2", ("ec2:CreateSecurityGroup", "ec2:CreateTags",
                                       "ec2:AssociateIamInstanceProfile", "iam:PassRole"),
                        name="wide")
    with stack.enforce_iam():
        assert _denied(lambda: narrow.create_security_group(**tagged))
        assert _denied(lambda: narrow.associate_iam_instance_profile(**profile))
        wide.create_security_group(**tagged)
        wide.associate_iam_instance_profile(**profile)
    assert iam.authorizations.denied("narrow") == {"ec2:CreateTags", "iam:PassRole"}
    assert iam.authorizations.allowed("wide") == {
        "ec2:CreateSecurityGroup", "ec2:CreateTags", "ec2:AssociateIamInstanceProfile",
        "iam:PassRole"}


def test_conditions_on_the_keys_the_embedded_aws_derives_are_evaluated_as_iam_does():
    from local.patches.iam import conditions_met, request_context

    setting = request_context("ec2:ModifyInstanceAttribute",
                              {"InstanceId": ["i-1"], "UserData.Value": ["c2g="]}, "1")
    assert setting.values == {"ec2:Attribute/UserData": ["c2g="]}
    assert not conditions_met({"Null": {"ec2:Attribute/DisableApiTermination": "false"}},
                              setting)
    assert conditions_met({"Null": {"ec2:Attribute/Kernel": "true"}}, setting)
    assert conditions_met({"StringEquals": {"aws:ResourceTag/x": "y"}}, setting)  # not derived
    generic = request_context("ec2:ModifyInstanceAttribute",
                              {"Attribute": ["disableApiStop"], "Value": ["true"]}, "1")
    assert generic.values == {"ec2:Attribute/DisableApiStop": ["true"],
                              "ec2:Attribute": ["disableApiStop"]}
    assert conditions_met({"StringEqualsIgnoreCase": {"ec2:Attribute": ["DISABLEAPISTOP"]}},
                          generic)
    sharing = request_context("ec2:ModifySnapshotAttribute", {
        "OperationType": ["add"], "UserId.1": ["210987654321"], "UserId.2": ["666666666666"]},
        "1")
    only_forensic = {"ForAllValues:StringEquals": {"ec2:Add/userId": ["210987654321"]}}
    assert not conditions_met(only_forensic, sharing)
    assert conditions_met({"ForAnyValue:StringEquals": {"ec2:Add/userId": "666666666666"}},
                          sharing)
    nobody = request_context("ec2:ModifySnapshotAttribute", {"OperationType": ["add"]}, "1")
    assert conditions_met(only_forensic, nobody)  # ForAllValues holds on an absent key…
    assert not conditions_met({**only_forensic, "Null": {"ec2:Add/userId": "false"}}, nobody)
    swap = request_context("ec2:ReplaceIamInstanceProfileAssociation",
                           {"IamInstanceProfile.Name": ["admin"]}, "123456789012")
    assert not conditions_met({"ArnLike": {"ec2:NewInstanceProfile":
                                           "arn:aws:iam::*:instance-profile/deny-all"}}, swap)
    assert conditions_met({"ArnLikeIfExists": {"ec2:NewInstanceProfile": "x"}},
                          request_context("ec2:AssociateIamInstanceProfile", {}, "1"))
    metadata_off = {"StringEquals": {"ec2:MetadataHttpEndpoint": "disabled"}}
    assert conditions_met(metadata_off, request_context(
        "ec2:ModifyInstanceMetadataOptions", {"HttpEndpoint": ["disabled"]}, "1"))
    assert not conditions_met(metadata_off, request_context(
        "ec2:ModifyInstanceMetadataOptions", {"HttpEndpoint": ["enabled"]}, "1"))
    assert not conditions_met(metadata_off, request_context(  # tokens only: no endpoint asked
        "ec2:ModifyInstanceMetadataOptions", {"HttpTokens": ["optional"]}, "1"))


def test_a_conditioned_statement_applies_only_when_its_condition_holds(stack):
    """A conditioned Allow allows only what it names (plain moto: everything); a Deny whose
    condition does not hold denies nothing (plain moto: everything)."""
    instance = stack.client("ec2").run_instances(ImageId="ami-12c6146b", MinCount=1,
                                                  MaxCount=1)["Instances"][0]["InstanceId"]
    with stack.enforce_iam():
        keys = _role_keys(stack, ["ec2:DescribeInstances"], "attributes")
        stack.client("iam").put_role_policy(RoleName="attributes", PolicyName="attributes",
                                   PolicyDocument=json.dumps({
            "Version": "2012-10-17", "Statement": [
                {"Effect": "Allow", "Action": "ec2:ModifyInstanceAttribute", "Resource": "*",
                 "Condition": {"Null": {"ec2:Attribute/DisableApiTermination": "false"}}},
                {"Effect": "Allow", "Action": "ec2:ModifyInstanceAttribute", "Resource": "*",
                 "Condition": {"Null": {"ec2:Attribute/SourceDestCheck": "false"}}},
                {"Effect": "Deny", "Action": "ec2:ModifyInstanceAttribute", "Resource": "*",
                 "Condition": {"Null": {"ec2:Attribute/SourceDestCheck": "false"}}}]}))
        ec2 = _role_client(stack, "ec2", None, keys=keys)
        ec2.modify_instance_attribute(InstanceId=instance, DisableApiTermination={"Value": True})
        for forbidden in ({"UserData": {"Value": b"x"}}, {"SourceDestCheck": {"Value": False}}):
            with pytest.raises(ClientError, match="AccessDenied|UnauthorizedOperation"):
                ec2.modify_instance_attribute(InstanceId=instance, **forbidden)


def test_send_command_is_authorized_on_its_document():
    from local.patches.iam import request_resources

    assert request_resources("ssm:SendCommand", {}, b'{"DocumentName": "AWS-RunShellScript"}',
                             "eu-west-1", "123456789012") == [
        "arn:aws:ssm:eu-west-1::document/AWS-RunShellScript"]
    assert request_resources("ssm:SendCommand", {}, b'{"DocumentName": "Mine"}', "eu-west-1",
                             "123456789012") == ["arn:aws:ssm:eu-west-1:123456789012:document/Mine"]
    assert request_resources("ec2:ModifyNetworkInterfaceAttribute", {
        "NetworkInterfaceId": ["eni-1"], "SecurityGroupId.1": ["sg-1"],
        "SecurityGroupId.2": ["sg-2"]}, b"", "eu-west-1", "1") == [
        "arn:aws:ec2:eu-west-1:1:network-interface/eni-1",
        "arn:aws:ec2:eu-west-1:1:security-group/sg-1",
        "arn:aws:ec2:eu-west-1:1:security-group/sg-2"]  # no such interface: no instance


def test_interface_changes_derive_keys_per_resource():
    """Each resource of ModifyNetworkInterfaceAttribute is evaluated with its own tags; the
    `ec2:Attribute/*` keys are the interface's (and instance's), not a security group's."""
    from local.patches.iam import conditions_met, request_context

    tracking = {"NetworkInterfaceId": ["eni-1"],
                "ConnectionTrackingSpecification.TcpEstablishedTimeout": ["60"],
                "ConnectionTrackingSpecification.UdpTimeout": ["30"]}
    on_interface = request_context("ec2:ModifyNetworkInterfaceAttribute", tracking, "1",
                                   "arn:aws:ec2:r:1:network-interface/eni-1", {"team": "web"})
    assert on_interface.values == {
        "ec2:Attribute/ConnectionTrackingSpecification": ["60", "30"],
        "aws:ResourceTag/team": ["web"], "ec2:ResourceTag/team": ["web"]}
    groups_only = {"Null": {f"ec2:Attribute/{name}": "true"
                            for name in grants.INTERFACE_ATTRIBUTES}}
    assert not conditions_met(groups_only, on_interface)
    subnets = request_context("ec2:ModifyNetworkInterfaceAttribute", {
        "NetworkInterfaceId": ["eni-1"], "AssociatedSubnetId.1": ["subnet-1"]}, "1",
        "arn:aws:ec2:r:1:network-interface/eni-1")
    assert not conditions_met(groups_only, subnets)  # IAM's name: AssociatedSubnetIds
    swap = {"NetworkInterfaceId": ["eni-1"], "SecurityGroupId.1": ["sg-1"]}
    on_group = request_context("ec2:ModifyNetworkInterfaceAttribute", swap, "1",
                               "arn:aws:ec2:r:1:security-group/sg-1", {"ec2-quarantine": "open"})
    assert on_group.values == {"aws:ResourceTag/ec2-quarantine": ["open"],
                               "ec2:ResourceTag/ec2-quarantine": ["open"]}
    assert conditions_met(grants.PRODUCT_GROUPS, on_group)
    assert not conditions_met({"Null": {"ec2:Attribute/Groups": "false"}}, on_group)
    untagged = request_context("ec2:ModifyNetworkInterfaceAttribute", swap, "1",
                               "arn:aws:ec2:r:1:security-group/sg-1", {})
    assert not conditions_met(grants.PRODUCT_GROUPS, untagged)


def _interface_and_groups(stack):
    """An instance's interface, a group tagged as the product's isolation group, an untagged
    one and the instance's own."""
    ec2 = stack.client("ec2")
    vpc = ec2.create_vpc(CidrBlock="10.7.0.0/16")["Vpc"]["VpcId"]
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.7.1.0/24")["Subnet"]["SubnetId"]
    tagged, untagged, own = [ec2.create_security_group(
        GroupName=name, Description=name, VpcId=vpc)["GroupId"] for name in ("q", "u", "own")]
    ec2.create_tags(Resources=[tagged], Tags=[{"Key": "ec2-quarantine", "Value": "isolation"}])
    instance = ec2.run_instances(ImageId="ami-12345678", MinCount=1, MaxCount=1,
                                 SubnetId=subnet, SecurityGroupIds=[own])["Instances"][0]
    return instance["NetworkInterfaces"][0]["NetworkInterfaceId"], tagged, untagged, own


def _groups_of(stack, eni):
    described = stack.client("ec2").describe_network_interfaces(NetworkInterfaceIds=[eni])
    return [g["GroupId"] for g in described["NetworkInterfaces"][0]["Groups"]]


def _interface_client(stack, name, *resources):
    """EC2 as a role allowed ModifyNetworkInterfaceAttribute on `resources` and on the groups
    tagged ec2-quarantine=open|isolation (the product's condition) only."""
    on = {"Effect": "Allow", "Action": "ec2:ModifyNetworkInterfaceAttribute"}
    keys = _policy_keys(stack, name, [
        {**on, "Resource": list(resources)},
        {**on, "Resource": "arn:aws:ec2:*:*:security-group/*", "Condition": grants.PRODUCT_GROUPS}])
    return _role_client(stack, "ec2", None, keys=keys)


def test_an_interface_change_is_authorized_on_the_interface_and_each_group(stack):
    """Plain moto authorizes ModifyNetworkInterfaceAttribute once on "*": a statement on the
    product's tagged groups would let any group be attached (or, ARN-scoped, none)."""
    eni, tagged, untagged, own = _interface_and_groups(stack)
    ours = _interface_client(stack, "ours", "arn:aws:ec2:*:*:network-interface/*",
                             "arn:aws:ec2:*:*:instance/*")
    other = _interface_client(stack, "other", "arn:aws:ec2:*:*:network-interface/eni-00000000",
                              "arn:aws:ec2:*:*:instance/*")
    detached = _interface_client(stack, "detached", "arn:aws:ec2:*:*:network-interface/*")
    with stack.enforce_iam():
        for groups in ([untagged], [tagged, untagged]):
            code, message = _refusal(lambda: ours.modify_network_interface_attribute(
                NetworkInterfaceId=eni, Groups=groups))
            assert code == "UnauthorizedOperation", message  # EC2's code (moto: AccessDenied)
            assert message.startswith("You are not authorized to perform this operation.")
            assert message.endswith(f":security-group/{untagged}"), message
        assert _groups_of(stack, eni) == [own]
        for client in (other, detached):  # not that interface; not its instance
            assert _denied(lambda: client.modify_network_interface_attribute(
                NetworkInterfaceId=eni, Groups=[tagged]))
        assert _groups_of(stack, eni) == [own]
        ours.modify_network_interface_attribute(NetworkInterfaceId=eni, Groups=[tagged])
    assert _groups_of(stack, eni) == [tagged]
    refused = {(d.principal, d.resource.rsplit(":", 1)[-1]) for d in
               iam.authorizations.decisions() if not d.allowed}
    instance = stack.client("ec2").describe_network_interfaces(NetworkInterfaceIds=[eni])[
        "NetworkInterfaces"][0]["Attachment"]["InstanceId"]
    assert refused == {("ours", f"security-group/{untagged}"),
                       ("other", f"network-interface/{eni}"),
                       ("detached", f"instance/{instance}")}


def test_tags_groups_and_their_rules_are_authorized_on_what_they_name():
    """CreateTags on each resource it names (by the id's type) with `aws:TagKeys`, and
    `ec2:CreateAction` only for tags given on create; CreateSecurityGroup on its new group and
    its VPC with `aws:RequestTag/<key>`; a group's rules on that group (its tags evaluated)."""
    from local.patches.iam import conditions_met, request_context, request_resources

    direct = {"Action": ["CreateTags"], "ResourceId.1": ["i-1"], "ResourceId.2": ["sg-2"],
              "Tag.1.Key": ["QuarantineExempt"], "Tag.1.Value": ["true"]}
    assert request_resources("ec2:CreateTags", direct, b"", "r", "1") == [
        "arn:aws:ec2:r:1:instance/i-1", "arn:aws:ec2:r:1:security-group/sg-2"]
    on_create_only = {"StringEquals": {"ec2:CreateAction": ["CreateSecurityGroup"]}}
    assert not conditions_met(on_create_only, request_context("ec2:CreateTags", direct, "1"))
    created = {"Action": ["CreateSecurityGroup"], "VpcId": ["vpc-1"],
               "TagSpecification.1.ResourceType": ["security-group"],
               "TagSpecification.1.Tag.1.Key": ["ec2-quarantine"],
               "TagSpecification.1.Tag.1.Value": ["open"]}
    assert request_resources("ec2:CreateTags", created, b"", "r", "1") == [
        "arn:aws:ec2:r:1:security-group/*"]
    context = request_context("ec2:CreateTags", created, "1")
    assert conditions_met(on_create_only, context)
    assert context.values["aws:TagKeys"] == ["ec2-quarantine"]
    assert request_resources("ec2:CreateSecurityGroup", created, b"", "r", "1") == [
        "arn:aws:ec2:r:1:security-group/*", "arn:aws:ec2:r:1:vpc/vpc-1"]
    tagged = {"StringEquals": {"aws:RequestTag/ec2-quarantine": ["open", "isolation"]}}
    assert conditions_met(tagged, request_context("ec2:CreateSecurityGroup", created, "1"))
    untagged = {"Action": ["CreateSecurityGroup"], "VpcId": ["vpc-1"]}
    assert not conditions_met(tagged, request_context("ec2:CreateSecurityGroup", untagged, "1"))
    rules = {"GroupId": ["sg-9"], "IpPermissions.1.IpProtocol": ["-1"]}
    assert request_resources("ec2:AuthorizeSecurityGroupIngress", rules, b"", "r", "1") == [
        "arn:aws:ec2:r:1:security-group/sg-9"]
    open_only = {"StringEquals": {"aws:ResourceTag/ec2-quarantine": "open"}}
    assert not conditions_met(open_only, request_context(
        "ec2:AuthorizeSecurityGroupIngress", rules, "1", "arn:aws:ec2:r:1:security-group/sg-9",
        {"ec2-quarantine": "isolation"}))
