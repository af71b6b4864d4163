"""Human-readable and JSON reports for SNS.

SNS rejects a subject of 100 characters or more, or one holding line breaks, control or non-ASCII
characters (moto accepts them, AWS does not), so every subject goes through `subject()`.
"""

import json
import re

from chalicelib import exemptions, findings, incidents
from chalicelib.actions.isolation import IsolateInterface

SUBJECT_LIMIT = 99  # SNS: "must be less than 100 characters long"
_NOT_PRINTABLE_ASCII = re.compile(r"[^\x20-\x7e]+")
# What isolation leaves open, said whenever an interface was isolated: the VPC resolver answers
# every instance whatever its groups, so DNS queries can still carry data out.
DNS_NOT_CUT = ("Not cut: DNS to the VPC resolver (security groups do not filter it, so queries "
               "can still carry data out); Route 53 Resolver DNS Firewall on the VPC would cut it.")


def subject(text: str) -> str:
    """`text` made into a subject SNS accepts: printable ASCII, one line, under 100 characters."""
    flat = " ".join(_NOT_PRINTABLE_ASCII.sub(" ", text).split()) or "ec2-quarantine"
    if len(flat) > SUBJECT_LIMIT:
        flat = flat[: SUBJECT_LIMIT - 3].rstrip() + "..."
    return flat


def _describe(incident: dict) -> str:
    return (f"{incident.get('instance_id', '?')} in account {incident.get('account_id', '?')}, "
            f"region {incident.get('region', '?')}")


def _trigger(incident: dict) -> str:
    finding = incident.get("finding") or {}
    if finding:
        stolen = stolen_credentials(finding)
        return (f"GuardDuty finding {finding.get('type')} (severity {finding.get('severity')}, "
                f"id {finding.get('id')})" + (f"\n  {stolen}" if stolen else ""))
    return f"manual request: {incident.get('reason') or 'no reason given'}"


def notes(incident: dict) -> list[str]:
    """What the product decided not to take at its word (an exemption tag or record it did not
    issue, an exemption forced past): said wherever the incident is reported."""
    found = [str(note) for note in incident.get("notes") or []]
    return ["", "Notes:", *(f"  - {note}" for note in found)] if found else []


def stolen_credentials(finding, role: str | None = None) -> str:
    """Who used the launch credentials a credential exfiltration finding names, as the finding
    says (findings.Actor's fields): "stolen credentials of role R used from IP (organisation,
    ISP, country) in account A calling service API (caller type)", each part only when it is
    known (`role`: the one revoked, when the finding names none); "" for any other finding."""
    if not isinstance(finding, dict) or not findings.is_credential_exfiltration(
            finding.get("type")):
        return ""
    actor = finding.get("actor") if isinstance(finding.get("actor"), dict) else {}
    known = {key: str(value) for key, value in actor.items() if value}
    role = finding.get("role") or role
    where = ", ".join(known[k] for k in ("asn_org", "isp", "country") if k in known)
    call = " ".join(known[k] for k in ("service_name", "api") if k in known)
    return ("stolen credentials" + (f" of role {role}" if role else "")
            + f" used from {known.get('ip', 'elsewhere')}" + (f" ({where})" if where else "")
            + (f" in account {known['account_id']}" if "account_id" in known else "")
            + (f" calling {call}" if call else "")
            + (f" ({known['caller_type']})" if "caller_type" in known else ""))


def detection(incident: dict) -> dict:
    """The notice sent when an incident opens (beside containment, never in front of it)."""
    if incident.get("status") == "DRY_RUN":
        lines = [f"ec2-quarantine started dry run {incident['incident_id']} for "
                 f"{_describe(incident)}: it plans, it changes nothing.",
                 f"Trigger: {_trigger(incident)}"]
        return {"subject": subject(f"[ec2-quarantine] {incident['instance_id']}: dry run started"),
                "message": _with_json("\n".join(lines), incident)}
    lines = [
        f"ec2-quarantine opened incident {incident['incident_id']} for {_describe(incident)}.",
        f"Trigger: {_trigger(incident)}",
        "",
        "Containment is under way: isolation on every network interface, credentials cut and",
        "the metadata service off, termination protection, then snapshots of every volume.",
        "A report follows.",
        *notes(incident),
    ]
    return {"subject": subject(f"[ec2-quarantine] {incident['instance_id']}: incident opened"),
            "message": _with_json("\n".join(lines), incident)}


