"""`ec2-quarantine`: the operator's command line for the ec2-quarantine API.

Requests are signed with the caller's AWS credentials (SigV4, service `execute-api`, through
botocore), so the API's IAM authorization decides who may quarantine and release. `evidence`
reads the evidence bucket and KMS directly, with the same credentials (quarantine_cli/evidence.py).
"""

import argparse
import json
import os
import re
import socket
import ssl
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

API_URL_VARIABLE = "EC2_QUARANTINE_API_URL"
# chalicelib.incidents.STATUSES (the CLI ships without chalicelib; a test keeps them equal).
STATUSES = ("OPEN", "CONTAINED", "PARTIAL", "FAILED", "RELEASED", "DRY_RUN", "AWAITING_APPROVAL",
            "NOTIFIED")
TERMINAL = {"CONTAINED", "PARTIAL", "FAILED", "RELEASED", "DRY_RUN", "NOTIFIED"}
# Not terminal, but a person decides next: `quarantine --wait` stops there and says how.
AWAITING = "AWAITING_APPROVAL"
# chalicelib.incidents.INCIDENT_ID, and the most a reason may hold (chalicelib.http.MAX_REASON).
INCIDENT_ID = re.compile(r"\Ainc-[0-9a-f]{12}\Z")
MAX_REASON = 1024
TIMEOUT_SECONDS = 60
THROTTLED_RETRIES = 3  # API Gateway's 429, tried again with backoff before giving up


class CliError(Exception):
    """A failure said in one line: what went wrong and what to do."""


def signed_request(method: str, url: str, body: bytes | None, region: str, credentials):
    """A urllib request carrying a SigV4 signature for execute-api."""
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest

    headers = {"Content-Type": "application/json"} if body is not None else {}
    request = AWSRequest(method=method, url=url, data=body, headers=headers)
    SigV4Auth(credentials, "execute-api", region).add_auth(request)
    return urllib.request.Request(url, data=body, method=method, headers=dict(request.headers))


def _session(args):
    """(botocore session, credentials, region) of the caller's AWS configuration."""
    import botocore.session
    from botocore.exceptions import BotoCoreError, ProfileNotFound

    session = botocore.session.get_session()
    try:
        credentials = session.get_credentials()
        region = args.region or session.get_config_variable("region") or "us-east-1"
    except ProfileNotFound as error:
        raise CliError(f"AWS profile {error.kwargs.get('profile')!r} is not in your AWS "
                       "configuration: `aws configure --profile NAME`, or unset AWS_PROFILE"
                       ) from None
    except BotoCoreError as error:
        raise CliError(f"cannot read your AWS credentials: {error}") from None
    if credentials is None:
        raise CliError("no AWS credentials found (environment, profile or instance role): "
                       "`aws configure`, or set AWS_PROFILE")
    return session, credentials, region


def api_url(url: str | None) -> str:
    """The API's root URL, refused unless it is an http(s) URL with a host."""
    parts = urllib.parse.urlsplit(url or "")
    if parts.scheme not in ("https", "http") or not parts.netloc:
        raise CliError(f"--api-url {url!r} is not the API's URL: give it with its scheme, e.g. "
                       "https://abc123.execute-api.us-east-1.amazonaws.com/api")
    return url.rstrip("/")


def invoke_arn(method: str, url: str, region: str) -> str:
    """The `execute-api:Invoke` resource a request to `url` needs (the account is not in the
    URL: `*`)."""
    parts = urllib.parse.urlsplit(url)
    host = parts.netloc.split(".")
    stage, _, path = parts.path.lstrip("/").partition("/")
    api = host[0] if len(host) > 2 and host[1] == "execute-api" else "*"
    return f"arn:aws:execute-api:{region}:*:{api}/{stage or '*'}/{method}/{path}"


