"""Capture memory before isolation (MEMORY_CAPTURE_DOCUMENT set): bounded, never blocking."""

import logging

from chalicelib import actions, bindings, incidents
from chalicelib.actions.memory import CaptureMemory
from chalicelib.steps import is_dry_run, refused, target_for

log = logging.getLogger(__name__)

ACTION_CLASSES = (CaptureMemory,)
PERMISSIONS = (*incidents.UPDATE_PERMISSIONS, *bindings.SEAL_PERMISSIONS,
               *bindings.VERIFY_PERMISSIONS)


def capture_classes(options) -> tuple[type[actions.Action], ...]:
    """What the step runs under `options`: nothing while MEMORY_CAPTURE_DOCUMENT is empty (the
    state machine does not call it then, and its policy grants nothing)."""
    return ACTION_CLASSES if options.memory_capture_document else ()


def run(event: dict) -> dict:
    started = incidents.now()
    try:
        incident = bindings.execution_incident(event)
    except bindings.Refused as refusal:
        return {"outcome": "refused", "refused": refused(event, "capture-memory", refusal)}
    dry_run = is_dry_run(event)
    notes: list[str] = []  # an instance SSM does not manage is skipped with a note, not an error
    changes, errors = actions.run([CaptureMemory()], target_for(incident, event), dry_run,
                                  notes)
    if dry_run and not errors and not notes:
        incidents.record_step(incident["incident_id"], "capture-memory", started, "planned",
                              fields={"memory_plan": changes})
        return {"outcome": "planned"}
    outcome = "failed" if errors else "skipped" if notes else "captured"
    note = notes[0] if notes else None
    log.info("memory capture for %s: %s %s", incident["incident_id"], outcome, note or "")
    incidents.record_step(incident["incident_id"], "capture-memory", started, outcome, changes,
                          errors, fields={"memory": {"outcome": outcome, "note": note}})
    return {"outcome": outcome}