def revocations(changes: list, incident: dict) -> list[str]:
    """What a session revocation reaches, said plainly: role-wide revocation hits every
    instance using the role, and names them; scoped to the instance, the others keep working.
    For stolen credentials, first who used them and from where."""
    lines = []
    for c in changes:
        if c.get("action") != "revoke-role-sessions" or not isinstance(c.get("after"), dict):
            continue
        after, role = c["after"], c.get("resource")
        when = after.get("denies_sessions_issued_before")
        stolen = stolen_credentials(incident.get("finding"), role)
        if stolen:
            lines.append(f"  - {stolen}; sessions of role {role} issued before {when} denied " + (
                f"on instance {incident.get('instance_id')}" if after.get("scope") == "instance"
                else "role-wide"))
        if after.get("scope") == "instance":
            others = (f" ({', '.join(after['keep_working']) or 'none'})"
                      if "keep_working" in after else "")  # not read when revoked later
            lines.append(f"  - sessions of role {role} used from this instance, issued before "
                         f"{when}, are denied; the other instances sharing the role keep "
                         f"working{others}")
        else:
            others = ", ".join(after.get("also_affects") or []) or "none"
            lines.append(f"  - ROLE-WIDE: every session of role {role} issued before {when} is "
                         f"denied, on every instance using it; it also hits: {others}")
    return ["", "Session revocation:", *lines] if lines else []


def final(incident: dict) -> dict:
    """The report at the end: outcome, what failed (first: it is what needs a person), what
    changed, evidence, how to release."""
    status = incident.get("status", "FAILED")
    outcome = incidents.OUTCOMES.get(status, incidents.OUTCOMES["FAILED"])
    errors = incident.get("errors") or []
    headline = f"{outcome}, with {len(errors)} error{'s' if len(errors) != 1 else ''}" \
        if errors and status == "CONTAINED" else outcome  # contained: yet something failed
    lines = [f"Incident {incident['incident_id']}: {_describe(incident)} is {headline.upper()}.",
             f"Trigger: {_trigger(incident)}", *notes(incident), "", "Not done (errors):"]
    lines += [f"  - {e['action']} {e['resource']}: {e['code']}: {e['message']}"
              for e in errors] or ["  (none)"]
    lines += ["", "Changes made:"]
    changes = incident.get("changes") or []
    lines += [f"  - {c['action']} {c['resource']} {c['attribute']}: {c['before']} -> {c['after']}"
              for c in changes] or ["  (none)"]
    lines += revocations(changes, incident)
    made = incident.get("first_cut") or {}
    lines += first_cut(made)
    if made.get("isolated") or any(c.get("action") == IsolateInterface.name for c in changes):
        lines += ["", DNS_NOT_CUT]
    snapshots = (incident.get("evidence") or {}).get("snapshots") or {}
    lines += ["", "Evidence (EBS snapshots, tagged QuarantineIncident="
              f"{incident['incident_id']}):"]
    lines += [f"  - {sid}: {state}" for sid, state in sorted(snapshots.items())] or ["  (none)"]
    further = incidents.findings_summary(incident)[0] + int(incident.get("findings_not_kept") or 0)
    lines += ["", f"Further findings recorded on this incident: {further}",
              "", "The instance was not terminated. To release it after the investigation:",
              f"  POST /release {{\"instance_id\": \"{incident['instance_id']}\", "
              "\"reason\": \"...\"}  (or: ec2-quarantine release "
              f"{incident['instance_id']} --reason ...)",
              f"Incident record: GET /incidents/{incident['incident_id']}"]
    return {"subject": subject(f"[ec2-quarantine] {incident['instance_id']}: {headline}"),
            "message": _with_json("\n".join(lines), incident), "outcome": outcome}


def exemption(exemption: dict, event: str) -> dict:
    """An exemption granted or revoked: a decision about containment, announced like one."""
    lines = [f"Exemption {event} for {_describe(exemption)}.",
             f"  {exemptions.described(exemption)}",
             "While an exemption stands, GuardDuty findings on the instance are announced, not "
             "acted on; a person may still quarantine it with \"force\": true."]
    return {"subject": subject(f"[ec2-quarantine] {exemption['instance_id']}: exemption {event}"),
            "message": "\n".join(lines)}


