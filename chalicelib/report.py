"""What each notice says, for people and for programs (`notices` says how it travels).

Every notice is rendered from one set of facts about the incident (`_facts`): the text a person
reads (summary first, readable diffs, UTC times with durations, console links, the release
command, no JSON), the versioned document a program reads (docs/notices.md), the SNS attributes
a subscription filters on, and a Chatbot card.

SNS rejects a subject of 100 characters or more, or one holding line breaks, control or non-ASCII
characters (moto accepts them, AWS does not), so every subject goes through `subject()`.
"""

import json
import re
import urllib.parse
from datetime import datetime

from chalicelib import exemptions, findings, incidents, manifests, notices
from chalicelib.actions.isolation import IsolateInterface

SUBJECT_LIMIT = 99  # SNS: "must be less than 100 characters long"
SUBJECT_NAME = 24  # of the Name tag in a subject: the headline after it must fit
_NOT_PRINTABLE_ASCII = re.compile(r"[^\x20-\x7e]+")
_LINE_BREAKS = re.compile(r"[\x00-\x1f\x7f\x85\u2028\u2029]")  # and what some clients break on
# What isolation leaves open, said whenever an interface was isolated: the VPC resolver answers
# every instance whatever its groups, so DNS queries can still carry data out.
DNS_NOT_CUT = ("Not cut: DNS to the VPC resolver (security groups do not filter it, so queries "
               "can still carry data out); Route 53 Resolver DNS Firewall on the VPC would cut it.")
EVIDENCE_ACTIONS = ("snapshots", "evidence-store", "share-snapshots", "capture-memory",
                    "malware-scan")
CONSOLE = "https://{region}.console.aws.amazon.com"


def subject(text: str) -> str:
    """`text` made into a subject SNS accepts: printable ASCII, one line, under 100 characters."""
    flat = " ".join(_NOT_PRINTABLE_ASCII.sub(" ", text).split()) or "ec2-quarantine"
    if len(flat) > SUBJECT_LIMIT:
        flat = flat[: SUBJECT_LIMIT - 3].rstrip() + "..."
    return flat


# -- the facts --------------------------------------------------------------------------------

def _instance(incident: dict) -> dict:
    summary = incident.get("instance_summary") or {}
    return {"id": incident.get("instance_id"), "name": summary.get("name", ""),
            "type": summary.get("instance_type") or "",
            "tags": summary.get("tags") or {}, "private_ips": summary.get("private_ips") or [],
            "public_ips": summary.get("public_ips") or [],
            "vpc_id": summary.get("vpc_id") or (incident.get("pre_state") or {}).get("vpc_id"),
            "account_id": incident.get("account_id"), "region": incident.get("region")}


def _finding(incident: dict) -> dict | None:
    finding = incident.get("finding")
    if not isinstance(finding, dict):
        return None
    shown = {key: finding.get(key) for key in ("id", "type", "title", "severity", "remote",
                                               "updated_at", "resource_role", "sample")}
    stolen = stolen_credentials(finding)
    return {**shown, **({"stolen_credentials": stolen} if stolen else {})}


def _at(timestamp) -> datetime | None:
    try:
        return datetime.strptime(timestamp, incidents.TIME_FORMAT)
    except (TypeError, ValueError):
        try:  # GuardDuty's own times: "2026-12-01T10:00:00.000Z" or without the fraction
            return datetime.fromisoformat(str(timestamp).replace("Z", "+00:00")).replace(
                tzinfo=None)
        except ValueError:
            return None


def _step_end(incident: dict, *steps: str) -> str | None:
    ends = [t.get("end") for t in incident.get("timeline") or [] if t.get("step") in steps]
    return ends[-1] if ends else None


def timings(incident: dict) -> dict:
    """When GuardDuty last updated the finding, when the incident opened (the finding's arrival,
    or the request's), when every interface was isolated, when the evidence was complete, when
    it was reported: each in UTC, and as seconds after the incident opened."""
    cut = incident.get("first_cut") or {}
    interfaces = (incident.get("pre_state") or {}).get("interfaces") or []
    isolated = cut.get("end") if interfaces and len(cut.get("isolated") or []) == len(
        interfaces) else (_step_end(incident, "contain")
                          if incident.get("containment") == "CONTAINED" else None)
    times = {"finding_updated_at": (incident.get("finding") or {}).get("updated_at") or None,
             "opened_at": incident.get("opened_at"), "isolated_at": isolated,
             "evidence_completed_at": _step_end(incident, "wait-snapshots"),
             "reported_at": _step_end(incident, "report")}
    opened = _at(times["opened_at"])
    seconds = {name.removesuffix("_at"): round((_at(value) - opened).total_seconds(), 3)
               for name, value in times.items()
               if name not in ("opened_at", "finding_updated_at") and _at(value) and opened}
    return {**times, "seconds_after_opening": seconds}


def _bucket_and_prefix(store: str) -> tuple[str, str]:
    bucket, _, prefix = (store or "").removeprefix("s3://").partition("/")
    return bucket, prefix


