"""Approval: a containment a response rule holds for a person (chalicelib/rules.py, `approve`).

The incident opens `AWAITING_APPROVAL` (it holds the instance: further findings are recorded on
it) and its execution waits on a task token. One decision ends the wait, whoever makes it first:
an approver (`POST /incidents/{id}/approve` or `…/deny`, the caller in `APPROVER_ARNS`), a
further finding that a `contain` rule matches (escalation), or the timeout (the rule's
`on_timeout`). The record's status moves from `AWAITING_APPROVAL` in one conditional write, so
a race between them decides once; the decision is sealed, and the execution acts only on a
sealed decision read from the record (a token woken by anyone else decides nothing). The token
only wakes the execution early.
"""

import logging
import re
from datetime import datetime, timedelta, timezone

from chalicelib import aws, incidents, seals

log = logging.getLogger(__name__)

# What decided, and the status it leaves: containment goes on (OPEN) or nothing is changed.
DECISIONS = {"approved": "OPEN", "escalated": "OPEN", "denied": incidents.NOTIFIED,
             "timed-out-contain": "OPEN", "timed-out-close": incidents.NOTIFIED}
PRODUCT = "ec2-quarantine"  # who decides on a timeout
WAKE_PERMISSIONS = ("states:SendTaskSuccess",)  # wake()
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


def remaining_seconds(approval: dict) -> int:
    """Whole seconds until the approval's deadline (0 or less: it has passed, but for less than
    a second)."""
    deadline = datetime.strptime(approval["deadline"], incidents.TIME_FORMAT).replace(
        tzinfo=timezone.utc)
    return int((deadline - datetime.now(timezone.utc)).total_seconds())


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
    made = incident.get("decision")
    if made is None:
        return None
    try:
        if not isinstance(made, dict) or made.get("decision") not in DECISIONS:
            raise seals.Unverified("not a decision")
        seals.verify("approval", _document(incident["incident_id"], made), made.get("seal"))
    except (seals.Unverified, KeyError) as unverified:
        log.error("incident %s holds a decision the product did not make: %s",
                  incident.get("incident_id"), unverified)
        return None
    return made


def resolution(made: dict) -> str:
    """What ended an incident that changed nothing, in words."""
    if made["decision"] == "denied":
        return f"denied by {made['by']}: {made['reason']}"
    return f"approval timed out, closed without containment ({made['reason']})"


def settle(incident_id: str, made: dict, step: str = "approval") -> dict:
    """Move the incident from AWAITING_APPROVAL under the sealed decision `made`, in one
    conditional write; NotAwaiting (with the record) when another decision came first."""
    status = DECISIONS[made["decision"]]
    fields = {"status": status, "decision": made,
              **({"resolution": resolution(made)} if status == incidents.NOTIFIED else {})}
    try:
        incident = incidents.record_step(
            incident_id, step, made["at"], made["decision"], fields=fields,
            only_if=("#awaiting_status = :awaiting", {":awaiting": incidents.AWAITING},
                     {"#awaiting_status": "status"}))
    except aws.client("dynamodb").exceptions.ConditionalCheckFailedException:
        raise NotAwaiting(incidents.get(incident_id)) from None
    if status == incidents.NOTIFIED:
        incidents.release_claim(incident)  # nothing changed: the next finding may act
    log.info("incident %s %s by %s: %s", incident_id, made["decision"], made["by"],
             made["reason"])
    return incident


def wake(incident: dict, output: dict) -> str:
    """End the execution's wait with `output`: "woken", or why not (no token stored yet: the
    waiting step will find the decision; or the wait ended already: the execution read it)."""
    token = incident.get("approval_token")
    if not token:
        return "not waiting yet: the execution reads the decision when it does"
    import json

    from botocore.exceptions import ClientError

    region = aws.region_of(incident["execution_arn"])
    try:
        aws.client("stepfunctions", region).send_task_success(taskToken=token,
                                                              output=json.dumps(output))
    except ClientError as error:
        if aws.error_code(error) not in GONE:
            raise
        log.info("the execution of %s no longer waits (%s): it reads the decision itself",
                 incident["incident_id"], aws.error_code(error))
        return "the wait had ended: the execution reads the decision itself"
    return "woken"


def store_token(incident_id: str, token: str) -> dict:
    """Keep the wait's token on the incident while it awaits approval; AlreadyDecided when a
    decision came first."""
    try:
        return incidents.note_progress(incident_id, {"approval_token": token},
                                       condition=("#awaiting_status = :awaiting",
                                                  {":awaiting": incidents.AWAITING},
                                                  {"#awaiting_status": "status"}))
    except aws.client("dynamodb").exceptions.ConditionalCheckFailedException:
        raise AlreadyDecided(f"incident {incident_id} was decided before its wait began") \
            from None
