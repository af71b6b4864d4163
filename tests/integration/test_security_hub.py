"""Security Hub both ways on the embedded AWS: the "Quarantine instance" custom action contains
every instance the selected findings name, and the originating findings follow the incident
(NOTIFIED with a note, the outcome, RESOLVED on release) — asserted on the findings Security Hub
holds and their history; a Security Hub that is off or denies leaves containment whole and is
reported; and neither the insider who writes the table nor a compromised sync function can turn
the update against another finding or hide one."""

import pytest
from botocore.exceptions import ClientError

from chalicelib import incidents, securityhub
from deploy import names
from local import scenario
from local.drive import security_hub_action_event, security_hub_finding
from tests.helpers import (
    deliver_finding,
    finish,
    guardduty_event,
    interface_groups,
    make_victim,
    messages,
    product_groups,
    put_event,
    release,
    remove_action,
    subscribe_queue,
    wait_execution,
)


@pytest.fixture
def hub(stack):
    """SECURITY_HUB on, Security Hub on, the stage's custom action made."""
    stack.configure(SECURITY_HUB="true")
    return stack.client("securityhub")


def _imported(hub, *selected) -> list[dict]:
    hub.batch_import_findings(Findings=list(selected))
    return list(selected)


def _identifier(finding: dict) -> dict:
    return {"Id": finding["Id"], "ProductArn": finding["ProductArn"]}


def _held(hub, finding: dict) -> dict:
    (held,) = [f for f in hub.get_findings()["Findings"] if f["Id"] == finding["Id"]]
    return held


def _history(hub, finding: dict) -> list[tuple[str, str]]:
    """(workflow status, note) after each update of the finding, oldest first."""
    status, note, seen = "NEW", "", []
    for record in hub.get_finding_history(FindingIdentifier=_identifier(finding))["Records"]:
        for update in record["Updates"]:
            if update["UpdatedField"] == "Workflow.Status":
                status = update["NewValue"]
            if update["UpdatedField"] == "Note.Text":
                note = update["NewValue"]
        seen.append((status, note))
    return seen


def _act(stack, selected: list[dict], resources: list[str] | None = None) -> dict:
    """The custom action's event for `selected`, delivered; what its handler answered."""
    handler = names.function(stack.stage, "on_security_hub_action")
    before = len(stack.bridge.invocations)
    arn = securityhub.action_arn(stack.region, stack.account)
    event = security_hub_action_event(arn, selected)
    if resources is not None:
        event["resources"] = resources
    put_event(stack, event)
    stack.bridge.wait_idle()
    (delivered,) = [i for i in stack.bridge.invocations[before:] if i.function_name == handler]
    assert delivered.error is None, delivered.result
    return delivered.result


def _isolated(stack, victim) -> None:
    isolation = product_groups(stack, victim["vpc_id"])["isolation"]["GroupId"]
    for eni in victim["interfaces"]:
        assert interface_groups(stack, eni) == [isolation]


def _synced(incident_id: str) -> dict:
    """What the last update of the incident's findings left on it."""
    return incidents.get(incident_id).get("security_hub") or {}


