"""The incident page on the embedded AWS: written into the evidence when the incident settles,
written again when tampering is recorded and when it is released, each time listed in the
manifest, signed anew, so `evidence verify` passes; a planted manifest is never signed anew,
and only the page publisher (beside the evidence function) may sign."""

import hashlib
import json
from html.parser import HTMLParser

import pytest
from botocore.exceptions import ClientError

from chalicelib import page, publish, report
from deploy import names
from quarantine_cli import evidence
from tests.helpers import (deliver_finding, finish, guardduty_event, incident, make_victim,
                           release, wait_execution)

HOSTILE_NAME = '<script>alert(1)</script><img src="https://attacker.example/x">'


class _Elements(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags, self.loading = set(), []

    def handle_starttag(self, tag, attrs):
        self.tags.add(tag)
        self.loading += [(tag, name) for name, _ in attrs if name in ("src", "srcset", "data")]


def _elements(document: str) -> tuple[set, list]:
    """The elements of `document`, and those that would load something."""
    parser = _Elements()
    parser.feed(document)
    return parser.tags, parser.loading


def _verified(stack, incident_id: str) -> dict:
    key = evidence.load_public_key(evidence.public_key_pem(
        stack.client("kms"), stack.names["EVIDENCE_SIGNING_KEY_ARN"]))
    return evidence.verify(stack.client("s3"), stack.names["EVIDENCE_BUCKET"], incident_id, key)


def _page(stack, incident_id: str) -> tuple[str, str]:
    stored = stack.client("s3").get_object(Bucket=stack.names["EVIDENCE_BUCKET"],
                                           Key=f"{incident_id}/{page.PAGE}")
    return stored["Body"].read().decode(), stored["VersionId"]


def _contained(stack, enforcing: bool = False, **victim):
    """A victim contained through the whole pipeline (with `enforcing`, each function held
    to its own role's rights), and its incident's id."""
    made = make_victim(stack, interfaces=2, volumes=1, **victim)
    if enforcing:
        with stack.enforce_iam():
            opened = deliver_finding(stack, guardduty_event(made["instance_id"]))
            assert wait_execution(stack, opened["execution_arn"])["status"] == "SUCCEEDED"
            stack.bridge.wait_idle()
    else:
        opened = deliver_finding(stack, guardduty_event(made["instance_id"]))
    record, execution = finish(stack, opened)
    assert execution["status"] == "SUCCEEDED" and record["status"] == "CONTAINED"
    return made, record["incident_id"]


def test_the_page_is_written_listed_and_signed_when_the_incident_settles(stack):
    victim, incident_id = _contained(stack, enforcing=True, tags={"Name": HOSTILE_NAME})
    shown, version = _page(stack, incident_id)
    assert "CONTAINED" in shown and "<svg" in shown and "Timeline" in shown
    assert HOSTILE_NAME not in shown and "&lt;script&gt;alert(1)&lt;/script&gt;" in shown
    tags, loading = _elements(shown)
    assert "script" not in tags and "img" not in tags and loading == []  # nothing runs or loads
    for eni in victim["interfaces"]:
        assert f"{eni} groups" in shown

    checked = _verified(stack, incident_id)
    assert checked["verified"], evidence.render(checked)
    (listed,) = [o for o in checked["objects"] if o["key"].endswith(page.PAGE)]
    assert listed["status"] == evidence.OK
    recorded = incident(stack, incident_id)
    assert [t["outcome"] for t in recorded["timeline"] if t["step"] == "page"] == ["published"]
    manifest = stack.client("s3").get_object(Bucket=stack.names["EVIDENCE_BUCKET"],
                                             Key=f"{incident_id}/manifest.json")["Body"].read()
    assert report.evidence(recorded)["manifest_sha256"] == hashlib.sha256(manifest).hexdigest()
    assert version  # a versioned object: the manifest lists this version


def test_tampering_and_release_write_the_page_again_and_it_still_verifies(stack):
    victim, incident_id = _contained(stack)
    _, first = _page(stack, incident_id)
    eni, groups = next(iter(victim["interfaces"].items()))
    stack.client("ec2").modify_network_interface_attribute(NetworkInterfaceId=eni,
                                                           Groups=groups)
    stack.bridge.wait_idle()  # CloudTrail's event, the watch's repair, the page
    shown, after_tampering = _page(stack, incident_id)
    assert after_tampering != first and "ModifyNetworkInterfaceAttribute" in shown
    assert "tampering" in shown and _verified(stack, incident_id)["verified"]

    release(stack, victim["instance_id"])
    shown, released = _page(stack, incident_id)
    assert released != after_tampering and "RELEASED" in shown and "Restored" in shown
    assert _verified(stack, incident_id)["verified"]


def test_a_planted_manifest_is_never_signed_anew(stack):
    """Whoever may write the evidence bucket may plant a manifest listing what they chose; the
    publisher checks the stored signature first and signs nothing it cannot vouch for."""
    _, incident_id = _contained(stack)
    s3, bucket = stack.client("s3"), stack.names["EVIDENCE_BUCKET"]
    signature_key = f"{incident_id}/manifest.sig.json"
    before = s3.head_object(Bucket=bucket, Key=signature_key)["VersionId"]
    planted = json.dumps({"incident_id": incident_id, "objects": []}).encode()
    s3.put_object(Bucket=bucket, Key=f"{incident_id}/manifest.json", Body=planted)

    payload, error = stack.bridge.invoke(names.function(stack.stage, publish.FUNCTION),
                                         {"incident_id": incident_id})
    assert error is None and payload["published"] is False
    assert "does not verify" in payload["reason"]
    assert s3.head_object(Bucket=bucket, Key=signature_key)["VersionId"] == before
    assert not _verified(stack, incident_id)["verified"]  # the planted manifest stays unsigned


@pytest.mark.parametrize("event", [{}, {"incident_id": "../x"}, ["inc-0123456789ab"],
                                   {"incident_id": "inc-0123456789ab"}])
def test_the_publisher_answers_what_is_no_incident_of_its_own_without_writing(stack, event):
    payload, error = stack.bridge.invoke(names.function(stack.stage, publish.FUNCTION), event)
    assert error is None and payload["published"] is False
    assert stack.client("s3").list_objects_v2(
        Bucket=stack.names["EVIDENCE_BUCKET"]).get("KeyCount", 0) == 0


def test_a_compromised_report_step_cannot_sign(stack):
    """The report step asks for the page; it holds no kms:Sign itself."""
    from chalicelib import aws

    with stack.enforce_iam():
        credentials = stack.bridge.roles.credentials(names.function(stack.stage, "report"))
        kms = aws.client("kms", stack.region, credentials)
        with pytest.raises(ClientError) as denied:
            kms.sign(KeyId=stack.names["EVIDENCE_SIGNING_KEY_ARN"], Message=b"\0" * 32,
                     MessageType="DIGEST", SigningAlgorithm="ECDSA_SHA_256")
    assert denied.value.response["Error"]["Code"] == "AccessDeniedException"
