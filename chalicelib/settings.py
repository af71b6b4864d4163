"""All configuration, read once from environment variables and validated.

Each setting is declared once, as a field below: its variable is the field's name in upper case,
its type the annotation, and `setting()` gives its default, parser and meaning. Loading, the
defaults, the README's settings table and the app-wide environment in `.chalice/config.json`
(`make settings`, `deploy/settings_files.py`) all derive from these declarations. `Options` are
the settings that choose actions: they are frozen into each execution when its incident opens
(`chalicelib/execution.py`). A bad value raises `SettingsError` naming the variable and the value,
so a misconfigured stage fails loudly instead of acting on a guess.
"""

import functools
import os
import re
from dataclasses import dataclass, field, fields

ACCOUNT_ID = re.compile(r"\A[0-9]{12}\Z")  # ASCII digits; \Z: no trailing "\n"


class SettingsError(ValueError):
    """A setting has a value the app cannot act on."""


# -- parsers: (variable, raw value) -> value, or SettingsError -------------------------------

def number(low, high, kind=float):
    def parse(name, raw):
        try:
            value = kind(raw)
        except ValueError:
            raise SettingsError(f"{name}={raw!r} is not a number") from None
        if not low <= value <= high:
            raise SettingsError(f"{name}={raw!r} is outside {low}..{high}")
        return value
    return parse


def boolean(name, raw):
    lowered = raw.strip().lower()
    if lowered in ("true", "1", "yes"):
        return True
    if lowered in ("false", "0", "no", ""):
        return False
    raise SettingsError(f"{name}={raw!r} is not a boolean (true or false)")


def choice(*choices):
    def parse(name, raw):
        value = raw.strip().lower()
        if value not in choices:
            raise SettingsError(f"{name}={raw!r} is not one of {', '.join(choices)}")
        return value
    return parse


def verbatim(name, raw):
    return raw


def stripped(name, raw):
    return raw.strip()


def csv(name, raw):
    return tuple(part.strip() for part in raw.split(",") if part.strip())


def accounts(name, raw):
    found = csv(name, raw)
    for account in found:
        if account != "*" and not ACCOUNT_ID.match(account):
            raise SettingsError(f"{name} has {account!r}, not a 12-digit account id or *")
    return found


def account_or_empty(name, raw):
    value = raw.strip()
    if value and not ACCOUNT_ID.match(value):
        raise SettingsError(f"{name}={value!r} is not a 12-digit account id")
    return value


def tag_key(name, raw):
    value = raw.strip()
    if not value:
        raise SettingsError(f"{name} is empty: exemptions would be impossible to express")
    return value


TOPIC_ARN = re.compile(r"\Aarn:aws[a-z-]*:sns:[a-z]{2}(?:-[a-z]+)+-[0-9]{1,2}:[0-9]{12}:"
                       r"[A-Za-z0-9_-]{1,256}\Z")


def topic_or_empty(name, raw):
    value = raw.strip()
    if value and not TOPIC_ARN.match(value):
        raise SettingsError(f"{name}={value!r} is not an SNS topic ARN")
    return value


PRINCIPAL_ARN = re.compile(r"\Aarn:aws[a-z-]*:(?:iam::[0-9]{12}:(?:user|role)/[\w+=,.@/-]{1,512}|"
                           r"sts::[0-9]{12}:assumed-role/[\w+=,.@-]{1,64}/[\w+=,.@-]{2,64})\Z")


def principals(name, raw):
    found = csv(name, raw)
    for arn in found:
        if not PRINCIPAL_ARN.match(arn):
            raise SettingsError(f"{name} has {arn[:200]!r}, not an IAM user or role ARN (or an "
                                "assumed-role session ARN)")
    return found


def response_rules(name, raw):
    from chalicelib import findings, rules  # they import this module

    if len(raw.encode()) > ENVIRONMENT_LIMIT:
        raise SettingsError(f"{name} is {len(raw.encode())} bytes: Lambda's environment holds "
                            f"{ENVIRONMENT_LIMIT} bytes in all")
    try:
        return rules.parse(raw, ACCOUNT_ID, findings.REGION)
    except rules.RuleError as error:
        raise SettingsError(f"{name} {error}") from None


ENVIRONMENT_LIMIT = 4096  # Lambda: every variable's name and value together
APPROVAL_TIMEOUT_MAX = 7 * 24 * 3600  # the longest an approval may wait (seconds)


def environment_overflow(environment: dict[str, str]) -> str | None:
    """Why a function's `environment` does not fit Lambda's limit (None: it fits)."""
    size = sum(len(key.encode()) + len(str(value).encode()) for key, value in environment.items())
    if size <= ENVIRONMENT_LIMIT:
        return None
    largest = sorted(environment, key=lambda key: -len(str(environment[key]).encode()))[:3]
    return (f"the environment is {size} bytes, over Lambda's {ENVIRONMENT_LIMIT}: shorten "
            f"{', '.join(largest)}")


