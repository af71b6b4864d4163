"""Exemptions, tried as the host and the insider would: only an exemption the product issued
(POST /exemptions: sealed, with who, why and until when) keeps a finding from being acted on; a
tag the instance's own role writes, an item an insider writes into the table, an exemption
revoked or expired stop nothing, and the report says what was ignored."""

from datetime import datetime, timedelta, timezone

import pytest

from chalicelib import exemptions, incidents
from tests.helpers import (
    api,
    deliver_finding,
    finish,
    guardduty_event,
    instance_tags,
    interface_groups,
    make_victim,
    messages,
    principal,
    product_groups,
    subscribe_queue,
)


def _until(days: float = 7) -> str:
    return (datetime.now(timezone.utc) + timedelta(days=days)).strftime(exemptions.TIME_FORMAT)


def _exempt(stack, instance_id: str, reason: str = "load test tonight") -> dict:
    status, answer = api(stack, "POST", "/exemptions", {
        "instance_id": instance_id, "reason": reason, "expires": _until()})
    assert status == 201, answer
    return answer["exemption"]


def _isolated(stack, victim) -> None:
    isolation = product_groups(stack, victim["vpc_id"])["isolation"]["GroupId"]
    for eni in victim["interfaces"]:
        assert interface_groups(stack, eni) == [isolation]


def _untouched(stack, victim) -> None:
    for eni, groups in victim["interfaces"].items():
        assert interface_groups(stack, eni) == groups
    assert "QuarantineIncident" not in instance_tags(stack, victim["instance_id"])


def _contained_noting(stack, victim, queue, noted: str) -> dict:
    """The finding is acted on as if no exemption were there, and every report says why."""
    started = deliver_finding(stack, guardduty_event(victim["instance_id"]))
    assert started["decision"] == "acted", started
    record, _ = finish(stack, started)
    assert record["status"] == "CONTAINED", record["errors"]
    _isolated(stack, victim)
    assert any(noted in note for note in record["notes"]), record["notes"]
    reports = [m["Text"] for m in messages(stack, queue)]
    assert len(reports) >= 2 and all(noted in text for text in reports), reports
    return record


def test_the_host_tagging_itself_exempt_is_contained_all_the_same(stack):
    """The instance's own role may tag it (ec2:CreateTags): it writes the exempt tag, in the
    spelling the old comparison accepted, and is contained, the report naming the tag."""
    queue = subscribe_queue(stack)
    victim = make_victim(stack, interfaces=2, volumes=1)
    host = principal(stack, "host-role", ["ec2:CreateTags"])
    with stack.enforce_iam():
        host("ec2").create_tags(Resources=[victim["instance_id"]],
                                Tags=[{"Key": "QuarantineExempt", "Value": "True "}])
    assert instance_tags(stack, victim["instance_id"])["QuarantineExempt"] == "True "
    _contained_noting(stack, victim, queue, "unverified exemption ignored: tag QuarantineExempt")


def test_where_the_site_protects_the_key_the_plain_tag_is_honoured(stack):
    stack.configure(TRUST_EXEMPT_TAG="true")
    queue = subscribe_queue(stack)
    victim = make_victim(stack, interfaces=1, volumes=1, tags={"QuarantineExempt": "true"})
    decided = deliver_finding(stack, guardduty_event(victim["instance_id"]))
    assert decided["decision"] == "exempt"
    _untouched(stack, victim)
    (notice,) = messages(stack, queue)
    assert notice["Subject"].endswith("not acted on: exempt")
    assert "TRUST_EXEMPT_TAG=true" in notice["Text"]


def test_an_exemption_the_product_issued_stops_the_finding_and_needs_force_by_hand(stack):
    queue = subscribe_queue(stack)
    victim = make_victim(stack, interfaces=1, volumes=1)
    instance = victim["instance_id"]
    granted = _exempt(stack, instance)
    assert "seal" not in granted and granted["reason"] == "load test tonight"
    assert instance_tags(stack, instance)["QuarantineExempt"] == f"until {granted['expires_at']}"
    (announced,) = messages(stack, queue)
    assert announced["Subject"].endswith("exemption granted")

    decided = deliver_finding(stack, guardduty_event(instance))
    assert decided["decision"] == "exempt"
    _untouched(stack, victim)
    (notice,) = messages(stack, queue)
    assert "load test tonight" in notice["Text"] and granted["expires_at"] in notice["Text"]

    status, refused = api(stack, "POST", "/quarantine", {"instance_id": instance})
    assert status == 409 and refused["error"] == "InstanceExempt"
    assert "load test tonight" in refused["message"]
    status, forced = api(stack, "POST", "/quarantine", {"instance_id": instance, "force": True})
    assert status == 202, forced
    record, _ = finish(stack, forced)
    assert record["status"] == "CONTAINED"
    (note,) = record["notes"]  # the tag showed the exemption: not noted as unverified
    assert note.startswith("forced past an exemption")

    status, listed = api(stack, "GET", "/exemptions")
    assert status == 200
    (shown,) = listed["exemptions"]
    assert shown["instance_id"] == instance and shown["standing"] is True


