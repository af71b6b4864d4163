"""All configuration, read once from environment variables and validated.

Every setting has one name, one default and one parser here; the README's settings table lists the
same names. A bad value raises `SettingsError` naming the variable and the value, so a
misconfigured stage fails loudly instead of acting on a guess.
"""

import functools
import os
import re
from dataclasses import dataclass

ACCOUNT_ID = re.compile(r"^\d{12}$")


class SettingsError(ValueError):
    """A setting has a value the app cannot act on."""


@dataclass(frozen=True)
class Settings:
    severity_threshold: float
    finding_type_prefixes: tuple[str, ...]
    exempt_tag: str
    dry_run: bool
    member_accounts: tuple[str, ...]
    member_role_name: str
    member_external_id: str
    snapshot_poll_seconds: int
    snapshot_deadline_seconds: int
    state_machine_arn: str
    topic_arn: str
    incidents_table: str
    evidence_bucket: str
    autoscaling_mode: str
    disassociate_elastic_ip: bool
    credentials_mode: str
    deny_all_profile_arn: str
    revoke_role_sessions: bool
    disable_api_stop: bool
    stop_after_evidence: bool
    forensic_account_id: str
    memory_capture_document: str
    memory_capture_timeout_seconds: int


DEFAULTS = {
    "SEVERITY_THRESHOLD": "7.0",
    "FINDING_TYPE_PREFIXES": "",
    "EXEMPT_TAG": "QuarantineExempt",
    "DRY_RUN": "false",
    "MEMBER_ACCOUNTS": "",
    "MEMBER_ROLE_NAME": "ec2-quarantine-member",
    "MEMBER_EXTERNAL_ID": "",
    "SNAPSHOT_POLL_SECONDS": "30",
    "SNAPSHOT_DEADLINE_SECONDS": "3600",
    "STATE_MACHINE_ARN": "",
    "TOPIC_ARN": "",
    "INCIDENTS_TABLE": "",
    "EVIDENCE_BUCKET": "",
    "AUTOSCALING_MODE": "detach",
    "DISASSOCIATE_ELASTIC_IP": "false",
    "CREDENTIALS_MODE": "disassociate",
    "DENY_ALL_PROFILE_ARN": "",
    "REVOKE_ROLE_SESSIONS": "false",
    "DISABLE_API_STOP": "false",
    "STOP_AFTER_EVIDENCE": "false",
    "FORENSIC_ACCOUNT_ID": "",
    "MEMORY_CAPTURE_DOCUMENT": "",
    "MEMORY_CAPTURE_TIMEOUT_SECONDS": "300",
}


def _number(name, raw, low, high, kind=float):
    try:
        value = kind(raw)
    except ValueError:
        raise SettingsError(f"{name}={raw!r} is not a number") from None
    if not low <= value <= high:
        raise SettingsError(f"{name}={raw!r} is outside {low}..{high}")
    return value


def _boolean(name, raw):
    lowered = raw.strip().lower()
    if lowered in ("true", "1", "yes"):
        return True
    if lowered in ("false", "0", "no", ""):
        return False
    raise SettingsError(f"{name}={raw!r} is not a boolean (true or false)")


def _csv(raw):
    return tuple(part.strip() for part in raw.split(",") if part.strip())


def _accounts(raw):
    accounts = _csv(raw)
    for account in accounts:
        if account != "*" and not ACCOUNT_ID.match(account):
            raise SettingsError(f"MEMBER_ACCOUNTS has {account!r}, not a 12-digit account id or *")
    return accounts


def _choice(name, raw, choices):
    value = raw.strip().lower()
    if value not in choices:
        raise SettingsError(f"{name}={raw!r} is not one of {', '.join(choices)}")
    return value


