"""The incident page, `report.html`: one self-contained HTML file a responder or analyst looks
at — the timeline drawn as SVG, what changed (before and after, with group names), the
evidence with its hashes and signature, who asked and why, the finding, who undid containment
since, the release.

Its facts are the report's (chalicelib/report.py), never gathered twice. It loads nothing:
its style is inline, its Content-Security-Policy allows no script, no request and no frame,
and every value is HTML-escaped (a Name tag or a finding's title is someone's choice).
"""

import html
import math

from chalicelib import incidents, report

PAGE = "report.html"
CONTENT_TYPE = "text/html; charset=utf-8"
# In a <meta> element (the page is a file: no header carries it); frame-ancestors has no
# effect there, and Chromium says so in the console.
POLICY = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; " \
         "form-action 'none'"
STYLE = """
body{font:14px/1.45 system-ui,sans-serif;margin:2em auto;max-width:1100px;color:#1b1f24;
padding:0 1em}
h1{font-size:1.5em;margin:.2em 0}h2{font-size:1.15em;margin:1.6em 0 .4em;
border-bottom:1px solid #d0d7de}
.status{display:inline-block;padding:.1em .6em;border-radius:1em;color:#fff;
font-weight:600}
.CONTAINED,.RELEASED{background:#1a7f37}.PARTIAL,.OPEN{background:#9a6700}
.FAILED,.tampered{background:#cf222e}.DRY_RUN{background:#57606a}
table{border-collapse:collapse;width:100%;margin:.3em 0}
th,td{border:1px solid #d0d7de;padding:.25em .5em;text-align:left;vertical-align:top}
th{background:#f6f8fa}td.mono,.mono{font-family:ui-monospace,monospace;font-size:.92em;
word-break:break-all}
dl{display:grid;grid-template-columns:max-content 1fr;gap:.2em 1em}dt{font-weight:600}
dd{margin:0}svg text{font:12px system-ui,sans-serif}.muted{color:#57606a}
"""
# The timeline's x axis: seconds after the incident opened, on a log scale (the cut takes
# seconds, the evidence minutes, a release days), with these ticks.
TICKS = ((0, "0"), (1, "1 s"), (10, "10 s"), (60, "1 min"), (600, "10 min"), (3600, "1 h"),
         (86400, "1 d"), (7 * 86400, "7 d"))
LABEL_WIDTH = 280  # pixels: the event names
PLOT_WIDTH = 640  # pixels: the time axis
ROW = 22  # pixels: one event
STEP_NAMES = {"first-cut": "first cut (entry function)", "contain": "Contain",
              "capture-memory": "memory capture", "evidence": "evidence collected",
              "wait-snapshots": "snapshots completed", "malware-scan": "malware scan",
              "report": "report",
              "release": "release", "sweep": "settled by the sweep", "page": "page written"}


def _e(value) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def span(seconds: float) -> str:
    """A duration as a person reads it: 0.14 s, 4 min 2 s, 3 h 10 min, 4.6 d."""
    size = abs(seconds)
    shown = (f"{size:.2f} s" if size < 60 else f"{int(size // 60)} min {int(size % 60)} s"
             if size < 3600 else f"{int(size // 3600)} h {int(size % 3600 // 60)} min"
             if size < 86400 else f"{size / 86400:.1f} d")
    return shown if seconds >= 0 else f"{shown} before"


def _seconds(opened, timestamp) -> float | None:
    at = report._at(timestamp)
    return (at - opened).total_seconds() if at and opened else None


def events(incident: dict) -> list[dict]:
    """What happened, in order: label, start and end in seconds after the incident opened
    (end None: a moment), and the outcome."""
    opened = report._at(incident.get("opened_at"))
    found = []

    def add(label, start, end=None, outcome=""):
        begin = _seconds(opened, start)
        if begin is not None:
            found.append({"label": label, "start": begin, "end": _seconds(opened, end),
                          "outcome": outcome, "at": start})

    finding = incident.get("finding") if isinstance(incident.get("finding"), dict) else {}
    add("finding last updated by GuardDuty", finding.get("updated_at"))
    add("incident opened", incident.get("opened_at"), outcome=incident.get("source") or "")
    cut = incident.get("first_cut") or {}
    add(STEP_NAMES["first-cut"], cut.get("start"), cut.get("end"),
        f"{len(cut.get('isolated') or [])} interface(s) isolated" if cut else "")
    for step in incident.get("timeline") or []:
        if cut and step.get("step") == "cut":  # the first cut, told above from its record
            continue
        add(STEP_NAMES.get(step.get("step"), step.get("step")), step.get("start"),
            step.get("end"), step.get("outcome") or "")
    add("isolated", report.timings(incident)["isolated_at"], outcome="every interface")
    for entry in incident.get("tamper") or []:
        who = (entry.get("by") or {}).get("arn") or entry.get("found_by") or "?"
        add(f"tampering: {entry.get('call') or 'found by the sweep'}",
            entry.get("at") or entry.get("found_at"),
            outcome=f"by {who}; " + ", ".join(d.get("outcome", "") for d in entry.get(
                "drift") or []))
    return sorted(found, key=lambda e: e["start"])


