"""Response rules on the embedded AWS: each mode, approval both ways and by someone who may
not give it, the timeout both ways, escalation, the approval/escalation race, and a host that
tags itself to be treated more mildly — asserted on the instance's groups, the record and the
messages that reached the topic."""

import json
import threading

from chalicelib import incidents
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
    snapshots_of,
    subscribe_queue,
    user_keys,
    wait_execution,
)

APPROVER = "arn:aws:iam::123456789012:user/approver"
RULES = [
    {"name": "sandbox", "mode": "contain", "tags": {"env": "sandbox"}},
    {"name": "critical", "mode": "contain", "severity_at_least": 8},
    {"name": "production", "mode": "approve", "severity_at_least": 5, "on_timeout": "close"},
    {"name": "pilot", "mode": "notify", "severity_at_least": 2},
]


def _rules(stack, rules=None, timeout=600, **more):
    stack.configure(RESPONSE_RULES=json.dumps(rules or RULES), APPROVER_ARNS=APPROVER,
                    APPROVAL_TIMEOUT_SECONDS=str(timeout), **more)


_KEYS: dict = {}  # the approver's keys, by the user's creation (a reset makes it anew)


def _approver(stack) -> dict:
    """Keys of the user APPROVER_ARNS names (made on first use)."""
    iam = stack.client("iam")
    try:
        made = iam.get_user(UserName="approver")["User"]["CreateDate"]
    except iam.exceptions.NoSuchEntityException:
        keys = user_keys(stack, "approver", ["execute-api:Invoke"])
        _KEYS[iam.get_user(UserName="approver")["User"]["CreateDate"]] = keys
        return keys
    return _KEYS[made]


def _untouched(stack, victim):
    for eni, groups in victim["interfaces"].items():
        assert interface_groups(stack, eni) == groups
    assert "QuarantineIncident" not in instance_tags(stack, victim["instance_id"])


def _isolated(stack, victim):
    for eni, groups in victim["interfaces"].items():
        now = interface_groups(stack, eni)
        assert now != groups and len(now) == 1, (eni, now)


def _awaiting(stack, victim, queue, severity=6.0) -> dict:
    """A finding the production rule holds for approval: the record, once the request is out."""
    opened = deliver_finding(stack, guardduty_event(victim["instance_id"], severity=severity))
    assert opened["decision"] == "awaiting-approval", opened
    record = _wait_for(stack, opened["incident_id"], lambda r: r.get("approval_token"))
    return record


def _wait_for(stack, incident_id, done, timeout=60.0):
    """The record once `done(record)`, read as an administrator (the test's own credentials
    are refused under IAM enforcement)."""
    import time

    from chalicelib import items

    deadline = time.monotonic() + timeout
    while True:
        record = items.plain(stack.client("dynamodb").get_item(
            TableName=stack.names["INCIDENTS_TABLE"], Key={"pk": {"S": incident_id}},
            ConsistentRead=True)["Item"])
        if done(record):
            return record
        assert time.monotonic() < deadline, record
        time.sleep(0.05)


def _subjects(stack, queue) -> list[str]:
    return [m["Subject"] for m in messages(stack, queue)]


def test_approve_mode_waits_with_the_plan_and_an_approval_contains(stack):
    _rules(stack)
    queue = subscribe_queue(stack)
    victim = make_victim(stack, interfaces=2, volumes=1)
    record = _awaiting(stack, victim, queue)

    assert record["status"] == "AWAITING_APPROVAL"
    assert record["approval"]["rule"] == "production" and record["approval"]["on_timeout"] == \
        "close"
    _untouched(stack, victim)
    (asked,) = messages(stack, queue)
    assert "awaiting approval" in asked["Subject"]
    assert f"ec2-quarantine approve {record['incident_id']}" in asked["Text"]
    assert "Approving would, in this order:" in asked["Text"]
    assert asked["MessageAttributes"]["event"]["Value"] == "awaiting-approval"
    # A second finding the rules would also hold is recorded on it, no second incident.
    second = deliver_finding(stack, guardduty_event(victim["instance_id"], severity=6.5,
                                                    finding_id="e" * 32))
    assert second["decision"] == "recorded" and second["incident_id"] == record["incident_id"]
    _untouched(stack, victim)

    status, decided = api(stack, "POST", f"/incidents/{record['incident_id']}/approve",
                          {"reason": "confirmed compromise"}, keys=_approver(stack))
    assert status == 200, decided
    assert decided["decision"]["decision"] == "approved" and decided["decision"]["by"] == APPROVER
    final, execution = finish(stack, {"execution_arn": record["execution_arn"],
                                      "incident_id": record["incident_id"]})
    assert execution["status"] == "SUCCEEDED"
    assert final["status"] == "CONTAINED"
    _isolated(stack, victim)
    assert any(step["step"] == "cut" for step in final["timeline"])  # the approver's cut
    subjects = _subjects(stack, queue)
    assert any("contained" in s for s in subjects), subjects


