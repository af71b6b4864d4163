"""`local.patches.apply_backend_fidelity()`: the patches that need no running stack, applied to
plain `mock_aws` in-process (as unit tests of the actions use them)."""

import os
import subprocess
import sys

# Run in a fresh interpreter: this process's patches were all applied by the stack.
_IN_PROCESS = """
import base64
import boto3
from moto import mock_aws
from local import patches, scenario

patches.apply_backend_fidelity()
patches.apply_backend_fidelity()  # idempotent
with mock_aws():
    ec2 = boto3.client("ec2", region_name="us-east-1")
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.0.1.0/24")["Subnet"]["SubnetId"]
    launch, isolation = [ec2.create_security_group(GroupName=f"g{n}", Description="t",
                                                   VpcId=vpc)["GroupId"] for n in range(2)]
    instance = ec2.run_instances(ImageId="ami-12345678", MinCount=1, MaxCount=1, SubnetId=subnet,
                                 SecurityGroupIds=[launch])["Instances"][0]
    eni = instance["NetworkInterfaces"][0]["NetworkInterfaceId"]
    ec2.modify_network_interface_attribute(NetworkInterfaceId=eni, Groups=[isolation])
    groups = ec2.describe_network_interfaces(NetworkInterfaceIds=[eni])["NetworkInterfaces"][0]
    assert [g["GroupId"] for g in groups["Groups"]] == [isolation], groups
    image = ec2.get_console_screenshot(InstanceId=instance["InstanceId"])["ImageData"]
    assert base64.b64decode(image)[:3] == b"\\xff\\xd8\\xff"
    scenario.manage_with_ssm(instance["InstanceId"])
    listed = boto3.client("ssm", region_name="us-east-1").describe_instance_information()
    assert [i["InstanceId"] for i in listed["InstanceInformationList"]] == [instance["InstanceId"]]
    scenario.hold_snapshots(1)
    created = ec2.create_snapshots(InstanceSpecification={"InstanceId": instance["InstanceId"]})
    assert [s["State"] for s in created["Snapshots"]] == ["pending"], created
    kms = boto3.client("kms", region_name="us-east-1")
    key = kms.create_key(KeySpec="HMAC_256", KeyUsage="GENERATE_VERIFY_MAC")["KeyMetadata"]
    try:
        kms.generate_mac(KeyId=key["Arn"], MacAlgorithm="HMAC_SHA_256", Message=b"x" * 4097)
        raise AssertionError("a 4,097-byte message was MACed")
    except kms.exceptions.ClientError as error:
        assert error.response["Error"]["Code"] == "ValidationException", error
assert not set(patches.STACK) & patches._applied
print("ok")
"""


def test_backend_fidelity_applies_in_process_under_mock_aws():
    """`apply_backend_fidelity()` alone makes plain `mock_aws` agree with AWS (no server, no
    bridge), and leaves the stack's patches out."""
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    environ = {**os.environ, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}
    environ.pop("AWS_ENDPOINT_URL", None)
    ran = subprocess.run([sys.executable, "-c", _IN_PROCESS], cwd=root, env=environ,
                         capture_output=True, text=True, timeout=120)
    assert (ran.returncode, ran.stdout.strip()) == (0, "ok"), ran.stderr
