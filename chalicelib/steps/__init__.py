"""The Lambda steps of the state machine: each runs ordered actions and records the outcome on
the incident. A step never raises for an action's failure; if it crashes anyway, the state
machine's Catch hands the error to the report."""

from chalicelib import aws, settings
from chalicelib.actions import Target


def target_for(incident: dict) -> Target:
    """The incident's instance, with clients in its region and the current settings."""
    region = incident["region"]
    return Target(client=lambda service: aws.client(service, region), incident=incident,
                  settings=settings.get())