def test_a_caller_outside_approver_arns_is_refused_and_nothing_changes(stack):
    _rules(stack)
    queue = subscribe_queue(stack)
    victim = make_victim(stack, interfaces=1, volumes=1)
    record = _awaiting(stack, victim, queue)
    messages(stack, queue)
    intruder = user_keys(stack, "intruder", ["execute-api:Invoke"])

    for decision in ("approve", "deny"):
        status, refused = api(stack, "POST", f"/incidents/{record['incident_id']}/{decision}",
                              {"reason": "let me"}, keys=intruder)
        assert status == 403 and refused["error"] == "NotAnApprover", refused
    status, unsigned = api(stack, "POST", f"/incidents/{record['incident_id']}/approve",
                           {"reason": "anyone"})
    assert status == 403, unsigned

    after = incidents.get(record["incident_id"])
    assert after["status"] == "AWAITING_APPROVAL" and "decision" not in after
    _untouched(stack, victim)
    assert messages(stack, queue) == []
    assert stack.client("stepfunctions").describe_execution(
        executionArn=record["execution_arn"])["status"] == "RUNNING"
    status, denied = api(stack, "POST", f"/incidents/{record['incident_id']}/deny",
                         {"reason": "ends the test"}, keys=_approver(stack))
    assert status == 200, denied
    finish(stack, record)  # its report, before the next test's stack


def test_a_denial_ends_notified_changes_nothing_and_frees_the_instance(stack):
    _rules(stack)
    queue = subscribe_queue(stack)
    victim = make_victim(stack, interfaces=2, volumes=1)
    record = _awaiting(stack, victim, queue)
    messages(stack, queue)

    status, decided = api(stack, "POST", f"/incidents/{record['incident_id']}/deny",
                          {"reason": "a planned load test"}, keys=_approver(stack))
    assert status == 200 and decided["status"] == "NOTIFIED", decided
    final, execution = finish(stack, record)
    assert execution["status"] == "SUCCEEDED"
    assert final["status"] == "NOTIFIED"
    assert final["resolution"] == f"denied by {APPROVER}: a planned load test"
    _untouched(stack, victim)
    (closed,) = messages(stack, queue)
    assert "denied, nothing changed" in closed["Subject"]
    assert closed["MessageAttributes"]["status"]["Value"] == "NOTIFIED"
    status, again = api(stack, "POST", f"/incidents/{record['incident_id']}/approve",
                        {"reason": "changed my mind"}, keys=_approver(stack))
    assert status == 409 and again["error"] == "NotAwaitingApproval"
    assert f"denied by {APPROVER}" in again["message"]
    # The instance is free: the next finding opens a new incident.
    following = deliver_finding(stack, guardduty_event(victim["instance_id"], severity=6.0,
                                                       finding_id="d" * 32))
    assert following["decision"] == "awaiting-approval"
    assert following["incident_id"] != record["incident_id"]
    _wait_for(stack, following["incident_id"], lambda r: r.get("approval_token"))
    status, _ = api(stack, "POST", f"/incidents/{following['incident_id']}/deny",
                    {"reason": "ends the test"}, keys=_approver(stack))
    assert status == 200
    finish(stack, following)


def test_nobody_decides_and_the_rule_closes_it(stack):
    _rules(stack, timeout=2)
    queue = subscribe_queue(stack)
    victim = make_victim(stack, interfaces=1, volumes=1)
    opened = deliver_finding(stack, guardduty_event(victim["instance_id"], severity=6.0))
    final, execution = finish(stack, opened)
    assert execution["status"] == "SUCCEEDED"
    assert final["status"] == "NOTIFIED" and final["decision"]["decision"] == "timed-out-close"
    assert final["resolution"].startswith("approval timed out, closed without containment")
    _untouched(stack, victim)
    subjects = _subjects(stack, queue)
    assert any("awaiting approval" in s for s in subjects)
    assert any("closed, nothing changed" in s for s in subjects), subjects
    assert incidents.active_for(stack.account, stack.region, victim["instance_id"]) is None


