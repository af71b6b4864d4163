"""The wait for approval (chalicelib/approvals.py), in three steps of the execution: `ask`
renders the request (with the plan the dry-run Contain just recorded), `wait` keeps the task
token on the incident while the state machine waits, and `decide` reads the sealed decision
once the wait ends (woken, or timed out: then the rule's `on_timeout` is decided here) and
says where the execution goes: contain, close, or wait on. The sweep asks it, by incident id
alone, to close an incident whose execution ended undecided (`close_abandoned`): sealing the
closing is this function's, so the sweep holds no seal."""

import json
import logging

from chalicelib import approvals, bindings, incidents, report, securityhub, workflow
from chalicelib.steps import refused

log = logging.getLogger(__name__)

FUNCTION = "approval"  # its Chalice name
CLOSE_ABANDONED = "close-abandoned"  # the phase the sweep asks for
CLOSE_PERMISSIONS = ("lambda:InvokeFunction/close-abandoned",)  # what the sweep needs to ask
PERMISSIONS = (*incidents.GET_PERMISSIONS, *incidents.UPDATE_PERMISSIONS,
               *bindings.SEAL_PERMISSIONS, *bindings.VERIFY_PERMISSIONS,
               "states:DescribeExecution")  # close_abandoned
# A wait ended without a decision (whoever holds the token may end it) pauses before the next,
# this much longer each time: however often it is woken, the execution's history (25,000
# events) outlasts the longest approval (7 days: some 200 wakes).
PAUSE_PER_WAKE_SECONDS = 30


def run(event: dict) -> dict:
    if event.get("phase") == CLOSE_ABANDONED:
        return close_abandoned(event.get("incident_id"))
    try:
        incident = bindings.execution_incident(event)
        if not isinstance(incident.get("approval"), dict):
            raise bindings.Refused(f"incident {incident['incident_id']} awaits no approval")
    except bindings.Refused as refusal:
        reason = refused(event, "approval", refusal)
        if event.get("phase") == "wait":
            raise approvals.AlreadyDecided(reason)  # the state machine goes on to decide
        return {"next": "refused", "notice": report.refused(event.get("execution"), reason)}
    phase = event.get("phase")
    if phase == "ask":
        return ask(incident)
    if phase == "wait":
        approvals.store_token(incident["incident_id"], str(event.get("token")))
        log.info("incident %s waits for approval", incident["incident_id"])
        return {"waiting": True}
    wakes, woken = event.get("wakes"), event.get("woken")
    return decide(incident, event.get("wait_error") or {},
                  wakes if isinstance(wakes, int) and wakes >= 0 else 0,
                  woken if isinstance(woken, dict) else None,
                  bool((event.get("options") or {}).get("memory_capture")))


def close_abandoned(incident_id) -> dict:
    """Close an incident awaiting approval whose execution ended without a decision (stopped,
    failed, refused), freeing the instance; anything else is left as it is. Whoever asks names
    only the incident: Step Functions says whether its execution ended, and what it was held
    for is read from the execution's own input (its sealed binding), not from the record, which
    may have lost its seal or its terms."""
    def left(reason: str) -> dict:
        log.info("incident %s not closed: %s", str(incident_id)[:80], reason)
        return {"closed": False, "reason": reason}

    if not isinstance(incident_id, str) or not incidents.INCIDENT_ID.match(incident_id):
        return left("not an incident id")
    incident = incidents.get(incident_id)
    if incident is None or incident.get("status") != incidents.AWAITING or \
            approvals.verified(incident):
        return left("it is not awaiting approval")
    described = approvals.ended_execution(workflow.execution_arn(incident_id))
    if described is None:
        return left("its execution runs, or has not started")
    held = (json.loads(described.get("input") or "{}") or {}).get("incident") or {}
    try:
        bindings.verified_seal(held)
        if held.get("incident_id") != incident_id or not held.get("approval"):
            raise bindings.Refused("its execution was not started to await approval of it")
    except bindings.Refused as refusal:
        log.warning("will not close %s: %s", incident_id, refusal)
        return left(str(refusal))
    try:
        closed = approvals.abandon(incident, described["status"])
    except approvals.NotAwaiting:
        return left("it was decided meanwhile")
    return {"closed": True, "incident_id": incident_id, "status": closed["status"]}


