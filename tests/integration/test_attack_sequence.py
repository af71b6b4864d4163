"""A GuardDuty finding about a group of instances (an attack sequence) on the embedded AWS: one
incident per instance, each with its own claim, dedupe and release, linked by a group id and
contained at once; one group notice lists them all; GET /incidents?group_id= finds them."""

from chalicelib import incidents
from local.drive import attack_sequence_event
from tests.helpers import (
    api,
    deliver_finding,
    finish,
    interface_groups,
    make_victim,
    messages,
    product_groups,
    release,
    subscribe_queue,
)


def _isolated(stack, victim) -> bool:
    isolation = product_groups(stack, victim["vpc_id"])["isolation"]["GroupId"]
    return all(interface_groups(stack, eni) == [isolation] for eni in victim["interfaces"])


def test_an_attack_sequence_on_three_instances_contains_each_under_its_own_incident(stack):
    queue = subscribe_queue(stack)
    victims = [make_victim(stack, interfaces=2 if n == 0 else 1, volumes=1) for n in range(3)]
    ids = [v["instance_id"] for v in victims]
    answer = deliver_finding(stack, attack_sequence_event(ids))  # resourceRole TARGET
    assert answer["decision"] == "group", answer
    group = answer["group_id"]
    assert [r["instance_id"] for r in answer["instances"]] == ids
    assert {r["decision"] for r in answer["instances"]} == {"acted"}
    assert len({r["incident_id"] for r in answer["instances"]}) == 3
    for result in answer["instances"]:
        final, execution = finish(stack, result)
        assert execution["status"] == "SUCCEEDED" and final["status"] == "CONTAINED"
        assert final["group_id"] == group
        assert final["finding"]["type"] == "AttackSequence:EC2/CompromisedInstanceGroup"
    assert all(_isolated(stack, v) for v in victims)

    sent = messages(stack, queue)
    grouped = [m for m in sent if m["Document"] and m["Document"]["event"] == "group"]
    assert len(grouped) == 1, [m["Subject"] for m in sent]
    assert [i["instance_id"] for i in grouped[0]["Document"]["instances"]] == ids
    assert all(i in grouped[0]["Text"] for i in ids) and group in grouped[0]["Subject"]

    status, listed = api(stack, "GET", f"/incidents?group_id={group}")
    assert status == 200, listed
    assert sorted(i["instance_id"] for i in listed["incidents"]) == sorted(ids)
    assert {i["group_id"] for i in listed["incidents"]} == {group}
    status, refused = api(stack, "GET", "/incidents?group_id=grp-nothex")
    assert status == 400 and refused["error"] == "InvalidGroupId"
    status, refused = api(stack, "GET", f"/incidents?group_id={group}&instance_id={ids[0]}")
    assert status == 400 and refused["error"] == "InvalidQuery"

    again = deliver_finding(stack, attack_sequence_event(ids, finding_id=grouped[0]["Document"]
                                                         ["finding"]["id"]))
    assert again["group_id"] == group  # GuardDuty updates its finding in place: same group
    assert {r["decision"] for r in again["instances"]} == {"recorded"}
    assert [r["incident_id"] for r in again["instances"]] == [
        r["incident_id"] for r in answer["instances"]]

    release(stack, ids[0])  # one released, its group's others still contained
    assert incidents.get(answer["instances"][0]["incident_id"])["status"] == "RELEASED"
    assert [incidents.get(r["incident_id"])["status"] for r in answer["instances"][1:]] == [
        "CONTAINED", "CONTAINED"]
    assert not _isolated(stack, victims[0]) and _isolated(stack, victims[1])


def test_one_refused_instance_leaves_the_rest_of_the_group_contained(stack):
    """An instance of the group that does not exist (terminated since) is refused; the others
    are contained; the group notice says which."""
    queue = subscribe_queue(stack)
    victim = make_victim(stack, interfaces=1, volumes=1)
    answer = deliver_finding(stack, attack_sequence_event([victim["instance_id"],
                                                           "i-0fedcba9876543210"]))
    decisions = {r["instance_id"]: r["decision"] for r in answer["instances"]}
    assert decisions == {victim["instance_id"]: "acted", "i-0fedcba9876543210": "refused"}
    final, _ = finish(stack, answer["instances"][0])
    assert final["status"] == "CONTAINED" and _isolated(stack, victim)
    (grouped,) = [m for m in messages(stack, queue)
                  if m["Document"] and m["Document"]["event"] == "group"]
    assert "i-0fedcba9876543210: refused" in grouped["Text"]


def test_an_instance_contained_before_its_group_joins_it_quietly(stack):
    """The sequence's own signals opened an incident for one instance earlier: it is recorded
    there, listed with the group, and named in the group's one notice, not announced again
    (each update of a sequence would otherwise send a notice per instance)."""
    from tests.helpers import guardduty_event

    queue = subscribe_queue(stack)
    victims = [make_victim(stack, interfaces=1, volumes=1) for _ in range(3)]
    ids = [v["instance_id"] for v in victims]
    earlier = deliver_finding(stack, guardduty_event(ids[0], finding_id="e" * 32))
    finish(stack, earlier)
    messages(stack, queue)  # what the earlier incident sent
    answer = deliver_finding(stack, attack_sequence_event(ids))
    decisions = {r["instance_id"]: r["decision"] for r in answer["instances"]}
    assert decisions == {ids[0]: "recorded", ids[1]: "acted", ids[2]: "acted"}
    for result in answer["instances"][1:]:
        finish(stack, result)
    status, listed = api(stack, "GET", f"/incidents?group_id={answer['group_id']}")
    assert status == 200 and sorted(i["instance_id"] for i in listed["incidents"]) == sorted(ids)
    sent = messages(stack, queue)
    events = [(m["Document"] or {}).get("event") for m in sent]
    assert "finding-recorded" not in events, [m["Subject"] for m in sent]
    (grouped,) = [m for m in sent if m["Document"] and m["Document"]["event"] == "group"]
    assert f"{ids[0]}: recorded, incident {earlier['incident_id']}" in grouped["Text"]