def evidence(incident: dict) -> dict:
    """Where the evidence is (one prefix), its manifest's hash and whether it is signed, the
    snapshots and their states."""
    store = (incident.get("evidence") or {}).get("store") or ""
    stored = [c for c in incident.get("changes") or [] if c.get("action") == "evidence-store"]
    latest = stored[::-1]  # the page's publishes sign the manifest anew: the last is current
    manifest = next((c.get("after") for c in latest
                     if str(c.get("resource", "")).endswith("/manifest.json")), None)
    signed = next((c.get("after") for c in latest if c.get("attribute") == "signature"), None)
    unsigned = next((part.strip() for e in incident.get("errors") or []
                     if e.get("action") == "evidence-store"
                     for part in str(e.get("message")).split(";")
                     if part.strip().startswith(manifests.SIGNATURE)), None)
    return {"prefix": store, "objects": len({c.get("resource") for c in stored}),
            "manifest_sha256": manifest,
            "signature": (f"signed ({str(signed).split(' ', 1)[0]})" if signed else
                          f"NOT signed: {unsigned}" if unsigned else
                          "not signed" if manifest else "no manifest"),
            "snapshots": dict(sorted(((incident.get("evidence") or {}).get("snapshots")
                                      or {}).items()))}


def links(incident: dict) -> dict:
    """Console links: the finding, the instance, the execution, the evidence, the logs."""
    region = incident.get("region") or "us-east-1"
    console = CONSOLE.format(region=region)
    found = {"instance": f"{console}/ec2/home?region={region}#InstanceDetails:instanceId="
                         f"{incident.get('instance_id')}"}
    finding = incident.get("finding") or {}
    if finding.get("id"):
        found["finding"] = (f"{console}/guardduty/home?region={region}#/findings?macros=current"
                            f"&fId={urllib.parse.quote(str(finding['id']))}")
    execution = incident.get("execution_arn") or ""
    home = execution.split(":")[3] if execution.count(":") >= 6 else region
    if execution:
        found["execution"] = (f"{CONSOLE.format(region=home)}/states/home?region={home}"
                              f"#/v2/executions/details/{execution}")
    bucket, prefix = _bucket_and_prefix((incident.get("evidence") or {}).get("store"))
    if bucket:
        found["evidence"] = (f"https://s3.console.aws.amazon.com/s3/buckets/{bucket}?region="
                             f"{home}&prefix={urllib.parse.quote(prefix)}")
    machine = execution.split(":")[6] if execution.count(":") >= 7 else ""
    if machine:  # the state machine is named as the app's stage; its functions' logs begin so
        found["logs"] = (f"{CONSOLE.format(region=home)}/cloudwatch/home?region={home}"
                         f"#logsV2:log-groups$3FlogGroupNameFilter$3D%2Faws%2Flambda%2F{machine}")
    return found


def release_command(incident: dict) -> str:
    return (f"ec2-quarantine release {incident.get('instance_id')} --reason \"...\" "
            f"(or POST /release with instance_id {incident.get('instance_id')} and a reason)")


def facts(incident: dict, event: str, status: str) -> dict:
    """The document every notice about an incident carries (docs/notices.md)."""
    return {"schema": notices.SCHEMA, "version": notices.VERSION, "event": event,
            "status": status, "incident_id": incident.get("incident_id"),
            "instance": _instance(incident), "finding": _finding(incident),
            "source": incident.get("source"), "requested_by": incident.get("requested_by") or "",
            "reason": incident.get("reason") or "", "timings": timings(incident),
            "links": links(incident), "record": _record_path(incident),
            "notes": [str(n) for n in incident.get("notes") or []]}


def _record_path(incident: dict) -> str:
    """Where the whole record is (for a notice about no incident: the listing)."""
    incident_id = incident.get("incident_id")
    return f"GET /incidents/{incident_id}" if incident_id else "GET /incidents"


# -- the text -----------------------------------------------------------------------------------

def _time(timestamp) -> str:
    at = _at(timestamp)
    return at.strftime("%Y-%m-%d %H:%M:%S.%f")[:-3] + " UTC" if at else str(timestamp)


def _instance_lines(incident: dict) -> list[str]:
    shown = _instance(incident)
    lines = ["Instance:", f"  {shown['id']}" + (f" ({shown['name']})" if shown["name"] else "")
             + (f", {shown['type']}" if shown["type"] else ""),
             f"  account {shown['account_id']}, region {shown['region']}, VPC "
             f"{shown['vpc_id'] or 'unknown'}"]
    if shown["tags"]:
        lines.append("  tags: " + ", ".join(f"{k}={v}" for k, v in shown["tags"].items()))
    for kind in ("private", "public"):
        if shown[f"{kind}_ips"]:
            lines.append(f"  {kind} IPs: " + ", ".join(shown[f"{kind}_ips"]))
    return lines


def _trigger_lines(incident: dict) -> list[str]:
    finding = incident.get("finding") if isinstance(incident.get("finding"), dict) else None
    asked = incident.get("requested_by")
    lines = []
    if finding:
        lines += ["Finding:", f"  {finding.get('type')}, severity "
                  f"{findings.severity_text(finding.get('severity'))}" + (
                      " (a GuardDuty sample)" if finding.get("sample") else "")]
        if finding.get("title"):
            lines.append(f"  {finding['title']}")
        if finding.get("remote"):
            lines.append(f"  remote: {finding['remote']}")
        stolen = stolen_credentials(finding)
        if stolen:
            lines.append(f"  {stolen}")
        lines.append(f"  id {finding.get('id')}")
    if asked or incident.get("source") == "http":
        lines += ["Asked by:", f"  {asked or 'unknown caller'}"]
    if incident.get("source") == "http" or not finding:
        lines.append(f"Reason: {incident.get('reason') or 'no reason given'}")
    return lines