def gateway_error(status: int, message: str, method: str, url: str, region: str) -> str:
    """API Gateway's own refusal (`{"Message": ...}`), said with what to do."""
    path = urllib.parse.urlsplit(url).path
    said = f"{status} from API Gateway"
    if status == 403 and "not authorized to perform" in message:
        who = re.search(r"User: (\S+)", message)
        named = re.search(r"on resource: (\S+)", message)
        return (f"{said}: {who.group(1) if who else 'your identity'} may not call {method} "
                f"{path}: it needs execute-api:Invoke on "
                f"{named.group(1) if named else invoke_arn(method, url, region)} (IAM)")
    if status == 403 and "Missing Authentication Token" in message:
        return (f"{said}: no route {method} {path} (or the request was not signed): check "
                "--api-url, which ends with the API's stage (.../api)")
    if status == 403 and re.search(r"signature|security token|expired", message, re.I):
        return (f"{said}: the request's signature was refused ({message}): check your AWS "
                f"credentials (`aws sts get-caller-identity`) and --region ({region})")
    if status == 403:
        return (f"{said}: {message}: the call needs execute-api:Invoke on "
                f"{invoke_arn(method, url, region)} (IAM)")
    if status == 429:
        return (f"{said}: {method} {path} throttled ({message}; tried "
                f"{THROTTLED_RETRIES + 1} times): try again in a minute")
    if status in (502, 503, 504):
        return (f"{said}: {message}: the API did not answer in time and may still have acted: "
                "check with `ec2-quarantine list` before trying again")
    return f"{said}: {message}"


def _answer(status: int, raw: bytes, content_type: str, method: str, url: str, region: str):
    """The app's JSON answer; API Gateway's own or anything else raised as one line."""
    try:
        body = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        snippet = " ".join(raw[:60].decode("utf-8", "replace").split())
        raise CliError(f"{status}: the answer is not the API's JSON "
                       f"({content_type or 'no content type'}"
                       f"{': ' + repr(snippet) if snippet else ''}): is --api-url the API's "
                       "URL?") from None
    if isinstance(body, dict) and "error" in body:
        return body
    if isinstance(body, dict) and isinstance(body.get("Message", body.get("message")), str) \
            and status >= 400:
        raise CliError(gateway_error(status, body.get("Message", body.get("message")), method,
                                     url, region))
    if not isinstance(body, dict):
        raise CliError(f"{status}: the answer is not the API's JSON object: is --api-url "
                       "the API's URL?")
    return body


def unreachable(url: str, reason) -> str:
    """Why the API could not be reached, and what to check."""
    host = urllib.parse.urlsplit(url).netloc
    if isinstance(reason, socket.gaierror):
        return f"cannot resolve {host}: check --api-url and your network (DNS)"
    if isinstance(reason, ConnectionRefusedError):
        return (f"{host} refused the connection: is the API served there? (`make local` "
                "serves it on 127.0.0.1:8000)")
    if isinstance(reason, (TimeoutError, socket.timeout)):
        return (f"no answer from {host} within {TIMEOUT_SECONDS} s: check your network; the "
                "API may still have acted (`ec2-quarantine list`)")
    if isinstance(reason, ssl.SSLError):
        return f"TLS with {host} failed ({reason}): check --api-url"
    return f"cannot reach {host}: {reason}"


def call(args, method: str, path: str, payload=None, query=None) -> tuple[int, dict]:
    """(status, the app's JSON answer) of a signed request; every other outcome a CliError."""
    root = api_url(args.api_url)
    _, credentials, region = _session(args)
    url = root + path
    if query:
        url += "?" + urllib.parse.urlencode({k: v for k, v in query.items() if v is not None})
    body = None if payload is None else json.dumps(payload).encode()
    attempt = 0
    while True:
        request = signed_request(method, url, body, region, credentials.get_frozen_credentials())
        try:
            with urllib.request.urlopen(request, timeout=TIMEOUT_SECONDS) as response:
                return response.status, _answer(response.status, response.read(),
                                                response.headers.get("Content-Type", ""),
                                                method, url, region)
        except urllib.error.HTTPError as error:
            if error.code == 429 and attempt < THROTTLED_RETRIES:
                time.sleep(min(8.0, 0.5 * 2 ** attempt))
                attempt += 1
                continue
            return error.code, _answer(error.code, error.read(),
                                       error.headers.get("Content-Type", ""), method, url,
                                       region)
        except urllib.error.URLError as error:
            raise CliError(unreachable(url, error.reason)) from None
        except (TimeoutError, socket.timeout, ConnectionError) as error:
            raise CliError(unreachable(url, error)) from None


