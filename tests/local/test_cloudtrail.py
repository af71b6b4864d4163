"""CloudTrail on the embedded AWS: each successful mutating EC2 and IAM call reaches the default
event bus of its account as "AWS API Call via CloudTrail", in CloudTrail's shapes, signed by whom
it was (a user, an assumed role, the app's own functions' roles); reads and failed calls do not."""

import json
import time

import boto3
import pytest
from botocore.exceptions import ClientError

from chalicelib import aws
from deploy import names
from local.victims import make_instance_profile
from tests.helpers import make_victim, principal

PATTERN = {"source": ["aws.ec2", "aws.iam"], "detail-type": ["AWS API Call via CloudTrail"]}


def _trail(stack, region: str = "us-east-1"):
    """A queue that a rule on `region`'s default bus fills with every CloudTrail event; returns
    a function reading the events delivered since it last read, as {eventName: [event]}."""
    sqs, events = stack.client("sqs", region), stack.client("events", region)
    url = sqs.create_queue(QueueName=f"trail-{time.monotonic_ns()}")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"]
    events.put_rule(Name="trail", EventPattern=json.dumps(PATTERN))
    events.put_targets(Rule="trail", Targets=[{"Id": "queue", "Arn": arn}])

    def read() -> dict[str, list[dict]]:
        stack.bridge.wait_idle()  # CloudTrail's deliveries are asynchronous work of the bridge
        delivered: dict[str, list[dict]] = {}
        while batch := sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages"):
            for message in batch:
                event = json.loads(message["Body"])
                delivered.setdefault(event["detail"]["eventName"], []).append(event)
                sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
        return delivered

    return read


def _request(delivered: dict, name: str) -> dict:
    """The requestParameters of the one `name` call delivered."""
    (event,) = delivered[name]
    return event["detail"]["requestParameters"]


def _requests(delivered: dict, name: str) -> set[str]:
    """The requestParameters of every `name` call delivered, in any order (CloudTrail keeps
    none), as JSON."""
    return {_json(e["detail"]["requestParameters"]) for e in delivered[name]}


def _json(value) -> str:
    return json.dumps(value, sort_keys=True)


