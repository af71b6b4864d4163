"""`ec2-quarantine`: the operator's command line for the ec2-quarantine API.

Requests are signed with the caller's AWS credentials (SigV4, service `execute-api`, through
botocore), so the API's IAM authorization decides who may quarantine and release. `evidence`
reads the evidence bucket and KMS directly, with the same credentials (quarantine_cli/evidence.py).
"""

import argparse
import json
import os
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

API_URL_VARIABLE = "EC2_QUARANTINE_API_URL"
TERMINAL = {"CONTAINED", "PARTIAL", "FAILED", "RELEASED", "DRY_RUN"}


class CliError(Exception):
    pass


def signed_request(method: str, url: str, body: bytes | None, region: str, credentials):
    """A urllib request carrying a SigV4 signature for execute-api."""
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest

    headers = {"Content-Type": "application/json"} if body is not None else {}
    request = AWSRequest(method=method, url=url, data=body, headers=headers)
    SigV4Auth(credentials, "execute-api", region).add_auth(request)
    return urllib.request.Request(url, data=body, method=method, headers=dict(request.headers))


def call(args, method: str, path: str, payload=None, query=None) -> tuple[int, dict]:
    import botocore.session

    session = botocore.session.get_session()
    credentials = session.get_credentials()
    if credentials is None:
        raise CliError("no AWS credentials found (environment, profile or instance role)")
    region = args.region or session.get_config_variable("region") or "us-east-1"
    url = args.api_url.rstrip("/") + path
    if query:
        url += "?" + urllib.parse.urlencode({k: v for k, v in query.items() if v is not None})
    body = None if payload is None else json.dumps(payload).encode()
    request = signed_request(method, url, body, region, credentials.get_frozen_credentials())
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as error:
        try:
            return error.code, json.load(error)
        except ValueError:
            raise CliError(f"{method} {path}: HTTP {error.code}") from None
    except urllib.error.URLError as error:
        raise CliError(f"cannot reach {args.api_url}: {error.reason}") from None


def _cell(row: dict, column: str) -> str:
    value = row.get(column)
    return "" if value is None else str(value)


def _table(rows: list[dict], columns: list[str]) -> str:
    widths = {c: max([len(c)] + [len(_cell(r, c)) for r in rows]) for c in columns}
    lines = ["  ".join(c.upper().ljust(widths[c]) for c in columns)]
    lines += ["  ".join(_cell(r, c).ljust(widths[c]) for c in columns) for r in rows]
    return "\n".join(lines)


def _show_incident(incident: dict) -> str:
    fields = ["incident_id", "status", "instance_id", "account_id", "region", "opened_at",
              "execution_arn"]
    lines = [f"{f:>14}: {incident.get(f)}" for f in fields if incident.get(f) is not None]
    for step in incident.get("timeline", []):
        lines.append(f"{'step':>14}: {step['step']:<16} {step['outcome']:<20} {step['end']}")
    for error in incident.get("errors", []):
        lines.append(f"{'error':>14}: {error['action']} {error['resource']}: {error['code']}")
    return "\n".join(lines)


def _wait(args, incident_id: str, done, out) -> dict:
    """Poll the incident, printing each new step as it ends, until `done(incident)`."""
    shown = 0
    while True:
        status, incident = call(args, "GET", f"/incidents/{incident_id}")
        if status != 200:
            raise CliError(f"{incident.get('error')}: {incident.get('message')}")
        timeline = incident.get("timeline", [])
        for step in timeline[shown:]:
            print(f"  {step['end']}  {step['step']}: {step['outcome']}", file=out, flush=True)
        shown = len(timeline)
        if done(incident):
            return incident
        time.sleep(args.poll)


def _instance_payload(args, flags) -> dict:
    """The body of POST /quarantine or /release: the instance, why, and the flags given."""
    payload = {"instance_id": args.instance_id, "reason": args.reason}
    payload.update({k: v for k, v in (("region", args.instance_region),
                                      ("account_id", args.account_id)) if v})
    payload.update({flag: True for flag in flags if getattr(args, flag)})
    return payload