def test_nobody_decides_and_the_rule_contains_it(stack):
    rules = [{"name": "production", "mode": "approve", "on_timeout": "contain"}]
    _rules(stack, rules, timeout=2)
    queue = subscribe_queue(stack)
    victim = make_victim(stack, interfaces=2, volumes=1)
    opened = deliver_finding(stack, guardduty_event(victim["instance_id"], severity=6.0))
    final, execution = finish(stack, opened)
    assert execution["status"] == "SUCCEEDED"
    assert final["status"] == "CONTAINED"
    assert final["decision"]["decision"] == "timed-out-contain"
    assert final["decision"]["by"] == "ec2-quarantine"
    _isolated(stack, victim)
    subjects = _subjects(stack, queue)
    assert any("awaiting approval" in s for s in subjects)
    assert any(s.endswith(": contained") for s in subjects), subjects


def test_a_finding_a_contain_rule_matches_escalates_at_once(stack):
    _rules(stack)
    queue = subscribe_queue(stack)
    victim = make_victim(stack, interfaces=2, volumes=1)
    record = _awaiting(stack, victim, queue)
    messages(stack, queue)

    escalated = deliver_finding(stack, guardduty_event(victim["instance_id"], severity=8.5,
                                                       finding_id="c" * 32))
    assert escalated["decision"] == "recorded" and escalated["incident_id"] == \
        record["incident_id"]
    _isolated(stack, victim)  # the cut, before the execution resumes
    final, execution = finish(stack, record)
    assert execution["status"] == "SUCCEEDED" and final["status"] == "CONTAINED"
    assert final["decision"]["decision"] == "escalated"
    assert final["decision"]["by"] == f"GuardDuty finding {'c' * 32}"
    assert "rule 'critical' (contain)" in final["decision"]["reason"]
    subjects = _subjects(stack, queue)
    assert any("finding recorded" in s for s in subjects), subjects
    assert any(s.endswith(": contained") for s in subjects), subjects


def test_approval_racing_escalation_contains_once(stack):
    _rules(stack)
    queue = subscribe_queue(stack)
    victim = make_victim(stack, interfaces=2, volumes=1)
    record = _awaiting(stack, victim, queue)
    keys = _approver(stack)
    answers = {}

    def approve():
        answers["approve"] = api(stack, "POST", f"/incidents/{record['incident_id']}/approve",
                                 {"reason": "go"}, keys=keys)

    def escalate():
        answers["escalate"] = deliver_finding(stack, guardduty_event(
            victim["instance_id"], severity=9.0, finding_id="b" * 32))

    racers = [threading.Thread(target=approve), threading.Thread(target=escalate)]
    for racer in racers:
        racer.start()
    for racer in racers:
        racer.join()
    final, execution = finish(stack, record)
    assert execution["status"] == "SUCCEEDED" and final["status"] == "CONTAINED"
    decided = [s for s in final["timeline"] if s["step"] == "approval" and s["outcome"] in (
        "approved", "escalated")]
    assert len(decided) == 1, final["timeline"]
    assert len([s for s in final["timeline"] if s["step"] == "cut"]) == 1
    assert len([s for s in final["timeline"] if s["step"] == "contain"
                and s["outcome"] != "planned"]) == 1
    status, approved = answers["approve"]
    assert (status, decided[0]["outcome"]) in ((200, "approved"), (409, "escalated")), approved
    assert answers["escalate"]["incident_id"] == record["incident_id"]
    _isolated(stack, victim)
    executions = stack.client("stepfunctions").list_executions(
        stateMachineArn=stack.names["STATE_MACHINE_ARN"])["executions"]
    assert len(executions) == 1


def test_notify_mode_announces_the_plan_and_changes_nothing(stack):
    _rules(stack)
    queue = subscribe_queue(stack)
    victim = make_victim(stack, interfaces=2, volumes=1)
    opened = deliver_finding(stack, guardduty_event(victim["instance_id"], severity=3.0))
    assert opened["decision"] == "notified", opened
    final, execution = finish(stack, opened)
    assert execution["status"] == "SUCCEEDED" and final["status"] == "NOTIFIED"
    assert final["resolution"].startswith("announced with the plan, nothing changed: rule "
                                          "'pilot' (notify)")
    _untouched(stack, victim)
    assert snapshots_of(stack, opened["incident_id"]) == []
    (notice,) = messages(stack, queue)  # the plan alone: no "opened" notice before it
    assert "notified, nothing changed" in notice["Subject"]
    assert "Containment would, in this order:" in notice["Text"]
    assert "isolate-interface" in notice["Text"]
    assert incidents.active_for(stack.account, stack.region, victim["instance_id"]) is None