def _timeline_lines(incident: dict) -> list[str]:
    shown = timings(incident)
    after = shown["seconds_after_opening"]
    waited = [t.get("outcome") for t in incident.get("timeline") or []
              if t.get("step") == "wait-snapshots"]
    evidence_done = ("snapshot deadline passed (see the errors)"
                     if waited and waited[-1] == "late" else "evidence complete")
    labels = (("finding_updated_at", "finding last updated by GuardDuty"),
              ("opened_at", "incident opened"), ("isolated_at", "isolated"),
              ("evidence_completed_at", evidence_done), ("reported_at", "reported"))
    lines = [f"  {_time(shown[key])}  {label}" + (
        f" (+{after[key.removesuffix('_at')]:.1f} s)" if key.removesuffix("_at") in after
        else "") for key, label in labels if shown.get(key)]
    return ["Timeline:", *lines] if lines else []


def _value(value) -> str:
    """A recorded value as a person reads it (no Python reprs)."""
    if value is None or value == [] or value == {}:
        return "none"
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, list):
        return ", ".join(_value(v) for v in value)
    if isinstance(value, dict):
        return ", ".join(f"{k} {_value(v)}" for k, v in value.items())
    return str(value)


def _group(group_id, names: dict) -> str:
    name = names.get(group_id)
    return f"{name} ({group_id})" if name else str(group_id)


# How a change reads: the resource first when it is not the instance, then these words.
CHANGE_WORDS = {
    "termination-protection": "termination protection",
    "shutdown-behaviour": "shutdown behaviour",
    "disable-api-stop": "stop protection",
    "keep-volumes-on-termination": "delete on termination",
    "detach-instance-profile": "instance profile",
    "deny-all-instance-profile": "instance profile",
    "disable-instance-metadata": "metadata service",
    "leave-autoscaling-group": "Auto Scaling",
    "leave-target-groups": "registered in target group",
    "leave-classic-load-balancers": "registered in classic load balancer",
    "disassociate-elastic-ip": "Elastic IP association",
    "stop-instance": "instance state",
    "revoke-role-sessions": "role sessions denied",
}


TRACKING_WORDS = {"TcpEstablishedTimeout": "TCP established", "UdpStreamTimeout": "UDP stream",
                  "UdpTimeout": "UDP"}


def change_diff(change: dict, incident: dict, undone: bool = False) -> tuple[str, str, str]:
    """One change as (what, before, after), readable: group names beside group ids, the
    resource first when it is not the instance (reversed when undone)."""
    before, after = change.get("before"), change.get("after")
    if undone:
        before, after = after, before
    action, resource = change.get("action"), change.get("resource")
    if action == IsolateInterface.name:
        names = {**((incident.get("instance_summary") or {}).get("group_names") or {}),
                 **(incident.get("product_groups") or {})}
        shown = [", ".join(_group(g, names) for g in side or []) or "none"
                 for side in (before, after)]
        return f"{resource} groups", shown[0], shown[1]
    if action == "connection-tracking":
        shown = [", ".join(f"{TRACKING_WORDS.get(k, k)} {v} s" for k, v in side.items())
                 if isinstance(side, dict) and side else "AWS defaults" for side in (before, after)]
        return f"{resource} connection tracking idle timeouts", shown[0], shown[1]
    if action in ("detach-instance-profile", "deny-all-instance-profile"):
        before, after = (v.rsplit("/", 1)[-1] if isinstance(v, str) else v
                         for v in (before, after))
    if action == "quarantine-tags":
        tag = str(change.get("attribute", "")).removeprefix("tag:")
        return f"tag {tag}", _value(before), _value(after)
    if action == "revoke-role-sessions" and isinstance(change.get("after"), dict):
        scope = change["after"].get("scope")
        denial = (f"sessions issued before {change['after'].get('denies_sessions_issued_before')} "
                  + ("from this instance" if scope == "instance" else "ROLE-WIDE") + " denied")
        return (f"role {resource}", denial if undone else "allowed",
                "allowed (the denial lifted)" if undone else denial)
    words = CHANGE_WORDS.get(action, f"{action} {change.get('attribute')}")
    where = "" if resource == incident.get("instance_id") else f"{resource} "
    return f"{where}{words}", _value(before), _value(after)


def change_line(change: dict, incident: dict, undone: bool = False) -> str:
    """One change as a readable diff: `resource what: before → after`."""
    what, before, after = change_diff(change, incident, undone)
    return f"{what}: {before} → {after}"


def _changes_lines(changes: list, incident: dict, title="Changes made:", undone=False):
    shown = [c for c in changes if c.get("action") not in EVIDENCE_ACTIONS]
    return ["", title, *([f"  - {change_line(c, incident, undone)}" for c in shown]
                         or ["  (none)"])]


def _errors_lines(errors: list, title="Not done (errors):") -> list[str]:
    return ["", title, *([f"  - {e.get('action')} {e.get('resource')}: {e.get('code')}: "
                          f"{e.get('message')}" for e in errors] or ["  (none)"])]


def _evidence_lines(incident: dict) -> list[str]:
    kept = evidence(incident)
    lines = ["", "Evidence:"]
    if kept["prefix"]:
        lines.append(f"  stored under {kept['prefix']} ({kept['objects']} objects)")
    if kept["manifest_sha256"]:
        lines.append(f"  manifest sha256 {kept['manifest_sha256']}, {kept['signature']}; check "
                     f"it with: ec2-quarantine evidence verify {incident.get('incident_id')}")
    volumes = {c.get("after"): c.get("resource") for c in incident.get("changes") or []
               if c.get("action") == "snapshots"}
    lines += [f"  snapshot {sid} of {volumes.get(sid, 'a volume')}: {state}"
              for sid, state in kept["snapshots"].items()]
    lines.append(f"  (EBS snapshots are tagged QuarantineIncident={incident.get('incident_id')})"
                 if kept["snapshots"] else "  no snapshot")
    return lines + [f"  {line}" for line in malware_lines(incident)]