def tampered(incident: dict, entry: dict) -> dict:
    """Containment someone undid, found by the tamper watch (from CloudTrail, or by its
    sweep), and what was put back."""
    by = entry.get("by") or {}
    failed = [d for d in entry["drift"] if d["outcome"] != "put back"]
    if entry.get("call"):
        who = (f"{entry['call']} by {by.get('arn') or 'an unknown principal'} "
               f"({by.get('type') or 'type unknown'}"
               + (f", key {by['accessKeyId']}" if by.get("accessKeyId") else "")
               + f") from {entry.get('from') or 'an unknown address'} at {entry.get('at')}")
    else:
        who = ("found by the sweep (no CloudTrail event named it: the call was not delivered, "
               "or it came from one of the product's own roles); CloudTrail says who")
    lines = [f"Containment of {_describe(incident)} (incident {incident['incident_id']}, "
             f"{incident.get('status')}) was undone; "
             + ("it is put back." if not failed else "NOT ALL OF IT IS PUT BACK."),
             f"Who: {who}", "", "What differed:"]
    lines += [f"  - {d['what']} {d['resource']}: found {d['found']}, wanted {d['expected']}: "
              f"{d['outcome']}" for d in entry["drift"]]
    lines += ["", f"Incident record (its tamper entries): GET /incidents/{incident['incident_id']}"]
    headline = "containment undone, " + ("put back" if not failed else "NOT fully put back")
    return {"subject": subject(f"[ec2-quarantine] {incident['instance_id']}: {headline}"),
            "message": "\n".join(lines), "outcome": "tampered"}


def first_cut(made: dict) -> list[str]:
    """When the entry function isolated the instance, and what it could not do (Contain
    finished or restored it: the changes and errors above say how it ended)."""
    if not made:
        return []
    lines = ["", f"First cut (the entry function, {made.get('start')} to {made.get('end')}): "
             f"isolated {', '.join(made.get('isolated') or []) or 'no interface'}"]
    lines += [f"  - then not done: {f['action']} {f['resource']}: {f['message']}"
              for f in made.get("failures") or []]
    return lines


def plan(incident: dict) -> dict:
    """A dry run's report: every change it would make, in order. Nothing was changed."""
    steps = (incident.get("memory_plan") or []) + (incident.get("plan") or []) + (
        incident.get("evidence_plan") or [])
    lines = [f"DRY RUN {incident['incident_id']}: nothing was changed on {_describe(incident)}.",
             f"Trigger: {_trigger(incident)}", *notes(incident), "", "It would, in this order:"]
    lines += [f"  {n}. {c['action']} {c['resource']} {c['attribute']}: {c['before']} -> "
              f"{c['after']}" for n, c in enumerate(steps, 1)] or ["  (nothing)"]
    lines += revocations(steps, incident)
    errors = incident.get("errors") or []
    if errors:
        lines += ["", "Could not plan:"] + [f"  - {e['action']} {e['resource']}: {e['code']}: "
                                            f"{e['message']}" for e in errors]
    return {"subject": subject(f"[ec2-quarantine] {incident['instance_id']}: dry run, "
                               f"{len(steps)} changes planned"),
            "message": _with_json("\n".join(lines), incident), "outcome": "planned"}


def released(incident: dict, undone: list, errors: list, notes: list) -> dict:
    """The report of a release: what was restored, what was not, what was kept."""
    complete = not errors
    lines = [f"Incident {incident['incident_id']}: {_describe(incident)} "
             + ("is RELEASED." if complete else "is NOT fully released."),
             f"Reason: {(incident.get('release') or {}).get('reason') or 'none given'}", "",
             "Restored:"]
    lines += [f"  - {c['action']} {c['resource']} {c['attribute']}: {c['after']} -> {c['before']}"
              for c in undone] or ["  (nothing)"]
    lines += ["", "Not restored (errors):"]
    lines += [f"  - {e['action']} {e['resource']}: {e['code']}: {e['message']}"
              for e in errors] or ["  (none)"]
    lines += ["", "Left as is:"] + [f"  - {n}" for n in notes] + [
        "  - evidence (snapshots, the evidence store) and the incident record are kept"]
    outcome = "released" if complete else "release incomplete"
    return {"subject": subject(f"[ec2-quarantine] {incident['instance_id']}: {outcome}"),
            "message": _with_json("\n".join(lines), incident), "outcome": outcome}