def _cell(row: dict, column: str) -> str:
    value = row.get(column)
    return "" if value is None else str(value)


def _table(rows: list[dict], columns: list[str]) -> str:
    widths = {c: max([len(c)] + [len(_cell(r, c)) for r in rows]) for c in columns}
    lines = ["  ".join(c.upper().ljust(widths[c]) for c in columns)]
    lines += ["  ".join(_cell(r, c).ljust(widths[c]) for c in columns) for r in rows]
    return "\n".join(lines)


def _value(value) -> str:
    """A recorded value as a person reads it (no JSON, no Python repr): as the report's
    (`chalicelib.report._value`), repeated since the CLI's package ships without chalicelib."""
    if value is None or value == [] or value == {}:
        return "none"
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, list):
        return ", ".join(_value(v) for v in value)
    if isinstance(value, dict):
        return ", ".join(f"{k} {_value(v)}" for k, v in value.items())
    return str(value)


def duration(start, end) -> str:
    """How long from `start` to `end` (the incidents' UTC times), or "" when unknown."""
    from datetime import datetime

    def parsed(text):
        try:
            return datetime.fromisoformat(str(text).replace("Z", "+00:00"))
        except ValueError:
            return None

    began, ended = parsed(start), parsed(end)
    return f"{(ended - began).total_seconds():.2f} s" if began and ended else ""


def _step_line(step: dict) -> str:
    took = duration(step.get("start"), step.get("end"))
    return (f"  {step.get('start')} → {step.get('end')}" + (f" ({took})" if took else "")
            + f"  {step.get('step')}: {step.get('outcome')}")


def _change_line(change: dict, undone: bool = False) -> str:
    before, after = change.get("before"), change.get("after")
    if undone:
        before, after = after, before
    return (f"  - {change.get('action')} {change.get('resource')} {change.get('attribute')}: "
            f"{_value(before)} → {_value(after)}")


def _snapshots(incident: dict) -> dict:
    return (incident.get("evidence") or {}).get("snapshots") or {}


def _decision_text(made) -> str:
    """An incident's `decision` in one line: what, by whom, when, why."""
    if not isinstance(made, dict) or not made.get("decision"):
        return ""
    return (f"{made.get('decision')} by {made.get('by') or 'unknown'}"
            + (f" at {made['at']}" if made.get("at") else "")
            + f", reason {made.get('reason') or '-'}")


def _approval_text(approval) -> str:
    """An incident's `approval` terms in one line: the rule, what a timeout does, by when."""
    if not isinstance(approval, dict) or not approval:
        return ""
    return (f"rule {approval.get('rule') or 'unknown'}, on timeout "
            f"{approval.get('on_timeout') or 'unknown'}, deadline "
            f"{approval.get('deadline') or 'unknown'}")


def _show_incident(incident: dict) -> str:
    """`status`: the incident as a person reads it; `report` prints the full report."""
    finding = incident.get("finding") if isinstance(incident.get("finding"), dict) else {}
    lines = [f"{incident.get('incident_id')}: {incident.get('status')}, instance "
             f"{incident.get('instance_id')} (account {incident.get('account_id')}, "
             f"{incident.get('region')})"]
    facts = [("opened", incident.get("opened_at")), ("source", incident.get("source")),
             ("asked by", incident.get("requested_by")), ("reason", incident.get("reason")),
             ("finding", " ".join(str(finding.get(k)) for k in ("type", "severity", "id")
                                  if finding.get(k) is not None)),
             ("execution", incident.get("execution_arn")),
             ("approval", _approval_text(incident.get("approval"))),
             ("decision", _decision_text(incident.get("decision"))),
             ("resolution", incident.get("resolution"))]
    lines += [f"  {name}: {value}" for name, value in facts if value]
    lines += ["Timeline:", *(_step_line(t) for t in incident.get("timeline") or [])]
    changes = [c for c in incident.get("changes") or [] if c.get("action") != "evidence-store"]
    lines += ["Changes:", *([_change_line(c) for c in changes] or ["  (none)"])]
    errors = incident.get("errors") or []
    lines += ["Errors:", *([f"  - {e.get('action')} {e.get('resource')}: {e.get('code')}: "
                            f"{e.get('message')}" for e in errors] or ["  (none)"])]
    evidence = incident.get("evidence") or {}
    stored = [c for c in incident.get("changes") or [] if c.get("action") == "evidence-store"]
    manifest = next((c.get("after") for c in reversed(stored)
                     if str(c.get("resource", "")).endswith("/manifest.json")), None)
    lines += ["Evidence:", f"  stored under {evidence.get('store') or '(nothing stored yet)'}"]
    if manifest:
        lines.append(f"  manifest sha256 {manifest}: ec2-quarantine evidence verify "
                     f"{incident.get('incident_id')}")
    lines += [f"  snapshot {sid}: {state}" for sid, state in _snapshots(incident).items()]
    tampered = incident.get("tamper") or []
    if tampered:
        lines += ["Tampering:", *(
            f"  {t.get('at') or t.get('found_at')} {t.get('call') or '(the sweep)'} by "
            f"{(t.get('by') or {}).get('arn') or 'unknown'}: " + "; ".join(
                f"{d.get('what')} {d.get('resource')} {d.get('outcome')}"
                for d in t.get("drift") or []) for t in tampered)]
    released = incident.get("release") or {}
    if released:
        lines += [f"Release: by {released.get('requested_by') or 'unknown'}, reason "
                  f"{released.get('reason') or '-'}", *(
                      _change_line(c, undone=True)
                      for c in released.get("restored_changes") or [])]
    return "\n".join(lines)


