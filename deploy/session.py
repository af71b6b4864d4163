"""What every deploy command shares: the AWS it talks to (the account of the caller's
credentials, or the embedded AWS of a rehearsal), how it reports progress, and how it fails."""

import os


class DeployError(Exception):
    """A deployment step failed; the message says what exists now and how to resume."""


def say(message: str) -> None:
    print(f"[deploy] {message}", flush=True)


def rehearsal() -> bool:
    """True with AWS_ENDPOINT_URL set: the commands rehearse on the embedded AWS."""
    return bool(os.environ.get("AWS_ENDPOINT_URL"))


def client(service: str):
    import boto3

    return boto3.session.Session().client(service)
