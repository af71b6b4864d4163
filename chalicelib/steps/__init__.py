"""The Lambda steps of the state machine: each runs ordered actions and records the outcome on
the incident. A step never raises for an action's failure; if it crashes anyway, the state
machine's Catch hands the error to the report."""

import logging

from chalicelib import accounts, actions, execution, incidents
from chalicelib.actions import Target

log = logging.getLogger(__name__)


def target_for(incident: dict, event: dict) -> Target:
    """The incident's instance, with clients in its account and region, and the settings its
    execution acts under (`event` carries its options)."""
    return target_acting(incident, execution.acting_settings(event))


def target_acting(incident: dict, settings) -> Target:
    """The incident's instance, with clients in its account and region, acting under
    `settings` (the entry function's own, for its first cut)."""
    account, region = incident["account_id"], incident["region"]
    home = incident.get("home_account", account)
    return Target(client=lambda service: accounts.client(service, account, region, home),
                  home_client=lambda service: accounts.client(service, home, region, home),
                  incident=incident, settings=settings)


def is_dry_run(event: dict) -> bool:
    """Whether this execution only plans (the workflow sets options.dry_run)."""
    return bool((event.get("options") or {}).get("dry_run", False))


def refused(event: dict, step: str, refusal: Exception) -> str:
    """A refused execution or record: logged, and recorded on the incident it names (if that
    exists) so the report shows the attempt. Nothing else is done; returns the reason."""
    reason = str(refusal)
    incident = event.get("incident") if isinstance(event.get("incident"), dict) else {}
    log.warning("%s refused in %s: %s", step, event.get("execution"), reason)
    incident_id = incident.get("incident_id")
    if isinstance(incident_id, str) and incidents.INCIDENT_ID.match(incident_id):
        try:
            incidents.record_step(incident_id, step, incidents.now(), "refused", errors=[
                actions.failure_record(f"{step}-step", str(event.get("execution")),
                                       "ExecutionRefused", reason)])
        except Exception:  # no such incident, or the table refuses: the log line stays
            log.exception("could not record the refusal")
    return reason