# What comes after each step while an execution runs (what `--wait` says it is doing).
# `cut` is the first cut's record (made at once, or on approval); `approval` the decision's.
NEXT = {None: "containing", "first-cut": "containing", "cut": "containing",
        "approval": "containing", "approval-timeout": "containing",
        "contain": "collecting evidence", "evidence": "waiting for the snapshots",
        "wait-snapshots": "reporting", "report": "done", "release": "done", "page": "done"}


def progress(incident: dict) -> str:
    """One line: the status, what runs now, the snapshots done and when they are next looked
    at."""
    steps = [t.get("step") for t in incident.get("timeline") or [] if t.get("step") != "page"]
    line = f"{incident.get('status')}: {NEXT.get(steps[-1] if steps else None, 'running')}"
    snapshots = _snapshots(incident)
    if snapshots and "wait-snapshots" not in steps:
        completed = sum(state == "completed" for state in snapshots.values())
        evidence = incident.get("evidence") or {}
        line += f", snapshots {completed}/{len(snapshots)} completed"
        if evidence.get("next_check_at"):
            line += f", next check at {evidence['next_check_at']}"
    return line


def _wait(args, incident_id: str, done, out) -> dict:
    """Poll the incident, printing each step as it ends and what runs now whenever it
    changes (at least every 10 s), until `done(incident)`."""
    shown, said, quiet_since = 0, None, time.monotonic()
    while True:
        status, incident = call(args, "GET", f"/incidents/{urllib.parse.quote(incident_id)}")
        if status != 200:
            raise CliError(f"{status} {incident.get('error')}: {incident.get('message')}")
        timeline = incident.get("timeline") or []
        for step in timeline[shown:]:
            print(_step_line(step), file=out, flush=True)
        shown = len(timeline)
        if done(incident):
            return incident
        now = progress(incident)
        if now != said or time.monotonic() - quiet_since >= 10:
            print(f"  ... {now}", file=out, flush=True)
            said, quiet_since = now, time.monotonic()
        time.sleep(args.poll)


def _restored(incident: dict) -> str:
    """What the release restored, and what it did not."""
    released = incident.get("release") or {}
    last = [t for t in incident.get("timeline") or [] if t.get("step") == "release"][-1:]
    lines = [f"{incident.get('incident_id')}: {incident.get('status')}"
             + (f" (release {last[0].get('outcome')})" if last else ""), "Restored:",
             *([_change_line(c, undone=True) for c in released.get("restored_changes") or []]
               or ["  (nothing)"])]
    lines += [f"  left as is: {note}" for note in released.get("notes") or []]
    return "\n".join(lines)