def _unread(scan: dict) -> int:
    """Files GuardDuty skipped or failed to read in a scan."""
    return sum(n for n in (scan.get("files_skipped"), scan.get("files_failed"))
               if isinstance(n, int))


def _whole(scan: dict) -> bool:
    """Whether a scan read everything: every volume, every file (else "clean" is qualified)."""
    return scan.get("status") == "COMPLETED" and not scan.get("not_scanned") and not _unread(scan)


def malware_lines(incident: dict) -> list[str]:
    """The malware scan of the evidence, as the incident records it (none: no line)."""
    scan = incident.get("malware_scan")
    if not isinstance(scan, dict):
        return []
    if scan.get("status") == "NOT_STARTED":
        return [f"malware scan NOT started: {scan.get('reason')}"]
    which = f"GuardDuty malware scan {scan.get('scan_id')}" + (
        f" ({scan['scan_type']})" if scan.get("scan_type") else "")
    if scan.get("status") == "RUNNING":
        return [f"{which}: running (the sweep follows it)"]
    read_at = ([f"  it read the volumes as they were at {_time(scan['volumes_read_at'])}, after "
                "containment (the incident's snapshots are the evidence of before)"]
               if scan.get("volumes_read_at") else [])
    unread = _unread(scan)
    unscanned = scan.get("not_scanned") or []
    not_scanned = [f"  NOT scanned: {r.get('resource')} ({r.get('status')}"
                   + (f", {r['reason']}" if r.get("reason") else "") + ")" for r in unscanned]
    if unscanned:  # the host may have exempted them: say what it could mean
        not_scanned.append(f"  ({len(unscanned)} not scanned: GuardDuty never scans a volume "
                           "tagged GuardDutyExcluded=true, which the host itself may have set)")
    if scan.get("result") == "THREATS_FOUND":
        threats = scan.get("threats") or []
        return [f"{which}: THREATS FOUND ({scan.get('threat_count')} threats in "
                f"{scan.get('files_with_threats')} files)",
                *(f"  - {t.get('name')} at {', '.join(t.get('paths') or []) or 'no path given'}"
                  for t in threats),
                *([f"  ({int(scan['threat_count']) - len(threats)} more not kept)"]
                  if isinstance(scan.get("threat_count"), int)
                  and scan["threat_count"] > len(threats) else []), *not_scanned, *read_at]
    if scan.get("result") == "NO_THREATS_FOUND":
        return [f"{which}: no threats found" + ("" if _whole(scan) else " in what was scanned"
                                                 + (f" ({unread} files skipped or failed)"
                                                    if unread else "")), *not_scanned, *read_at]
    return [f"{which}: {scan.get('status')} ({scan.get('status_reason') or 'no reason given'}), "
            "no result", *not_scanned, *read_at]


def _links_lines(incident: dict) -> list[str]:
    return ["", "Links:", *(f"  {name}: {url}" for name, url in links(incident).items())]


def _release_lines(incident: dict) -> list[str]:
    return ["", "The instance was not terminated. To release it after the investigation:",
            f"  {release_command(incident)}", f"Incident record: {_record_path(incident)}"]


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


def first_cut(made: dict) -> list[str]:
    """When the entry function isolated the instance, and what it could not do (Contain
    finished or restored it: the changes and errors above say how it ended)."""
    if not made:
        return []
    lines = ["", f"First cut (the entry function, {_time(made.get('start'))} to "
             f"{_time(made.get('end'))}): isolated "
             f"{', '.join(made.get('isolated') or []) or 'no interface'}"]
    lines += [f"  - then not done: {f['action']} {f['resource']}: {f['message']}"
              for f in made.get("failures") or []]
    return lines


def _name(incident: dict, longest: int = 256) -> str:
    """The instance id, with its Name tag (cut to `longest` characters) when it has one."""
    name = str((incident.get("instance_summary") or {}).get("name") or "")[:longest].strip()
    return f"{incident.get('instance_id', '?')}" + (f" ({name})" if name else "")


def _further(incident: dict) -> list[str]:
    further = incidents.findings_summary(incident)[0] + int(incident.get("findings_not_kept") or 0)
    return ["", f"Further findings recorded on this incident: {further}"]


# -- the notices ----------------------------------------------------------------------------

def _notice(incident: dict, event: str, status: str, headline: str, lines: list[str],
            document: dict, next_steps: list[str], outcome: str | None = None,
            finding: dict | None = None) -> dict:
    """A notice: the subject, the text (cut to its bound, saying where the rest is), the
    document (bounded the same way), the attributes (of `finding`, default the incident's)
    and the card."""
    if finding is None:
        finding = incident.get("finding") if isinstance(incident.get("finding"), dict) else {}
    # A line break inside one line (a value someone chose: a tag, an error's message, a
    # reason) becomes a space: no value can forge a line of the report or the card.
    lines = [_LINE_BREAKS.sub(" ", line) for line in lines]
    text = _bounded_text(lines, incident)
    notice = {"subject": subject(f"[ec2-quarantine] {_name(incident, SUBJECT_NAME)}: "
                                 f"{headline}"),
              "text": text, "document": _bounded_document(document),
              "attributes": notices.attributes(event, status, incident.get("account_id"),
                                               incident.get("region"),
                                               finding.get("type") or "none",
                                               finding.get("severity")),
              "card": notices.card(
                  f"{_name(incident)}: {headline}", _card_description(lines), next_steps,
                  [status, finding.get("type"), incident.get("account_id"),
                   incident.get("region")], str(incident.get("incident_id") or
                                                incident.get("instance_id") or "ec2-quarantine"),
                  event, [str(incident.get("instance_id"))])}
    if outcome is not None:
        notice["outcome"] = outcome
    return notice