def _after(seconds: float) -> str:
    return f"+{span(seconds)}" if seconds >= 0 else span(seconds)


def _x(seconds: float) -> float:
    top = math.log10(1 + TICKS[-1][0])
    return LABEL_WIDTH + PLOT_WIDTH * min(1.0, math.log10(1 + max(0.0, seconds)) / top)


def timeline_svg(happened: list[dict]) -> str:
    """The events as rows on a log time axis: a bar from start to end, a dot for a moment."""
    height = ROW * (len(happened) + 2)
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" role="img" width="{LABEL_WIDTH + PLOT_WIDTH + 20}" '
             f'height="{height}" aria-label="timeline: seconds after the incident opened">']
    for seconds, label in TICKS:
        x = _x(seconds)
        parts.append(f'<line x1="{x:.1f}" y1="0" x2="{x:.1f}" y2="{height - ROW}" '
                     'stroke="#d0d7de"/>')
        parts.append(f'<text x="{x:.1f}" y="{height - 6}" text-anchor="middle" '
                     f'fill="#57606a">{label}</text>')
    for row, event in enumerate(happened):
        y = ROW * (row + 0.5)
        start, end = event["start"], event["end"]
        took = f" (took {span(end - start)})" if end is not None else ""
        parts.append(f'<text x="0" y="{y + 4:.1f}">{_e(event["label"][:48])}</text>')
        if end is not None and end > start:
            parts.append(f'<rect x="{_x(start):.1f}" y="{y - 6:.1f}" width='
                         f'"{max(2.0, _x(end) - _x(start)):.1f}" height="12" rx="2" '
                         f'fill="#0969da"><title>{_e(event["label"])}: '
                         f'{_after(start)}{took}</title></rect>')
        else:
            parts.append(f'<circle cx="{_x(start):.1f}" cy="{y:.1f}" r="5" fill="#cf222e">'
                         f'<title>{_e(event["label"])}: {_after(start)}</title></circle>')
    parts.append("</svg>")
    return "".join(parts)


def _table(headers: list[str], rows: list[list], mono: tuple[int, ...] = ()) -> str:
    if not rows:
        return '<p class="muted">none</p>'
    head = "".join(f"<th>{_e(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(
        f'<td{" class=mono" if i in mono else ""}>{_e(cell)}</td>' for i, cell in enumerate(row))
        + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _definitions(pairs: list[tuple[str, object]]) -> str:
    return "<dl>" + "".join(f"<dt>{_e(k)}</dt><dd>{_e(v)}</dd>" for k, v in pairs
                            if v not in (None, "", [], {})) + "</dl>"


def _summary(incident: dict, facts: dict) -> str:
    instance, finding = facts["instance"], facts["finding"] or {}
    return _definitions([
        ("Instance", f"{instance['id']}" + (f" ({instance['name']})" if instance["name"] else "")
         + (f", {instance['type']}" if instance["type"] else "")),
        ("Account, region, VPC", f"{instance['account_id']}, {instance['region']}, "
                                 f"{instance['vpc_id'] or 'unknown'}"),
        ("Private IPs", ", ".join(instance["private_ips"])),
        ("Public IPs", ", ".join(instance["public_ips"])),
        ("Tags", ", ".join(f"{k}={v}" for k, v in instance["tags"].items())),
        ("Finding", f"{finding.get('type')}, severity "
                    f"{report.findings.severity_text(finding.get('severity'))}"
         + (" (a GuardDuty sample)" if finding.get("sample") else "") if finding else ""),
        ("Finding title", finding.get("title")), ("Remote", finding.get("remote")),
        ("Stolen credentials", finding.get("stolen_credentials")),
        ("Finding id", finding.get("id")), ("Source", facts["source"]),
        ("Asked by", facts["requested_by"]), ("Reason", facts["reason"]),
        ("Notes", "; ".join(facts["notes"]))])


def _evidence(incident: dict) -> str:
    kept = report.evidence(incident)
    volumes = {c.get("after"): c.get("resource") for c in incident.get("changes") or []
               if c.get("action") == "snapshots"}
    latest = {str(c.get("resource")).removeprefix(kept["prefix"]): c.get("after")
              for c in incident.get("changes") or []  # a page's publish lists it anew
              if c.get("action") == "evidence-store" and c.get("attribute") == "sha256"}
    objects = [[key, digest] for key, digest in latest.items()]
    return (_definitions([("Stored under", kept["prefix"]),
                          ("Manifest SHA-256", kept["manifest_sha256"]),
                          ("Signature", kept["signature"]),
                          ("Check it", f"ec2-quarantine evidence verify "
                                       f"{incident.get('incident_id')}")])
            + "<h3>Objects (as last recorded)</h3>" + _table(["Object", "SHA-256"], objects,
                                                           mono=(0, 1))
            + "<h3>Snapshots</h3>" + _table(["Snapshot", "Volume", "State"], [
                [sid, volumes.get(sid, ""), state] for sid, state in kept["snapshots"].items()],
                mono=(0, 1)) + _malware_scan(incident))