def _release_steps(incident: dict) -> int:
    return sum(1 for step in incident.get("timeline", []) if step["step"] == "release")


def _aws_client(args, service: str, region: str | None = None):
    import botocore.session

    session = botocore.session.get_session()
    if session.get_credentials() is None:
        raise CliError("no AWS credentials found (environment, profile or instance role)")
    return session.create_client(service, region_name=region or args.region
                                 or session.get_config_variable("region") or "us-east-1")


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
        status, body = call(args, "GET", f"/incidents/{args.incident_id}")
    elif args.command == "findings":
        status, body = call(args, "GET", f"/incidents/{args.incident_id}/findings", query={
            "limit": args.limit, "next_token": args.next_token})
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
            done = lambda incident: _release_steps(incident) > attempts  # noqa: E731
        else:
            done = lambda incident: incident["status"] in TERMINAL  # noqa: E731
        if not args.json:
            print(f"{body['incident_id']}: waiting", file=out)
        body = _wait(args, body["incident_id"], done, out if not args.json else sys.stderr)
    if args.json:
        print(json.dumps(body, indent=2, sort_keys=True), file=out)
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


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="ec2-quarantine", description=__doc__.split("\n")[0])
    top.add_argument("--api-url", default=os.environ.get(API_URL_VARIABLE),
                     help=f"the API's root URL (default: ${API_URL_VARIABLE})")
    top.add_argument("--region", help="region to sign for (default: the AWS configuration's)")
    top.add_argument("--json", action="store_true", help="print JSON instead of a table")
    top.add_argument("--poll", type=float, default=2.0, help=argparse.SUPPRESS)
    commands = top.add_subparsers(dest="command", required=True)
    for name in ("quarantine", "release"):
        command = commands.add_parser(name, help=f"{name} an instance")
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
    status = commands.add_parser("status", help="one incident, with its timeline")
    status.add_argument("incident_id")
    further = commands.add_parser("findings", help="an incident's further findings, newest "
                                  "first")
    further.add_argument("incident_id")
    further.add_argument("--limit", type=int)
    further.add_argument("--next-token", help="the next page (printed after a full one)")
    listing = commands.add_parser("list", help="incidents, newest first")
    listing.add_argument("--instance-id")
    listing.add_argument("--status")
    listing.add_argument("--since")
    listing.add_argument("--limit", type=int)
    exempt = commands.add_parser("exempt", help="exemptions the product issues: grant, list, "
                                 "revoke")
    exempting = exempt.add_subparsers(dest="exempt_command", required=True)
    grant = exempting.add_parser("grant", help="exempt an instance until a time")
    revoke = exempting.add_parser("revoke", help="end an instance's exemption now")
    for command in (grant, revoke):
        command.add_argument("instance_id")
        command.add_argument("--reason", required=True)
        command.add_argument("--instance-region", help="the instance's region")
        command.add_argument("--account-id", help="the instance's account")
    until = grant.add_mutually_exclusive_group(required=True)
    until.add_argument("--until", help="a UTC time such as 2026-12-31T00:00:00Z")
    until.add_argument("--for", dest="for_", help="a duration from now: 30m, 12h, 7d")
    exemptions = exempting.add_parser("list", help="every exemption, newest first")
    exemptions.add_argument("--limit", type=int)
    exemptions.add_argument("--next-token")
    evidence = commands.add_parser("evidence", help="check an incident's evidence")
    checks = evidence.add_subparsers(dest="evidence_command", required=True)
    verify = checks.add_parser("verify", help="the manifest's signature (offline), then every "
                               "object's SHA-256 and version; exit 0 only if all verify")
    verify.add_argument("incident_id")
    verify.add_argument("--bucket", help="the evidence bucket (default: the API's incident "
                        "says where its evidence is)")
    verify.add_argument("--public-key", help="the signing key's public key, a PEM file "
                        "(`evidence public-key` prints it)")
    verify.add_argument("--key-id", help="the signing key (the stack's EvidenceSigningKeyArn): "
                        "its public key is fetched (kms:GetPublicKey)")
    public = checks.add_parser("public-key", help="print the signing key's public key (PEM)")
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
