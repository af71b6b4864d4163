"""The wait for approval (chalicelib/approvals.py), in three steps of the execution: `ask`
renders the request (with the plan the dry-run Contain just recorded), `wait` keeps the task
token on the incident while the state machine waits, and `decide` reads the sealed decision
once the wait ends (woken, or timed out: then the rule's `on_timeout` is decided here) and
says where the execution goes: contain, close, or wait on."""

import logging

from chalicelib import approvals, bindings, incidents, report
from chalicelib.steps import refused

log = logging.getLogger(__name__)

PERMISSIONS = (*incidents.GET_PERMISSIONS, *incidents.UPDATE_PERMISSIONS,
               *bindings.SEAL_PERMISSIONS, *bindings.VERIFY_PERMISSIONS)
# A wait whose step failed (not a timeout, not a decision first) is taken up again after this.
PAUSE_AFTER_FAILURE_SECONDS = 30


def run(event: dict) -> dict:
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
    return decide(incident, event.get("wait_error") or {})


def ask(incident: dict) -> dict:
    """The request for approval, from the record (the plan is on it), once recorded with the
    incident's seal (an approval's cut verifies the record with it)."""
    record = incidents.record_step(incident["incident_id"], "approval", incidents.now(),
                                   "asked", fields={"seal": incident["seal"]})
    return report.awaiting(record)


def decide(incident: dict, wait_error: dict) -> dict:
    """Where the execution goes once its wait ended: the sealed decision on the record, or,
    when nobody decided in time, the rule's `on_timeout` (decided here, once: a person who
    decided first wins)."""
    incident_id, approval = incident["incident_id"], incident["approval"]
    record = incidents.get(incident_id) or incident
    if record.get("status") == incidents.AWAITING:
        # The sealed deadline says whether time is up, not the error the wait ended with:
        # whoever holds the token may end it with any error, "States.Timeout" too.
        remaining = approvals.remaining_seconds(approval)
        if remaining > 0:
            failed = wait_error.get("Error") not in (None, approvals.AlreadyDecided.__name__)
            log.warning("incident %s: woken without a decision (%s): waiting %d s more",
                        incident_id, wait_error.get("Error") or "no decision on the record",
                        remaining)
            return {"next": "wait", "timeout_seconds": remaining + 1,
                    "pause_seconds": PAUSE_AFTER_FAILURE_SECONDS if failed else 0}
        made = approvals.sealed(incident_id, f"timed-out-{approval['on_timeout']}",
                                approvals.PRODUCT,
                                f"nobody decided within {approval['timeout_seconds']} s")
        try:
            record = approvals.settle(incident_id, made, "approval-timeout")
        except approvals.NotAwaiting as first:
            record = first.incident or record
    made = approvals.verified(record)
    if made is None:
        reason = (f"incident {incident_id} is {record.get('status')} without a decision the "
                  "product made: nothing is done")
        return {"next": "refused", "notice": report.refused(
            incident["execution_arn"], refused({"incident": incident,
                                                "execution": incident["execution_arn"]},
                                               "approval", reason))}
    if approvals.DECISIONS[made["decision"]] == "OPEN":
        log.info("incident %s: %s, containment goes on", incident_id, made["decision"])
        return {"next": "contain", "cut": record.get("first_cut") or {"containment": None},
                "notice": report.detection(record)}
    log.info("incident %s: %s, closed without containment", incident_id, made["decision"])
    return {"next": "close", "notice": report.notified(record)}