def test_ignore_mode_logs_and_counts_and_announces_nothing(stack, capfd):
    _rules(stack, RULES + [{"name": "noise", "mode": "ignore"}])
    queue = subscribe_queue(stack)
    victim = make_victim(stack, interfaces=1, volumes=1)
    decided = deliver_finding(stack, guardduty_event(victim["instance_id"], severity=1.0))
    assert decided["decision"] == "ignored" and "rule 'noise' (ignore)" in decided["reason"]
    _untouched(stack, victim)
    assert messages(stack, queue) == []
    metric = [json.loads(line) for line in capfd.readouterr().out.splitlines()
              if line.startswith('{"_aws"')]
    assert metric and metric[-1]["FindingsIgnored"] == 1 and metric[-1]["Rule"] == "noise"
    assert metric[-1]["_aws"]["CloudWatchMetrics"][0]["Metrics"] == [
        {"Name": "FindingsIgnored", "Unit": "Count"}]


def test_a_host_that_tags_itself_to_match_a_milder_rule_is_contained_all_the_same(stack):
    """The host may write its own tags: a rule matching on tags can make the response stronger,
    never weaker, than the first tagless rule that matches."""
    rules = [{"name": "mild", "mode": "notify", "tags": {"team": "load-test"}},
             {"name": "critical", "mode": "contain", "severity_at_least": 8}]
    _rules(stack, rules)
    victim = make_victim(stack, interfaces=1, volumes=1)
    stack.client("ec2").create_tags(Resources=[victim["instance_id"]],
                                    Tags=[{"Key": "team", "Value": "load-test"}])
    opened = deliver_finding(stack, guardduty_event(victim["instance_id"], severity=8.0))
    assert opened["decision"] == "acted", opened
    final, _ = finish(stack, opened)
    assert final["status"] == "CONTAINED"
    assert "tags can only make the response stronger" in final["response"]["reason"]
    _isolated(stack, victim)


def test_a_tag_rule_makes_the_response_stronger(stack):
    _rules(stack)
    victim = make_victim(stack, interfaces=1, volumes=1)
    stack.client("ec2").create_tags(Resources=[victim["instance_id"]],
                                    Tags=[{"Key": "env", "Value": "sandbox"}])
    opened = deliver_finding(stack, guardduty_event(victim["instance_id"], severity=3.0))
    final, _ = finish(stack, opened)
    assert final["status"] == "CONTAINED" and final["response"]["rule"] == "sandbox"
    _isolated(stack, victim)


def test_decisions_are_checked_at_the_edge(stack):
    _rules(stack)
    keys = _approver(stack)
    absent = "/incidents/inc-0123456789ab/approve"
    for path, body, code in [("/incidents/inc-NOT-AN-ID/approve", {"reason": "x"}, 400),
                             (absent, {}, 400), (absent, {"reason": "  "}, 400),
                             (absent, {"reason": "x", "force": True}, 400),
                             (absent, {"reason": "x" * 1025}, 400),
                             (absent, {"reason": 7}, 400),
                             (absent, {"reason": "x"}, 404)]:
        status, answer = api(stack, "POST", path, body, keys=keys)
        assert status == code and set(answer) == {"error", "message"}, (path, body, answer)
    victim = make_victim(stack, interfaces=1, volumes=1)
    contained = deliver_finding(stack, guardduty_event(victim["instance_id"], severity=9.0))
    finish(stack, contained)
    status, answer = api(stack, "POST", f"/incidents/{contained['incident_id']}/deny",
                         {"reason": "too late"}, keys=keys)
    assert status == 409 and answer["error"] == "NotAwaitingApproval", answer
    assert "is CONTAINED" in answer["message"]
    assert incidents.get(contained["incident_id"])["status"] == "CONTAINED"


def test_each_function_decides_with_its_own_rights_only(stack):
    """The whole approval, under moto's IAM enforcement: the functions' least-privilege roles
    suffice (the API's SendTaskSuccess, the approval step's reads and writes)."""
    _rules(stack)
    victim = make_victim(stack, interfaces=2, volumes=1)
    keys = _approver(stack)
    with stack.enforce_iam():
        opened = deliver_finding(stack, guardduty_event(victim["instance_id"], severity=6.0))
        record = _wait_for(stack, opened["incident_id"], lambda r: r.get("approval_token"))
        status, decided = api(stack, "POST", f"/incidents/{record['incident_id']}/approve",
                              {"reason": "confirmed"}, keys=keys)
        assert status == 200 and decided["execution"] == "woken", decided
        execution = wait_execution(stack, opened["execution_arn"])
        stack.bridge.wait_idle()
    final = incidents.get(opened["incident_id"])
    assert execution["status"] == "SUCCEEDED" and final["status"] == "CONTAINED"
    _isolated(stack, victim)