def test_an_insiders_network_calls_arrive_in_cloudtrails_shapes(stack):
    victim = make_victim(stack, interfaces=1, volumes=1)
    read = _trail(stack)
    insider = principal(stack, "insider", ["ec2:*"])
    ec2 = insider("ec2")
    group = ec2.create_security_group(GroupName="open", Description="open",
                                      VpcId=victim["vpc_id"])["GroupId"]
    (primary,) = victim["interfaces"]
    second = ec2.create_network_interface(SubnetId=victim["subnet_id"], Groups=[group])[
        "NetworkInterface"]["NetworkInterfaceId"]
    read()

    ec2.modify_network_interface_attribute(NetworkInterfaceId=primary, Groups=[group])
    ec2.attach_network_interface(NetworkInterfaceId=second, InstanceId=victim["instance_id"],
                                 DeviceIndex=1)
    ssh = [{"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22,
            "IpRanges": [{"CidrIp": "0.0.0.0/0", "Description": "ssh"}]}]
    ec2.authorize_security_group_ingress(GroupId=group, IpPermissions=ssh)
    ec2.revoke_security_group_ingress(GroupId=group, IpPermissions=ssh)
    to_itself = [{"IpProtocol": "-1", "UserIdGroupPairs": [{"GroupId": group}]}]
    ec2.authorize_security_group_egress(GroupId=group, IpPermissions=to_itself)
    ec2.revoke_security_group_egress(GroupId=group, IpPermissions=to_itself)
    ec2.authorize_security_group_ingress(GroupId=group, IpProtocol="tcp", FromPort=443,
                                         ToPort=443, CidrIp="10.0.0.0/8")  # one rule, flat
    rule_id = ec2.describe_security_group_rules(Filters=[{"Name": "group-id", "Values": [group]}])[
        "SecurityGroupRules"][0]["SecurityGroupRuleId"]
    ec2.modify_security_group_rules(GroupId=group, SecurityGroupRules=[{
        "SecurityGroupRuleId": rule_id, "SecurityGroupRule": {
            "IpProtocol": "tcp", "FromPort": 80, "ToPort": 80, "CidrIpv4": "0.0.0.0/0"}}])
    delivered = read()

    assert _request(delivered, "ModifyNetworkInterfaceAttribute") == {
        "networkInterfaceId": primary, "groupSet": {"items": [{"groupId": group}]}}
    assert _request(delivered, "AttachNetworkInterface") == {
        "networkInterfaceId": second, "instanceId": victim["instance_id"], "deviceIndex": 1}
    ssh_item = {"ipProtocol": "tcp", "fromPort": 22, "toPort": 22, "groups": {},
                "ipRanges": {"items": [{"cidrIp": "0.0.0.0/0", "description": "ssh"}]},
                "ipv6Ranges": {}, "prefixListIds": {}}
    assert _request(delivered, "RevokeSecurityGroupIngress") == {
        "groupId": group, "ipPermissions": {"items": [ssh_item]}}
    flat_item = {"ipProtocol": "tcp", "fromPort": 443, "toPort": 443, "groups": {},
                 "ipRanges": {"items": [{"cidrIp": "10.0.0.0/8"}]}, "ipv6Ranges": {},
                 "prefixListIds": {}}
    assert _requests(delivered, "AuthorizeSecurityGroupIngress") == {
        _json({"groupId": group, "ipPermissions": {"items": [item]}})
        for item in (ssh_item, flat_item)}
    egress = {"groupId": group, "ipPermissions": {"items": [{
        "ipProtocol": "-1", "groups": {"items": [{"groupId": group}]}, "ipRanges": {},
        "ipv6Ranges": {}, "prefixListIds": {}}]}}
    assert _request(delivered, "AuthorizeSecurityGroupEgress") == egress
    assert _request(delivered, "RevokeSecurityGroupEgress") == egress
    assert _request(delivered, "ModifySecurityGroupRules") == {"ModifySecurityGroupRulesRequest": {
        "GroupId": group, "SecurityGroupRule": {
            "SecurityGroupRuleId": rule_id, "tag": 1, "SecurityGroupRule": {
                "IpProtocol": "tcp", "FromPort": 80, "ToPort": 80, "CidrIpv4": "0.0.0.0/0"}}}}

    (event,) = delivered["ModifyNetworkInterfaceAttribute"]
    detail = event["detail"]
    user = stack.client("iam").get_user(UserName="insider")["User"]
    (key,) = stack.client("iam").list_access_keys(UserName="insider")["AccessKeyMetadata"]
    assert (event["source"], event["detail-type"], event["account"], event["region"]) == (
        "aws.ec2", "AWS API Call via CloudTrail", stack.account, stack.region)
    assert detail["userIdentity"] == {
        "type": "IAMUser", "principalId": user["UserId"], "arn": user["Arn"],
        "accountId": stack.account, "accessKeyId": key["AccessKeyId"], "userName": "insider"}
    assert {k: detail[k] for k in ("eventVersion", "eventSource", "eventName", "awsRegion",
                                   "sourceIPAddress", "readOnly", "eventType",
                                   "managementEvent", "recipientAccountId", "eventCategory")} == {
        "eventVersion": "1.08", "eventSource": "ec2.amazonaws.com",
        "eventName": "ModifyNetworkInterfaceAttribute", "awsRegion": stack.region,
        "sourceIPAddress": "127.0.0.1", "readOnly": False, "eventType": "AwsApiCall",
        "managementEvent": True, "recipientAccountId": stack.account,
        "eventCategory": "Management"}
    assert detail["userAgent"].startswith("Boto3/")
    assert detail["responseElements"] == {"requestId": detail["requestID"], "_return": True}
    time.strptime(detail["eventTime"], "%Y-%m-%dT%H:%M:%SZ")  # CloudTrail's format, or raises
    assert len({e["detail"]["eventID"] for events in delivered.values() for e in events}) == 8


def _assumed(stack, role_name: str):
    """client(service) acting as a session of a new role `role_name`, and the session."""
    stack.client("iam").create_role(RoleName=role_name, AssumeRolePolicyDocument=json.dumps({
        "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole",
                                                "Principal": {"AWS": stack.account}}]}))
    issued = stack.client("sts").assume_role(
        RoleArn=f"arn:aws:iam::{stack.account}:role/{role_name}", RoleSessionName="mallory")
    keys = issued["Credentials"]
    session = boto3.session.Session(aws_access_key_id=keys["AccessKeyId"],
                                    aws_secret_access_key=keys["SecretAccessKey"],
                                    aws_session_token=keys["SessionToken"],
                                    region_name=stack.region)
    return (lambda service: session.client(service, endpoint_url=stack.endpoint)), issued


