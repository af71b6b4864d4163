"""chalicelib.aws against the embedded AWS: the user agent names the calling function, and
throttling is retried (moved from tests/unit, which starts no server)."""

from chalicelib import aws
from local import recording


def test_user_agent_names_the_calling_function(stack):
    aws.reset()
    recording.start(stack)
    with aws.acting_as("ec2-quarantine-dev-contain"):
        aws.client("ec2").describe_vpcs()
    recording.stop(stack)
    entries = stack.moto_api("recorder/download-recording").decode()
    assert "ec2-quarantine/ec2-quarantine-dev-contain" in entries


def test_throttling_is_retried(stack):
    aws.reset()
    stack.faults.arm("ec2", "DescribeVpcs", "RequestLimitExceeded", count=2)
    assert aws.client("ec2").describe_vpcs()["Vpcs"]
    assert len(stack.faults.fired) == 2