def _awaiting(incident: dict) -> str:
    """An incident held for a person: what holds it, until when, and how to decide."""
    incident_id = incident.get("incident_id")
    terms = _approval_text(incident.get("approval"))
    return "\n".join([
        f"{incident_id}: {AWAITING}: the containment awaits a person's approval"
        + (f" ({terms})" if terms else ""),
        f"  approve: ec2-quarantine approve {incident_id} --reason TEXT [--wait]",
        f"  deny:    ec2-quarantine deny {incident_id} --reason TEXT"])


def _decided(body: dict, hint: bool = True) -> str:
    """The answer of approve or deny: the decision and what comes of it (`hint`: how to follow
    the containment an approval let go on)."""
    incident_id = body.get("incident_id")
    made = body.get("decision") if isinstance(body.get("decision"), dict) else {}
    lines = [f"{incident_id}: {made.get('decision') or 'decided'}, now {body.get('status')}"]
    lines += [f"  {name}: {value}" for name, value in (
        ("decision", _decision_text(made)), ("resolution", body.get("resolution")),
        ("wait", body.get("execution") if isinstance(body.get("execution"), str) else None))
        if value]
    if hint and body.get("status") == "OPEN":
        lines.append(f"  containment runs: `ec2-quarantine status {incident_id}` follows it")
    return "\n".join(lines)


def _instance_payload(args, flags) -> dict:
    """The body of POST /quarantine or /release: the instance, why, and the flags given."""
    payload = {"instance_id": args.instance_id, "reason": args.reason}
    payload.update({k: v for k, v in (("region", args.instance_region),
                                      ("account_id", args.account_id)) if v})
    payload.update({flag: True for flag in flags if getattr(args, flag)})
    return payload


def release_steps(incident: dict) -> int:
    """How many release attempts the incident recorded (`make drill` waits on it too)."""
    return sum(1 for step in incident.get("timeline", []) if step["step"] == "release")


def _aws_client(args, service: str, region: str | None = None):
    session, _, configured = _session(args)
    return session.create_client(service, region_name=region or configured)


def _evidence_bucket(args) -> str:
    """--bucket, or where the API says the incident's evidence is stored."""
    if args.bucket:
        return args.bucket
    if not args.api_url:
        raise CliError(f"give --bucket, or --api-url (or ${API_URL_VARIABLE}) to ask the API")
    status, incident = call(args, "GET", f"/incidents/{urllib.parse.quote(args.incident_id)}")
    if status != 200:
        raise CliError(f"{incident.get('error')}: {incident.get('message')}")
    store = (incident.get("evidence") or {}).get("store") or ""
    if not store.startswith("s3://"):
        raise CliError(f"incident {args.incident_id} has no evidence store")
    return store[len("s3://"):].split("/", 1)[0]


def _signing_key_region(key_id: str) -> str | None:
    return key_id.split(":")[3] if key_id.startswith("arn:") else None


def run_evidence(args, out=sys.stdout) -> int:
    """`evidence public-key` prints the signing key's public key (PEM); `evidence verify`
    checks an incident's evidence and exits 0 only if everything verified."""
    from botocore.exceptions import BotoCoreError, ClientError

    from quarantine_cli import evidence

    try:
        if args.evidence_command == "public-key":
            kms = _aws_client(args, "kms", _signing_key_region(args.key_id))
            print(evidence.public_key_pem(kms, args.key_id).decode(), end="", file=out)
            return 0
        if "/" in args.incident_id or not args.incident_id.strip():
            raise CliError(f"{args.incident_id!r} is not an incident id")
        if args.public_key:
            try:
                with open(args.public_key, "rb") as handle:
                    pem = handle.read()
            except OSError as error:
                raise CliError(f"cannot read {args.public_key}: {error.strerror}") from None
        elif args.key_id:
            kms = _aws_client(args, "kms", _signing_key_region(args.key_id))
            pem = evidence.public_key_pem(kms, args.key_id)
        else:
            raise CliError("give --public-key PEM or --key-id (the stack's "
                           "EvidenceSigningKeyArn): never the key the signature names")
        public_key = evidence.load_public_key(pem)
        report = evidence.verify(_aws_client(args, "s3"), _evidence_bucket(args),
                                 args.incident_id, public_key)
    except (ClientError, BotoCoreError) as error:
        raise CliError(str(error)) from None
    except evidence.EvidenceError as error:
        raise CliError(str(error)) from None
    print(json.dumps(report, indent=2, sort_keys=True) if args.json else evidence.render(report),
          file=out)
    return 0 if report["verified"] else 1


