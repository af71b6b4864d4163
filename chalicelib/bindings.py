"""What ties an execution, and the records it leaves, to one incident — verified before use.

Anyone who may start the state machine chooses its input, and anyone who may write the
incidents table chooses what a record says. So nothing a step acts on is taken on trust:
- the incident's *binding* (its instance, account, region, execution and pre-incident state) is
  sealed by the entry function, beside the claim, and travels with the execution; every step
  verifies it, checks that it runs in the execution the binding names, and checks the account
  against today's settings before it touches anything;
- every step's change records are sealed together when they are recorded
  (`incidents.record_step`: their digests and one MAC), and release verifies each one, and the
  binding it restores from, before it undoes any;
- a release request is sealed with the name of the execution that carries it.
A refusal changes nothing in the instance's account; it is recorded and reported.
"""

from chalicelib import accounts, aws, findings, seals, settings

BINDING_FIELDS = ("incident_id", "instance_id", "account_id", "region", "home_account",
                  "execution_arn", "opened_at", "pre_state")
BOUND_FIELDS = (*BINDING_FIELDS, "finding", "security_hub_findings")  # binding() reads them
SEAL_PERMISSIONS = seals.SEAL_PERMISSIONS
VERIFY_PERMISSIONS = (*seals.VERIFY_PERMISSIONS, *accounts.ORGANIZATION_PERMISSIONS)


class Refused(Exception):
    """The execution, the record or the request cannot be verified: nothing is done."""


def binding(incident: dict) -> dict:
    """What the incident's seal covers: the fields above, and the finding's type when it is a
    credential exfiltration, for that type alone revokes sessions with REVOKE_ROLE_SESSIONS
    off (`revocation.scope_for`): whoever may write the table cannot turn an ordinary incident
    into one, nor one into an ordinary incident, without breaking its seal; nor change what an
    incident awaiting approval waits for (its rule, `on_timeout`, deadline), nor which findings
    in Security Hub follow it. (The execution's
    frozen options are not sealed: they cannot carry it.) Other types are not bound, so the
    seals of incidents opened before the type was are still whole."""
    bound = {name: incident.get(name) for name in BINDING_FIELDS}
    if incident.get("approval") is not None:  # what it waits for, and until when
        bound["approval"] = incident["approval"]
    if incident.get("security_hub_findings"):  # the findings that follow it (securityhub.py)
        bound["security_hub_findings"] = incident["security_hub_findings"]
    kind = findings.incident_finding_type(incident)
    if findings.is_credential_exfiltration(kind):
        bound["finding_type"] = kind
    return bound


def seal_incident(incident: dict) -> str:
    return seals.seal("incident", binding(incident))


def seal_restart(incident: dict) -> str:
    """A seal saying the product wrote this binding, kept on a claim whose start failed: the
    restart trusts that claim's pre-incident state by it. Made for its own purpose, it cannot
    pass for the incident's seal (which, kept in the table before an execution holds the
    incident's name, would let whoever may start the state machine start it first)."""
    return seals.seal("restart", binding(incident))


def verified_restart(incident: dict) -> dict:
    """`incident`, once its restart seal matches its binding; then sealed anew for its start."""
    _verify("restart", incident, "restart_seal")
    return {**incident, "seal": seal_incident(incident)}


def verified_incident(incident: dict) -> dict:
    """`incident` once its binding's seal matches and its account is allowed today."""
    _verify("incident", incident, "seal")
    return incident


def verified_seal(incident: dict) -> dict:
    """`incident` once its binding's seal matches, whether or not its account is allowed
    today: to close it (which touches no account), never to act on it."""
    try:
        seals.verify("incident", binding(incident), incident.get("seal"))
    except seals.Unverified as unverified:
        raise Refused(f"incident {incident.get('incident_id')!r}: {unverified}") from None
    return incident


