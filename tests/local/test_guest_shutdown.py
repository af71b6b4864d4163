"""A guest powering its instance off (`stack.power_off`), now or at a given request
(`stack.faults.when`): EC2 applies the instance's shutdown behaviour and its volumes'
DeleteOnTermination, as AWS does."""

import pytest
from botocore.exceptions import ClientError


def _instance(ec2, shutdown="terminate", **launch):
    """A running instance protected from API termination whose guest's shutdown does
    `shutdown`, with a root volume deleted on termination and a data volume kept."""
    return ec2.run_instances(
        ImageId="ami-12345678", MinCount=1, MaxCount=1, DisableApiTermination=True,
        InstanceInitiatedShutdownBehavior=shutdown, BlockDeviceMappings=[
            {"DeviceName": "/dev/sda1", "Ebs": {"VolumeSize": 8, "DeleteOnTermination": True}},
            {"DeviceName": "/dev/sdf", "Ebs": {"VolumeSize": 1, "DeleteOnTermination": False}}],
        **launch)["Instances"][0]


def _volumes(instance):
    return {m["DeviceName"]: m["Ebs"]["VolumeId"] for m in instance["BlockDeviceMappings"]}


def _described(ec2, instance_id):
    return ec2.describe_instances(InstanceIds=[instance_id])["Reservations"][0]["Instances"][0]


def _volume_state(ec2, volume_id):
    try:
        return ec2.describe_volumes(VolumeIds=[volume_id])["Volumes"][0]["State"]
    except ClientError as error:
        assert error.response["Error"]["Code"] == "InvalidVolume.NotFound"
        return None


def test_a_guest_shutdown_terminates_and_deletes_the_volumes_marked_so(stack):
    ec2 = stack.client("ec2")
    instance = _instance(ec2)
    volumes = _volumes(instance)

    assert stack.power_off(instance["InstanceId"]) == "terminated"  # protection guards the API

    described = _described(ec2, instance["InstanceId"])
    assert described["State"]["Name"] == "terminated"
    assert described["StateReason"]["Code"] == "Client.InstanceInitiatedShutdown"
    assert _volume_state(ec2, volumes["/dev/sda1"]) is None
    assert _volume_state(ec2, volumes["/dev/sdf"]) == "available"


def test_after_the_preservation_attributes_a_guest_shutdown_stops_and_keeps_every_volume(stack):
    ec2 = stack.client("ec2")
    instance = _instance(ec2)
    volumes = _volumes(instance)
    ec2.modify_instance_attribute(InstanceId=instance["InstanceId"],
                                  InstanceInitiatedShutdownBehavior={"Value": "stop"})
    ec2.modify_instance_attribute(InstanceId=instance["InstanceId"], BlockDeviceMappings=[
        {"DeviceName": device, "Ebs": {"DeleteOnTermination": False}} for device in volumes])
    read = {attribute: ec2.describe_instance_attribute(InstanceId=instance["InstanceId"],
                                                       Attribute=attribute)
            for attribute in ("instanceInitiatedShutdownBehavior", "blockDeviceMapping")}
    assert read["instanceInitiatedShutdownBehavior"]["InstanceInitiatedShutdownBehavior"] == {
        "Value": "stop"}
    assert {m["Ebs"]["DeleteOnTermination"]
            for m in read["blockDeviceMapping"]["BlockDeviceMappings"]} == {False}

    assert stack.power_off(instance["InstanceId"]) == "stopped"

    assert _described(ec2, instance["InstanceId"])["State"]["Name"] == "stopped"
    assert {_volume_state(ec2, v) for v in volumes.values()} == {"in-use"}
    assert stack.power_off(instance["InstanceId"]) == "stopped"  # no guest runs on it now


def test_a_guest_shutdown_happens_at_the_nth_request_naming_a_resource(stack):
    ec2 = stack.client("ec2")
    vpc = ec2.create_vpc(CidrBlock="10.5.0.0/16")["Vpc"]["VpcId"]
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.5.1.0/24")["Subnet"]["SubnetId"]
    first, second = [ec2.create_security_group(GroupName=n, Description=n, VpcId=vpc)["GroupId"]
                     for n in ("first", "second")]
    instance = _instance(ec2, "stop", SubnetId=subnet, SecurityGroupIds=[first])
    eni = instance["NetworkInterfaces"][0]["NetworkInterfaceId"]
    seen = []

    def power_off():  # what the world looked like when the request arrived
        groups = ec2.describe_network_interfaces(NetworkInterfaceIds=[eni])[
            "NetworkInterfaces"][0]["Groups"]
        seen.append(([g["GroupId"] for g in groups], stack.power_off(instance["InstanceId"])))

    trigger = stack.faults.when("ec2", "ModifyNetworkInterfaceAttribute", power_off, nth=2,
                                resource=second)

    def swap(*groups):
        ec2.modify_network_interface_attribute(NetworkInterfaceId=eni, Groups=list(groups))
        return _described(ec2, instance["InstanceId"])["State"]["Name"]

    assert [swap(first), swap(second), swap(first)] == ["running"] * 3  # one match so far
    assert swap(first, second) == "stopped"  # the second: powered off before the answer
    assert seen == [([first], "stopped")] and trigger.seen == 2
    assert not stack.faults.active()  # it ran once and was forgotten
    assert swap(second) == "stopped"


def test_a_trigger_needs_a_positive_n(stack):
    with pytest.raises(ValueError):
        stack.faults.when("ec2", "StopInstances", lambda: None, nth=0)
