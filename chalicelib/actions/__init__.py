"""Containment and evidence actions: small objects that plan, apply and undo one change each.

An action declares the IAM actions it needs (each function's policy file is generated from them)
and what release does with its changes (`on_release`); it can *plan* (say exactly what it would
change — dry-run), *apply* (make the change and return records of what was there before) and
*undo* (restore from such a record — release). A step runs an ordered list of actions; one
action's failure is recorded, with the changes it made before failing, and the next one still
runs.
"""

import enum
import logging
from dataclasses import dataclass, field

from chalicelib import aws

log = logging.getLogger(__name__)


@dataclass
class Target:
    """The instance an incident is about, and what the actions share while acting on it."""

    client: object  # client(service) -> boto3 client in the instance's account and region
    home_client: object  # home_client(service) -> client of the app's own account (its bucket)
    incident: dict  # incident_id, instance_id, pre_state (interfaces, profile, volumes…), finding
    settings: object  # chalicelib.settings.Settings: which optional actions are on
    cache: dict = field(default_factory=dict)  # e.g. isolation groups per VPC

    @property
    def ec2(self):
        return self.client("ec2")

    @property
    def instance_id(self) -> str:
        return self.incident["instance_id"]

    @property
    def pre_state(self) -> dict:
        return self.incident["pre_state"]


def change(action: str, resource: str, attribute: str, before, after) -> dict:
    """The record of one change: enough to report it and to undo it."""
    return {"action": action, "resource": resource, "attribute": attribute,
            "before": before, "after": after}


def change_key(record: dict) -> str:
    """Which change a record is: its action, resource and attribute (two records of one change,
    made at different times, share it)."""
    return f"{record['action']}|{record['resource']}|{record['attribute']}"


class OnRelease(enum.Enum):
    """What release does with an action's changes."""

    UNDONE = "undone"
    KEPT = "kept as evidence"  # snapshots, the evidence store, sharing, memory
    NOT_REATTACHED = "not re-attached"  # the Auto Scaling group has replaced the instance
    ON_REQUEST = "undone only on request"  # registering with load balancers again ("reregister")


def narrowed(action: str, scope: str) -> str:
    """An IAM action declared for one narrow use only (`ec2:ModifyInstanceAttribute` for one
    attribute, `iam:PassRole` for the deny-all role): deploy/grants.py grants it with the
    condition or resource that use allows, and nothing wider."""
    return f"{action}/{scope}"


class Action:
    """One containment or evidence action. Subclasses set `name`, `permissions` and
    `on_release` (and `undo_permissions` when release undoes them)."""

    name = "action"
    permissions: tuple[str, ...] = ()  # IAM actions that plan and apply need (or `narrowed`)
    undo_permissions: tuple[str, ...] = ()  # IAM actions that undo needs
    on_release: OnRelease  # no default: each action decides

    def plan(self, target: Target) -> list[dict]:
        raise NotImplementedError

    def apply(self, target: Target) -> list[dict]:
        raise NotImplementedError

    def undo(self, target: Target, record: dict) -> None:
        raise NotImplementedError

    def foreign(self, target: Target, record: dict) -> str | None:
        """Why release must not undo `record` here (None: it is this instance's own). Checked
        against the sealed pre-incident state and what AWS says now, never the record alone.
        By default a record's resource is the instance itself."""
        if record.get("resource") != target.instance_id:
            return f"{record.get('resource')!r} is not instance {target.instance_id}"
        return None


class Skipped(Exception):
    """The action does not apply to this instance: a note, not an error."""


class PartialFailure(Exception):
    """An action failed after making some of its changes: those are kept and recorded."""

    def __init__(self, made: list[dict], error: Exception):
        super().__init__(str(error))
        self.made, self.error = made, error


def apply_each(records: list[dict], make) -> list[dict]:
    """Make the change of each record in turn; if one fails, raise with the ones made."""
    made = []
    for record in records:
        try:
            make(record)
        except Exception as error:
            raise PartialFailure(made, error) from error
        made.append(record)
    return made


def failure_record(action: str, resource: str, code: str, message: str) -> dict:
    """A failure as the incident records and the report shows it."""
    return {"action": action, "resource": resource, "code": code, "message": message[:500]}


def error_record(action: Action | str, resource: str, error: Exception) -> dict:
    """An action's (or a step's, by name) exception as a failure record."""
    message = (getattr(error, "response", None) or {}).get("Error", {}).get("Message")
    return failure_record(action if isinstance(action, str) else action.name, resource,
                          aws.error_code(error) or type(error).__name__, message or str(error))


def run(actions: list[Action], target: Target, dry_run: bool = False,
        notes: list[str] | None = None):
    """Apply `actions` in order — or only plan them (dry run: reads, no change); returns
    (changes made or planned, errors). Never raises for an action. An action that does not
    apply (`Skipped`) adds its reason to `notes` when the caller keeps notes, else it is an
    error like any other."""
    changes, errors = [], []
    for action in actions:
        try:
            made = action.plan(target) if dry_run else action.apply(target)
            changes.extend(made)
            log.info("%s on %s: %d change(s)%s", action.name, target.instance_id, len(made),
                     " planned" if dry_run else "")
        except Exception as error:  # recorded, reported, and the next action still runs
            if isinstance(error, Skipped) and notes is not None:
                log.info("%s on %s skipped: %s", action.name, target.instance_id, error)
                notes.append(str(error))
                continue
            log.warning("%s on %s failed: %s", action.name, target.instance_id, error)
            if isinstance(error, PartialFailure):
                changes.extend(error.made)
                error = error.error
            errors.append(error_record(action, getattr(action, "resource", target.instance_id),
                                       error))
    return changes, errors