def test_a_custom_action_contains_every_instance_and_the_findings_follow_to_release(stack, hub):
    scenario.hold_snapshots(4)  # the incidents stay open a few seconds: the first note is seen
    first = make_victim(stack, interfaces=2, volumes=1)
    second = make_victim(stack, interfaces=1, volumes=1)
    one, both = _imported(hub, security_hub_finding([first["instance_id"]]),
                          security_hub_finding([first["instance_id"], second["instance_id"]],
                                               product="inspector"))
    answer = _act(stack, [one, both])
    assert answer["decision"] == "quarantined" and answer["not_read"] == []
    opened = {r["instance_id"]: r for r in answer["instances"]}
    assert set(opened) == {first["instance_id"], second["instance_id"]}
    assert {r["decision"] for r in opened.values()} == {"acted"}
    first_incident = incidents.get(opened[first["instance_id"]]["incident_id"])
    assert first_incident["source"] == "securityhub"
    assert first_incident["requested_by"] == securityhub.action_arn(stack.region, stack.account)
    assert one["Id"] in first_incident["reason"] and both["Id"] in first_incident["reason"]
    assert first_incident["security_hub_findings"] == [{**_identifier(one), "alone": True},
                                                       {**_identifier(both), "alone": False}]
    assert incidents.get(opened[second["instance_id"]]["incident_id"])[
        "security_hub_findings"] == [{**_identifier(both), "alone": False}]
    held = _held(hub, one)
    assert held["Workflow"]["Status"] == "NOTIFIED", held
    assert held["Note"]["UpdatedBy"] == "ec2-quarantine"
    assert held["Note"]["Text"].startswith(
        f"ec2-quarantine incident {first_incident['incident_id']} on {first['instance_id']}")
    assert "opened: containment under way" in held["Note"]["Text"]
    assert _synced(first_incident["incident_id"])["outcome"] == "updated"

    for result in opened.values():
        final, execution = finish(stack, result)
        assert execution["status"] == "SUCCEEDED" and final["status"] == "CONTAINED"
    _isolated(stack, first)
    _isolated(stack, second)
    assert "containment CONTAINED" in _held(hub, one)["Note"]["Text"]

    release(stack, first["instance_id"])
    history = _history(hub, one)
    assert [status for status, _ in history] == ["NOTIFIED", "NOTIFIED", "RESOLVED"], history
    assert "opened" in history[0][1] and "containment CONTAINED" in history[1][1]
    assert "released: cleared" in history[2][1]
    assert _synced(first_incident["incident_id"]) == {
        **_synced(first_incident["incident_id"]), "workflow_status": "RESOLVED",
        "outcome": "updated", "findings": 2, "not_updated": 0}
    # `both` names the second instance too, still contained: the first one's release notes it
    # and leaves it NOTIFIED (its record is not errors: the incident's own stay empty).
    assert [status for status, _ in _history(hub, both)][-1] == "NOTIFIED"
    assert "released: cleared" in _held(hub, both)["Note"]["Text"]
    assert not incidents.get(first_incident["incident_id"]).get("errors")


def test_a_guardduty_finding_is_followed_in_security_hub_by_its_arn_once_imported(stack, hub):
    """Security Hub imports GuardDuty's finding minutes after the event that opened the
    incident: the first update finds nothing (recorded, not announced), the settling one
    finds it."""
    queue = subscribe_queue(stack)
    scenario.hold_snapshots(4)
    victim = make_victim(stack, interfaces=1, volumes=1)
    event = guardduty_event(victim["instance_id"], finding_id="b" * 32)
    result = deliver_finding(stack, event)
    assert _synced(result["incident_id"])["outcome"] == "not-found"
    (imported,) = _imported(hub, security_hub_finding(
        [victim["instance_id"]], finding_id=event["detail"]["arn"]))
    final, _ = finish(stack, result)
    assert final["status"] == "CONTAINED"
    assert final["security_hub_findings"] == [{**_identifier(imported), "alone": True}]
    held = _held(hub, imported)
    assert held["Workflow"]["Status"] == "NOTIFIED" and "CONTAINED" in held["Note"]["Text"]
    assert _synced(result["incident_id"])["outcome"] == "updated"
    assert not [m for m in messages(stack, queue) if "Security Hub" in m["Subject"]]


def test_a_pasted_finding_is_not_followed_whoever_it_names(stack, hub):
    """On the manual path the caller chooses the finding they paste, and so the finding it
    would update: none is."""
    from tests.helpers import api

    victim = make_victim(stack, interfaces=1, volumes=1)
    event = guardduty_event(victim["instance_id"], finding_id="d" * 32)
    status, answer = api(stack, "POST", "/quarantine", {
        "instance_id": victim["instance_id"], "reason": "pasted", "finding": event})
    assert status == 202, answer
    final, _ = finish(stack, answer)
    assert final["security_hub_findings"] == [] and not final.get("security_hub")