def test_an_insider_who_holds_the_token_or_writes_the_table_decides_nothing(stack, monkeypatch):
    from chalicelib.steps import approval

    monkeypatch.setattr(approval, "PAUSE_PER_WAKE_SECONDS", 1)
    _rules(stack)
    queue = subscribe_queue(stack)
    victim = make_victim(stack, interfaces=2, volumes=1)
    record = _awaiting(stack, victim, queue)
    insider = principal(stack, "insider", ["states:SendTaskSuccess", "states:SendTaskFailure",
                                           "dynamodb:GetItem", "dynamodb:UpdateItem"])
    table, key = stack.names["INCIDENTS_TABLE"], {"pk": {"S": record["incident_id"]}}

    def token():
        return insider("dynamodb").get_item(TableName=table, Key=key, ConsistentRead=True)[
            "Item"]["approval_token"]["S"]
    with stack.enforce_iam():
        first = token()
        insider("stepfunctions").send_task_success(taskToken=first, output=json.dumps(
            {"decision": "approved"}))
        second = _wait_for(stack, record["incident_id"],
                           lambda r: r.get("approval_token") not in (None, first))[
            "approval_token"]
        insider("stepfunctions").send_task_failure(taskToken=second, error="Timeout",
                                                   cause="forged")
        _wait_for(stack, record["incident_id"],
                  lambda r: r.get("approval_token") not in (None, first, second))
        waiting = _wait_for(stack, record["incident_id"], lambda r: True)
        assert waiting["status"] == "AWAITING_APPROVAL" and "decision" not in waiting
        _untouched(stack, victim)
        # The table written as if approved: not a decision the product sealed.
        insider("dynamodb").update_item(
            TableName=table, Key=key, UpdateExpression="SET #s = :open, decision = :d",
            ExpressionAttributeNames={"#s": "status"}, ExpressionAttributeValues={
                ":open": {"S": "OPEN"}, ":d": {"M": {
                    "decision": {"S": "approved"}, "by": {"S": APPROVER},
                    "at": {"S": "2026-12-03T00:00:00.000000Z"}, "reason": {"S": "forged"},
                    "seal": {"S": "forged"}}}})
        decided_before = len(_decided_outputs(stack, record["execution_arn"]))
        insider("stepfunctions").send_task_success(taskToken=token(), output=json.dumps(
            {"decision": {"decision": "approved", "by": APPROVER, "reason": "forged",
                          "at": "2026-12-03T00:00:00.000000Z", "seal": "forged"}}))
    _wait_for(stack, record["incident_id"], lambda r: len(
        _decided_outputs(stack, record["execution_arn"])) > decided_before)
    assert _decided_outputs(stack, record["execution_arn"])[-1]["next"] == "wait"
    _untouched(stack, victim)  # still awaiting: neither forgery decided anything
    assert stack.client("stepfunctions").describe_execution(
        executionArn=record["execution_arn"])["status"] == "RUNNING"
    # Nor does the forged decision block a real one: it replaces it.
    status, denied = api(stack, "POST", f"/incidents/{record['incident_id']}/deny",
                         {"reason": "nothing to see"}, keys=_approver(stack))
    assert status == 200, denied
    final, execution = finish(stack, record)
    assert execution["status"] == "SUCCEEDED" and final["status"] == "NOTIFIED"
    assert final["decision"]["by"] == APPROVER and final["decision"]["seal"] != "forged"
    _untouched(stack, victim)


# -- whoever may write the table, stop the execution or hold the token -----------------------

def _write(stack, incident_id: str, expression: str, values: dict | None = None,
           names: dict | None = None) -> None:
    """An UpdateItem on the incident's record as whoever may write the table."""
    stack.client("dynamodb").update_item(
        TableName=stack.names["INCIDENTS_TABLE"], Key={"pk": {"S": incident_id}},
        UpdateExpression=expression, **({"ExpressionAttributeValues": values} if values else {}),
        **({"ExpressionAttributeNames": names} if names else {}))


def _steps(record, step) -> list:
    return [s for s in record["timeline"] if s["step"] == step and s["outcome"] != "planned"]


