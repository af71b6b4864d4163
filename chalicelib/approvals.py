"""Approval: a containment a response rule holds for a person (chalicelib/rules.py, `approve`).

The incident opens `AWAITING_APPROVAL` (it holds the instance: further findings are recorded on
it) and its execution waits on a task token. One decision ends the wait, whoever makes it first:
an approver (`POST /incidents/{id}/approve` or `…/deny`, the caller in `APPROVER_ARNS`), a
further finding that a `contain` rule matches (escalation), the timeout (the rule's
`on_timeout`), or the product when the execution ended without one (abandoned). The decision is
sealed and written once, on a record that holds none yet (never on its status: whoever may
write the table may write any status), so a race between them decides once; the execution acts
only on a sealed decision read from the record (a token woken by anyone else decides nothing).
The token only wakes the execution early.
"""

import logging
import re
from datetime import datetime, timedelta, timezone

from chalicelib import aws, incidents, seals, securityhub

log = logging.getLogger(__name__)

# What decided, and the status it leaves: containment goes on (OPEN) or nothing is changed.
DECISIONS = {"approved": "OPEN", "escalated": "OPEN", "denied": incidents.NOTIFIED,
             "timed-out-contain": "OPEN", "timed-out-close": incidents.NOTIFIED,
             "abandoned": incidents.NOTIFIED}
PRODUCT = "ec2-quarantine"  # who decides on a timeout
# execution_ended() and abandon(): what whoever closes an incident left undecided needs
ABANDON_PERMISSIONS = ("states:DescribeExecution", *seals.SEAL_PERMISSIONS,
                       *incidents.UPDATE_PERMISSIONS)
# How long after an approval (or an escalation) its first cut holds off Contain: the execution,
# woken by the timeout meanwhile, waits for the cut to be recorded rather than cut beside it.
# Counted from the decision's sealed time, never from a field of the table.
CUT_SECONDS = 90
CUTTING = ("approved", "escalated")  # the decisions whose deciding function cuts at once
WAKE_PERMISSIONS = ("states:SendTaskSuccess", "states:GetExecutionHistory")  # wake()
# Step Functions' execution states once it has ended.
ENDED = ("SUCCEEDED", "FAILED", "TIMED_OUT", "ABORTED")
# SendTaskSuccess when the task is no longer waiting (answered, timed out, execution ended).
GONE = ("TaskTimedOut", "TaskDoesNotExist", "InvalidToken")


class NotAwaiting(Exception):
    """The incident is no longer awaiting approval: something decided first."""

    def __init__(self, incident: dict | None):
        super().__init__(incident and incident.get("status"))
        self.incident = incident


class AlreadyDecided(Exception):
    """Raised by the waiting step when a decision came before its token was stored: the
    state machine catches it and reads the decision."""


def terms(rule: str, on_timeout: str, timeout_seconds: int, opened_at: str) -> dict:
    """What an incident awaiting approval waits for, sealed with its binding."""
    opened = datetime.strptime(opened_at, incidents.TIME_FORMAT).replace(tzinfo=timezone.utc)
    return {"rule": rule, "on_timeout": on_timeout, "timeout_seconds": timeout_seconds,
            "deadline": (opened + timedelta(seconds=timeout_seconds)).strftime(
                incidents.TIME_FORMAT)}


def seconds_until(when: str) -> int:
    """Whole seconds until `when` (a deadline or a lease's end, as the records write times; 0
    or less: it has passed, but for less than a second)."""
    moment = datetime.strptime(when, incidents.TIME_FORMAT).replace(tzinfo=timezone.utc)
    return int((moment - datetime.now(timezone.utc)).total_seconds())


