"""Release: undo what containment applied, action by action, in reverse order.

Each action declares what release does with its changes (`on_release`): evidence (snapshots,
the evidence store, sharing, memory) is kept, and so is the incident record; the instance is not
re-attached to its Auto Scaling group (the group replaced it); it is registered with its target
groups and load balancers again only when asked; everything else is undone.
"""

import logging

from chalicelib import actions, bindings, incidents, publish, report, securityhub, tamper
from chalicelib.actions import OnRelease
from chalicelib.actions.evidence import (MalwareScan, ShareSnapshots, Snapshots, StopInstance,
                                         StoreEvidence)
from chalicelib.steps import refused, target_for
from chalicelib.steps.contain import ACTION_CLASSES as CONTAIN_CLASSES
from chalicelib.steps.memory import ACTION_CLASSES as MEMORY_CLASSES

log = logging.getLogger(__name__)

ACTION_CLASSES = CONTAIN_CLASSES + MEMORY_CLASSES + (Snapshots, StoreEvidence, ShareSnapshots,
                                                      MalwareScan, StopInstance)
BY_NAME = {cls.name: cls for cls in ACTION_CLASSES}
PERMISSIONS = (*incidents.GET_PERMISSIONS, *incidents.UPDATE_PERMISSIONS,
               *bindings.VERIFY_PERMISSIONS)


def undo_permissions() -> set[str]:
    """Release may undo any action's changes, whatever the settings are today: an option
    switched off after an incident opened must not strand that incident (it undoes only
    records whose seal and ownership it verified first)."""
    return {p for cls in ACTION_CLASSES for p in cls.undo_permissions}


def to_undo(changes: list[dict], restored: set[str], reregister: bool):
    """The records release undoes, newest first, and notes on those it leaves as they are
    (each action's `on_release` decides; a change restored by an earlier attempt is skipped)."""
    undo, notes = [], []
    for record in reversed(changes):
        on_release = BY_NAME[record["action"]].on_release
        if on_release is OnRelease.KEPT or actions.change_key(record) in restored:
            continue
        if on_release is OnRelease.NOT_REATTACHED:
            if record["after"] == "in standby":
                notes.append(f"left in Standby in Auto Scaling group {record['before']} "
                             "(ExitStandby puts it back in service)")
            elif record["attribute"] == "autoscaling-group":
                notes.append(f"not re-attached to Auto Scaling group {record['before']}: "
                             "the group launched a replacement")
            continue
        if on_release is OnRelease.ON_REQUEST and not reregister:
            notes.append(f"not registered again with {record['resource']} (ask with "
                         '"reregister": true)')
            continue
        undo.append(record)
    return undo, notes


def _verified(event: dict):
    """(incident, release request) once both are the product's own: the request sealed for this
    execution, the incident's binding sealed, its account allowed today."""
    asked = bindings.release_request(event)
    incident = incidents.get(event["incident"]["incident_id"])
    if incident is None:
        raise bindings.Refused(f"no incident {event['incident']['incident_id']}")
    return bindings.verified_incident(incident), asked


def _refusal(record: dict, why: str) -> dict:
    return actions.failure_record(str(record.get("action")), str(record.get("resource")),
                                  "RecordRefused", why)


def refusals(incident: dict, target, restored: set, reregister: bool):
    """(what release would undo, notes, a failure record for each change it may not touch).
    Every change must carry the product's seal; each one to undo must belong to the
    incident's instance (its action checks that against the sealed pre-incident state and
    what AWS says now)."""
    changes = incident.get("changes") or []
    verdicts = bindings.unverified_changes(incident["incident_id"], changes,
                                           incident.get("change_seals"))
    refused = [_refusal(record, why) for record, why in zip(changes, verdicts) if why]
    if refused:
        return [], [], refused
    pending, notes = to_undo(changes, restored, reregister)
    refused = [_refusal(record, why) for record in pending if (why := _foreign(target, record))]
    return pending, notes, refused


def _foreign(target, record: dict) -> str | None:
    try:
        return BY_NAME[record["action"]]().foreign(target, record)
    except Exception as error:  # what cannot be checked is not restored
        return f"could not check it belongs to {target.instance_id}: {error}"


def run(event: dict) -> dict:
    started = incidents.now()
    try:
        incident, asked = _verified(event)
    except bindings.Refused as refusal:
        return report.refused(event.get("execution"), refused(event, "release", refusal))
    incident_id = incident["incident_id"]
    try:  # the tamper watch keeps off while this runs, and this waits for a repair under way
        incidents.hold_for_release(incident_id)
    except incidents.Held as held:
        log.warning("release of %s not started: %s", incident_id, held)
        incident = incidents.record_step(incident_id, "release", started, "refused", errors=[
            actions.failure_record("release-step", incident_id, "RepairUnderWay", str(held))])
        return report.released(incident, [], incident["errors"][-1:], [])
    target = target_for(incident, event)
    undone, errors = [], []
    restored = set((incident.get("release") or {}).get("restored") or [])
    pending, notes, refused_records = refusals(incident, target, restored,
                                               bool(asked.get("reregister")))
    notes = notes + tamper.repairs_release_leaves(incident)
    if refused_records:  # nothing is restored from a record the product cannot vouch for
        log.warning("release of %s refused: %s", incident_id, refused_records)
        incident = incidents.record_step(incident_id, "release", started, "refused",
                                         errors=refused_records,
                                         fields={"releasing_until": incidents.now()})
        return report.released(incident, [], refused_records, notes)
    for record in pending:
        action = BY_NAME[record["action"]]()
        try:
            action.undo(target, record)
            undone.append(record)
        except Exception as error:  # reported; the other changes are still undone
            log.warning("undo of %s on %s failed: %s", action.name, record["resource"], error)
            errors.append(actions.error_record(action, record["resource"], error))
    final = "RELEASED" if not errors else incident["status"]
    incident = incidents.record_step(
        incident_id, "release", started, "released" if not errors else "incomplete",
        errors=errors, fields={"status": final, "releasing_until": incidents.now(), "release": {
            "reason": asked.get("reason", ""), "notes": notes,
            "requested_by": asked.get("requested_by", ""), "restored_changes": (
                (incident.get("release") or {}).get("restored_changes", []) + undone),
            "restored": sorted(restored | {actions.change_key(r) for r in undone})}})
    if not errors:
        incidents.release_claim(incident)  # a new finding may open a new incident
    log.info("release of %s: %s (%d undone, %d errors)", incident_id, final, len(undone),
             len(errors))
    publish.request(incident_id)
    if final == "RELEASED":
        securityhub.follow(incident_id, release_execution=event["execution"])
    return report.released(incident, undone, errors, notes)