def _card_description(lines: list[str]) -> str:
    """The card's body: the text up to its first section that lists details, in bold headings."""
    summary = []
    for line in lines:
        if line in ("Changes made:", "Evidence:", "Links:", "It would, in this order:",
                    "Approving would, in this order:", "Containment would, in this order:",
                    "Restored:", "What differed:"):
            break
        summary.append(f"*{notices.plain(line[:-1])}*" if line.endswith(":")
                       and not line.startswith(" ") else notices.plain(line.strip()))
    return "\n".join(summary).strip()


def _bounded_text(lines: list[str], incident: dict) -> str:
    """The text, cut at whole lines to TEXT_LIMIT bytes, saying where the whole record is."""
    text = "\n".join(lines)
    if len(text.encode()) <= notices.TEXT_LIMIT:
        return text
    kept, used = [], 200  # room for the line that says what was cut
    for line in lines:
        used += len(line.encode()) + 1
        if used > notices.TEXT_LIMIT:
            break
        kept.append(line)
    kept.append(f"  ... {len(lines) - len(kept)} more lines: {_record_path(incident)} has them "
                "all")
    return "\n".join(kept)


def _bounded_document(document: dict) -> dict:
    """The document within DOCUMENT_LIMIT: its longest lists cut first, each saying how many
    items it left out (`<list>_not_shown`), then any value still too long, as cut text."""
    cut = dict(document)

    def size():
        return len(json.dumps(cut, sort_keys=True, default=str).encode())
    lists = sorted((k for k, v in document.items() if isinstance(v, list) and v),
                   key=lambda k: -len(json.dumps(document[k], default=str)))
    for key in lists:
        kept = len(document[key])
        while size() > notices.DOCUMENT_LIMIT and kept:
            kept //= 2
            cut[key], cut[f"{key}_not_shown"] = document[key][:kept], len(document[key]) - kept
    for key in sorted(cut, key=lambda k: -len(json.dumps(cut[k], default=str))):
        if size() <= notices.DOCUMENT_LIMIT:
            break
        cut[key] = json.dumps(cut[key], default=str)[:512] + "..."
        cut["truncated"] = True
    return cut


def _decision_lines(incident: dict) -> list[str]:
    """What the response rules decided, and what a person (or the timeout) decided since."""
    response, made = incident.get("response") or {}, incident.get("decision") or {}
    lines = [f"Response rule: {response['reason']}"] if response.get("reason") else []
    if made:
        lines.append(f"Decision: {made.get('decision')} by {made.get('by')} at "
                     f"{_time(made.get('at'))}: {made.get('reason')}")
    return lines


def decision_commands(incident: dict) -> list[str]:
    """How to approve or deny an incident awaiting approval."""
    incident_id = incident["incident_id"]
    return [f"Approve: ec2-quarantine approve {incident_id} --reason \"...\" "
            f"(POST /incidents/{incident_id}/approve)",
            f"Deny: ec2-quarantine deny {incident_id} --reason \"...\" "
            f"(POST /incidents/{incident_id}/deny)"]


def detection(incident: dict) -> dict:
    """The notice sent when an incident opens (beside containment, never in front of it); for
    one that awaited approval, when containment begins."""
    dry = incident.get("status") == "DRY_RUN"
    lines = [(f"ec2-quarantine started dry run {incident['incident_id']} for {_name(incident)}: "
              "it plans, it changes nothing.") if dry else
             f"ec2-quarantine opened incident {incident['incident_id']} for {_name(incident)}.",
             "", *_instance_lines(incident), *_trigger_lines(incident),
             *_decision_lines(incident)]
    if not dry:
        lines += ["", "Containment is under way: isolation on every network interface, "
                  "credentials cut and the metadata service off, termination protection, then "
                  "snapshots of every volume. A report follows.", *notes(incident)]
    lines += _links_lines(incident)
    headline = "dry run started" if dry else "incident opened"
    document = {**facts(incident, "dry-run-started" if dry else "opened",
                         incident.get("status", "OPEN"))}
    return _notice(incident, document["event"], document["status"], headline, lines, document,
                   [f"Follow it: ec2-quarantine status {incident['incident_id']}"])