def test_a_denied_or_absent_security_hub_leaves_containment_whole_and_is_reported(stack, hub):
    queue = subscribe_queue(stack)
    victim = make_victim(stack, interfaces=2, volumes=1)
    (finding,) = _imported(hub, security_hub_finding([victim["instance_id"]]))
    with stack.enforce_iam():
        remove_action(stack, names.function(stack.stage, "sync_findings"),
                      "securityhub:BatchUpdateFindings")
        answer = _act(stack, [finding])
        (result,) = answer["instances"]
        execution = wait_execution(stack, result["execution_arn"])
        stack.bridge.wait_idle()
    final = incidents.get(result["incident_id"])
    assert execution["status"] == "SUCCEEDED" and final["status"] == "CONTAINED"
    _isolated(stack, victim)
    assert final["security_hub"]["outcome"] == "failed" and not final.get("errors")
    assert {e["code"] for e in final["security_hub"]["errors"]} == {"AccessDeniedException"}
    assert _held(hub, finding)["Workflow"]["Status"] == "NEW"
    reported = [m for m in messages(stack, queue) if "Security Hub not updated" in m["Subject"]]
    assert len(reported) == 1, reported  # once, not at each update that failed the same way
    assert "Containment is not affected" in reported[0]["Text"]

    hub.disable_security_hub()  # off in the account: the next incident is contained as well
    other = make_victim(stack, interfaces=1, volumes=1)
    result = deliver_finding(stack, guardduty_event(other["instance_id"], finding_id="c" * 32))
    final, _ = finish(stack, result)
    assert final["status"] == "CONTAINED" and final["security_hub"]["outcome"] == "failed"
    assert {e["code"] for e in final["security_hub"]["errors"]} == {"InvalidAccessException"}


def test_another_custom_action_or_an_unreadable_finding_quarantines_nothing(stack, hub):
    victim = make_victim(stack, interfaces=1, volumes=1)
    (finding,) = _imported(hub, security_hub_finding([victim["instance_id"]]))
    other = f"arn:aws:securityhub:{stack.region}:{stack.account}:action/custom/SendToTicket"
    assert _act(stack, [finding], resources=[other])["decision"] == "ignored"
    forged = {**finding, "ProductArn": "not a product"}
    unnamed = {**finding, "Resources": [{"Type": "AwsEc2Instance", "Id": "no instance"}]}
    # imported into this account, naming an instance of another: not read
    elsewhere = security_hub_finding([victim["instance_id"]], account="210987654321")
    elsewhere["AwsAccountId"] = stack.account
    answer = _act(stack, [forged, unnamed, elsewhere])
    assert answer["instances"] == [] and len(answer["not_read"]) == 3, answer
    assert "outside the finding's account" in answer["not_read"][2]
    assert incidents.active_for(stack.account, stack.region, victim["instance_id"]) is None
    assert _act(stack, [finding] * 101)["decision"] == "dropped"
    stack.configure(SECURITY_HUB="false")
    assert _act(stack, [finding])["decision"] == "ignored"
    assert incidents.active_for(stack.account, stack.region, victim["instance_id"]) is None


def test_one_action_quarantines_at_most_25_instances_and_says_which_it_left(stack, hub):
    ids = [f"i-{n:017x}" for n in range(1, 28)]  # none exists: each is refused (404), quickly
    answer = _act(stack, [security_hub_finding(ids)])
    assert [r["instance_id"] for r in answer["instances"]] == ids[:25]
    assert {r["decision"] for r in answer["instances"]} == {"refused"}
    assert [p.split()[1] for p in answer["not_read"]] == ids[25:]


