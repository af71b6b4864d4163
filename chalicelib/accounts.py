"""Acting in member accounts: which accounts, and credentials of the function's own member role.

A GuardDuty delegated-administrator account sees findings of the whole organization; the app acts
in the finding's account if `MEMBER_ACCOUNTS` allows it, through the member role there that
belongs to the running function (`member_role`): each function's member role holds that
function's actions only and trusts that function's role only, so a compromised function cannot
borrow another's rights in a member account. (A session policy cannot do this: the caller
chooses it, so a compromised function would leave it out; and it is capped at 2,048 characters.)

`MEMBER_ACCOUNTS=*` admits the accounts of the home account's organization, checked: with no
organization, none; where the home account may describe the organization's accounts (the
management account or a delegated administrator), the account must be one of them; elsewhere
the functions' AssumeRole grant (`aws:ResourceOrgID`) keeps them inside the organization.

Credentials are cached per function and account until shortly before they expire, the
organization's answers per function for the process's life (in Lambda a process is one function;
the embedded AWS runs them all in one process).
"""

import logging
import threading
import time

from chalicelib import aws, settings

log = logging.getLogger(__name__)

PERMISSIONS = ("sts:AssumeRole",)  # granted where MEMBER_ACCOUNTS names any (deploy/permissions)
# For `refusal()` with MEMBER_ACCOUNTS=*: the home account's organization, and its accounts.
ORGANIZATION_PERMISSIONS = ("organizations:DescribeOrganization",
                            "organizations:DescribeAccount")
_lock = threading.Lock()
_cache: dict = {}  # (function, account) -> (Credentials, expires at)
_organization: dict = {}  # function -> the home account's organization id (None: none)
_members: dict = {}  # (function, account) -> True (a member), False (not one), None (unknown)


def member_role(base: str, function: str) -> str:
    """The member role of the deployed function `function` (`ec2-quarantine-dev-contain`, or
    `ec2-quarantine-dev` for the API): `base` (MEMBER_ROLE_NAME) with what names the function
    among the app's, its stage included (`ec2-quarantine-member-dev-contain`)."""
    return base + function.removeprefix(aws.APP_NAME)


def refusal(account: str, home: str, current=None) -> str | None:
    """Why the app may not act in `account` (None: it may). The home account and listed
    accounts need no request; `*` asks the organization (once per function and process)."""
    current = current or settings.get()
    if account == home or account in current.member_accounts:
        return None
    if "*" not in current.member_accounts:
        return f"not the home account {home} and not in MEMBER_ACCOUNTS"
    organization = _home_organization()
    if organization is None:
        log.warning("account %s refused: MEMBER_ACCOUNTS=* and the home account %s belongs to "
                    "no organization", account, home)
        return (f"MEMBER_ACCOUNTS=* admits the accounts of this organization only, and the "
                f"home account {home} belongs to no organization")
    member = _member(account)
    if member is False:
        log.warning("account %s refused: not in organization %s", account, organization)
        return f"not the home account {home} and not in organization {organization}"
    if member is None:
        log.info("account %s admitted under MEMBER_ACCOUNTS=*: the member role is assumed only "
                 "inside organization %s (aws:ResourceOrgID)", account, organization)
    return None


def _home_organization() -> str | None:
    function = aws.current_function()
    with _lock:
        if function in _organization:
            return _organization[function]
    try:
        found = aws.client("organizations").describe_organization()["Organization"]["Id"]
    except Exception as error:
        if aws.error_code(error) != "AWSOrganizationsNotInUseException":
            raise
        found = None
    log.info("home account's organization: %s", found)
    with _lock:
        _organization[function] = found
    return found


def _member(account: str) -> bool | None:
    """Whether `account` is in the organization; None where the home account may not ask
    (only the management account and delegated administrators may)."""
    key = (aws.current_function(), account)
    with _lock:
        if key in _members:
            return _members[key]
    try:
        aws.client("organizations").describe_account(AccountId=account)
        found = True
    except Exception as error:
        code = aws.error_code(error)
        if code == "AccountNotFoundException":
            found = False
        elif code == "AccessDeniedException":
            found = None
        else:
            raise
    with _lock:
        _members[key] = found
    return found


def credentials(account: str, home: str):
    """None in the home account (the function's own role); else the credentials of the running
    function's member role in `account`."""
    if account == home:
        return None
    function = aws.current_function()
    key = (function, account)
    with _lock:
        cached = _cache.get(key)
        if cached and cached[1] - time.time() > 300:
            return cached[0]
    current = settings.get()
    kwargs = {"RoleArn": f"arn:aws:iam::{account}:role/"
                         f"{member_role(current.member_role_name, function)}",
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
        _organization.clear()
        _members.clear()
