"""Evidence: snapshot every attached volume in one call, then follow the snapshots until they
complete or the deadline passes (the state machine's Wait loop calls `check`)."""

import logging
import time

from chalicelib import actions, aws, incidents
from chalicelib.actions.evidence import Snapshots
from chalicelib.steps import target_for

log = logging.getLogger(__name__)


COLLECT_ACTION_CLASSES = (Snapshots,)
COLLECT_PERMISSIONS = incidents.UPDATE_PERMISSIONS
CHECK_PERMISSIONS = ("ec2:DescribeSnapshots", *incidents.UPDATE_PERMISSIONS)


def collect(event: dict) -> dict:
    incident = event["incident"]
    started = incidents.now()
    changes, errors = actions.run([Snapshots()], target_for(incident))
    snapshot_ids = [c["after"] for c in changes]
    incidents.record_step(incident["incident_id"], "evidence", started,
                          "failed" if errors else "started", changes=changes, errors=errors,
                          evidence={"snapshots": {i: "pending" for i in snapshot_ids}})
    return {"snapshot_ids": snapshot_ids, "done": not snapshot_ids,
            "deadline": time.time() + event["timing"]["deadline_seconds"]}


def check(event: dict) -> dict:
    incident, evidence = event["incident"], event["evidence"]
    started = incidents.now()
    described = aws.client("ec2", incident["region"]).describe_snapshots(
        SnapshotIds=evidence["snapshot_ids"])["Snapshots"]
    states = {s["SnapshotId"]: s["State"] for s in described}
    unfinished = sorted(i for i, state in states.items() if state != "completed")
    late = bool(unfinished) and time.time() >= evidence["deadline"]
    done = not unfinished or late
    if done:
        errors = [{"action": "snapshots", "resource": i, "code": "SnapshotNotCompleted",
                   "message": f"{i} was still {states[i]} at the deadline"} for i in unfinished]
        incidents.record_step(incident["incident_id"], "wait-snapshots", started,
                              "late" if late else "completed", errors=errors,
                              evidence={"snapshots": states})
        log.info("snapshots of %s: %s", incident["incident_id"], states)
    return {**evidence, "done": done, "unfinished": unfinished}