def test_the_insider_cannot_point_the_sync_at_another_finding(stack, hub):
    """Whoever may write the table writes another finding (one they want hidden) into the
    incident, and writes it RELEASED. An update takes the findings from the execution's
    sealed input: theirs is untouched. And RESOLVED needs the release's own execution, sealed
    for this incident: asked without one, or with the incident's quarantine execution, it is
    refused."""
    victim = make_victim(stack, interfaces=1, volumes=1)
    mine, theirs = _imported(hub, security_hub_finding([victim["instance_id"]]),
                             security_hub_finding(["i-0fedcba9876543210"]))
    (result,) = _act(stack, [mine])["instances"]
    finish(stack, result)
    stack.client("dynamodb").update_item(
        TableName=stack.names["INCIDENTS_TABLE"], Key={"pk": {"S": result["incident_id"]}},
        UpdateExpression="SET security_hub_findings = :theirs, #s = :released",
        ExpressionAttributeNames={"#s": "status"},
        ExpressionAttributeValues={":released": {"S": "RELEASED"}, ":theirs": {"L": [{"M": {
            "Id": {"S": theirs["Id"]}, "ProductArn": {"S": theirs["ProductArn"]}}}]}})
    sync = names.function(stack.stage, "sync_findings")
    for forged in ({}, {"release_execution": result["execution_arn"]},
                   {"release_execution": result["execution_arn"] + "-release"}):
        answer = stack.bridge.invoke(sync, {"incident_id": result["incident_id"],
                                            "workflow_status": "RESOLVED", **forged})[0]
        assert answer["updated"] is False, answer
    answer = stack.bridge.invoke(sync, {"incident_id": result["incident_id"],
                                        "workflow_status": "NOTIFIED"})[0]
    assert answer["updated"] is False and "released" in answer["reason"], answer
    assert _held(hub, theirs)["Workflow"]["Status"] == "NEW"
    assert [status for status, _ in _history(hub, mine)] == ["NOTIFIED"] * 2


def test_a_compromised_sync_function_can_neither_hide_a_finding_nor_change_its_severity(
        stack, hub):
    """Its role may set NOTIFIED or RESOLVED and a note, nothing else: no SUPPRESSED, no
    severity, type or verification state (IAM's securityhub:ASFFSyntaxPath keys)."""
    import boto3

    (finding,) = _imported(hub, security_hub_finding(["i-0123456789abcdef0"]))
    keys = stack.bridge.roles.credentials(names.function(stack.stage, "sync_findings"))
    compromised = boto3.session.Session(
        aws_access_key_id=keys.access_key_id, aws_secret_access_key=keys.secret_access_key,
        aws_session_token=keys.session_token, region_name=stack.region).client(
        "securityhub", endpoint_url=stack.endpoint)
    target = [_identifier(finding)]
    with stack.enforce_iam():
        for move in ({"Workflow": {"Status": "SUPPRESSED"}},
                     {"Workflow": {"Status": "NOTIFIED"}, "Severity": {"Label": "INFORMATIONAL"}},
                     {"Workflow": {"Status": "NOTIFIED"}, "VerificationState": "FALSE_POSITIVE"},
                     {"Note": {"Text": "nothing here", "UpdatedBy": "ec2-quarantine"}},
                     {"Workflow": {"Status": "NOTIFIED"},
                      "Note": {"Text": "nothing here", "UpdatedBy": "an analyst"}}):
            with pytest.raises(ClientError) as refused:
                compromised.batch_update_findings(FindingIdentifiers=target, **move)
            assert refused.value.response["Error"]["Code"] == "AccessDeniedException", move
        compromised.batch_update_findings(FindingIdentifiers=target,
                                          Workflow={"Status": "NOTIFIED"},
                                          Note={"Text": "as the product does",
                                                "UpdatedBy": "ec2-quarantine"})
    held = _held(hub, finding)
    assert held["Workflow"]["Status"] == "NOTIFIED" and held["Severity"]["Label"] == "HIGH"
