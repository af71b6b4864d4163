"""What the workflow decided, in its own words: the outcomes it reaches and the refusals it raises.

The domain knows nothing of HTTP: `http.py` alone turns these into status codes and bodies, and
the event path (`workflow.handle_finding`) reads the same values. A refusal's `code` and
`message` are what a caller is told either way.
"""

from dataclasses import dataclass


class Refusal(Exception):
    """The request cannot be acted on: `code` names why, `message` says what to fix."""

    code = "Refused"

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


class InvalidInput(Refusal):
    """What the caller sent is malformed; `code` names the field or the fault."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code


class NotAllowed(Refusal):
    code = "AccountNotAllowed"


class NotAnApprover(NotAllowed):
    code = "NotAnApprover"


class NotFound(Refusal):
    """What the request names does not exist."""


class InstanceNotFound(NotFound):
    code = "InstanceNotFound"


class IncidentNotFound(NotFound):
    code = "IncidentNotFound"


class Conflict(Refusal):
    """The request is valid, but the state of the instance or its incident forbids it."""


class InstanceTerminated(Conflict):
    code = "InstanceTerminated"


class InstanceExempt(Conflict):
    """The manual path on an exempt instance without "force" (the automatic path announces)."""

    code = "InstanceExempt"


class ExemptionNotFound(NotFound):
    code = "ExemptionNotFound"


class ExemptionChanged(Conflict):
    code = "ExemptionChanged"


class NotAwaitingApproval(Conflict):
    code = "NotAwaitingApproval"


class NothingToRelease(Conflict):
    code = "NothingToRelease"


class Unavailable(Refusal):
    """The app cannot act now: it lacks its resources, or a start was lost (try again)."""


class NotConfigured(Unavailable):
    code = "NotConfigured"


class ExecutionNotStarted(Unavailable):
    code = "ExecutionNotStarted"


def public(incident: dict) -> dict:
    """What is answered about an incident the workflow opened or found."""
    return {
        "incident_id": incident["incident_id"],
        "status": incident["status"],
        "instance_id": incident["instance_id"],
        "account_id": incident["account_id"],
        "region": incident["region"],
        "execution_arn": incident["execution_arn"],
        "status_url": f"/incidents/{incident['incident_id']}",
    }


@dataclass(frozen=True)
class Outcome:
    """Something the workflow did about `incident`; `decision` is how the event path logs it."""

    incident: dict
    decision = "acted"

    def summary(self) -> dict:
        return public(self.incident)


class Opened(Outcome):
    """A new incident, its execution started."""


class DryRun(Outcome):
    """A dry-run incident, its execution started: it plans and changes nothing."""


class Recorded(Outcome):
    """The instance's active incident, the finding recorded on it (and, if its execution was
    lost, started now): nothing was re-run."""

    decision = "recorded"


class Notified(Outcome):
    """A finding a `notify` rule matched: announced with the plan, nothing changed."""

    decision = "notified"


class AwaitingApproval(Outcome):
    """An incident a rule holds for approval: its execution waits, nothing changed yet."""

    decision = "awaiting-approval"


@dataclass(frozen=True)
class Decided(Outcome):
    """An approval's decision, made and sealed; `woken`: what became of the execution's
    wait."""

    woken: str

    def summary(self) -> dict:
        return {**public(self.incident), "decision": self.incident.get("decision"),
                **({"resolution": self.incident["resolution"]}
                   if self.incident.get("resolution") else {}), "execution": self.woken}


@dataclass(frozen=True)
class Ignored:
    """A finding an `ignore` rule (or no rule) matched: logged and counted, nothing else."""

    instance_id: str
    reason: str
    decision = "ignored"

    def summary(self) -> dict:
        return {"decision": self.decision, "instance_id": self.instance_id,
                "reason": self.reason}


@dataclass(frozen=True)
class ReleaseStarted(Outcome):
    """A release execution started for the incident."""

    execution_arn: str
    releases_before: int

    def summary(self) -> dict:
        return {**public(self.incident), "release_execution_arn": self.execution_arn,
                "releases_before": self.releases_before}


@dataclass(frozen=True)
class ExemptAnnounced:
    """A finding on an exempt instance, announced and left alone (the automatic path)."""

    instance_id: str
    decision = "exempt"

    def summary(self) -> dict:
        return {"decision": self.decision, "instance_id": self.instance_id}


@dataclass(frozen=True)
class ExemptionGranted:
    """An exemption recorded and shown on its instance (`replaced`: the one it took the place
    of)."""

    exemption: dict
    replaced: dict | None = None

    def summary(self) -> dict:
        return {"exemption": self.exemption, **({"replaced": self.replaced} if self.replaced
                                                 else {})}


@dataclass(frozen=True)
class ExemptionRevoked:
    """An exemption ended now (it says by whom and why); `tag_error`: its tag could not be taken
    away (the record says it is revoked, and a revoked record stops nothing)."""

    exemption: dict
    tag_error: dict | None = None

    def summary(self) -> dict:
        return {"exemption": self.exemption,
                **({"tag_error": self.tag_error} if self.tag_error else {})}