DURATION_UNITS = {"m": 60, "h": 3600, "d": 86400}


def expiry(args) -> str:
    """--until as given, or --for (30m, 12h, 7d) from now, as the API's UTC time."""
    from datetime import datetime, timedelta, timezone

    if args.until:
        return args.until
    amount, unit = args.for_[:-1], args.for_[-1:]
    if not amount.isdigit() or unit not in DURATION_UNITS:
        raise CliError(f"--for {args.for_!r} is not a duration such as 30m, 12h or 7d")
    until = datetime.now(timezone.utc) + timedelta(seconds=int(amount) * DURATION_UNITS[unit])
    return until.strftime("%Y-%m-%dT%H:%M:%SZ")


def _exemption_call(args) -> tuple[int, dict]:
    if args.exempt_command == "list":
        return call(args, "GET", "/exemptions", query={"limit": args.limit,
                                                       "next_token": args.next_token})
    where = {k: v for k, v in (("region", args.instance_region),
                               ("account_id", args.account_id)) if v}
    if args.exempt_command == "grant":
        return call(args, "POST", "/exemptions", {
            "instance_id": args.instance_id, "reason": args.reason, "expires": expiry(args),
            **where})
    return call(args, "DELETE", f"/exemptions/{urllib.parse.quote(args.instance_id)}",
                {"reason": args.reason}, query=where or None)


def _incident_path(args, tail: str = "") -> str:
    return f"/incidents/{urllib.parse.quote(args.incident_id, safe='')}{tail}"


def _write(path: str, text: str) -> None:
    try:
        with open(path, "w", encoding="utf-8") as handle:
            handle.write(text)
    except OSError as error:
        raise CliError(f"cannot write {path}: {error.strerror}") from None


def run(args, out=sys.stdout) -> int:
    if args.command == "evidence":
        return run_evidence(args, out)
    if args.command == "exempt":
        status, body = _exemption_call(args)
    elif args.command == "quarantine":
        status, body = call(args, "POST", "/quarantine",
                            _instance_payload(args, ("force", "dry_run")))
    elif args.command == "release":
        status, body = call(args, "POST", "/release", _instance_payload(args, ("reregister",)))
    elif args.command == "status":
        status, body = call(args, "GET", _incident_path(args))
    elif args.command == "report":
        status, body = call(args, "GET", _incident_path(args, "/report"),
                            query={"format": "html" if args.html else None})
    elif args.command == "findings":
        status, body = call(args, "GET", _incident_path(args, "/findings"), query={
            "limit": args.limit, "next_token": args.next_token})
    elif args.command in ("approve", "deny"):
        status, body = call(args, "POST", _incident_path(args, f"/{args.command}"),
                            {"reason": args.reason})
    else:
        status, body = call(args, "GET", "/incidents", query={
            "instance_id": args.instance_id, "status": args.status, "since": args.since,
            "limit": args.limit})
    if status >= 400:
        print(f"error {status} {body.get('error')}: {body.get('message')}", file=sys.stderr)
        return 1
    if getattr(args, "wait", False) and "incident_id" in body:
        if args.command == "release":  # until this release attempt has recorded its outcome
            attempts = body.get("releases_before", 0)
            done = lambda incident: release_steps(incident) > attempts  # noqa: E731
        elif args.command == "approve":  # until containment, which the approval let go on, ends
            done = lambda incident: incident["status"] != "OPEN"  # noqa: E731
        else:  # a person decides on an incident awaiting approval: no use waiting for them
            done = lambda incident: incident["status"] in TERMINAL | {AWAITING}  # noqa: E731
        if not args.json:
            if args.command == "approve":
                print(_decided(body, hint=False), file=out)
            print(f"{body['incident_id']}: waiting", file=out)
        body = _wait(args, body["incident_id"], done, out if not args.json else sys.stderr)
    if args.command == "report" and args.html:
        _write(args.html, body["html"])
        print(f"{body['incident_id']}: its page written to {args.html}", file=out)
    elif args.json:
        print(json.dumps(body, indent=2, sort_keys=True), file=out)
        if args.command == "quarantine" and body.get("status") == AWAITING:
            print(_awaiting(body), file=sys.stderr)
    elif args.command == "quarantine" and body.get("status") == AWAITING:
        print(_awaiting(body), file=out)
    elif args.command in ("approve", "deny") and not getattr(args, "wait", False):
        print(_decided(body), file=out)
    elif args.command == "report":
        print(f"Subject: {body['subject']}\n\n{body['text']}", file=out)
    elif args.command == "release" and getattr(args, "wait", False):
        print(_restored(body), file=out)
    elif args.command == "exempt" and args.exempt_command == "list":
        print(_table(body["exemptions"], ["instance_id", "standing", "expires_at", "granted_by",
                                          "reason", "note"]), file=out)
    elif args.command == "exempt":
        exemption = body["exemption"]
        print(f"{exemption['instance_id']}: exemption "
              f"{'revoked' if exemption.get('revoked_at') else 'granted'}, until "
              f"{exemption['expires_at']}", file=out)
        if body.get("tag_error"):
            print(f"  its tag could not be taken away: {body['tag_error']['message']}", file=out)
    elif args.command == "list":
        print(_table(body["incidents"], ["incident_id", "status", "instance_id", "region",
                                         "opened_at"]), file=out)
    elif args.command == "findings":
        print(f"{body['findings_count']} further findings on {body['incident_id']}, newest "
              "first", file=out)
        print(_table(body["findings"], ["sequence", "at", "source", "type", "severity", "id"]),
              file=out)
        if body.get("next_token"):
            print(f"more: --next-token {body['next_token']}", file=out)
    else:
        print(_show_incident(body), file=out)
    return 0


