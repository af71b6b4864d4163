"""Notices as subscribers get them: read back from the recorded Publish requests and from SQS.
Every message is published with MessageStructure=json: the text for people under `default`
and `email`, the versioned document under every protocol a program reads (`sqs`, `lambda`,
`https`, `http`, `email-json`, `firehose`); attributes a filter
policy reads; a Chatbot card on the Chatbot topic."""

import json
import re

from chalicelib import notices
from deploy import names
from local import drive
from tests.helpers import (
    deliver_finding,
    finish,
    guardduty_event,
    make_victim,
    messages,
    release,
    subscribe_queue,
)

NAMED = {"Name": "web-1", "Environment": "production", "Team": "payments"}
ATTRIBUTES = {"event", "status", "account", "region", "finding_type", "severity"}
# What a person should never read: JSON, Python reprs.
MACHINE_DUMP = re.compile(r"[{}]|\['|\bNone\b|\bTrue\b|\bFalse\b|-> ")


def _contained(stack, **victim_options):
    victim = make_victim(stack, interfaces=2, volumes=2, tags=NAMED, **victim_options)
    record, _ = finish(stack, deliver_finding(stack, guardduty_event(victim["instance_id"])))
    return victim, record


def _check_structure(sent: dict) -> tuple[str, dict]:
    """The per-protocol message of one recorded Publish: (text, document)."""
    message = sent["message"]
    assert set(message) == {"default", "email", "sqs", "lambda", "https", "http", "email-json",
                            "firehose"}, message.keys()
    assert message["default"] == message["email"]
    assert len({message[key] for key in notices.DOCUMENT_PROTOCOLS}) == 1
    document = json.loads(message["sqs"])
    assert (document["schema"], document["version"]) == (notices.SCHEMA, notices.VERSION)
    assert not MACHINE_DUMP.search(message["default"]), MACHINE_DUMP.search(message["default"])
    return message["default"], document


def test_every_message_is_per_protocol_with_attributes_and_a_readable_text(stack):
    queue = subscribe_queue(stack)
    victim, record = _contained(stack)
    release(stack, victim["instance_id"])

    sent = drive.published(stack)
    events = []
    for published in sent.values():
        text, document = _check_structure(published)
        assert set(published["attributes"]) == ATTRIBUTES
        values = {k: v["Value"] for k, v in published["attributes"].items()}
        assert values["event"] == document["event"] and values["status"] == document["status"]
        assert (values["account"], values["region"]) == (stack.account, "us-east-1")
        assert values["finding_type"] == "Backdoor:EC2/C&CActivity.B!DNS"
        assert values["severity"] == "8.0" and published["attributes"]["severity"]["Type"] == \
            "Number"
        assert "i-" in text and "(web-1)" in text
        events.append(document["event"])
    assert events == ["opened", "report", "released"]

    received = messages(stack, queue)  # what the SQS subscriber got: the document
    assert [m["Document"]["event"] for m in received] == events
    report = next(m for m in received if m["Document"]["event"] == "report")
    document = report["Document"]
    assert document["instance"]["name"] == "web-1"
    assert document["instance"]["tags"] == {"Environment": "production", "Team": "payments"}
    assert document["instance"]["private_ips"] and document["instance"]["vpc_id"] == victim[
        "vpc_id"]
    assert document["status"] == "CONTAINED" and document["incident_id"] == record["incident_id"]
    timings = document["timings"]
    assert timings["opened_at"] == record["opened_at"]
    assert 0 < timings["seconds_after_opening"]["isolated"] <= timings["seconds_after_opening"][
        "evidence_completed"] <= timings["seconds_after_opening"]["reported"]
    assert document["evidence"]["signature"].startswith("signed")
    assert document["evidence"]["prefix"].endswith(f"/{record['incident_id']}/")
    assert set(document["links"]) == {"instance", "finding", "execution", "evidence", "logs"}

    text = report["Text"]
    for wanted in ("Instance:\n", "tags: Environment=production, Team=payments", "private IPs: ",
                   "Finding:\n  Backdoor:EC2/C&CActivity.B!DNS, severity 8.0",
                   "remote: domain", "Timeline:", "incident opened", "isolated (+",
                   "evidence complete (+", "termination protection: off → on",
                   "shutdown behaviour: terminate → stop", "metadata service: enabled → disabled",
                   "→ ec2-quarantine-isolation (sg-", "signed (ECDSA_SHA_256)",
                   f"ec2-quarantine release {victim['instance_id']}", "console.aws.amazon.com"):
        assert wanted in text, wanted
    for eni, groups in victim["interfaces"].items():  # the groups by name, then id
        assert any(f"{eni} groups: " in line and all(f"({g})" in line for g in groups)
                   for line in text.splitlines())
    assert "sha256 " in text and text.count("sha256") == 1  # the manifest's, not each object's