def test_an_approval_written_out_of_the_record_is_still_carried_out(stack):
    """The approver's wake carries the sealed decision to the execution, by a token read from
    its history: a garbled token in the table, the status written back to AWAITING_APPROVAL
    and the decision removed cannot let the timeout close it. (Before, the garbled token kept
    the wake from arriving, the timeout sealed `close` over the approval, and the instance was
    left cut, unwatched, with nothing more done.)"""
    _rules(stack, timeout=8)
    queue = subscribe_queue(stack)
    victim = make_victim(stack, interfaces=2, volumes=1)
    record = _awaiting(stack, victim, queue)
    _write(stack, record["incident_id"], "SET approval_token = :t", {":t": {"S": "garbled"}})

    status, decided = api(stack, "POST", f"/incidents/{record['incident_id']}/approve",
                          {"reason": "confirmed"}, keys=_approver(stack))
    # The token is read from the execution's history: a garbled copy in the table is no matter.
    assert status == 200 and decided["execution"] == "woken", decided
    # Written back as awaiting, the approval removed: the wake brought it, sealed.
    _write(stack, record["incident_id"], "SET #s = :awaiting REMOVE decision", {":awaiting": {
        "S": "AWAITING_APPROVAL"}}, {"#s": "status"})

    final, execution = finish(stack, record)
    assert execution["status"] == "SUCCEEDED"
    assert final["status"] == "CONTAINED"
    assert not [s for s in final["timeline"] if s["step"] == "approval-timeout"]
    _isolated(stack, victim)


def _decided_outputs(stack, execution_arn: str) -> list[dict]:
    """What each Decide step returned, in order, from the execution's history."""
    events = stack.client("stepfunctions").get_execution_history(
        executionArn=execution_arn, maxResults=1000)["events"]
    return [json.loads(e["stateExitedEventDetails"]["output"])["decided"] for e in events
            if e.get("stateExitedEventDetails", {}).get("name") == "Decide"]


def test_each_wake_without_a_decision_pauses_the_wait_longer(stack, monkeypatch):
    """Whoever holds the token may end the wait as often as they like: each undecided wake
    pauses the next wait longer, counted by the execution (not the table, which they may
    write), so their wakes cannot run its history out before the deadline."""
    from chalicelib.steps import approval

    monkeypatch.setattr(approval, "PAUSE_PER_WAKE_SECONDS", 1)
    _rules(stack)
    queue = subscribe_queue(stack)
    victim = make_victim(stack, interfaces=1, volumes=1)
    record = _awaiting(stack, victim, queue)
    insider = principal(stack, "waker", ["states:SendTaskSuccess", "dynamodb:GetItem"])
    seen = [record["approval_token"]]
    with stack.enforce_iam():
        for _ in range(3):
            insider("stepfunctions").send_task_success(taskToken=seen[-1], output="{}")
            seen.append(_wait_for(stack, record["incident_id"],
                                  lambda r: r.get("approval_token") not in seen)[
                "approval_token"])
    decided = _decided_outputs(stack, record["execution_arn"])
    assert [(d["next"], d["wakes"], d["pause_seconds"]) for d in decided] == [
        ("wait", 1, 1), ("wait", 2, 2), ("wait", 3, 3)]
    waiting = incidents.get(record["incident_id"])
    assert waiting["status"] == "AWAITING_APPROVAL" and "decision" not in waiting
    _untouched(stack, victim)
    status, _ = api(stack, "POST", f"/incidents/{record['incident_id']}/deny",
                    {"reason": "ends the test"}, keys=_approver(stack))
    assert status == 200
    final, execution = finish(stack, record)
    assert execution["status"] == "SUCCEEDED" and final["status"] == "NOTIFIED"


def test_an_execution_stopped_while_awaiting_is_closed_and_the_instance_freed(stack):
    """Stopped by whoever may stop executions (or ended any other way: its history full, its
    account no longer allowed): no approval can act on it any more. An approval gets 409 and
    changes nothing; the incident is closed, the instance free; a finding a contain rule
    matches then opens a new incident and contains it. The sweep closes one nobody touches."""
    _rules(stack)
    queue = subscribe_queue(stack)
    victim = make_victim(stack, interfaces=2, volumes=1)
    record = _awaiting(stack, victim, queue)
    stack.client("stepfunctions").stop_execution(executionArn=record["execution_arn"])
    assert wait_execution(stack, record["execution_arn"])["status"] == "ABORTED"

    keys = _approver(stack)
    with stack.enforce_iam():  # the API closes it with its own rights
        status, refused = api(stack, "POST", f"/incidents/{record['incident_id']}/approve",
                              {"reason": "confirmed"}, keys=keys)
    assert status == 409 and refused["error"] == "NotAwaitingApproval", refused
    assert "execution had ended (ABORTED)" in refused["message"]
    _untouched(stack, victim)
    closed = incidents.get(record["incident_id"])
    assert closed["status"] == "NOTIFIED" and closed["decision"]["decision"] == "abandoned"
    assert incidents.active_for(stack.account, stack.region, victim["instance_id"]) is None

    escalated = deliver_finding(stack, guardduty_event(victim["instance_id"], severity=9.0,
                                                       finding_id="a" * 32))
    assert escalated["incident_id"] != record["incident_id"]
    final, _ = finish(stack, escalated)
    assert final["status"] == "CONTAINED"
    _isolated(stack, victim)

    other = make_victim(stack, interfaces=1, volumes=1)
    waiting = _awaiting(stack, other, queue)
    stack.client("stepfunctions").stop_execution(executionArn=waiting["execution_arn"])
    assert wait_execution(stack, waiting["execution_arn"])["status"] == "ABORTED"
    # A decision nobody sealed, and the record's seal and terms removed, cannot keep it held:
    # the sweep reads what it was held for from the execution's own input.
    _write(stack, waiting["incident_id"], "SET decision = :junk REMOVE seal, approval",
           {":junk": {"S": "junk"}})
    with stack.enforce_iam():  # and the sweep with its own
        swept = stack.tick("sweep")["sweep"]
    assert {"incident_id": waiting["incident_id"], "status": "NOTIFIED"} in swept["settled"]
    assert incidents.get(waiting["incident_id"])["resolution"].startswith(
        "closed without containment: its execution ended (ABORTED)")
    assert incidents.active_for(stack.account, stack.region, other["instance_id"]) is None
    assert any("closed, nothing changed" in s for s in _subjects(stack, queue))
    _untouched(stack, other)


