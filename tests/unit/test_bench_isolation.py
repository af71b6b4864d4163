"""The moment of isolation found on made-up requests: what `make bench` counts to isolation when
the entry function cuts (issue 15) and Contain verifies after it."""

from types import SimpleNamespace

import pytest

from bench.clock import Flight, Stamp, form_parameters, round_trips
from bench.remediation import before_isolation, critical_path, isolation

ISOLATION, OPEN, APP = "sg-isolation", "sg-open", "sg-app"
ENI_A, ENI_B = "eni-a", "eni-b"
MNIA = "ec2:ModifyNetworkInterfaceAttribute"


def request(name, sent, answered, status=200, **params):
    return Flight(name, sent, answered, status, params)


def swap(interface, group, sent, answered, status=200):
    return request(MNIA, sent, answered, status, NetworkInterfaceId=interface,
                   **{"SecurityGroupId.1": group})


def tracking(interface, sent, answered):
    return request(MNIA, sent, answered, NetworkInterfaceId=interface,
                   **{"ConnectionTrackingSpecification.TcpEstablishedTimeout": "60"})


def invoked(name, started):
    return SimpleNamespace(function_name=name, started=started)


# The entry function's cut on two interfaces, then Contain verifying and sending a swap again.
CUT = [
    request("events:PutEvents", 0, 1),
    request("ec2:DescribeInstances", 2, 4), request("ec2:DescribeSecurityGroups", 2, 3),
    request("dynamodb:TransactWriteItems", 5, 7),
    swap(ENI_A, OPEN, 8, 9), swap(ENI_B, OPEN, 8, 10), tracking(ENI_A, 8, 9),
    tracking(ENI_B, 8, 10), request("ec2:ModifyInstanceAttribute", 8, 9),
    swap(ENI_B, ISOLATION, 11, 12), swap(ENI_A, ISOLATION, 11, 13),
    request("states:StartExecution", 14, 15), request("sns:Publish", 16, 17),
    request("ec2:DescribeNetworkInterfaces", 18, 19), tracking(ENI_A, 20, 21),
    swap(ENI_B, ISOLATION, 22, 23),
]
INVOKED = [invoked("on_guardduty_finding", 1.5), invoked("contain", 16.5)]


def test_isolated_when_the_last_interface_is_answered_its_swap_to_the_isolation_group():
    # not the last ModifyNetworkInterfaceAttribute (Contain's swap at 23), nor ENI_B's first (12)
    assert isolation(CUT, [ENI_A, ENI_B], ISOLATION).answered == 13


def test_only_what_came_before_that_answer_was_made_before_isolation():
    requested, functions = before_isolation(CUT, INVOKED, isolation(CUT, [ENI_A, ENI_B],
                                                                     ISOLATION))
    assert [i.function_name for i in functions] == ["on_guardduty_finding"]
    assert "states:StartExecution" not in requested and "events:PutEvents" not in requested
    assert len(requested) == 10


def test_the_cut_is_four_round_trips_after_the_entry_functions_invoke():
    swapped = isolation(CUT, [ENI_A, ENI_B], ISOLATION)
    # describe beside describe, claim, step one beside preservation and tracking, step two
    assert round_trips(critical_path(CUT, swapped)) == 4


def test_a_refused_swap_does_not_isolate_its_retry_does():
    made = [swap(ENI_A, ISOLATION, 0, 1, status=400), swap(ENI_A, ISOLATION, 2, 3)]
    assert isolation(made, [ENI_A], ISOLATION).answered == 3


def test_a_swap_to_the_isolation_group_beside_another_group_does_not_isolate():
    beside = request(MNIA, 0, 1, NetworkInterfaceId=ENI_A,
                     **{"SecurityGroupId.1": ISOLATION, "SecurityGroupId.2": APP})
    with pytest.raises(RuntimeError, match=ENI_A):
        isolation([beside, swap(ENI_A, OPEN, 2, 3)], [ENI_A], ISOLATION)


def test_the_server_side_stamps_are_read_the_same_way():
    stamps = [Stamp("ec2", "ModifyNetworkInterfaceAttribute", n, n + 1, 200,
                    swap(ENI_A, group, n, n + 1).params)
              for n, group in ((0, OPEN), (2, ISOLATION))]
    assert isolation(stamps, [ENI_A], ISOLATION) is stamps[1]


def test_a_query_protocol_body_gives_its_parameters_another_body_none():
    body = ("Action=ModifyNetworkInterfaceAttribute&Version=2016-11-15&NetworkInterfaceId=eni-a"
            "&SecurityGroupId.1=sg-isolation")
    form = "application/x-www-form-urlencoded; charset=utf-8"
    assert form_parameters(form, body)["SecurityGroupId.1"] == "sg-isolation"
    assert form_parameters("application/x-amz-json-1.0", '{"TableName": "t"}') == {}
