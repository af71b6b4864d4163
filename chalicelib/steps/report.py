"""Report: settle the incident's final status from what the steps recorded, and render the
message NotifyReport publishes. A step that crashed is reported as such."""

import logging

from chalicelib import actions, bindings, incidents, publish, report, securityhub
from chalicelib.steps import is_dry_run, refused

log = logging.getLogger(__name__)


PERMISSIONS = (*incidents.GET_PERMISSIONS, *incidents.UPDATE_PERMISSIONS,
               *bindings.SEAL_PERMISSIONS, *bindings.VERIFY_PERMISSIONS)


def crash_errors(event: dict) -> list[dict]:
    """Errors of steps that crashed or failed to run: the state machine caught them and put
    them under `error` in that step's result; the step itself could record nothing."""
    results = event.get("results") or {}
    outcomes = {"capture-memory": event.get("memory"), "detection-notice": results.get("detection"),
                "contain": results.get("contain"), "evidence": event.get("evidence")}
    return [_caught(f"{step}-step", event["incident"]["instance_id"], outcome["error"])
            for step, outcome in outcomes.items() if (outcome or {}).get("error")]


def _caught(action: str, resource: str, caught: dict) -> dict:
    """An error the state machine caught ({"Error", "Cause"}) as a failure record."""
    return actions.failure_record(action, resource, caught.get("Error", "Unknown"),
                                  str(caught.get("Cause", "")))


def run(event: dict) -> dict:
    try:
        bindings.execution_incident(event)
    except bindings.Refused as refusal:
        if "notify_error" in event:  # a refused report was not published: nothing to record
            return {"recorded": False}
        return report.refused(event.get("execution"), refused(event, "report", refusal))
    if "notify_error" in event:
        return not_sent(event)
    incident_id = event["incident"]["incident_id"]
    started = incidents.now()
    crashed = crash_errors(event)
    if is_dry_run(event):
        incident = incidents.record_step(incident_id, "report", started, "planned",
                                         errors=crashed)
        return report.notified(incident) if incident.get("status") == incidents.NOTIFIED \
            else report.plan(incident)
    contained = (event.get("results") or {}).get("contain") or {}
    unrecorded = contained.get("unrecorded") or {"changes": [], "errors": []}
    stored = incidents.get(incident_id) or event["incident"]
    # The step's own result wins over the record when the step could not record itself (the
    # record may hold what the first cut alone earned).
    final = (contained.get("status") if contained.get("unrecorded") else None) or \
        stored.get("containment") or contained.get("status") or "FAILED"
    incident = incidents.record_step(incident_id, "report", started, incidents.OUTCOMES[final],
                                     unrecorded["changes"], unrecorded["errors"] + crashed,
                                     fields={"status": final, "containment": final,
                                             "seal": event["incident"]["seal"]})
    if final == "FAILED":
        incidents.release_claim(incident)  # nothing is contained: the next finding may act
    log.info("incident %s ends %s", incident_id, final)
    publish.request(incident_id)
    securityhub.follow(incident_id)
    return report.final(incident)


def not_sent(event: dict) -> dict:
    """NotifyReport failed for good (its retries spent): the incident record says so."""
    incident, error = event["incident"], event["notify_error"]
    log.error("report of %s was not published: %s", incident["incident_id"], error.get("Error"))
    incidents.record_step(incident["incident_id"], "notify-report", incidents.now(), "failed",
                          errors=[_caught("report-notice", incident["instance_id"], error)])
    return {"recorded": True}