def test_a_roles_instance_calls_arrive_in_cloudtrails_shapes(stack):
    victim = make_victim(stack, interfaces=1, volumes=1)
    instance = victim["instance_id"]
    profiles = [make_instance_profile(stack.client("iam")) for _ in range(2)]
    read = _trail(stack)
    as_role, issued = _assumed(stack, "operator")
    ec2 = as_role("ec2")
    group = ec2.create_security_group(GroupName="other", Description="other",
                                      VpcId=victim["vpc_id"])["GroupId"]
    association = ec2.describe_iam_instance_profile_associations(Filters=[
        {"Name": "instance-id", "Values": [instance]}])["IamInstanceProfileAssociations"][0][
        "AssociationId"]
    read()

    ec2.replace_iam_instance_profile_association(AssociationId=association,
                                                 IamInstanceProfile={"Name": profiles[0]})
    ec2.disassociate_iam_instance_profile(AssociationId=association)
    ec2.associate_iam_instance_profile(InstanceId=instance,
                                       IamInstanceProfile={"Name": profiles[1]})
    ec2.modify_instance_attribute(InstanceId=instance, DisableApiTermination={"Value": False})
    ec2.modify_instance_attribute(InstanceId=instance, Groups=[group])
    ec2.modify_instance_metadata_options(InstanceId=instance, HttpEndpoint="enabled",
                                         HttpPutResponseHopLimit=3)
    ec2.create_tags(Resources=[instance], Tags=[{"Key": "QuarantineIncident", "Value": "x"}])
    ec2.delete_tags(Resources=[instance], Tags=[{"Key": "QuarantineIncident"}])
    ec2.stop_instances(InstanceIds=[instance])
    ec2.start_instances(InstanceIds=[instance])
    delivered = read()

    assert _request(delivered, "ReplaceIamInstanceProfileAssociation") == {
        "ReplaceIamInstanceProfileAssociationRequest": {
            "AssociationId": association, "IamInstanceProfile": {"Name": profiles[0]}}}
    (replaced,) = delivered["ReplaceIamInstanceProfileAssociation"]
    response = replaced["detail"]["responseElements"][
        "ReplaceIamInstanceProfileAssociationResponse"]
    assert response["iamInstanceProfileAssociation"]["instanceId"] == instance
    assert response["iamInstanceProfileAssociation"]["iamInstanceProfile"]["arn"].endswith(
        f":instance-profile/{profiles[0]}")
    assert _request(delivered, "AssociateIamInstanceProfile") == {
        "AssociateIamInstanceProfileRequest": {"InstanceId": instance,
                                               "IamInstanceProfile": {"Name": profiles[1]}}}
    (associated,) = delivered["AssociateIamInstanceProfile"]
    assert associated["detail"]["responseElements"]["AssociateIamInstanceProfileResponse"][
        "iamInstanceProfileAssociation"]["instanceId"] == instance
    assert _request(delivered, "DisassociateIamInstanceProfile") == {
        "DisassociateIamInstanceProfileRequest": {"AssociationId": association}}
    assert _requests(delivered, "ModifyInstanceAttribute") == {_json(p) for p in (
        {"instanceId": instance, "disableApiTermination": {"value": False}},
        {"instanceId": instance, "groupSet": {"items": [{"groupId": group}]}})}
    assert _request(delivered, "ModifyInstanceMetadataOptions") == {
        "ModifyInstanceMetadataOptionsRequest": {
            "InstanceId": instance, "HttpEndpoint": "enabled", "HttpPutResponseHopLimit": 3}}
    assert _request(delivered, "CreateTags") == {
        "resourcesSet": {"items": [{"resourceId": instance}]},
        "tagSet": {"items": [{"key": "QuarantineIncident", "value": "x"}]}}
    assert _request(delivered, "DeleteTags") == {
        "resourcesSet": {"items": [{"resourceId": instance}]},
        "tagSet": {"items": [{"key": "QuarantineIncident"}]}}
    assert _request(delivered, "StopInstances") == {
        "instancesSet": {"items": [{"instanceId": instance}]}, "force": False}
    assert _request(delivered, "StartInstances") == {
        "instancesSet": {"items": [{"instanceId": instance}]}}
    (started,) = delivered["StartInstances"]
    assert started["detail"]["responseElements"]["instancesSet"]["items"][0]["currentState"] == {
        "code": 0, "name": "pending"}

    role = stack.client("iam").get_role(RoleName="operator")["Role"]
    identity = started["detail"]["userIdentity"]
    attributes = identity["sessionContext"].pop("attributes")
    assert identity == {
        "type": "AssumedRole", "principalId": f"{role['RoleId']}:mallory",
        "arn": issued["AssumedRoleUser"]["Arn"], "accountId": stack.account,
        "accessKeyId": issued["Credentials"]["AccessKeyId"],
        "sessionContext": {
            "sessionIssuer": {"type": "Role", "principalId": role["RoleId"],
                              "arn": role["Arn"], "accountId": stack.account,
                              "userName": "operator"},
            "webIdFederationData": {}}}
    assert attributes["mfaAuthenticated"] == "false"
    time.strptime(attributes["creationDate"], "%Y-%m-%dT%H:%M:%SZ")