def may_decide(caller: str, approvers: tuple[str, ...]) -> bool:
    """Whether `caller` (the API's caller ARN) is one of `approvers`: the same ARN, or a
    session of a listed role (`arn:aws:sts::<account>:assumed-role/<name>/<session>` for the
    role `arn:aws:iam::<account>:role/<path><name>`)."""
    if caller and caller in approvers:
        return True
    session = SESSION.match(caller or "")
    if not session:
        return False
    partition, account, name = session.groups()
    role = re.compile(rf"\Aarn:{partition}:iam::{account}:role/(?:[^:]*/)?{re.escape(name)}\Z")
    return any(role.match(approver) for approver in approvers)


SESSION = re.compile(r"\Aarn:(aws[a-z-]*):sts::([0-9]{12}):assumed-role/([\w+=,.@-]+)/[^/]+\Z")


def _document(incident_id: str, made: dict) -> dict:
    return {"incident_id": incident_id, **{k: made[k] for k in ("decision", "by", "at", "reason")}}


def sealed(incident_id: str, decision: str, by: str, reason: str) -> dict:
    made = {"decision": decision, "by": by, "at": incidents.now(), "reason": reason}
    return {**made, "seal": seals.seal("approval", _document(incident_id, made))}


def verified(incident: dict) -> dict | None:
    """The incident's decision once its seal holds (None: none made, or not by the product;
    the latter logged)."""
    return verified_decision(incident.get("incident_id"), incident.get("decision"))


def verified_decision(incident_id: str, made) -> dict | None:
    """`made` once it is a decision the product sealed for the incident (None: none, or not
    the product's; the latter logged). Wherever it was read: the record, a wake's output."""
    if made is None:
        return None
    try:
        if not isinstance(made, dict) or made.get("decision") not in DECISIONS:
            raise seals.Unverified("not a decision")
        seals.verify("approval", _document(incident_id, made), made.get("seal"))
    except (seals.Unverified, KeyError, TypeError) as unverified:
        log.error("incident %s: a decision the product did not make: %s", incident_id,
                  unverified)
        return None
    return made


def unverified(incident: dict):
    """The decision the record holds when it is not one the product made (None otherwise):
    a decision may replace it."""
    made = incident.get("decision")
    return made if made is not None and verified(incident) is None else None


def not_decided_to_contain(incident_id: str, made) -> str | None:
    """Why an incident held for approval may not be contained (None: `made`, the decision the
    execution acts on, is a sealed decision that containment goes on)."""
    made = verified_decision(incident_id, made)
    if made is None:
        return f"incident {incident_id} awaits approval: no decision the product made contains it"
    if DECISIONS[made["decision"]] != "OPEN":
        return f"incident {incident_id} was {made['decision']}: it is not to be contained"
    return None


def resolution(made: dict) -> str:
    """What ended an incident that changed nothing, in words."""
    if made["decision"] == "denied":
        return f"denied by {made['by']}: {made['reason']}"
    if made["decision"] == "abandoned":
        return f"closed without containment: {made['reason']}"
    return f"approval timed out, closed without containment ({made['reason']})"


def settle(incident_id: str, made: dict, step: str = "approval", replacing=None) -> dict:
    """Record the sealed decision `made` on an incident that holds none (or holds exactly
    `replacing`, a decision that did not verify as read: junk written to block every decision),
    with the status it leaves, in one conditional write; NotAwaiting (with the record) when
    another decision came first."""
    status = DECISIONS[made["decision"]]
    fields = {"status": status, "decision": made,
              **({"resolution": resolution(made)} if status == incidents.NOTIFIED else {})}
    undecided = "attribute_not_exists(#undecided)" + (
        " OR #undecided = :unverified" if replacing is not None else "")
    try:
        incident = incidents.record_step(
            incident_id, step, made["at"], made["decision"], fields=fields,
            only_if=(undecided, {":unverified": replacing} if replacing is not None else {},
                     {"#undecided": "decision"}))
    except aws.client("dynamodb").exceptions.ConditionalCheckFailedException:
        raise NotAwaiting(incidents.get(incident_id)) from None
    if status == incidents.NOTIFIED:
        incidents.release_claim(incident)  # nothing changed: the next finding may act
    log.info("incident %s %s by %s: %s", incident_id, made["decision"], made["by"],
             made["reason"])
    return incident