def ask(incident: dict) -> dict:
    """The request for approval, from the record (the plan is on it), once recorded with the
    incident's seal (an approval's cut verifies the record with it)."""
    record = incidents.record_step(incident["incident_id"], "approval", incidents.now(),
                                   "asked", fields={"seal": incident["seal"]})
    return report.awaiting(record)


def decide(incident: dict, wait_error: dict, wakes: int, woken: dict | None = None,
           memory_capture: bool = False) -> dict:
    """Where the execution goes once its wait ended: the sealed decision the wake brought, else
    the record's (whatever the record's status says), or, when nobody decided in time, the rule's
    `on_timeout` (decided here, once: a decision made first wins). `wakes`: how often the wait
    was ended without a decision so far (the execution counts them, not the table); `woken`:
    what the last wake brought (a sealed decision, when the product woke it)."""
    incident_id, approval = incident["incident_id"], incident["approval"]
    record = incidents.get(incident_id) or incident
    # The decision the wake brought first (sealed, so only the product's: the record may have
    # lost it since), then the record's.
    made = approvals.verified_decision(incident_id, (woken or {}).get("decision")) or \
        approvals.verified(record)
    if made is None:
        # The sealed deadline says whether time is up, not the error the wait ended with:
        # whoever holds the token may end it with any error, "States.Timeout" too.
        remaining = approvals.seconds_until(approval["deadline"])
        if remaining > 0:
            pause = pause_seconds(wakes + 1, remaining)
            log.warning("incident %s: woken without a decision (%s, %d so far): pausing %d s, "
                        "then waiting %d s more", incident_id,
                        wait_error.get("Error") or "no decision the product made", wakes + 1,
                        pause, remaining - pause)
            return _wait(remaining - pause, pause, wakes + 1)
        made = approvals.sealed(incident_id, f"timed-out-{approval['on_timeout']}",
                                approvals.PRODUCT,
                                f"nobody decided within {approval['timeout_seconds']} s")
        try:
            record = approvals.settle(incident_id, made, "approval-timeout",
                                      approvals.unverified(record))
        except approvals.NotAwaiting as first:
            record = first.incident or record
            made = approvals.verified(record)
    if made is None:
        reason = (f"incident {incident_id} holds a decision the product did not make: "
                  "nothing is done")
        return {"next": "refused", "notice": report.refused(
            incident["execution_arn"], refused({"incident": incident,
                                                "execution": incident["execution_arn"]},
                                               "approval", reason))}
    if approvals.DECISIONS[made["decision"]] == "OPEN":
        cutting = _cut_in_flight(made, record, memory_capture)
        if cutting:
            log.info("incident %s: %s, its first cut is being made: Contain waits %d s",
                     incident_id, made["decision"], cutting)
            return _wait(0, cutting, wakes)
        log.info("incident %s: %s, containment goes on", incident_id, made["decision"])
        return {"next": "contain", "notice": report.detection(record),
                "cut": {**(record.get("first_cut") or {"containment": None}), "decision": made}}
    log.info("incident %s: %s, closed without containment", incident_id, made["decision"])
    securityhub.follow(incident_id)
    return {"next": "close", "notice": report.notified(record)}


def _cut_in_flight(made: dict, record: dict, memory_capture: bool) -> int:
    """Seconds to wait for the first cut the deciding function is making (0: none is: no
    approval or escalation, memory captured first, the cut recorded, or the time it may take
    has passed since the sealed decision, whatever the table says)."""
    if made["decision"] not in approvals.CUTTING or memory_capture or record.get("first_cut"):
        return 0
    left = approvals.CUT_SECONDS + approvals.seconds_until(made["at"])
    return left + 1 if left > 0 else 0


def pause_seconds(wakes: int, remaining: int) -> int:
    """The pause after the `wakes`-th wake without a decision, `remaining` seconds before the
    deadline."""
    return min(remaining, PAUSE_PER_WAKE_SECONDS * wakes)


def _wait(seconds: int, pause: int, wakes: int) -> dict:
    """Wait on: after a pause, for a decision or `seconds` more (Step Functions needs 1 at
    least; a decided incident's wait ends at once: its token is not stored)."""
    return {"next": "wait", "timeout_seconds": max(seconds, 0) + 1,
            "pause_seconds": pause, "wakes": wakes}