def final(incident: dict) -> dict:
    """The report at the end: outcome, what failed (first: it is what needs a person), what
    changed, evidence, how to release."""
    status = incident.get("status", "FAILED")
    outcome = incidents.OUTCOMES.get(status, incidents.OUTCOMES["FAILED"])
    errors = incident.get("errors") or []
    changes = incident.get("changes") or []
    headline = f"{outcome}, with {len(errors)} error{'s' if len(errors) != 1 else ''}" \
        if errors and status == "CONTAINED" else outcome  # contained: yet something failed
    made = incident.get("first_cut") or {}
    lines = [f"Incident {incident['incident_id']}: {_name(incident)} is {headline.upper()}.",
             "", *_instance_lines(incident), *_trigger_lines(incident), *notes(incident), "",
             *_timeline_lines(incident), *_errors_lines(errors),
             *_changes_lines(changes, incident), *revocations(changes, incident),
             *first_cut(made)]
    if made.get("isolated") or any(c.get("action") == IsolateInterface.name for c in changes):
        lines += ["", DNS_NOT_CUT]
    lines += [*_evidence_lines(incident), *_further(incident), *_links_lines(incident),
              *_release_lines(incident)]
    document = {**facts(incident, "report", status), "outcome": outcome, "errors": errors,
                "changes": changes, "evidence": evidence(incident),
                "release_command": release_command(incident),
                "first_cut": made or None}
    return _notice(incident, "report", status, headline, lines, document,
                   [f"Release after the investigation: {release_command(incident)}",
                    f"Incident record: {_record_path(incident)}"], outcome)


def plan(incident: dict) -> dict:
    """A dry run's report: every change it would make, in order. Nothing was changed."""
    steps = (incident.get("memory_plan") or []) + (incident.get("plan") or []) + (
        incident.get("evidence_plan") or [])
    lines = [f"DRY RUN {incident['incident_id']}: nothing was changed on {_name(incident)}.",
             "", *_instance_lines(incident), *_trigger_lines(incident), *notes(incident), "",
             "It would, in this order:"]
    lines += _plan_lines(incident)
    errors = incident.get("errors") or []
    if errors:
        lines += _errors_lines(errors, "Could not plan:")
    lines += _links_lines(incident)
    document = {**facts(incident, "report", "DRY_RUN"), "plan": steps, "errors": errors}
    return _notice(incident, "report", "DRY_RUN", f"dry run, {len(steps)} changes planned",
                   lines, document, ["Quarantine it for real: ec2-quarantine quarantine "
                                     f"{incident.get('instance_id')} --reason \"...\""],
                   "planned")


def _plan_lines(incident: dict) -> list[str]:
    steps = (incident.get("memory_plan") or []) + (incident.get("plan") or []) + (
        incident.get("evidence_plan") or [])
    lines = [f"  {n}. {c.get('action')}: {change_line(c, incident)}"
             for n, c in enumerate(steps, 1)] or ["  (nothing)"]
    return lines + revocations(steps, incident)


def awaiting(incident: dict) -> dict:
    """The request for approval: what the rule decided, what containment would do (the
    plan), until when it waits and what happens then, how to approve or deny."""
    approval = incident.get("approval") or {}
    then = {"contain": "it is contained", "close": "it is closed, nothing changed"}.get(
        approval.get("on_timeout"), "the rule's on_timeout applies")
    lines = [f"Incident {incident['incident_id']}: {_name(incident)} AWAITS APPROVAL. Nothing "
             "has been changed yet.", "", *_instance_lines(incident), *_trigger_lines(incident),
             *_decision_lines(incident), *notes(incident), "",
             f"Waiting until {_time(approval.get('deadline'))}; if nobody decides by then, "
             f"{then} (rule {approval.get('rule')!r}, on_timeout {approval.get('on_timeout')}).",
             "A further finding that a contain rule matches contains it at once.", "",
             "Approving would, in this order:", *_plan_lines(incident), "",
             *decision_commands(incident), *_links_lines(incident)]
    document = {**facts(incident, "awaiting-approval", incidents.AWAITING),
                "approval": approval, "plan": incident.get("plan") or [],
                "response": incident.get("response"),
                "approve": f"POST /incidents/{incident['incident_id']}/approve",
                "deny": f"POST /incidents/{incident['incident_id']}/deny"}
    return _notice(incident, "awaiting-approval", incidents.AWAITING, "awaiting approval",
                   lines, document, decision_commands(incident), "awaiting approval")


def notified(incident: dict) -> dict:
    """An incident that ends with nothing changed: a notify rule's finding (with the plan), a
    denial, or a timeout that closes."""
    made = incident.get("decision") or {}
    lines = [f"Incident {incident['incident_id']}: {_name(incident)} is NOTIFIED: nothing was "
             "changed.", f"Resolution: {incident.get('resolution') or 'none recorded'}", "",
             *_instance_lines(incident), *_trigger_lines(incident), *_decision_lines(incident),
             *notes(incident), "", "Containment would, in this order:", *_plan_lines(incident)]
    errors = incident.get("errors") or []
    if errors:
        lines += _errors_lines(errors, "Could not plan:")
    lines += _links_lines(incident)
    document = {**facts(incident, "notified", incidents.NOTIFIED),
                "resolution": incident.get("resolution") or "", "decision": made or None,
                "response": incident.get("response"), "plan": incident.get("plan") or [],
                "errors": errors}
    headline = {"denied": "denied, nothing changed"}.get(
        made.get("decision"), "closed, nothing changed" if made else "notified, nothing changed")
    return _notice(incident, "notified", incidents.NOTIFIED, headline, lines, document,
                   ["Quarantine it by hand if needed: ec2-quarantine quarantine "
                    f"{incident.get('instance_id')} --reason \"...\""], "notified")


