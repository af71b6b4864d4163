"""Contain: isolate every interface (first, nothing in front of it), then cut the credentials,
protect against termination, make shutdown stop the instance, and tag it."""

import logging

from chalicelib import actions, incidents
from chalicelib.actions.instance import (
    DetachInstanceProfile,
    DisableApiStop,
    KeepVolumesOnTermination,
    QuarantineTags,
    RevokeRoleSessions,
    ShutdownBehaviourStop,
    SwapToDenyAllProfile,
    TerminationProtection,
)
from chalicelib.actions.isolation import IsolateInterface
from chalicelib.actions.traffic import (
    DisassociateElasticIp,
    LeaveAutoScalingGroup,
    LeaveClassicLoadBalancers,
    LeaveTargetGroups,
)
from chalicelib.steps import is_dry_run, target_for

log = logging.getLogger(__name__)


ACTION_CLASSES = (IsolateInterface, LeaveAutoScalingGroup, LeaveTargetGroups,
                  LeaveClassicLoadBalancers, DisassociateElasticIp, DetachInstanceProfile,
                  SwapToDenyAllProfile, RevokeRoleSessions, TerminationProtection,
                  ShutdownBehaviourStop, KeepVolumesOnTermination, DisableApiStop, QuarantineTags)
PERMISSIONS = incidents.UPDATE_PERMISSIONS


def containment_actions(pre_state: dict, settings) -> list[actions.Action]:
    """The ordered containment actions (tags come last, with the outcome). Isolation first:
    nothing stands in front of the swap. Leaving the Auto Scaling group and the load balancers
    follows at once, well inside any health-check window; then credentials and preservation."""
    ordered: list[actions.Action] = [IsolateInterface(i) for i in pre_state["interfaces"]]
    ordered += [LeaveAutoScalingGroup(), LeaveTargetGroups(), LeaveClassicLoadBalancers()]
    if settings.disassociate_elastic_ip:
        ordered.append(DisassociateElasticIp())
    ordered.append(SwapToDenyAllProfile() if settings.credentials_mode == "deny-all"
                   else DetachInstanceProfile())
    if settings.revoke_role_sessions:
        ordered.append(RevokeRoleSessions())
    ordered += [TerminationProtection(), ShutdownBehaviourStop(), KeepVolumesOnTermination()]
    if settings.disable_api_stop:
        ordered.append(DisableApiStop())
    return ordered


def status(changes: list, errors: list) -> str:
    """CONTAINED: every action applied; FAILED: nothing changed; PARTIAL: in between.
    The quarantine tags are a label, not containment: they never count as a change."""
    if not errors:
        return "CONTAINED"
    return "PARTIAL" if changes else "FAILED"


def run(event: dict) -> dict:
    incident = event["incident"]
    started = incidents.now()
    target = target_for(incident, event)
    dry_run = is_dry_run(event)
    changes, errors = actions.run(containment_actions(incident["pre_state"], target.settings),
                                  target, dry_run)
    if dry_run:
        tag_changes, _ = actions.run([QuarantineTags("CONTAINED")], target, dry_run)
        incidents.record_step(incident["incident_id"], "contain", started, "planned",
                              errors=errors, fields={"plan": changes + tag_changes,
                                                     "execution_started": True})
        return {"status": "DRY_RUN", "planned": len(changes + tag_changes)}
    tag_changes, tag_errors = actions.run([QuarantineTags(status(changes, errors))], target)
    outcome = status(changes, errors + tag_errors)
    changes, errors = changes + tag_changes, errors + tag_errors
    log.info("contained %s for %s: %s (%d changes, %d errors)", incident["instance_id"],
             incident["incident_id"], outcome, len(changes), len(errors))
    try:
        incidents.record_step(incident["incident_id"], "contain", started, outcome.lower(),
                              changes, errors,
                              fields={"containment": outcome, "execution_started": True})
    except Exception as error:  # the report records them instead: what was done is never lost
        log.exception("could not record containment of %s", incident["incident_id"])
        errors.append(actions.error_record("contain-step", incident["instance_id"], error))
        return {"status": outcome, "unrecorded": {"changes": changes, "errors": errors}}
    return {"status": outcome, "changes": len(changes), "errors": len(errors)}
