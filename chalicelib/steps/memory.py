"""Capture memory before isolation (MEMORY_CAPTURE_DOCUMENT set): bounded, never blocking."""

import logging

from chalicelib import actions, incidents
from chalicelib.actions.memory import CaptureMemory, NotManaged
from chalicelib.steps import is_dry_run, target_for

log = logging.getLogger(__name__)

ACTION_CLASSES = (CaptureMemory,)
PERMISSIONS = incidents.UPDATE_PERMISSIONS


def run(event: dict) -> dict:
    incident = event["incident"]
    started = incidents.now()
    target = target_for(incident, event)
    dry_run = is_dry_run(event)
    try:
        changes = CaptureMemory().plan(target) if dry_run else CaptureMemory().apply(target)
        if dry_run:
            incidents.record_step(incident["incident_id"], "capture-memory", started, "planned",
                                  fields={"memory_plan": changes})
            return {"outcome": "planned"}
        outcome, errors, note = "captured", [], None
    except NotManaged as skipped:  # a note, not an error: most fleets are partly managed
        changes, outcome, errors, note = [], "skipped", [], str(skipped)
    except Exception as error:
        changes, outcome, note = [], "failed", None
        errors = [actions.error_record(CaptureMemory(), incident["instance_id"], error)]
    log.info("memory capture for %s: %s %s", incident["incident_id"], outcome, note or "")
    incidents.record_step(incident["incident_id"], "capture-memory", started, outcome, changes,
                          errors, fields={"memory": {"outcome": outcome, "note": note}})
    return {"outcome": outcome}