def test_iam_calls_arrive_in_us_east_1_only_and_ec2_calls_in_their_region(stack):
    role = make_instance_profile(stack.client("iam"))
    home, elsewhere = _trail(stack), _trail(stack, "eu-west-1")
    home(), elsewhere()
    document = json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]})
    iam = stack.client("iam", region="eu-west-1")  # IAM is global: any region's client
    iam.put_role_policy(RoleName=role, PolicyName="wide", PolicyDocument=document)
    iam.delete_role_policy(RoleName=role, PolicyName="wide")
    vpc = stack.client("ec2", region="eu-west-1").create_vpc(CidrBlock="10.9.0.0/16")["Vpc"]
    at_home, away = home(), elsewhere()

    assert set(at_home) == {"PutRolePolicy", "DeleteRolePolicy"}
    assert set(away) == {"CreateVpc"}
    (put,) = at_home["PutRolePolicy"]
    assert (put["source"], put["region"], put["detail"]["eventSource"],
            put["detail"]["awsRegion"]) == ("aws.iam", "us-east-1", "iam.amazonaws.com",
                                            "us-east-1")
    assert put["detail"]["requestParameters"] == {"roleName": role, "policyName": "wide",
                                                  "policyDocument": document}
    assert put["detail"]["responseElements"] is None
    assert _request(at_home, "DeleteRolePolicy") == {"roleName": role, "policyName": "wide"}
    assert put["detail"]["userIdentity"] == {  # moto's default keys: no user, the account
        "type": "Root", "principalId": stack.account, "arn": f"arn:aws:iam::{stack.account}:root",
        "accountId": stack.account, "accessKeyId": "testing"}
    (created,) = away["CreateVpc"]
    assert (created["region"], created["detail"]["awsRegion"]) == ("eu-west-1", "eu-west-1")
    assert created["detail"]["responseElements"]["vpc"]["vpcId"] == vpc["VpcId"]


def test_reads_and_failed_calls_arrive_not(stack):
    victim = make_victim(stack, interfaces=1, volumes=1)
    read = _trail(stack)
    read()
    ec2 = stack.client("ec2")
    ec2.describe_instances(InstanceIds=[victim["instance_id"]])
    stack.client("iam").list_roles()
    with pytest.raises(ClientError):  # no such interface: refused by EC2
        ec2.modify_network_interface_attribute(NetworkInterfaceId="eni-0123456789abcdef0",
                                               Groups=["sg-0123456789abcdef0"])
    stack.faults.arm("ec2", "CreateTags", "UnauthorizedOperation")
    with pytest.raises(ClientError):  # denied before EC2 saw it
        ec2.create_tags(Resources=[victim["instance_id"]], Tags=[{"Key": "a", "Value": "b"}])
    with pytest.raises(ClientError):  # a dry run answers with an error
        ec2.create_tags(Resources=[victim["instance_id"]], Tags=[{"Key": "a", "Value": "b"}],
                        DryRun=True)
    assert read() == {}

    ec2.create_tags(Resources=[victim["instance_id"]], Tags=[{"Key": "a", "Value": "b"}])
    assert set(read()) == {"CreateTags"}


def test_a_functions_calls_carry_its_own_role_and_reach_the_tamper_watch(stack):
    victim = make_victim(stack, interfaces=1, volumes=1)
    contain = names.function(stack.stage, "contain")
    with stack.enforce_iam():  # the functions' roles exist, as deployed
        read = _trail(stack)
        read()
        stack.bridge.forget()
        with stack.bridge.acting_as(contain):  # as the bridge runs the function
            aws.client("ec2").create_tags(Resources=[victim["instance_id"]],
                                          Tags=[{"Key": "QuarantineIncident", "Value": "x"}])
        delivered = read()
        role = stack.client("iam").get_role(RoleName=names.function_role(stack.stage, "contain"))[
            "Role"]

    (event,) = delivered["CreateTags"]
    identity = event["detail"]["userIdentity"]
    assert identity["type"] == "AssumedRole"
    assert identity["sessionContext"]["sessionIssuer"] == {
        "type": "Role", "principalId": role["RoleId"], "arn": role["Arn"],
        "accountId": stack.account, "userName": names.function_role(stack.stage, "contain")}
    assert identity["arn"] == (f"arn:aws:sts::{stack.account}:assumed-role/"
                               f"{names.function_role(stack.stage, 'contain')}/{contain}")
    assert f"ec2-quarantine/{contain}" in event["detail"]["userAgent"]
    watched = [i for i in stack.bridge.invocations
               if i.function_name == names.function(stack.stage, "on_tampering")]
    assert [(i.source, i.event["detail-type"], i.event["detail"]["eventName"],
             i.event["detail"]["userIdentity"]["arn"]) for i in watched] == [
        ("eventbridge", "AWS API Call via CloudTrail", "CreateTags", identity["arn"])]
    assert watched[0].event["account"] == stack.account