def setting(default: str, parse, meaning: str, deployed: bool = False):
    """Declare a setting: its raw default, its parser, its meaning (the README's words).
    `deployed`: written into each stage's environment by deployment (a stack output)."""
    return field(metadata={"default": default, "parse": parse, "meaning": meaning,
                           "deployed": deployed})


# -- the declarations -----------------------------------------------------------------------

@dataclass(frozen=True)
class Options:
    """What to do: read when an incident opens and carried by its execution, so a settings
    change mid-flight never mixes two configurations in one incident."""

    dry_run: bool = setting("false", boolean, "plan only, change nothing")
    autoscaling_mode: str = setting(
        "detach", choice("detach", "standby"),
        "`detach` (keep desired capacity: the group launches a replacement) or `standby`")
    disassociate_elastic_ip: bool = setting("false", boolean,
                                            "take the instance's Elastic IPs away")
    credentials_mode: str = setting(
        "disassociate", choice("disassociate", "deny-all"),
        "`disassociate` the instance profile, or `deny-all`: swap in `DENY_ALL_PROFILE_ARN`")
    deny_all_profile_arn: str = setting(
        "", stripped, "instance profile whose role denies everything (for `deny-all`)",
        deployed=True)
    revoke_role_sessions: bool = setting(
        "false", boolean, "deny the instance's role sessions issued before now, through the "
        "revoking function (`REVOKE_SCOPE` says whose); off, a credential exfiltration finding "
        "still denies those used from the instance")
    revoke_scope: str = setting(
        "instance", choice("instance", "role"),
        "`instance`: only sessions used from the instance (`ec2:SourceInstanceARN`), other "
        "instances sharing the role keep working; `role`: every session of the role, on every "
        "instance using it (the report names them)")
    disable_api_stop: bool = setting(
        "false", boolean, "stop protection (cannot be combined with `STOP_AFTER_EVIDENCE`)")
    stop_after_evidence: bool = setting(
        "false", boolean, "stop the instance once every snapshot completed (off: memory is "
        "evidence too)")
    malware_scan: bool = setting(
        "false", boolean, "once every snapshot completed, GuardDuty Malware Protection scans the "
        "instance's volumes (`StartMalwareScan`; one GuardDuty started within the hour is used "
        "instead); the sweep follows the scan and its result joins the incident, a notice and "
        "the page")
    forensic_account_id: str = setting("", account_or_empty,
                                       "share the completed snapshots with this account")
    memory_capture_document: str = setting(
        "", stripped, "SSM document run before isolation on SSM-managed instances (empty: off)")
    memory_capture_timeout_seconds: int = setting("300", number(10, 840, int),
                                                  "bound on the memory capture (10..840)")
    snapshot_poll_seconds: int = setting("30", number(1, 3600, int),
                                         "wait between snapshot progress checks")
    snapshot_deadline_seconds: int = setting("3600", number(1, 86400, int),
                                             "give up waiting for snapshots after this long")


