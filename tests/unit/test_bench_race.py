"""The race's and the new benchmarks' reading of their figures, on made-up data: what `make
bench` reports as the ratio, the median run, where the time goes, and what was lost."""

import argparse
from types import SimpleNamespace

import pytest

from bench.__main__ import counts
from bench.clock import Flight, last_of_firsts, swapped_groups
from bench.custodian import VARIANTS, policy, swapped
from bench.further import Further, finding_fields
from bench.listing import EVERY, RARE, incident
from bench.race import fastest_isolating, in_flight, median_run, rotated

MNIA = "ec2:ModifyNetworkInterfaceAttribute"


def swap(interface, groups, answered, status=200):
    params = {"NetworkInterfaceId": interface,
              **{f"SecurityGroupId.{n}": g for n, g in enumerate(groups, 1)}}
    return Flight(MNIA, answered - 1, answered, status, params)


def runs(*seconds, isolated=True):
    return [SimpleNamespace(seconds_to_swap=s, isolated=isolated) for s in seconds]


def test_a_swap_gives_its_groups_in_order_a_tracking_change_or_a_refusal_none():
    assert swapped_groups(swap("eni-a", ["sg-2", "sg-1"], 1)) == ["sg-2", "sg-1"]
    tracking = Flight(MNIA, 0, 1, 200, {"NetworkInterfaceId": "eni-a",
                                        "ConnectionTrackingSpecification.UdpTimeout": "60"})
    assert swapped_groups(tracking) is None
    assert swapped_groups(swap("eni-a", ["sg-1"], 1, status=400)) is None
    assert swapped_groups(Flight("ec2:DescribeInstances", 0, 1, 200, {})) is None


def test_custodians_last_swap_counts_whether_or_not_it_isolated():
    # remove: all on two interfaces: one keeps a group; the moment is still its last swap
    made = [swap("eni-a", ["sg-left"], 3), swap("eni-b", ["sg-iso"], 5)]
    assert last_of_firsts(made, ["eni-a", "eni-b"], swapped).answered == 5
    with pytest.raises(RuntimeError, match="eni-c"):
        last_of_firsts(made, ["eni-a", "eni-c"], swapped)


def test_the_ratio_is_to_the_fastest_policy_that_isolated_in_every_run():
    race = {"remove: all": runs(0.05, 0.06, 0.07, isolated=False),
            "remove: matched": runs(0.12, 0.10, 0.30),
            "slow": runs(0.2, 0.2, 0.2)}
    assert fastest_isolating(race) == "remove: matched"
    once = runs(0.1, 0.1)
    once[1].isolated = False
    assert fastest_isolating({"remove: all": runs(0.05, isolated=False), "flaky": once}) is None


def test_the_median_run_is_the_lower_of_the_middle_two():
    made = runs(0.4, 0.1, 0.3, 0.2)
    assert median_run(made, lambda r: r.seconds_to_swap).seconds_to_swap == 0.2
    assert median_run(made[:3], lambda r: r.seconds_to_swap).seconds_to_swap == 0.3


def test_in_flight_counts_overlapping_requests_once_and_stops_at_isolation():
    timeline = [("invoke on_guardduty_finding", 0.0, 0.0), ("ec2:DescribeInstances", 1, 4),
                ("ec2:DescribeSecurityGroups", 2, 5), ("dynamodb:TransactWriteItems", 6, 7),
                ("sns:Publish", 8, 20)]
    assert in_flight(timeline, until=10) == 4 + 1 + 2  # 1..5, 6..7, 8..10


def test_each_contender_goes_first_in_turn():
    assert [rotated(["app", "all", "matched"], n)[0] for n in range(4)] == [
        "app", "all", "matched", "app"]


def test_counts_are_whole_numbers_in_order_once_each():
    assert counts("5000,1,100,100") == (1, 100, 5000)
    for bad in ("1,x", "1,-2", ""):
        with pytest.raises(argparse.ArgumentTypeError):
            counts(bad)


def test_an_incident_shows_its_findings_as_counts():
    shown = finding_fields({"incident_id": "inc-1", "findings": [{}, {}], "finding_count": 7,
                            "findings_not_kept": 3, "finding_ids_truncated": True,
                            "timeline": [{}]})
    assert shown == {"finding_count": 7, "findings": 2, "findings_not_kept": 3}


def test_findings_held_are_the_listed_ones_else_those_on_the_incident():
    before = Further([], 5000, 0, 1.0, {"findings": 20, "findings_not_kept": 4980}, None)
    after = Further([], 5000, 0, 1.0, {"findings": 5, "finding_count": 5000}, 5000)
    assert (before.kept, after.kept) == (20, 5000)


def test_one_seeded_incident_in_every_thousand_is_rare_newest_first():
    seeded = [incident(n) for n in range(2 * EVERY)]
    assert sum(i["status"] == RARE for i in seeded) == 2
    assert [i["opened_at"] for i in seeded] == sorted((i["opened_at"] for i in seeded),
                                                      reverse=True)
    assert len({i["incident_id"] for i in seeded}) == len(seeded)


def test_both_policies_are_guard_duty_responders_with_the_group_filled_in():
    documented, careful = (policy(variant, "sg-iso") for variant in VARIANTS)
    assert documented["mode"]["type"] == careful["mode"]["type"] == "guard-duty"
    assert documented["actions"][0] == {"type": "modify-security-groups",
                                        "isolation-group": "sg-iso", "remove": "all"}
    assert careful["actions"][0]["remove"] == "matched"
    assert careful["filters"] == [{"type": "security-group", "key": "GroupId", "op": "ne",
                                   "value": "sg-iso"}]
