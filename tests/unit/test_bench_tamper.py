"""The tamper watch's measure read on made-up requests: which request of the watch put each kind
of tampering back, when the watch started, and what `make bench` reports of the rounds."""

from types import SimpleNamespace

import pytest

from bench.__main__ import tamper_section
from bench.clock import Flight
from bench.tamper import KINDS, Round, Scene, first_answered, first_started, spread

MNIA = "ec2:ModifyNetworkInterfaceAttribute"
SCENE = Scene("i-1", "eni-a", ["sg-app", "sg-db"], "sg-iso", insider=None, reader=None)
INTERFACE, EGRESS, METADATA = KINDS


def swap(interface, groups, answered, status=200):
    return Flight(MNIA, answered - 1, answered, status, {
        "NetworkInterfaceId": interface,
        **{f"SecurityGroupId.{n}": g for n, g in enumerate(groups, 1)}})


def repaired(kind, flights):
    return first_answered(flights, lambda f: kind.repairs(SCENE, f))


def test_an_interface_is_put_back_by_its_first_accepted_swap_to_the_isolation_group_alone():
    flights = [swap("eni-a", ["sg-app", "sg-db"], 1),  # the insider's
               swap("eni-a", ["sg-open"], 3),  # the two-step's first swap
               swap("eni-b", ["sg-iso"], 4),  # another interface
               swap("eni-a", ["sg-iso"], 5, status=400),  # refused
               swap("eni-a", ["sg-iso"], 7), swap("eni-a", ["sg-iso"], 6)]
    assert repaired(INTERFACE, flights) == 6


def test_the_rule_is_put_back_by_a_revoke_on_the_isolation_group_and_metadata_by_disabling():
    revoke = Flight("ec2:RevokeSecurityGroupEgress", 0, 4, 200, {"GroupId": "sg-iso"})
    elsewhere = Flight("ec2:RevokeSecurityGroupEgress", 0, 2, 200, {"GroupId": "sg-open"})
    assert repaired(EGRESS, [elsewhere, revoke]) == 4
    enabled = Flight("ec2:ModifyInstanceMetadataOptions", 0, 1, 200,
                     {"InstanceId": "i-1", "HttpEndpoint": "enabled"})
    disabled = Flight("ec2:ModifyInstanceMetadataOptions", 2, 3, 200,
                      {"InstanceId": "i-1", "HttpEndpoint": "disabled"})
    assert repaired(METADATA, [enabled, disabled]) == 3
    with pytest.raises(RuntimeError, match="no request"):
        repaired(METADATA, [enabled, revoke])


def test_the_watch_started_with_its_first_invocation():
    invoked = [SimpleNamespace(function_name="app-dev-report", started=1.0),
               SimpleNamespace(function_name="app-dev-on_tampering", started=3.0),
               SimpleNamespace(function_name="app-dev-on_tampering", started=2.0)]
    assert first_started(invoked, "app-dev-on_tampering") == 2.0
    with pytest.raises(RuntimeError, match="sweep"):
        first_started(invoked, "app-dev-sweep")


def test_a_spread_is_the_median_then_the_fastest_and_slowest_in_ms():
    assert spread([0.0123, 0.0101, 0.0152, 0.0130]) == "12.7 (10.1–15.2)"


def test_the_section_gives_each_kind_and_all_and_says_what_aws_adds():
    rounds = [Round(KINDS[n % 3].name, -0.001, 0.1 * (n + 1), 0.1 * (n + 1) + 0.01)
              for n in range(4)]
    text = "\n".join(tamper_section(rounds))
    assert f"| {INTERFACE.name} | 2 | -1.0 (-1.0–-1.0) | 250.0 (100.0–400.0) |" in text
    assert f"| {METADATA.name} | 1 |" in text
    assert ("| all | 4 | -1.0 (-1.0–-1.0) | 250.0 (100.0–400.0) | 260.0 (110.0–410.0) |"
            in text)
    assert "CloudTrail's own delivery" in text and "every 5 minutes" in text