def test_a_compromised_sweep_seals_nothing_and_gets_only_an_ended_wait_closed(stack):
    """The sweep closes what was left undecided by asking the approval function, naming the
    incident only; it holds no seal of its own (a sweep holding GenerateMac on the records key
    could seal any decision or binding). Asked about a wait that still runs, the approval
    function closes nothing."""
    import boto3
    from botocore.exceptions import ClientError

    from deploy import names

    _rules(stack)
    queue = subscribe_queue(stack)
    victim = make_victim(stack, interfaces=1, volumes=1)
    record = _awaiting(stack, victim, queue)
    keys = stack.bridge.roles.credentials(names.function(stack.stage, "sweep"))
    session = boto3.session.Session(
        aws_access_key_id=keys.access_key_id, aws_secret_access_key=keys.secret_access_key,
        aws_session_token=keys.session_token, region_name=stack.region)
    kms, functions = (session.client(service, endpoint_url=stack.endpoint)
                      for service in ("kms", "lambda"))
    with stack.enforce_iam():
        try:
            kms.generate_mac(KeyId=stack.names["RECORDS_KEY_ARN"], MacAlgorithm="HMAC_SHA_256",
                             Message=b"a decision nobody made")
            raise AssertionError("the sweep sealed")
        except ClientError as refused:
            assert refused.response["Error"]["Code"] == "AccessDeniedException"
        answer = functions.invoke(
            FunctionName=names.function(stack.stage, "approval"),
            Payload=json.dumps({"phase": "close-abandoned",
                                "incident_id": record["incident_id"]}).encode())
        assert json.loads(answer["Payload"].read()) == {
            "closed": False, "reason": "its execution runs, or has not started"}
        try:
            functions.invoke(FunctionName=names.function(stack.stage, "contain"), Payload=b"{}")
            raise AssertionError("the sweep invoked contain")
        except ClientError as refused:
            assert refused.response["Error"]["Code"] == "AccessDeniedException"
    assert incidents.get(record["incident_id"])["status"] == "AWAITING_APPROVAL"
    _untouched(stack, victim)
    status, _ = api(stack, "POST", f"/incidents/{record['incident_id']}/deny",
                    {"reason": "ends the test"}, keys=_approver(stack))
    assert status == 200
    finish(stack, record)


def test_a_closed_incident_written_back_to_awaiting_cannot_be_approved(stack):
    """Denied, then written back as awaiting with its decision removed: its execution has
    ended, so an approval changes nothing (before, it cut an instance no execution held)."""
    _rules(stack)
    queue = subscribe_queue(stack)
    victim = make_victim(stack, interfaces=2, volumes=1)
    record = _awaiting(stack, victim, queue)
    status, _ = api(stack, "POST", f"/incidents/{record['incident_id']}/deny",
                    {"reason": "a load test"}, keys=_approver(stack))
    assert status == 200
    finish(stack, record)
    _write(stack, record["incident_id"], "SET #s = :awaiting REMOVE decision",
           {":awaiting": {"S": "AWAITING_APPROVAL"}}, {"#s": "status"})

    status, refused = api(stack, "POST", f"/incidents/{record['incident_id']}/approve",
                          {"reason": "now"}, keys=_approver(stack))
    assert status == 409 and "execution had ended (SUCCEEDED)" in refused["message"], refused
    _untouched(stack, victim)
    assert not _steps(incidents.get(record["incident_id"]), "cut")


