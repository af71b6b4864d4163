"""The tamper watch when AWS fails it: an event whose check cannot be made (each operation the
watch makes, failing for good) ends without a failed invocation (EventBridge would retry it,
Lambda would log a stack trace) and leaves containment as the next check finds it; the sweep
then puts back what the event could not."""

import pytest

from deploy import names
from tests.helpers import (
    deliver_finding,
    finish,
    guardduty_event,
    interface_groups,
    make_victim,
    product_groups,
)

WATCH_OPERATIONS = [  # what on_tampering makes for an interface given its groups back
    ("ec2", "DescribeNetworkInterfaces"), ("dynamodb", "GetItem"), ("kms", "VerifyMac"),
    ("ec2", "DescribeInstances"), ("ec2", "DescribeSecurityGroups"),
    ("ec2", "DescribeIamInstanceProfileAssociations"), ("ec2", "DescribeInstanceAttribute"),
    ("dynamodb", "UpdateItem"), ("ec2", "ModifyNetworkInterfaceAttribute"),
]
ERRORS = {"ec2": "InternalError", "dynamodb": "InternalServerError",
          "kms": "KMSInternalException"}


@pytest.mark.parametrize("service, action", WATCH_OPERATIONS)
def test_a_check_that_aws_fails_ends_cleanly_and_the_sweep_finishes_it(stack, service, action):
    victim = make_victim(stack, interfaces=1, volumes=1)
    record, _ = finish(stack, deliver_finding(stack, guardduty_event(victim["instance_id"])))
    (eni,) = victim["interfaces"]
    stack.bridge.wait_idle()
    stack.faults.arm(service, action, ERRORS[service], count=1000, caller="on_tampering")
    before = len(stack.bridge.invocations)
    stack.client("ec2").modify_network_interface_attribute(NetworkInterfaceId=eni,
                                                           Groups=victim["interfaces"][eni])
    stack.bridge.wait_idle()
    watched = [i for i in stack.bridge.invocations[before:]
               if i.function_name == names.function(stack.stage, "on_tampering")]
    assert watched and all(i.error is None for i in watched), [i.result for i in watched]
    assert interface_groups(stack, eni) == sorted(victim["interfaces"][eni])  # not put back

    stack.faults.reset()
    swept = stack.tick("sweep")["sweep"]
    isolation = product_groups(stack, victim["vpc_id"])["isolation"]["GroupId"]
    assert interface_groups(stack, eni) == [isolation]
    assert swept["repaired"] == [record["incident_id"]]