def test_a_filter_policy_on_status_pages_only_on_partial_or_failed(stack):
    pager = subscribe_queue(stack, "pager",
                            FilterPolicy=json.dumps({"status": ["PARTIAL", "FAILED"]}))
    _contained(stack)
    assert messages(stack, pager) == []  # opened, contained: no page

    stack.faults.arm("ec2", "DisassociateIamInstanceProfile", "UnauthorizedOperation")
    _, partial = _contained(stack)
    assert partial["status"] == "PARTIAL"
    (paged,) = messages(stack, pager)
    assert paged["Document"]["status"] == "PARTIAL"
    assert paged["MessageAttributes"]["status"] == {"Type": "String", "Value": "PARTIAL"}
    assert "detach-instance-profile" in paged["Text"]


def test_a_chatbot_topic_gets_every_notice_as_a_custom_notification(stack):
    cards_queue = drive.subscribe_chatbot(stack)
    reports = subscribe_queue(stack)
    victim, record = _contained(stack)
    deliver_finding(stack, guardduty_event(victim["instance_id"]))  # recorded on the incident

    cards = drive.cards(stack, cards_queue)
    assert [c["metadata"]["eventType"] for c in cards] == ["opened", "report", "finding-recorded"]
    for card in cards:  # the shape AWS Chatbot documents for custom notifications
        assert (card["version"], card["source"]) == ("1.0", "custom")
        content = card["content"]
        assert content["textType"] == "client-markdown"
        assert isinstance(content["title"], str) and "web-1" in content["title"]
        assert isinstance(content["description"], str) and content["description"]
        assert all(isinstance(step, str) for step in content.get("nextSteps", []))
        assert all(isinstance(word, str) for word in content.get("keywords", []))
        assert card["metadata"]["threadId"] == record["incident_id"]  # one thread per incident
    report = cards[1]
    assert "CONTAINED" in report["content"]["keywords"]
    assert any(f"ec2-quarantine release {victim['instance_id']}" in step
               for step in report["content"]["nextSteps"])
    assert len(messages(stack, reports)) == 3  # the report topic got them all, as before


def test_the_state_machines_own_notice_is_per_protocol_too(stack):
    """The report step fails for good: the state machine writes the notice itself, in the
    same structure, with the attributes it knows."""
    queue = subscribe_queue(stack)
    cards_queue = drive.subscribe_chatbot(stack)
    victim = make_victim(stack, interfaces=1, volumes=1)
    stack.faults.arm("lambda", "Invoke", "AccessDeniedException", count=20,
                     resource=names.function(stack.stage, "report"))
    record, execution = finish(stack, deliver_finding(stack, guardduty_event(
        victim["instance_id"])))

    failed = next(p for p in drive.published(stack).values()
                  if p["subject"].endswith("report step failed"))
    text, document = _check_structure(failed)
    assert document["event"] == "report-failed" and document["incident_id"] == record[
        "incident_id"]
    assert record["incident_id"] in text
    values = {k: v["Value"] for k, v in failed["attributes"].items()}
    assert values == {"event": "report-failed", "status": record["status"],
                      "account": stack.account, "region": "us-east-1",
                      "finding_type": "Backdoor:EC2/C&CActivity.B!DNS"}
    assert any(m["Document"]["event"] == "report-failed" for m in messages(stack, queue))
    assert [c["metadata"]["eventType"] for c in drive.cards(stack, cards_queue)][-1] == \
        "report-failed"