class _Parser(argparse.ArgumentParser):
    """argparse that says a mistake in one line (not its usage, then the error)."""

    def error(self, message):
        self.exit(2, f"error: {message} (`{self.prog} --help` shows the options)\n")


def status_name(value: str) -> str:
    """A status in any case, as the API spells it."""
    if value.upper() not in STATUSES:
        raise argparse.ArgumentTypeError(f"{value!r} is not a status: one of "
                                         f"{', '.join(STATUSES)} (any case)")
    return value.upper()


def incident_id_type(value: str) -> str:
    """An incident id as the API names them: `inc-` and 12 lowercase hexadecimal characters."""
    if not INCIDENT_ID.match(value):
        raise argparse.ArgumentTypeError(f"{value!r} is not an incident id: 'inc-' followed by "
                                         "12 lowercase hexadecimal characters, as `ec2-quarantine "
                                         "list` shows them")
    return value


def decision_reason(value: str) -> str:
    """A decision's reason: said (not blank), at most MAX_REASON characters."""
    if not value.strip():
        raise argparse.ArgumentTypeError("a reason is required: say why you decide so")
    if len(value) > MAX_REASON:
        raise argparse.ArgumentTypeError(f"the reason is {len(value)} characters: at most "
                                         f"{MAX_REASON}")
    return value