def wake(incident: dict, made: dict) -> str:
    """End the execution's wait with the sealed decision `made` (it acts on that even if the
    record loses it): "woken", or why not (not waiting yet: it reads the decision from the
    record when it does; or the wait ended already). The token is read from the execution's
    history, Step Functions' own record, not from the table, which anyone who may write it
    could garble to keep the wake from arriving."""
    import json

    from botocore.exceptions import ClientError

    stepfunctions = aws.client("stepfunctions", aws.region_of(incident["execution_arn"]))
    token = _waiting_token(stepfunctions, incident["execution_arn"])
    if not token:
        return "not waiting yet: the execution reads the decision when it does"
    try:
        stepfunctions.send_task_success(taskToken=token, output=json.dumps({"decision": made}))
    except ClientError as error:
        if aws.error_code(error) not in GONE:
            raise
        log.info("the execution of %s no longer waits (%s): it reads the decision itself",
                 incident["incident_id"], aws.error_code(error))
        return "the wait had ended: the execution reads the decision itself"
    return "woken"


def _waiting_token(stepfunctions, execution_arn: str) -> str | None:
    """The task token of the execution's latest wait for approval (None: none began yet): of
    the newest events, the wait scheduled last (the highest id, whichever order they come in:
    moto's server ignores `reverseOrder`)."""
    import json

    events = stepfunctions.get_execution_history(executionArn=execution_arn, reverseOrder=True,
                                                 maxResults=100)["events"]
    waits = [e for e in events if e["type"] == "TaskScheduled" and (
        e.get("taskScheduledEventDetails") or {}).get("resource") == "invoke.waitForTaskToken"]
    if not waits:
        return None
    latest = max(waits, key=lambda e: e["id"])["taskScheduledEventDetails"]
    token = (json.loads(latest.get("parameters") or "{}").get("Payload") or {}).get("token")
    return token if isinstance(token, str) else None


def store_token(incident_id: str, token: str) -> dict:
    """Keep the wait's token on the incident while it awaits approval; AlreadyDecided when a
    decision came first."""
    try:
        return incidents.note_progress(incident_id, {"approval_token": token},
                                       condition=("attribute_not_exists(#undecided)", {},
                                                  {"#undecided": "decision"}))
    except aws.client("dynamodb").exceptions.ConditionalCheckFailedException:
        raise AlreadyDecided(f"incident {incident_id} was decided before its wait began") \
            from None


def execution_ended(incident: dict) -> str | None:
    """How the incident's execution ended (None: it runs, or has not started yet: a start in
    flight, or a lost one the next request restarts). Step Functions' word, which nobody who
    writes the table can change."""
    return (ended_execution(incident["execution_arn"]) or {}).get("status")


def ended_execution(execution_arn: str) -> dict | None:
    """The execution as Step Functions describes it, once it has ended (None otherwise)."""
    described = aws.tolerate("ExecutionDoesNotExist", aws.client(
        "stepfunctions", aws.region_of(execution_arn)).describe_execution,
        executionArn=execution_arn)
    return described if (described or {}).get("status") in ENDED else None


def abandon(incident: dict, ended: str) -> dict:
    """Close an undecided incident whose execution ended (`ended`: how) without containment,
    freeing the instance: nothing is left to act on a decision (the next finding or request
    opens a new incident). NotAwaiting when a decision came first."""
    made = sealed(incident["incident_id"], "abandoned", PRODUCT,
                  f"its execution ended ({ended}) before any decision")
    log.warning("incident %s: its execution ended (%s) without a decision: closing it",
                incident["incident_id"], ended)
    closed = settle(incident["incident_id"], made, "approval-abandoned", unverified(incident))
    securityhub.follow(incident["incident_id"])
    return closed