def _verify(purpose: str, incident: dict, field: str) -> None:
    """Refused unless `incident[field]` seals its binding for `purpose` and its account is
    allowed today."""
    try:
        seals.verify(purpose, binding(incident), incident.get(field))
    except seals.Unverified as unverified:
        raise Refused(f"incident {incident.get('incident_id')!r}: {unverified}") from None
    check_account(incident)


def check_account(incident: dict) -> None:
    account, home = incident.get("account_id"), incident.get("home_account")
    if not (isinstance(account, str) and isinstance(home, str)):
        raise Refused(f"account {account!r} is not allowed: the binding names no account or "
                      "no home account")
    why = accounts.refusal(account, home, settings.get())
    if why:
        raise Refused(f"account {account!r} is not allowed: {why}")


def execution_incident(event: dict) -> dict:
    """The incident a quarantine execution acts on: its binding verified, and bound to this
    very execution (the state machine passes `$$.Execution.Id` as `execution`)."""
    incident = event.get("incident")
    if not isinstance(incident, dict):
        raise Refused("the execution names no incident")
    verified_incident(incident)
    if not event.get("execution") or event.get("execution") != incident["execution_arn"]:
        raise Refused(f"execution {event.get('execution')!r} is not incident "
                      f"{incident['incident_id']}'s ({incident['execution_arn']})")
    return incident


def _request_document(incident_id: str, execution_arn: str, asked: dict) -> dict:
    return {"incident_id": incident_id, "execution_arn": execution_arn,
            **{k: v for k, v in asked.items() if k != "seal"}}


def seal_release(incident_id: str, execution_arn: str, asked: dict) -> dict:
    """`asked` (reason, reregister, requested_by) sealed for the execution that carries it."""
    return {**asked, "seal": seals.seal(
        "release", _request_document(incident_id, execution_arn, asked))}


def release_request(event: dict) -> dict:
    """The release request of this execution, verified: made by the product, for it."""
    asked = event.get("release")
    incident_id = (event.get("incident") or {}).get("incident_id")
    if not isinstance(asked, dict) or not isinstance(incident_id, str):
        raise Refused("the execution carries no release request")
    try:
        seals.verify("release", _request_document(incident_id, event.get("execution"), asked),
                     asked.get("seal"))
    except seals.Unverified as unverified:
        raise Refused(f"release of {incident_id!r} in execution {event.get('execution')!r}: "
                      f"{unverified}") from None
    return asked


def _digest(record: dict) -> str:
    return seals.digest("change", record).hex()


def seal_changes(incident_id: str, records: list[dict]) -> list[dict]:
    """The seal of one step's change records, as the incident keeps it: their digests and one
    MAC over them with the incident id (one request however many records: a change record
    moved to another incident, altered or added fails)."""
    if not records:
        return []
    digests = [_digest(record) for record in records]
    return [{"digests": digests,
             "mac": seals.seal("changes", {"incident_id": incident_id, "digests": digests})}]


def unverified_changes(incident_id: str, records: list[dict], sealed: list[dict]) -> list:
    """Why each record cannot be trusted (None: a verified seal of the incident holds its
    digest), by position. Each seal is verified once, concurrently."""
    def verified(batch) -> set:
        try:
            seals.verify("changes", {"incident_id": incident_id, "digests": batch.get("digests")},
                         batch.get("mac"))
        except (seals.Unverified, AttributeError):
            return set()
        return set(batch["digests"])
    trusted = set().union(*aws.concurrently(lambda b=batch: verified(b) for batch in sealed or []))
    return [None if isinstance(r, dict) and _digest(r) in trusted
            else "no seal of this incident holds this record" for r in records]


def trusted_changes(incident: dict) -> list[dict]:
    """The incident's change records that carry its seal: the tamper watch stops an instance or
    revokes sessions again only where containment did, and the sweep follows the malware scan
    the check step started, by a record the product can vouch for."""
    changes = incident.get("changes") or []
    verdicts = unverified_changes(incident["incident_id"], changes, incident.get("change_seals"))
    return [record for record, why in zip(changes, verdicts) if not why]
