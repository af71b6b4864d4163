"""The Lambda steps of the state machine: each runs ordered actions and records the outcome on
the incident. A step never raises for an action's failure; if it crashes anyway, the state
machine's Catch hands the error to the report."""

from chalicelib import aws
from chalicelib.actions import Target


def target_for(incident: dict) -> Target:
    """The incident's instance, with an EC2 client in its region."""
    return Target(ec2=aws.client("ec2", incident["region"]), incident=incident)