def _malware_scan(incident: dict) -> str:
    """The malware scan's result, and each threat with its paths (none: nothing)."""
    said = report.malware_lines(incident)
    if not said:
        return ""
    threats = (incident.get("malware_scan") or {}).get("threats") or []
    return ("<h3>Malware scan</h3>" + "".join(f"<p>{_e(line.strip())}</p>" for line in said
                                               if not line.startswith("  - "))
            + (_table(["Threat", "Paths"], [[t.get("name"), ", ".join(t.get("paths") or [])]
                                             for t in threats], mono=(1,)) if threats else ""))


def _tampering(incident: dict) -> str:
    rows = [[entry.get("at") or entry.get("found_at"), entry.get("call") or "(the sweep)",
             (entry.get("by") or {}).get("arn"), (entry.get("by") or {}).get("accessKeyId"),
             entry.get("from"), f"{d.get('what')} {d.get('resource')}: found "
             f"{report._value(d.get('found'))}, wanted {report._value(d.get('expected'))}",
             d.get("outcome")]
            for entry in incident.get("tamper") or [] for d in entry.get("drift") or []]
    unkept = int(incident.get("tamper_unkept") or 0)
    return (_table(["When", "Call", "By", "Key", "From", "Difference", "Outcome"], rows,
                   mono=(2, 3)) + (f'<p class="muted">{unkept} later entries not kept</p>'
                                   if unkept else ""))


def _release(incident: dict) -> str:
    released = incident.get("release") or {}
    if not released:
        return '<p class="muted">not released</p>'
    return _definitions([("Released by", released.get("requested_by")),
                         ("Reason", released.get("reason")),
                         ("Left as is", "; ".join(released.get("notes") or []))]) + _table(
        ["Restored", "From", "To"], [list(report.change_diff(c, incident, undone=True))
                                     for c in released.get("restored_changes") or []])


def render(incident: dict) -> bytes:
    """The page of `incident` as it is recorded now."""
    status = incident.get("status") or "OPEN"
    facts = report.facts(incident, "page", status)
    happened = events(incident)
    changes = [c for c in incident.get("changes") or []
               if c.get("action") not in report.EVIDENCE_ACTIONS]
    errors = [[e.get("action"), e.get("resource"), e.get("code"), e.get("message")]
              for e in incident.get("errors") or []]
    title = f"Incident {incident.get('incident_id')}: {report._name(incident, 64)}"
    body = [
        f"<h1>{_e(title)}</h1>",
        f'<p><span class="status {_e(status)}">{_e(status)}</span> '
        f'{_e(incidents.OUTCOMES.get(status, ""))}; opened {_e(report._time(incident.get("opened_at")))}'
        f'{"; tampered with since" if incident.get("tamper") else ""}</p>',
        "<h2>Summary</h2>", _summary(incident, facts),
        "<h2>Timeline</h2>", timeline_svg(happened),
        _table(["When (UTC)", "What", "After opening", "Took", "Outcome"], [
            [report._time(e["at"]), e["label"], _after(e["start"]),
             span(e["end"] - e["start"]) if e["end"] is not None else "", e["outcome"]]
            for e in happened]),
        "<h2>Changes (before → after)</h2>",
        _table(["What", "Before", "After"], [list(report.change_diff(c, incident))
                                             for c in changes]),
        "<h2>Not done (errors)</h2>", _table(["Action", "Resource", "Code", "Message"], errors),
        "<h2>Evidence</h2>", _evidence(incident),
        "<h2>Tampering since containment</h2>", _tampering(incident),
        "<h2>Release</h2>", _release(incident),
        "<h2>Links</h2>", "<ul>" + "".join(
            f'<li><a href="{_e(url)}" rel="noreferrer">{_e(name)}</a></li>'
            for name, url in facts["links"].items()) + "</ul>",
        f'<p class="mono">{_e(report.release_command(incident))}</p>',
        f'<p class="muted">Written by ec2-quarantine at {_e(report._time(incidents.now()))}; '
        f"listed in the incident's signed manifest: ec2-quarantine evidence verify "
        f"{_e(incident.get('incident_id'))}</p>"]
    return ("<!doctype html><html lang=en><head><meta charset=utf-8>"
            f'<meta http-equiv="Content-Security-Policy" content="{POLICY}">'
            f"<title>{_e(title)}</title><style>{STYLE}</style></head><body>"
            + "".join(body) + "</body></html>").encode()