def load(environ=None) -> Settings:
    """Parse and validate the settings from `environ` (default: the process environment)."""
    environ = os.environ if environ is None else environ
    raw = {name: environ.get(name, default) for name, default in DEFAULTS.items()}
    exempt_tag = raw["EXEMPT_TAG"].strip()
    if not exempt_tag:
        raise SettingsError("EXEMPT_TAG is empty: exemptions would be impossible to express")
    credentials_mode = _choice("CREDENTIALS_MODE", raw["CREDENTIALS_MODE"],
                               ("disassociate", "deny-all"))
    if credentials_mode == "deny-all" and not raw["DENY_ALL_PROFILE_ARN"].startswith("arn:"):
        raise SettingsError("CREDENTIALS_MODE=deny-all needs DENY_ALL_PROFILE_ARN (an instance "
                            f"profile ARN), not {raw['DENY_ALL_PROFILE_ARN']!r}")
    forensic = raw["FORENSIC_ACCOUNT_ID"].strip()
    if forensic and not ACCOUNT_ID.match(forensic):
        raise SettingsError(f"FORENSIC_ACCOUNT_ID={forensic!r} is not a 12-digit account id")
    disable_api_stop = _boolean("DISABLE_API_STOP", raw["DISABLE_API_STOP"])
    stop_after_evidence = _boolean("STOP_AFTER_EVIDENCE", raw["STOP_AFTER_EVIDENCE"])
    if disable_api_stop and stop_after_evidence:
        raise SettingsError("DISABLE_API_STOP=true and STOP_AFTER_EVIDENCE=true contradict each "
                            "other: the product could not stop the instance it protected")
    return Settings(
        severity_threshold=_number("SEVERITY_THRESHOLD", raw["SEVERITY_THRESHOLD"], 0.0, 10.0),
        finding_type_prefixes=_csv(raw["FINDING_TYPE_PREFIXES"]),
        exempt_tag=exempt_tag,
        dry_run=_boolean("DRY_RUN", raw["DRY_RUN"]),
        member_accounts=_accounts(raw["MEMBER_ACCOUNTS"]),
        member_role_name=raw["MEMBER_ROLE_NAME"].strip(),
        member_external_id=raw["MEMBER_EXTERNAL_ID"],
        snapshot_poll_seconds=_number(
            "SNAPSHOT_POLL_SECONDS", raw["SNAPSHOT_POLL_SECONDS"], 1, 3600, int
        ),
        snapshot_deadline_seconds=_number(
            "SNAPSHOT_DEADLINE_SECONDS", raw["SNAPSHOT_DEADLINE_SECONDS"], 1, 86400, int
        ),
        state_machine_arn=raw["STATE_MACHINE_ARN"],
        topic_arn=raw["TOPIC_ARN"],
        incidents_table=raw["INCIDENTS_TABLE"],
        evidence_bucket=raw["EVIDENCE_BUCKET"],
        autoscaling_mode=_choice("AUTOSCALING_MODE", raw["AUTOSCALING_MODE"], ("detach", "standby")),
        disassociate_elastic_ip=_boolean("DISASSOCIATE_ELASTIC_IP", raw["DISASSOCIATE_ELASTIC_IP"]),
        credentials_mode=credentials_mode,
        deny_all_profile_arn=raw["DENY_ALL_PROFILE_ARN"].strip(),
        revoke_role_sessions=_boolean("REVOKE_ROLE_SESSIONS", raw["REVOKE_ROLE_SESSIONS"]),
        disable_api_stop=disable_api_stop,
        stop_after_evidence=stop_after_evidence,
        forensic_account_id=forensic,
        memory_capture_document=raw["MEMORY_CAPTURE_DOCUMENT"].strip(),
        memory_capture_timeout_seconds=_number(
            "MEMORY_CAPTURE_TIMEOUT_SECONDS", raw["MEMORY_CAPTURE_TIMEOUT_SECONDS"], 10, 840, int
        ),
    )


@functools.lru_cache(maxsize=1)
def get() -> Settings:
    """The process's settings, parsed on first use (not at import: cold starts stay cheap)."""
    return load()


def reload() -> Settings:
    """Forget the cached settings; the embedded AWS calls this after changing the environment."""
    get.cache_clear()
    return get()