def refused(execution, reason: str) -> dict:
    """An execution, record or request the product could not verify: nothing was done."""
    lines = [f"Execution {execution} was REFUSED: {reason[:1000]}",
             "Nothing was changed. Someone who may start the state machine or write the "
             "incidents table may have forged it: find who in CloudTrail (StartExecution, "
             "PutItem/UpdateItem on the incidents table)."]
    return {"subject": subject("[ec2-quarantine] refused: an execution or record that the "
                               "product did not make"),
            "message": "\n".join(lines), "outcome": "refused"}


def duplicate(incident: dict, finding: dict | None, revoked: str = "") -> dict:
    """A further finding for an instance already under an active incident (`revoked`: what was
    done of the stolen credentials it reports)."""
    what = (f"GuardDuty finding {finding.get('type')} (id {finding.get('id')})" if finding
            else "a further request")
    lines = [f"{what} for {_describe(incident)} was recorded on active incident "
             f"{incident['incident_id']} ({incident.get('status')}); nothing was re-run."]
    if revoked:
        lines += ["", f"Stolen credentials: {stolen_credentials(finding)}; {revoked}."]
    return {"subject": subject(f"[ec2-quarantine] {incident['instance_id']}: finding recorded on "
                               f"{incident['incident_id']}"),
            "message": _with_json("\n".join(lines), incident)}


def not_acted_on(request: dict, why: str, reason: str = "") -> dict:
    """A qualifying finding the product deliberately left alone (an exempt instance, the
    instance the target, a sample): `why` in the subject, `reason` (who exempted it and until
    when, or what would have been done) in the message."""
    advice = ("GuardDuty generated it as a sample: nothing to do."
              if (request.get("finding") or {}).get("sample") else
              "Act by hand if needed: POST /quarantine"
              + (' with "force": true.' if why == "exempt" else "."))
    lines = [f"A qualifying finding for {_describe(request)} was not acted on: {why}.",
             f"Trigger: {_trigger(request)}", *([reason] if reason else []), advice]
    return {"subject": subject(f"[ec2-quarantine] {request['instance_id']}: not acted on: {why}"),
            "message": _with_json("\n".join(lines), request)}


# A message's size as it travels: JSON-encoded (the execution state holds it as a JSON string;
# ASCII escapes make this at least its UTF-8 size, what SNS counts). Both limits are 256 KB, and
# the state carries the detection notice, the report and the incident together: each message
# stays under MESSAGE_LIMIT whatever the incident holds.
MESSAGE_LIMIT = 48 * 1024
SUMMARY_FIELDS = ("incident_id", "status", "containment", "instance_id", "account_id", "region",
                  "source", "reason", "finding", "requested_by", "notes", "opened_at", "updated_at",
                  "execution_arn")


def size(message: str) -> int:
    return len(json.dumps(message))


def _with_json(text: str, incident: dict) -> str:
    """The body a person reads, then the incident as JSON for programs, clearly separated; an
    incident too large for one message is summarised, and the text cut, saying where the whole
    record is."""
    record = json.dumps(incident, sort_keys=True, default=str)
    full = f"{text}\n\n--- incident (JSON) ---\n{record}\n"
    if size(full) <= MESSAGE_LIMIT:
        return full
    summary = {k: incident[k] for k in SUMMARY_FIELDS if k in incident}
    summary.update({f"{name}_count": len(incident.get(name) or [])
                    for name in ("changes", "errors")})
    summary["findings_count"] = incidents.findings_summary(incident)[0]
    where = (f"GET /incidents/{incident['incident_id']}" if "incident_id" in incident
             else "the incident record")
    tail = (f"\n\n--- incident (JSON, summarised: {where} has the whole record) ---\n"
            f"{json.dumps(summary, sort_keys=True, default=str)}\n")
    lines, kept = text.split("\n"), []
    budget = MESSAGE_LIMIT - size(tail) - 200  # room for the line saying what was cut
    used = 0
    for line in lines:
        used += size(line)  # its quotes stand for the escaped line break that ends it
        if used > budget:
            break
        kept.append(line)
    if len(kept) < len(lines):
        kept.append(f"  ... {len(lines) - len(kept)} more lines: {where} has them all")
    return "\n".join(kept) + tail