def test_a_lost_start_written_open_still_waits_for_approval(stack):
    """An approval incident whose execution never started, its status written OPEN: the
    restart takes what it waits for from its seal, not from the status (before, it was
    contained without approval). Its restart seal removed as well, it is bound anew under
    this finding's rule, which still asks for approval."""
    _rules(stack)
    for tamper in ("SET #s = :open", "SET #s = :open REMOVE restart_seal, approval"):
        victim = make_victim(stack, interfaces=1, volumes=1)
        stack.faults.arm("states", "StartExecution", "AccessDeniedException")
        lost = deliver_finding(stack, guardduty_event(victim["instance_id"], severity=6.0))
        assert lost["decision"] == "refused" and lost["code"] == "ExecutionNotStarted", lost
        incident_id = incidents.active_for(stack.account, stack.region, victim["instance_id"])
        _write(stack, incident_id, tamper, {":open": {"S": "OPEN"}}, {"#s": "status"})

        picked_up = deliver_finding(stack, guardduty_event(victim["instance_id"], severity=6.0,
                                                           finding_id="f" * 32))
        assert picked_up["incident_id"] == incident_id, picked_up
        waiting = _wait_for(stack, incident_id, lambda r: r.get("approval_token"))
        assert waiting["status"] == "AWAITING_APPROVAL" and waiting["approval"], tamper
        _untouched(stack, victim)
        status, _ = api(stack, "POST", f"/incidents/{incident_id}/deny",
                        {"reason": "ends the test"}, keys=_approver(stack))
        assert status == 200
        final, _ = finish(stack, {"incident_id": incident_id,
                                  "execution_arn": waiting["execution_arn"]})
        assert final["status"] == "NOTIFIED", tamper
        _untouched(stack, victim)


def test_a_timeout_while_the_approvers_cut_is_made_waits_for_it_and_contains_once(
        stack, monkeypatch):
    """The approver's decision holds Contain off while its first cut is made (for CUT_SECONDS
    from its sealed time, not a field of the table): the execution, woken meanwhile (here by
    the token; the timeout alike), waits for the cut rather than cut beside it; and the tamper
    watch keeps off until Contain has recorded its outcome."""
    from chalicelib import approvals, tamper, workflow

    monkeypatch.setattr(approvals, "CUT_SECONDS", 4)
    _rules(stack)
    queue = subscribe_queue(stack)
    victim = make_victim(stack, interfaces=2, volumes=1)
    record = _awaiting(stack, victim, queue)
    # The API's decision, up to the moment its cut begins.
    settled = approvals.settle(record["incident_id"], approvals.sealed(
        record["incident_id"], "approved", APPROVER, "confirmed"))
    stack.client("stepfunctions").send_task_success(taskToken=record["approval_token"],
                                                    output="{}")
    held = _wait_for(stack, record["incident_id"], lambda r: len(
        _decided_outputs(stack, r["execution_arn"])) == 1)
    (decided,) = _decided_outputs(stack, held["execution_arn"])
    assert decided["next"] == "wait" and 1 <= decided["pause_seconds"] <= 5, decided
    workflow._approved_cut(settled, stack.account)  # the cut, made meanwhile
    assert tamper.watch(record["incident_id"], stack.account)["skipped"] == "not contained"

    final, execution = finish(stack, record)
    assert execution["status"] == "SUCCEEDED" and final["status"] == "CONTAINED"
    assert len(_steps(final, "cut")) == 1 and len(_steps(final, "contain")) == 1
    assert not final["errors"], final["errors"]
    _isolated(stack, victim)


def test_a_running_incident_marked_as_a_lost_start_is_not_restarted(stack):
    """`start_failed` written on an incident whose execution runs: Step Functions is asked, so
    the escalating finding escalates it (before, the restart rebound it and swallowed the
    escalation)."""
    _rules(stack)
    queue = subscribe_queue(stack)
    victim = make_victim(stack, interfaces=1, volumes=1)
    record = _awaiting(stack, victim, queue)
    _write(stack, record["incident_id"], "SET start_failed = :yes REMOVE execution_started",
           {":yes": {"BOOL": True}})

    escalated = deliver_finding(stack, guardduty_event(victim["instance_id"], severity=9.0,
                                                       finding_id="9" * 32))
    assert escalated["incident_id"] == record["incident_id"]
    final, execution = finish(stack, record)
    assert execution["status"] == "SUCCEEDED" and final["status"] == "CONTAINED"
    assert final["decision"]["decision"] == "escalated"
    assert not [s for s in final["timeline"] if s["step"] == "start"]
    _isolated(stack, victim)