def released(incident: dict, undone: list, errors: list, notes: list) -> dict:
    """The report of a release: what was restored, what was not, what was kept."""
    complete = not errors
    release = incident.get("release") or {}
    lines = [f"Incident {incident['incident_id']}: {_name(incident)} "
             + ("is RELEASED." if complete else "is NOT fully released."), "",
             *_instance_lines(incident),
             f"Released by: {release.get('requested_by') or 'unknown caller'}",
             f"Reason: {release.get('reason') or 'none given'}",
             *_changes_lines(undone, incident, "Restored:", undone=True),
             *_errors_lines(errors, "Not restored (errors):"), "", "Left as is:",
             *(f"  - {n}" for n in notes),
             "  - evidence (snapshots, the evidence store) and the incident record are kept",
             *_links_lines(incident)]
    outcome = "released" if complete else "release incomplete"
    status = incident.get("status") or "unknown"
    document = {**facts(incident, "released" if complete else "release-incomplete", status),
                "restored": undone, "errors": errors, "left_as_is": list(notes),
                "released_by": release.get("requested_by") or "",
                "release_reason": release.get("reason") or ""}
    return _notice(incident, document["event"], status, outcome, lines, document,
                   [f"Incident record: {_record_path(incident)}"], outcome)


def current(incident: dict) -> dict:
    """The notice that says where the incident stands now (GET /incidents/{id}/report): its
    plan for a dry run, the opening notice while it runs, the release report once released,
    the final report otherwise."""
    released_record = incident.get("release") or {}
    if incident.get("status") == "DRY_RUN":
        return plan(incident)
    if incident.get("status") == incidents.AWAITING:
        return awaiting(incident)
    if incident.get("status") == incidents.NOTIFIED:
        return notified(incident)
    if incident.get("status") == "OPEN":
        return detection(incident)
    if incident.get("status") == "RELEASED":
        return released(incident, released_record.get("restored_changes") or [], [],
                        released_record.get("notes") or [])
    return final(incident)


def tampered(incident: dict, entry: dict) -> dict:
    """Containment someone undid, found by the tamper watch (from CloudTrail, or by its
    sweep), and what was put back."""
    by = entry.get("by") or {}
    failed = [d for d in entry["drift"] if d["outcome"] != "put back"]
    if entry.get("call"):
        who = (f"{entry['call']} by {by.get('arn') or 'an unknown principal'} "
               f"({by.get('type') or 'type unknown'}"
               + (f", key {by['accessKeyId']}" if by.get("accessKeyId") else "")
               + f") from {entry.get('from') or 'an unknown address'} at "
               f"{_time(entry.get('at'))}")
    else:
        who = ("found by the sweep (no CloudTrail event named it: the call was not delivered, "
               "or it came from one of the product's own roles); CloudTrail says who")
    lines = [f"Containment of {_name(incident)} (incident {incident['incident_id']}, "
             f"{incident.get('status')}) was undone; "
             + ("it is put back." if not failed else "NOT ALL OF IT IS PUT BACK."),
             f"Who: {who}", "", *_instance_lines(incident), "", "What differed:"]
    lines += [f"  - {d['what']} {d['resource']}: found {_value(d['found'])}, wanted "
              f"{_value(d['expected'])}: {d['outcome']}" for d in entry["drift"]]
    lines += [*_links_lines(incident), "",
              f"Incident record (its tamper entries): {_record_path(incident)}"]
    headline = "containment undone, " + ("put back" if not failed else "NOT fully put back")
    status = incident.get("status") or "unknown"
    document = {**facts(incident, "tampered", status), "tamper": entry}
    return _notice(incident, "tampered", status, headline, lines, document,
                   [f"Find who in CloudTrail: {who[:200]}",
                    f"Incident record: {_record_path(incident)}"], "tampered")


def not_followed(incident: dict, wanted: str, errors: list) -> dict:
    """Security Hub did not take the incident's state onto its findings (off, denied, a
    finding it does not hold): containment is not affected; the analyst's view is."""
    lines = [f"Security Hub was not updated for incident {incident['incident_id']} "
             f"({_name(incident)}, {incident.get('status')}): its findings were to read "
             f"{wanted}. Containment is not affected.", "",
             *_errors_lines(errors, "Not updated:"), *_links_lines(incident)]
    status = incident.get("status") or "unknown"
    document = {**facts(incident, "security-hub", status), "workflow_status": wanted,
                "errors": errors}
    return _notice(incident, "security-hub", status, "Security Hub not updated", lines,
                   document, ["Check Security Hub is on in the finding's region, and that the "
                              "sync_findings function's role may BatchUpdateFindings"])


def malware_scan(incident: dict) -> dict:
    """GuardDuty's malware scan of the instance ended: clean, the threats it found (each with
    its paths), or no result."""
    scan = incident.get("malware_scan") or {}
    found = scan.get("result") == "THREATS_FOUND"
    clean = scan.get("result") == "NO_THREATS_FOUND"
    headline = ("malware scan: THREATS FOUND" if found else
                "malware scan: no threats found" + ("" if _whole(scan) else " in what was scanned")
                if clean else
                f"malware scan: {str(scan.get('status')).lower().replace('_', ' ')}, no result")
    if scan.get("not_scanned"):
        count = len(scan["not_scanned"])
        headline += f", {count} volume{'s' if count != 1 else ''} NOT scanned"
    lines = [f"Incident {incident['incident_id']} ({_name(incident)}, {incident.get('status')}): "
             f"{headline}.", "", *malware_lines(incident), "", *_instance_lines(incident),
             *_links_lines(incident), "", f"Incident record: {_record_path(incident)}"]
    status = incident.get("status") or "unknown"
    document = {**facts(incident, "malware-scan", status), "malware_scan": scan}
    return _notice(incident, "malware-scan", status, headline, lines, document,
                   [*(["The threats' paths are indicators: look for them on other instances"]
                      if found else []), f"Incident record: {_record_path(incident)}"])