def parser() -> argparse.ArgumentParser:
    # --json anywhere on the line: on every command too, kept unset there unless given.
    shared = argparse.ArgumentParser(add_help=False)
    shared.add_argument("--json", action="store_true", default=argparse.SUPPRESS,
                        help="print JSON instead of text")
    top = _Parser(prog="ec2-quarantine", description=__doc__.split("\n")[0])
    top.add_argument("--api-url", default=os.environ.get(API_URL_VARIABLE),
                     help=f"the API's root URL (default: ${API_URL_VARIABLE})")
    top.add_argument("--region", help="region to sign for (default: the AWS configuration's)")
    top.add_argument("--json", action="store_true", help="print JSON instead of a table")
    top.add_argument("--poll", type=float, default=2.0, help=argparse.SUPPRESS)
    commands = top.add_subparsers(dest="command", required=True)

    def add(where, name: str, **kwargs):
        return where.add_parser(name, parents=[shared], **kwargs)

    for name in ("quarantine", "release"):
        command = add(commands, name, help=f"{name} an instance")
        command.add_argument("instance_id")
        command.add_argument("--reason", required=True)
        command.add_argument("--instance-region", help="the instance's region")
        command.add_argument("--account-id", help="the instance's account")
        command.add_argument("--wait", action="store_true", help="show progress until it ends")
        if name == "quarantine":
            command.add_argument("--force", action="store_true", help="even if exempt")
            command.add_argument("--dry-run", action="store_true", help="plan only")
        else:
            command.add_argument("--reregister", action="store_true",
                                 help="register with its target groups and load balancers again")
    status = add(commands, "status", help="one incident, with its timeline")
    status.add_argument("incident_id")
    shown = add(commands, "report", help="the incident's report, as email subscribers get it")
    shown.add_argument("incident_id")
    shown.add_argument("--html", metavar="FILE", help="write the incident page (report.html) "
                       "to FILE instead")
    further = add(commands, "findings", help="an incident's further findings, newest first")
    further.add_argument("incident_id")
    further.add_argument("--limit", type=int)
    further.add_argument("--next-token", help="the next page (printed after a full one)")
    for name, said in (("approve", "approve the containment of an incident awaiting approval"),
                       ("deny", "deny the containment of an incident awaiting approval "
                                "(nothing is changed)")):
        command = add(commands, name, help=said)
        command.add_argument("incident_id", type=incident_id_type,
                             help="the incident awaiting approval (inc-…, as `list` shows it)")
        command.add_argument("--reason", required=True, type=decision_reason,
                             help=f"why (1 to {MAX_REASON} characters)")
        if name == "approve":
            command.add_argument("--wait", action="store_true",
                                 help="show progress until containment ends")
    listing = add(commands, "list", help="incidents, newest first")
    listing.add_argument("--instance-id")
    listing.add_argument("--status", type=status_name, help=f"one of {', '.join(STATUSES)}")
    listing.add_argument("--since")
    listing.add_argument("--limit", type=int)
    exempt = add(commands, "exempt", help="exemptions the product issues: grant, list, revoke")
    exempting = exempt.add_subparsers(dest="exempt_command", required=True)
    grant = add(exempting, "grant", help="exempt an instance until a time")
    revoke = add(exempting, "revoke", help="end an instance's exemption now")
    for command in (grant, revoke):
        command.add_argument("instance_id")
        command.add_argument("--reason", required=True)
        command.add_argument("--instance-region", help="the instance's region")
        command.add_argument("--account-id", help="the instance's account")
    until = grant.add_mutually_exclusive_group(required=True)
    until.add_argument("--until", help="a UTC time such as 2026-12-31T00:00:00Z")
    until.add_argument("--for", dest="for_", help="a duration from now: 30m, 12h, 7d")
    exemptions = add(exempting, "list", help="every exemption, newest first")
    exemptions.add_argument("--limit", type=int)
    exemptions.add_argument("--next-token")
    evidence = add(commands, "evidence", help="check an incident's evidence")
    checks = evidence.add_subparsers(dest="evidence_command", required=True)
    verify = add(checks, "verify", help="the manifest's signature (offline), then every "
                 "object's SHA-256 and version; exit 0 only if all verify")
    verify.add_argument("incident_id")
    verify.add_argument("--bucket", help="the evidence bucket (default: the API's incident "
                        "says where its evidence is)")
    verify.add_argument("--public-key", help="the signing key's public key, a PEM file "
                        "(`evidence public-key` prints it)")
    verify.add_argument("--key-id", help="the signing key (the stack's EvidenceSigningKeyArn): "
                        "its public key is fetched (kms:GetPublicKey)")
    public = add(checks, "public-key", help="print the signing key's public key (PEM)")
    public.add_argument("--key-id", required=True, help="the stack's EvidenceSigningKeyArn")
    return top


def main(argv=None) -> int:
    args = parser().parse_args(argv)
    if not args.api_url and args.command != "evidence":
        print(f"error: give --api-url or set {API_URL_VARIABLE}", file=sys.stderr)
        return 2
    try:
        return run(args)
    except CliError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("error: interrupted; what the API started goes on (`ec2-quarantine status ID` "
              "follows it)", file=sys.stderr)
        return 130
    except Exception as error:  # never a trace: one line saying what failed
        print(f"error: unexpected {type(error).__name__}: {error}", file=sys.stderr)
        return 1
