"""What travels with an execution: its input, built once when it starts.

One rule: every option that chooses actions (`settings.Options`) is frozen into the input when
the execution starts, and the steps act under those (`acting_settings`), so a settings change
mid-flight applies to the next incident and never mixes two configurations in one. Resource
names (state machine, topic, table, bucket) are the deployment's: each step reads them from its
own environment. The state machine passes `options` to every Lambda step.
"""

from dataclasses import replace
from typing import Literal, TypedDict

from chalicelib import findings, incidents, notices, report, settings


class Frozen(TypedDict, total=False):
    """`settings.Options` by field name (dry_run: this incident's, the setting's or the
    request's), and `memory_capture`, which the state machine's choice reads."""

    memory_capture: bool


class Labels(TypedDict):
    """What the state machine's own notices (a step that renders them failed) say the incident
    is: plain strings, read by JSONPath (deploy/statemachine.py `_fallback`)."""

    incident_id: str
    instance_id: str
    account: str
    region: str
    finding_type: str
    status: str


def labels(incident: dict) -> Labels:
    finding = incident.get("finding") if isinstance(incident.get("finding"), dict) else {}
    return {"incident_id": str(incident.get("incident_id")),
            "instance_id": str(incident.get("instance_id")),
            "account": str(incident.get("account_id") or notices.UNKNOWN),
            "region": str(incident.get("region") or notices.UNKNOWN),
            "finding_type": str(finding.get("type") or "none"),
            "status": str(incident.get("status") or notices.UNKNOWN)}


class QuarantineInput(TypedDict, total=False):
    mode: Literal["quarantine"]
    incident: dict  # the incident as opened, without its further findings (they can grow)
    notice: dict  # the detection notice NotifyDetected publishes (report.py's shape)
    labels: Labels
    options: Frozen
    memory: dict  # CaptureMemory's result, once it ran
    cut: dict  # the entry function's first cut (workflow.first_cut); without one, only
    # {"containment": None} (the state machine reads that key when Contain crashed)
    # An incident awaiting approval (chalicelib/steps/approval.py) also carries:
    wait_seconds: int  # the wait's timeout (its approval's, sealed with the incident)
    plan_options: Frozen  # the options, planning only: the plan announced with the request
    wait_error: dict  # why the last wait ended, if it failed ({}: not failed)
    wakes: int  # how often the wait ended without a decision (each pauses the next longer)
    woken: dict  # what the last wake brought ({"decision": …} sealed, when the product woke it)


class ReleaseRequest(TypedDict):
    reason: str
    reregister: bool  # register with target groups and load balancers again
    requested_by: str


class ReleaseInput(TypedDict):
    mode: Literal["release"]
    incident: dict  # {"incident_id"}: the release step reads the record itself
    labels: Labels
    release: ReleaseRequest
    options: Frozen


def freeze(current: settings.Settings, dry_run: bool) -> Frozen:
    """The options an execution starts under."""
    frozen = {name: getattr(current, name) for name in settings.OPTIONS}
    return {**frozen, "dry_run": dry_run, "memory_capture": bool(current.memory_capture_document)}


def quarantine(incident: dict, current: settings.Settings,
               cut_made: dict | None = None) -> QuarantineInput:
    started: QuarantineInput = {
        "mode": "quarantine",
        "incident": {key: value for key, value in incident.items() if key != "findings"},
        "notice": report.detection(incident),
        "labels": labels(incident),
        "options": freeze(current, dry_run=incident["status"] in PLANNING_ONLY),
        "memory": {},
        "cut": cut_made or {"containment": None},
    }
    if incident.get("approval"):  # sealed with the incident: its status is not
        started.update(wait_seconds=incident["approval"]["timeout_seconds"],
                       plan_options=freeze(current, dry_run=True), wait_error={}, wakes=0,
                       woken={})
    return started


PLANNING_ONLY = ("DRY_RUN", incidents.NOTIFIED)  # their executions plan and change nothing


def release(incident: dict, request: findings.QuarantineRequest, reregister: bool,
            current: settings.Settings) -> ReleaseInput:
    asked: ReleaseRequest = {"reason": request.reason, "reregister": reregister,
                             "requested_by": request.requested_by}
    return {"mode": "release", "incident": {"incident_id": incident["incident_id"]},
            "labels": labels(incident), "release": asked,
            "options": freeze(current, dry_run=False)}


def acting_settings(event: dict) -> settings.Settings:
    """The settings a step acts under: the deployment's resources from its environment, the
    options its execution started with. (An execution started before options travelled lacks
    some: those are the environment's, as they were then.)"""
    frozen = event.get("options") or {}
    return replace(settings.get(), **{name: frozen[name] for name in settings.OPTIONS
                                      if name in frozen})