@dataclass(frozen=True)
class Settings(Options):
    """Every setting: the options, what decides whether to act, and where the app's resources
    are (deployment facts: each function reads them from its own environment)."""

    severity_threshold: float = setting(
        "7.0", number(0.0, 10.0), "automatic path acts on findings with at least this severity")
    finding_type_prefixes: tuple[str, ...] = setting(
        "", csv, "comma-separated finding-type prefixes the automatic path acts on (empty: all)")
    target_finding_types: tuple[str, ...] = setting(
        "", csv, "comma-separated finding-type prefixes acted on automatically when the instance "
        "is the finding's target (`service.resourceRole` `TARGET`, e.g. a probe from the "
        "internet; empty: none, they are announced instead)")
    response_rules: tuple = setting(
        "", response_rules, "ordered JSON list of response rules, the first match decides: "
        "`contain`, `approve`, `notify` or `ignore` by severity, type, account, region, resource "
        "role and instance tags (README, \"Response rules\"; empty: contain at "
        "`SEVERITY_THRESHOLD`, which, with `FINDING_TYPE_PREFIXES` and `TARGET_FINDING_TYPES`, "
        "is not read once rules are set)")
    approver_arns: tuple[str, ...] = setting(
        "", principals, "comma-separated IAM users and roles (any session of a role) who may "
        "approve or deny a containment that a rule holds for approval")
    approval_timeout_seconds: int = setting(
        "3600", number(1, APPROVAL_TIMEOUT_MAX, int), "how long a containment waits for "
        "approval before the rule's `on_timeout` (`contain` or `close`) applies "
        f"(1..{APPROVAL_TIMEOUT_MAX})")
    exempt_tag: str = setting("QuarantineExempt", tag_key, "the tag that shows an exemption "
                              "(`POST /exemptions` writes it); alone it exempts nothing unless "
                              "`TRUST_EXEMPT_TAG`")
    trust_exempt_tag: bool = setting(
        "false", boolean, "honour a plain `EXEMPT_TAG=true` written by anyone: only where the "
        "tag key is protected (deploy/guardrails-scp.json), else the host can exempt itself")
    member_accounts: tuple[str, ...] = setting(
        "", accounts, "accounts the app may act in (comma-separated, `*` = the accounts of the "
        "home account's organization, checked; empty: the home account only)")
    member_role_name: str = setting("ec2-quarantine-member", stripped,
                                    "prefix of the member roles, one per function, assumed in "
                                    "member accounts")
    member_external_id: str = setting("", verbatim, "external id for those roles (an extra "
                                      "condition, not a secret)")
    chatbot_topic_arn: str = setting(
        "", topic_or_empty, "a second SNS topic that AWS Chatbot subscribes to: every notice is "
        "also published there as a Chatbot custom notification (empty: off)")
    security_hub: bool = setting(
        "false", boolean, "Security Hub both ways: a \"Quarantine instance\" custom action "
        "quarantines the instances of the findings an analyst selects, and each incident's "
        "originating findings follow it (`NOTIFIED` with a note, the outcome, `RESOLVED` on "
        "release); Security Hub must be on in the home account and region")
    state_machine_arn: str = setting("", verbatim, "the incident state machine (the app "
                                     "refuses to act without it)", deployed=True)
    topic_arn: str = setting("", verbatim, "the report topic (the app refuses to act without "
                             "it)", deployed=True)
    incidents_table: str = setting("", verbatim, "the incidents table (the app refuses to act "
                                   "without it)", deployed=True)
    evidence_bucket: str = setting("", verbatim, "the evidence bucket", deployed=True)
    records_key_arn: str = setting("", verbatim, "the KMS HMAC key that seals incident records, "
                                   "executions and page tokens (the app refuses to act without "
                                   "it)", deployed=True)
    evidence_signing_key_arn: str = setting(
        "", verbatim, "the KMS asymmetric key (ECC_NIST_P256) that signs each incident's "
        "evidence manifest", deployed=True)


def variable(declared) -> str:
    """The environment variable of a declared field."""
    return declared.name.upper()


DEFAULTS = {variable(f): f.metadata["default"] for f in fields(Settings)}
OPTIONS = tuple(f.name for f in fields(Options))
DEPLOYED = tuple(variable(f) for f in fields(Settings) if f.metadata["deployed"])


def _check(values: dict) -> None:
    """What no single setting can say about itself."""
    if values["credentials_mode"] == "deny-all" and not values["deny_all_profile_arn"].startswith(
            "arn:"):
        raise SettingsError("CREDENTIALS_MODE=deny-all needs DENY_ALL_PROFILE_ARN (an instance "
                            f"profile ARN), not {values['deny_all_profile_arn']!r}")
    if values["disable_api_stop"] and values["stop_after_evidence"]:
        raise SettingsError("DISABLE_API_STOP=true and STOP_AFTER_EVIDENCE=true contradict each "
                            "other: the product could not stop the instance it protected")
    waiting = [rule.name for rule in values["response_rules"] if rule.mode == "approve"]
    if waiting and not values["approver_arns"]:
        raise SettingsError(f"RESPONSE_RULES {waiting} ask for approval, and APPROVER_ARNS names "
                            "nobody who may give it")


def load(environ=None) -> Settings:
    """Parse and validate the settings from `environ` (default: the process environment)."""
    environ = os.environ if environ is None else environ
    values = {}
    for declared in fields(Settings):
        name = variable(declared)
        values[declared.name] = declared.metadata["parse"](
            name, environ.get(name, declared.metadata["default"]))
    _check(values)
    return Settings(**values)


@functools.lru_cache(maxsize=1)
def get() -> Settings:
    """The process's settings, parsed on first use (not at import: cold starts stay cheap)."""
    return load()


def stage_function(name: str) -> str:
    """A function of this stage by its Chalice name: Chalice names them `<app>-<stage>-<name>`,
    and `<app>-<stage>` is the state machine's name (read from STATE_MACHINE_ARN: the API's
    function has no suffix to strip)."""
    return f"{get().state_machine_arn.rsplit(':', 1)[-1]}-{name}"


def reload() -> Settings:
    """Forget the cached settings; the embedded AWS calls this after changing the environment."""
    get.cache_clear()
    return get()