def test_an_exemption_an_insider_writes_into_the_table_stops_nothing(stack):
    """The insider may write the table (dynamodb:PutItem): they copy a real exemption onto
    another instance and lengthen it. Its seal does not hold: the instance is contained."""
    queue = subscribe_queue(stack)
    decoy = make_victim(stack, interfaces=1, volumes=1)
    victim = make_victim(stack, interfaces=1, volumes=1)
    _exempt(stack, decoy["instance_id"])
    real = incidents.get_exemption(stack.account, stack.region, decoy["instance_id"])
    forged = {**real, "instance_id": victim["instance_id"], "expires_at": _until(60)}
    insider = principal(stack, "insider", ["dynamodb:PutItem"])
    with stack.enforce_iam():
        insider("dynamodb").put_item(
            TableName=stack.names["INCIDENTS_TABLE"], Item=incidents._serialized({
                **forged, "pk": incidents.EXEMPTION_PREFIX + incidents.instance_key(
                    stack.account, stack.region, victim["instance_id"]),
                "record_type": incidents.EXEMPTION_RECORD, "opened_at": real["granted_at"]}))
    messages(stack, queue)  # the decoy's announcement
    _contained_noting(stack, victim, queue, "does not carry the product's seal")
    status, listed = api(stack, "GET", "/exemptions")
    standing = {e["instance_id"]: e["standing"] for e in listed["exemptions"]}
    assert standing == {decoy["instance_id"]: True, victim["instance_id"]: False}


def _stored(stack, instance_id: str) -> dict:
    """The exemption item as it is stored (an insider reads it with a no-op UpdateItem)."""
    return stack.client("dynamodb").get_item(TableName=stack.names["INCIDENTS_TABLE"], Key={
        "pk": {"S": incidents.EXEMPTION_PREFIX + incidents.instance_key(
            stack.account, stack.region, instance_id)}})["Item"]


def _put_as_insider(stack, item: dict, instance_id: str) -> None:
    """The insider (dynamodb:PutItem only) writes `item` under `instance_id`'s key."""
    insider = principal(stack, "insider", ["dynamodb:PutItem"])
    with stack.enforce_iam():
        insider("dynamodb").put_item(TableName=stack.names["INCIDENTS_TABLE"], Item={
            **item, "pk": {"S": incidents.EXEMPTION_PREFIX + incidents.instance_key(
                stack.account, stack.region, instance_id)}})


def test_a_real_exemption_copied_under_another_instance_stops_nothing(stack):
    """The insider copies a standing exemption, seal and all, unchanged, to the compromised
    instance's key."""
    queue = subscribe_queue(stack)
    decoy = make_victim(stack, interfaces=1, volumes=1)
    victim = make_victim(stack, interfaces=1, volumes=1)
    _exempt(stack, decoy["instance_id"])
    _put_as_insider(stack, _stored(stack, decoy["instance_id"]), victim["instance_id"])
    messages(stack, queue)  # the decoy's announcement
    _contained_noting(stack, victim, queue, "misplaced exemption ignored")
    status, revoked = api(stack, "DELETE", f"/exemptions/{victim['instance_id']}",
                          {"reason": "not the decoy's"})
    assert (status, revoked["error"]) == (404, "ExemptionNotFound")
    status, listed = api(stack, "GET", "/exemptions")
    assert sorted(e["standing"] for e in listed["exemptions"]) == [False, True]


def test_a_revoked_exemption_put_back_by_an_insider_stops_nothing(stack):
    """The insider saved the sealed record while it stood and puts it back after its
    revocation: the instance no longer shows it (its tag was taken away)."""
    queue = subscribe_queue(stack)
    victim = make_victim(stack, interfaces=1, volumes=1)
    _exempt(stack, victim["instance_id"])
    saved = _stored(stack, victim["instance_id"])
    status, _ = api(stack, "DELETE", f"/exemptions/{victim['instance_id']}", {"reason": "over"})
    assert status == 200
    _put_as_insider(stack, saved, victim["instance_id"])
    status, listed = api(stack, "GET", "/exemptions")
    (shown,) = listed["exemptions"]
    assert shown["standing"] is False and "does not show it" in shown["note"]
    messages(stack, queue)  # granted, revoked
    _contained_noting(stack, victim, queue, "does not show it")


