"""Contain: isolate every interface (first, nothing in front of it), then cut the credentials,
protect against termination, make shutdown stop the instance, and tag it."""

import logging

from chalicelib import actions, aws, bindings, incidents
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
from chalicelib.actions.isolation import IsolateInterface, prefetch
from chalicelib.actions.traffic import (
    DisassociateElasticIp,
    LeaveAutoScalingGroup,
    LeaveClassicLoadBalancers,
    LeaveTargetGroups,
)
from chalicelib.steps import is_dry_run, refused, target_for

log = logging.getLogger(__name__)


ACTION_CLASSES = (IsolateInterface, LeaveAutoScalingGroup, LeaveTargetGroups,
                  LeaveClassicLoadBalancers, DisassociateElasticIp, DetachInstanceProfile,
                  SwapToDenyAllProfile, RevokeRoleSessions, TerminationProtection,
                  ShutdownBehaviourStop, KeepVolumesOnTermination, DisableApiStop, QuarantineTags)
PERMISSIONS = (*incidents.UPDATE_PERMISSIONS, *bindings.SEAL_PERMISSIONS,
               *bindings.VERIFY_PERMISSIONS)


def containment_classes(options) -> tuple[type[actions.Action], ...]:
    """The action classes containment runs under `options`, in order; the contain function's
    policy is made of these and no others (deploy/permissions.py)."""
    return (IsolateInterface, LeaveAutoScalingGroup, LeaveTargetGroups,
            LeaveClassicLoadBalancers,
            *((DisassociateElasticIp,) if options.disassociate_elastic_ip else ()),
            SwapToDenyAllProfile if options.credentials_mode == "deny-all"
            else DetachInstanceProfile,
            *((RevokeRoleSessions,) if options.revoke_role_sessions else ()),
            TerminationProtection, ShutdownBehaviourStop, KeepVolumesOnTermination,
            *((DisableApiStop,) if options.disable_api_stop else ()), QuarantineTags)


def containment_actions(pre_state: dict, settings) -> list[actions.Action]:
    """The ordered containment actions (the tags come after them, with the outcome). Isolation
    first: nothing stands in front of the swap. Leaving the Auto Scaling group and the load
    balancers follows at once, well inside any health-check window; then credentials and
    preservation."""
    ordered: list[actions.Action] = []
    for cls in containment_classes(settings):
        if cls is IsolateInterface:
            ordered += [IsolateInterface(i) for i in pre_state["interfaces"]]
        elif cls is not QuarantineTags:
            ordered.append(cls())
    return ordered


def status(changes: list, errors: list) -> str:
    """CONTAINED: every action applied; FAILED: nothing changed; PARTIAL: in between.
    The quarantine tags are a label, not containment: they never count as a change."""
    if not errors:
        return "CONTAINED"
    return "PARTIAL" if changes else "FAILED"


def _verified(event: dict):
    """The execution's incident and its target, once verified. The seal's check goes beside
    the read of the VPCs' isolation groups (a read, in an allowed account only), so the swap
    waits for no request more than before."""
    incident = event.get("incident")
    if not isinstance(incident, dict):
        raise bindings.Refused("the execution names no incident")
    bindings.check_account(incident)
    target = target_for(incident, event)

    def read_ahead():
        try:
            prefetch(target, {i["vpc_id"] for i in incident["pre_state"]["interfaces"]})
        except Exception:  # the isolation step reads them itself
            log.warning("could not read the isolation groups ahead", exc_info=True)
    verified, _ = aws.concurrently([lambda: bindings.execution_incident(event), read_ahead])
    return verified, target


def run(event: dict) -> dict:
    started = incidents.now()
    try:
        incident, target = _verified(event)
    except bindings.Refused as refusal:
        return {"status": "REFUSED", "refused": refused(event, "contain", refusal)}
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
                              fields={"containment": outcome, "execution_started": True,
                                      "seal": incident["seal"]})  # release verifies with it
    except Exception as error:  # the report records them instead: what was done is never lost
        log.exception("could not record containment of %s", incident["incident_id"])
        errors.append(actions.error_record("contain-step", incident["instance_id"], error))
        return {"status": outcome, "unrecorded": {"changes": changes, "errors": errors}}
    return {"status": outcome, "changes": len(changes), "errors": len(errors)}
