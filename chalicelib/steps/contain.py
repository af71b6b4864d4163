"""Contain: verify the first cut and finish it (every interface isolated, preservation and
short connection tracking beside the first swap: chalicelib/cut.py), then leave the Auto
Scaling group and load balancers, cut the credentials, turn the metadata service off, and tag
the instance. Each change is recorded against the sealed pre-incident state, whether the entry
function's cut made it or this step did."""

import logging

from chalicelib import actions, approvals, aws, bindings, cut, incidents
from chalicelib.actions.instance import (
    DetachInstanceProfile,
    DisableApiStop,
    DisableInstanceMetadata,
    KeepVolumesOnTermination,
    QuarantineTags,
    RevokeRoleSessions,
    ShutdownBehaviourStop,
    SwapToDenyAllProfile,
    TerminationProtection,
)
from chalicelib.actions import isolation
from chalicelib.actions.isolation import IsolateInterface, ShortenConnectionTracking
from chalicelib.actions.traffic import (
    DisassociateElasticIp,
    LeaveAutoScalingGroup,
    LeaveClassicLoadBalancers,
    LeaveTargetGroups,
)
from chalicelib.steps import is_dry_run, refused, target_for

log = logging.getLogger(__name__)


ACTION_CLASSES = (IsolateInterface, ShortenConnectionTracking, LeaveAutoScalingGroup,
                  LeaveTargetGroups, LeaveClassicLoadBalancers, DisassociateElasticIp,
                  DetachInstanceProfile, SwapToDenyAllProfile, RevokeRoleSessions,
                  DisableInstanceMetadata, TerminationProtection, ShutdownBehaviourStop,
                  KeepVolumesOnTermination, DisableApiStop, QuarantineTags)
PERMISSIONS = (*incidents.UPDATE_PERMISSIONS, *bindings.SEAL_PERMISSIONS,
               *bindings.VERIFY_PERMISSIONS, *cut.OBSERVE_PERMISSIONS)


def containment_classes(options) -> tuple[type[actions.Action], ...]:
    """The action classes containment runs under `options`, in order; the contain function's
    policy is made of these and no others (deploy/permissions.py)."""
    return (IsolateInterface, ShortenConnectionTracking, LeaveAutoScalingGroup,
            LeaveTargetGroups, LeaveClassicLoadBalancers,
            *((DisassociateElasticIp,) if options.disassociate_elastic_ip else ()),
            SwapToDenyAllProfile if options.credentials_mode == "deny-all"
            else DetachInstanceProfile,
            RevokeRoleSessions,  # always: whether it revokes is the incident's (its plan)
            DisableInstanceMetadata, TerminationProtection, ShutdownBehaviourStop,
            KeepVolumesOnTermination,
            *((DisableApiStop,) if options.disable_api_stop else ()), QuarantineTags)


def containment_actions(pre_state: dict, settings) -> list[actions.Action]:
    """The ordered containment actions (the tags come after them, with the outcome). Isolation
    first (the cut made it already: these record it): nothing stands in front of the swap.
    Leaving the Auto Scaling group and the load balancers follows at once, well inside any
    health-check window; then credentials (the metadata service off with them) and
    preservation."""
    ordered: list[actions.Action] = []
    for cls in containment_classes(settings):
        if cls in (IsolateInterface, ShortenConnectionTracking):
            ordered += [cls(i) for i in pre_state["interfaces"]]
        elif cls is not QuarantineTags:
            ordered.append(cls())
    return ordered


# What containment is: every interface isolated and the credentials cut. The rest (Auto Scaling,
# load balancers, the metadata service, preservation, tracking, tags) is reported, and does not
# decide the status.
CRITICAL = (IsolateInterface.name, DetachInstanceProfile.name, SwapToDenyAllProfile.name)


def status(changes: list, errors: list) -> str:
    """CONTAINED: no critical action failed, whatever else did; FAILED: critical actions failed
    and none applied; PARTIAL: in between."""
    if not any(e["action"] in CRITICAL for e in errors):
        return "CONTAINED"
    return "PARTIAL" if any(c["action"] in CRITICAL for c in changes) else "FAILED"


def _verified(event: dict):
    """The execution's incident and its target, once verified. The seal's check goes beside
    the read of the instance as it is now and the VPCs' isolation groups (reads, in an allowed
    account only), so finishing the cut waits for no request more."""
    incident = event.get("incident")
    if not isinstance(incident, dict):
        raise bindings.Refused("the execution names no incident")
    bindings.check_account(incident)
    target = target_for(incident, event)

    def read_ahead():
        try:
            cut.observe(target)
        except Exception:  # the actions read what they need themselves
            log.warning("could not read the instance and its groups ahead", exc_info=True)
    verified, _ = aws.concurrently([lambda: bindings.execution_incident(event), read_ahead])
    return verified, target


def _recorded_by_the_cut(event: dict) -> set[str]:
    """The changes the entry function's cut recorded already (`actions.change_key`): Contain
    records them again only if the cut could not. (Were this forged, a change would go
    unrecorded and release would leave it in place: the isolated side.)"""
    made = event.get("cut") if isinstance(event.get("cut"), dict) else {}
    recorded = made.get("recorded")
    return {key for key in recorded if isinstance(key, str)} if isinstance(recorded, list) \
        else set()


def run(event: dict) -> dict:
    started = incidents.now()
    try:
        incident, target = _verified(event)
    except bindings.Refused as refusal:
        return {"status": "REFUSED", "refused": refused(event, "contain", refusal)}
    dry_run = is_dry_run(event)
    unapproved = not dry_run and incident.get("approval") and approvals.not_decided_to_contain(
        incident["incident_id"], (event.get("cut") or {}).get("decision"))
    if unapproved:  # however the execution got here (a restart, a forged status)
        return {"status": "REFUSED", "refused": refused(event, "contain", unapproved)}
    if not dry_run:  # what the entry function's cut left to do (its failures: the actions')
        cut.make(target, restore=True)
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
    recorded = _recorded_by_the_cut(event)
    changes = [c for c in changes if actions.change_key(c) not in recorded] + tag_changes
    errors = errors + tag_errors
    log.info("contained %s for %s: %s (%d changes, %d errors)", incident["instance_id"],
             incident["incident_id"], outcome, len(changes), len(errors))
    try:
        incidents.record_step(incident["incident_id"], "contain", started, outcome.lower(),
                              changes, errors,
                              fields={"containment": outcome, "execution_started": True,
                                      "seal": incident["seal"],  # release verifies with it
                                      **isolation.named_groups(target)})
    except Exception as error:  # the report records them instead: what was done is never lost
        log.exception("could not record containment of %s", incident["incident_id"])
        errors.append(actions.error_record("contain-step", incident["instance_id"], error))
        return {"status": outcome, "unrecorded": {"changes": changes, "errors": errors}}
    return {"status": outcome, "changes": len(changes), "errors": len(errors)}