def test_the_host_writing_a_tag_like_the_products_is_noted_too(stack):
    queue = subscribe_queue(stack)
    victim = make_victim(stack, interfaces=1, volumes=1,
                         tags={"QuarantineExempt": "until 2099-01-01T00:00:00Z"})
    _contained_noting(stack, victim, queue, "unverified exemption ignored: tag QuarantineExempt")


def test_a_revoked_exemption_stops_nothing_and_stays_on_record(stack):
    queue = subscribe_queue(stack)
    victim = make_victim(stack, interfaces=1, volumes=1)
    instance = victim["instance_id"]
    _exempt(stack, instance)
    status, answer = api(stack, "DELETE", f"/exemptions/{instance}",
                         {"reason": "load test over"})
    assert status == 200, answer
    assert answer["exemption"]["revocation_reason"] == "load test over"
    assert "QuarantineExempt" not in instance_tags(stack, instance)
    status, again = api(stack, "DELETE", f"/exemptions/{instance}", {"reason": "twice"})
    assert status == 404 and again["error"] == "ExemptionNotFound"
    status, listed = api(stack, "GET", "/exemptions")
    (shown,) = listed["exemptions"]
    assert shown["standing"] is False and "revoked" in shown["note"]
    messages(stack, queue)  # granted, revoked
    started = deliver_finding(stack, guardduty_event(instance))
    assert started["decision"] == "acted"
    record, _ = finish(stack, started)
    assert record["status"] == "CONTAINED" and record["notes"] == []
    _isolated(stack, victim)


def test_an_expired_exemption_stops_nothing(stack):
    """Time passes (the product's own record, sealed, whose expiry is now past)."""
    queue = subscribe_queue(stack)
    victim = make_victim(stack, interfaces=1, volumes=1)
    lapsed = datetime.now(timezone.utc) - timedelta(minutes=1)
    incidents.put_exemption(exemptions.sealed({
        "instance_id": victim["instance_id"], "account_id": stack.account,
        "region": stack.region, "reason": "last week's test", "granted_by": "someone",
        "expires_at": lapsed.strftime(exemptions.TIME_FORMAT),
        "granted_at": (lapsed - timedelta(days=1)).strftime(exemptions.TIME_FORMAT)}))
    started = deliver_finding(stack, guardduty_event(victim["instance_id"]))
    assert started["decision"] == "acted"
    finish(stack, started)
    _isolated(stack, victim)
    messages(stack, queue)


@pytest.mark.parametrize("body,status,code", [
    ({"expires": "2099-01-01T00:00:00Z"}, 400, "MissingReason"),
    ({"reason": "x"}, 400, "InvalidExpiry"),
    ({"reason": "x", "expires": "2020-01-01T00:00:00Z"}, 400, "InvalidExpiry"),
    ({"reason": "x", "expires": "tomorrow"}, 400, "InvalidExpiry"),
    ({"reason": "x", "expires": "far", "by": "me"}, 400, "UnknownField"),
])
def test_exemption_requests_are_checked_at_the_edge(stack, body, status, code):
    victim = make_victim(stack, interfaces=1, volumes=1)
    answered, answer = api(stack, "POST", "/exemptions",
                           {"instance_id": victim["instance_id"], **body})
    assert (answered, answer["error"]) == (status, code), answer
    assert "QuarantineExempt" not in instance_tags(stack, victim["instance_id"])


def test_an_exemption_is_bounded_and_names_a_live_instance(stack):
    victim = make_victim(stack, interfaces=1, volumes=1)
    status, answer = api(stack, "POST", "/exemptions", {
        "instance_id": victim["instance_id"], "reason": "x",
        "expires": _until(exemptions.MAX_DAYS + 1)})
    assert (status, answer["error"]) == (400, "InvalidExpiry")
    assert f"more than {exemptions.MAX_DAYS} days" in answer["message"]
    status, answer = api(stack, "POST", "/exemptions", {
        "instance_id": "i-0123456789abcdef0", "reason": "x", "expires": _until()})
    assert (status, answer["error"]) == (404, "InstanceNotFound")
