"""Evidence: snapshot every attached volume in one call, then follow the snapshots until they
complete or the deadline passes (the state machine's Wait loop calls `check`)."""

import logging
import time

from chalicelib import actions, bindings, incidents, malware
from chalicelib.actions.evidence import (MalwareScan, ShareSnapshots, Snapshots, StopInstance,
                                         StoreEvidence)
from chalicelib.steps import is_dry_run, refused, target_for

log = logging.getLogger(__name__)


COLLECT_ACTION_CLASSES = (Snapshots, StoreEvidence)
COLLECT_PERMISSIONS = (*incidents.UPDATE_PERMISSIONS, *bindings.SEAL_PERMISSIONS,
                       *bindings.VERIFY_PERMISSIONS)
CHECK_PERMISSIONS = ("ec2:DescribeSnapshots", *COLLECT_PERMISSIONS)
NOTHING = {"snapshot_ids": [], "done": True, "unfinished": []}  # what a refused step leaves


def collect(event: dict) -> dict:
    started = incidents.now()
    try:
        incident = bindings.execution_incident(event)
    except bindings.Refused as refusal:
        return {**NOTHING, "deadline": 0, "refused": refused(event, "evidence", refusal)}
    target = target_for(incident, event)
    if is_dry_run(event):
        later = safe_evidence_actions({"(each new snapshot)": "completed"}, [], target.settings)
        planned, errors = actions.run([Snapshots(), StoreEvidence([])] + later, target,
                                      dry_run=True)
        incidents.record_step(incident["incident_id"], "evidence", started, "planned",
                              errors=errors, fields={"evidence_plan": planned})
        return {"snapshot_ids": [], "done": True, "deadline": time.time()}
    changes, errors = actions.run([Snapshots()], target)
    snapshot_ids = [c["after"] for c in changes]
    stored, store_errors = actions.run([StoreEvidence(snapshot_ids)], target)
    bucket = target.settings.evidence_bucket
    incidents.record_step(incident["incident_id"], "evidence", started,
                          "failed" if errors or store_errors else "started",
                          changes + stored, errors + store_errors,
                          fields={"evidence": {
                              "snapshots": {i: "pending" for i in snapshot_ids},
                              "store": f"s3://{bucket}/{incident['incident_id']}/" if stored
                              else None}})
    return {"snapshot_ids": snapshot_ids, "done": not snapshot_ids,
            "deadline": time.time() + target.settings.snapshot_deadline_seconds}


def after_evidence_classes(options) -> tuple[type[actions.Action], ...]:
    """What may follow once every snapshot completed, under `options`: sharing them, the
    malware scan, stopping the instance (the check step's policy is made of these)."""
    return ((ShareSnapshots,) if options.forensic_account_id else ()) + (
        (MalwareScan,) if options.malware_scan else ()) + (
        (StopInstance,) if options.stop_after_evidence else ())


def safe_evidence_actions(states: dict, unfinished: list, options) -> list[actions.Action]:
    """The actions `after_evidence_classes` names, once every snapshot completed."""
    if unfinished or not states:
        return []
    return [ShareSnapshots(sorted(states)) if cls is ShareSnapshots else cls()
            for cls in after_evidence_classes(options)]


def check(event: dict) -> dict:
    started = incidents.now()
    try:
        incident = bindings.execution_incident(event)
    except bindings.Refused as refusal:
        return {**NOTHING, "refused": refused(event, "wait-snapshots", refusal)}
    evidence = event["evidence"]
    target = target_for(incident, event)
    described = target.ec2.describe_snapshots(
        SnapshotIds=evidence["snapshot_ids"])["Snapshots"]
    states = {s["SnapshotId"]: s["State"] for s in described}
    unfinished = sorted(i for i, state in states.items() if state != "completed")
    pending = [i for i in unfinished if states[i] == "pending"]  # "error" is final at once
    late = bool(pending) and time.time() >= evidence["deadline"]
    done = not pending or late
    if done:
        errors = [actions.failure_record(
            "snapshots", i, "SnapshotNotCompleted", f"{i} was still {states[i]} at the deadline"
            if states[i] == "pending" else f"{i} ended in state {states[i]}") for i in unfinished]
        changes, after_errors = actions.run(
            safe_evidence_actions(states, unfinished, target.settings), target)
        scan = malware.started(changes, after_errors, "not every snapshot completed")  \
            if target.settings.malware_scan else None
        incidents.record_step(incident["incident_id"], "wait-snapshots", started,
                              "late" if late else "completed", changes, errors + after_errors,
                              fields={"evidence.snapshots": states,
                                      **({"malware_scan": scan} if scan else {})})
        log.info("snapshots of %s: %s", incident["incident_id"], states)
    else:  # how far they are, and when they are looked at next, for whoever follows
        incidents.note_progress(incident["incident_id"], {
            "evidence.snapshots": states, "evidence.next_check_at": _at(
                time.time() + target.settings.snapshot_poll_seconds),
            "evidence.deadline_at": _at(evidence["deadline"])})
    return {**evidence, "done": done, "unfinished": unfinished}


def _at(epoch: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))
