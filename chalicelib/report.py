"""Human-readable and JSON reports for SNS.

SNS rejects a subject of 100 characters or more, or one holding line breaks, control or non-ASCII
characters (moto accepts them, AWS does not), so every subject goes through `subject()`.
"""

import json
import re

SUBJECT_LIMIT = 99  # SNS: "must be less than 100 characters long"
_NOT_PRINTABLE_ASCII = re.compile(r"[^\x20-\x7e]+")


def subject(text: str) -> str:
    """`text` made into a subject SNS accepts: printable ASCII, one line, under 100 characters."""
    flat = " ".join(_NOT_PRINTABLE_ASCII.sub(" ", text).split()) or "ec2-quarantine"
    if len(flat) > SUBJECT_LIMIT:
        flat = flat[: SUBJECT_LIMIT - 3].rstrip() + "..."
    return flat


def detection(incident: dict) -> dict:
    """The notice sent when an incident opens: who, what, and that containment has started."""
    instance = incident.get("instance_id", "unknown instance")
    finding = incident.get("finding") or {}
    lines = [
        f"ec2-quarantine opened incident {incident.get('incident_id', '?')} for {instance}"
        f" in account {incident.get('account_id', '?')}, region {incident.get('region', '?')}.",
        "",
        f"Trigger: {finding.get('type') or incident.get('reason') or 'manual request'}",
        f"Severity: {finding.get('severity', 'n/a')}",
        "",
        "Containment is under way; a report follows when it ends.",
    ]
    return {
        "subject": subject(f"[ec2-quarantine] {instance}: incident opened"),
        "message": _with_json("\n".join(lines), incident),
    }


def _with_json(text: str, incident: dict) -> str:
    """The body a person reads, then the incident as JSON for programs, clearly separated."""
    return f"{text}\n\n--- incident (JSON) ---\n{json.dumps(incident, sort_keys=True, default=str)}\n"
