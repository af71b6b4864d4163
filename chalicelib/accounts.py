"""Acting in member accounts: credentials of the member role, assumed with an external id.

A GuardDuty delegated-administrator account sees findings of the whole organization; the app acts
in the finding's account through `MEMBER_ROLE_NAME` there, if `MEMBER_ACCOUNTS` allows it.
Credentials are cached per function and account until shortly before they expire (in Lambda a
process is one function; the embedded AWS runs them all in one process).
"""

import threading
import time

from chalicelib import aws, settings

PERMISSIONS = ("sts:AssumeRole",)  # granted where MEMBER_ACCOUNTS names any (deploy/permissions)
_lock = threading.Lock()
_cache: dict = {}  # (function, account) -> (Credentials, expires at)


def allowed(account: str, home: str, current=None) -> bool:
    current = current or settings.get()
    return account == home or "*" in current.member_accounts or account in current.member_accounts


def credentials(account: str, home: str):
    """None in the home account (the function's own role); the member role's credentials else."""
    if account == home:
        return None
    key = (aws.current_function(), account)
    with _lock:
        cached = _cache.get(key)
        if cached and cached[1] - time.time() > 300:
            return cached[0]
    current = settings.get()
    kwargs = {"RoleArn": f"arn:aws:iam::{account}:role/{current.member_role_name}",
              "RoleSessionName": f"ec2-quarantine-{home}"}
    if current.member_external_id:
        kwargs["ExternalId"] = current.member_external_id
    issued = aws.client("sts").assume_role(**kwargs)["Credentials"]
    found = aws.Credentials(issued["AccessKeyId"], issued["SecretAccessKey"],
                            issued["SessionToken"])
    with _lock:
        _cache[key] = (found, issued["Expiration"].timestamp())
    return found


def client(service: str, account: str, region: str, home: str):
    """A client acting in `account` and `region`."""
    return aws.client(service, region, credentials(account, home))


def forget() -> None:
    with _lock:
        _cache.clear()
