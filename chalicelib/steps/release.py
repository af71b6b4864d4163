"""Release: undo what containment applied, action by action, in reverse order.

Evidence (snapshots, the evidence store, sharing) is kept, and so is the incident record. The
instance is not re-attached to its Auto Scaling group (the group replaced it); it is registered
with its target groups and load balancers again only when asked.
"""

import logging

from chalicelib import accounts, actions, incidents, report
from chalicelib.actions.evidence import ShareSnapshots, Snapshots, StopInstance, StoreEvidence
from chalicelib.steps import target_for
from chalicelib.steps.contain import ACTION_CLASSES as CONTAIN_CLASSES
from chalicelib.steps.memory import ACTION_CLASSES as MEMORY_CLASSES

log = logging.getLogger(__name__)

ACTION_CLASSES = CONTAIN_CLASSES + MEMORY_CLASSES + (Snapshots, StoreEvidence, ShareSnapshots,
                                                      StopInstance)
BY_NAME = {cls.name: cls for cls in ACTION_CLASSES}
KEPT = {"snapshots", "evidence-store", "share-snapshots", "capture-memory"}
NOT_REATTACHED = "leave-autoscaling-group"
ON_REQUEST = {"leave-target-groups", "leave-classic-load-balancers"}
PERMISSIONS = (*incidents.GET_PERMISSIONS, *incidents.UPDATE_PERMISSIONS, *accounts.PERMISSIONS)


def _key(record: dict) -> str:
    """Which change a record is (its undo is recorded under the same key)."""
    return f"{record['action']}|{record['resource']}|{record['attribute']}"


def undo_permissions() -> set[str]:
    return {p for cls in ACTION_CLASSES for p in cls.undo_permissions}


def run(event: dict) -> dict:
    incident_id = event["incident"]["incident_id"]
    started = incidents.now()
    incident = incidents.get(incident_id)
    asked = event.get("release") or {}
    target = target_for(incident, event)
    undone, errors, notes = [], [], []
    restored = set((incident.get("release") or {}).get("restored") or [])
    for record in reversed(incident.get("changes") or []):
        name = record["action"]
        if name in KEPT or _key(record) in restored:  # kept, or restored by an earlier attempt
            continue
        if name == NOT_REATTACHED:
            if record["after"] == "in standby":
                notes.append(f"left in Standby in Auto Scaling group {record['before']} "
                             "(ExitStandby puts it back in service)")
            elif record["attribute"] == "autoscaling-group":
                notes.append(f"not re-attached to Auto Scaling group {record['before']}: "
                             "the group launched a replacement")
            continue
        if name in ON_REQUEST and not asked.get("reregister"):
            notes.append(f"not registered again with {record['resource']} (ask with "
                         '"reregister": true)')
            continue
        action = BY_NAME[name]()
        try:
            action.undo(target, record)
            undone.append(record)
        except Exception as error:  # reported; the other changes are still undone
            log.warning("undo of %s on %s failed: %s", name, record["resource"], error)
            errors.append(actions.error_record(action, record["resource"], error))
    final = "RELEASED" if not errors else incident["status"]
    incident = incidents.record_step(
        incident_id, "release", started, "released" if not errors else "incomplete",
        errors=errors, fields={"status": final, "release": {
            "reason": asked.get("reason", ""), "notes": notes,
            "requested_by": asked.get("requested_by", ""), "restored_changes": (
                (incident.get("release") or {}).get("restored_changes", []) + undone),
            "restored": sorted(restored | {_key(r) for r in undone})}})
    if not errors:
        incidents.release_claim(incident)  # a new finding may open a new incident
    log.info("release of %s: %s (%d undone, %d errors)", incident_id, final, len(undone),
             len(errors))
    return report.released(incident, undone, errors, notes)