def refused(execution, reason: str) -> dict:
    """An execution, record or request the product could not verify: nothing was done."""
    lines = [f"Execution {execution} was REFUSED: {reason[:1000]}",
             "Nothing was changed. Someone who may start the state machine or write the "
             "incidents table may have forged it: find who in CloudTrail (StartExecution, "
             "PutItem/UpdateItem on the incidents table)."]
    document = {"schema": notices.SCHEMA, "version": notices.VERSION, "event": "refused",
                "status": "REFUSED", "execution": str(execution), "reason": reason[:1000]}
    return _notice({"instance_id": "refused"}, "refused", "REFUSED",
                   "an execution or record that the product did not make", lines, document,
                   ["Find who in CloudTrail: states:StartExecution, dynamodb:PutItem"],
                   "refused")


def duplicate(incident: dict, finding: dict | None, revoked: str = "") -> dict:
    """A further finding for an instance already under an active incident (`revoked`: what was
    done of the stolen credentials it reports)."""
    what = (f"GuardDuty finding {finding.get('type')} (severity "
            f"{findings.severity_text(finding.get('severity'))}, id {finding.get('id')})" if finding
            else "a further request")
    lines = [f"{what} for {_name(incident)} was recorded on active incident "
             f"{incident['incident_id']} ({incident.get('status')}); nothing was re-run.", "",
             *_instance_lines(incident)]
    if revoked:
        lines += ["", f"Stolen credentials: {stolen_credentials(finding)}; {revoked}."]
    lines += _links_lines(incident)
    status = incident.get("status") or "unknown"
    document = {**facts(incident, "finding-recorded", status), "further_finding": finding,
                "revoked": revoked}
    return _notice(incident, "finding-recorded", status,
                   f"finding recorded on {incident['incident_id']}", lines, document,
                   [f"Incident record: {_record_path(incident)}"],
                   finding=finding)  # the attributes name the finding this notice is about


def not_acted_on(request: dict, why: str, reason: str = "") -> dict:
    """A qualifying finding the product deliberately left alone (an exempt instance, the
    instance the target, a sample): `why` in the subject, `reason` (who exempted it and until
    when, or what would have been done) in the message."""
    advice = ("GuardDuty generated it as a sample: nothing to do."
              if (request.get("finding") or {}).get("sample") else
              "Act by hand if needed: ec2-quarantine quarantine "
              f"{request.get('instance_id')} --reason \"...\""
              + (" --force" if why == "exempt" else "") + " (or POST /quarantine).")
    lines = [f"A qualifying finding for {_name(request)} was not acted on: {why}.", "",
             *_instance_lines(request), *_trigger_lines(request), *([reason] if reason else []),
             "", advice]
    document = {**facts(request, "not-acted-on", "NOT_ACTED_ON"), "why": why,
                "explanation": reason}
    return _notice(request, "not-acted-on", "NOT_ACTED_ON", f"not acted on: {why}", lines,
                   document, [advice])


def group(request: dict, group_id: str, results: list[dict], not_read: list[str]) -> dict:
    """A finding about a group of instances (an attack sequence): one incident each, listed
    here in one notice (each incident reports on its own as well)."""
    finding = request.get("finding") or {}
    acted = [r for r in results if r.get("incident_id")]
    lines = [f"GuardDuty {finding.get('type')} (severity "
             f"{findings.severity_text(finding.get('severity'))}) names {len(results)} "
             f"instance(s): group {group_id}, {len(acted)} with an incident.",
             f"  finding id {finding.get('id')}", "", "Instances:"]
    lines += [f"  - {r.get('instance_id')}: {r.get('decision')}"
              + (f", incident {r['incident_id']} {r.get('status')}" if r.get("incident_id")
                 else f" ({r.get('code') or 'error'}: {str(r.get('reason') or '')[:200]})")
              for r in results]
    if not_read:
        lines += ["", "Not read of the finding:", *(f"  - {why[:200]}" for why in not_read)]
    lines += ["", f"All of them: GET /incidents?group_id={group_id}"]
    document = {**facts(request, "group", "GROUP"), "group_id": group_id,
                "instances": [{k: r.get(k) for k in ("instance_id", "decision", "incident_id",
                                                     "status", "code")} for r in results],
                "not_read": not_read[:50]}
    subject_of = {**request, "instance_id": f"{len(results)} instances ({group_id})"}
    return _notice(subject_of, "group", "GROUP", "group of instances, one incident each",
                   lines, document, [f"GET /incidents?group_id={group_id}"], "group",
                   finding=finding)


def exemption(exemption: dict, event: str) -> dict:
    """An exemption granted or revoked: a decision about containment, announced like one."""
    lines = [f"Exemption {event} for {_name(exemption)} in account "
             f"{exemption.get('account_id')}, region {exemption.get('region')}.",
             f"  {exemptions.described(exemption)}",
             "While an exemption stands, GuardDuty findings on the instance are announced, not "
             "acted on; a person may still quarantine it with force."]
    status = f"EXEMPTION_{event.upper()}"
    document = {"schema": notices.SCHEMA, "version": notices.VERSION,
                "event": f"exemption-{event}", "status": status,
                "instance": _instance(exemption), "exemption": exemption}
    return _notice(exemption, f"exemption-{event}", status, f"exemption {event}", lines,
                   document, ["List exemptions: GET /exemptions"])
