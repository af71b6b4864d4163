"""Contain: isolate every interface (first, nothing in front of it), then cut the credentials,
protect against termination, make shutdown stop the instance, and tag it."""

import logging

from chalicelib import actions, incidents
from chalicelib.actions.instance import (
    DetachInstanceProfile,
    QuarantineTags,
    ShutdownBehaviourStop,
    TerminationProtection,
)
from chalicelib.actions.isolation import IsolateInterface
from chalicelib.steps import target_for

log = logging.getLogger(__name__)


ACTION_CLASSES = (IsolateInterface, DetachInstanceProfile, TerminationProtection,
                  ShutdownBehaviourStop, QuarantineTags)
PERMISSIONS = incidents.UPDATE_PERMISSIONS


def containment_actions(pre_state: dict) -> list[actions.Action]:
    """The ordered containment actions for an instance in `pre_state` (tags come last)."""
    return [IsolateInterface(interface) for interface in pre_state["interfaces"]] + [
        DetachInstanceProfile(), TerminationProtection(), ShutdownBehaviourStop()]


def status(changes: list, errors: list) -> str:
    """CONTAINED: every action applied; FAILED: nothing changed; PARTIAL: in between."""
    if not errors:
        return "CONTAINED"
    return "PARTIAL" if changes else "FAILED"


def run(event: dict) -> dict:
    incident = event["incident"]
    started = incidents.now()
    target = target_for(incident)
    changes, errors = actions.run(containment_actions(incident["pre_state"]), target)
    tag_changes, tag_errors = actions.run([QuarantineTags(status(changes, errors))], target)
    changes, errors = changes + tag_changes, errors + tag_errors
    outcome = status(changes, errors)
    log.info("contained %s for %s: %s (%d changes, %d errors)", incident["instance_id"],
             incident["incident_id"], outcome, len(changes), len(errors))
    incidents.record_step(incident["incident_id"], "contain", started, outcome.lower(),
                          changes=changes, errors=errors, containment=outcome,
                          execution_started=True)
    return {"status": outcome, "changes": len(changes), "errors": len(errors)}
