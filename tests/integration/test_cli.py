"""The operator CLI against the local API (as `make local` serves it), and its SigV4 signature
verified with botocore, since the local API does not check signatures."""

import json
import os
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from tests.helpers import finish, make_victim

CLI = os.path.join(os.path.dirname(sys.executable), "ec2-quarantine")
KEYS = {"AWS_ACCESS_KEY_ID": "AKIAOPERATOR", "AWS_SECRET_ACCESS_KEY": "operator-secret",
        "AWS_DEFAULT_REGION": "us-east-1"}


def _cli(stack, *args, keys=KEYS):
    env = {**os.environ, **KEYS, **keys, "EC2_QUARANTINE_API_URL": stack.api_url}
    env.pop("AWS_SESSION_TOKEN", None)
    return subprocess.run([CLI, "--poll", "0.2", *args], env=env, capture_output=True,
                          text=True, timeout=120)


def test_quarantine_status_list_and_release_from_the_command_line(stack):
    victim = make_victim(stack, interfaces=1, volumes=1)
    stack.hold_snapshots(3)  # pending for three checks: the wait shows them

    done = _cli(stack, "quarantine", victim["instance_id"], "--reason", "beaconing", "--wait")
    assert done.returncode == 0, done.stderr
    assert "contain: contained" in done.stdout and "CONTAINED" in done.stdout
    progress = [line for line in done.stdout.splitlines() if line.startswith("  ... ")]
    assert any("OPEN: waiting for the snapshots, snapshots 0/1 completed, next check at " in line
               for line in progress), done.stdout

    listed = _cli(stack, "list", "--json", "--status", "contained", "--instance-id",
                  victim["instance_id"])  # --json after the command, a status in any case
    assert listed.returncode == 0, listed.stderr
    (incident,) = json.loads(listed.stdout)["incidents"]
    assert incident["status"] == "CONTAINED"
    table = _cli(stack, "list")
    assert table.stdout.splitlines()[0].split() == [
        "INCIDENT_ID", "STATUS", "INSTANCE_ID", "REGION", "OPENED_AT"]
    shown = _cli(stack, "status", incident["incident_id"]).stdout
    assert shown.startswith(f"{incident['incident_id']}: CONTAINED, instance "
                            f"{victim['instance_id']}")
    for part in ("  reason: beaconing", "Timeline:", "contain: "
                 "contained", "Changes:", "isolate-interface", "Errors:", "Evidence:",
                 "snapshot snap-", "manifest sha256 "):
        assert part in shown, (part, shown)
    assert "{" not in shown and "['" not in shown  # no JSON, no Python repr
    reported = _cli(stack, "report", incident["incident_id"])
    assert reported.returncode == 0, reported.stderr
    assert reported.stdout.startswith("Subject: ") and "is CONTAINED." in reported.stdout
    assert "Changes made:" in reported.stdout
    again = _cli(stack, "quarantine", victim["instance_id"], "--reason", "still beaconing")
    assert again.returncode == 0, again.stderr
    further = _cli(stack, "findings", incident["incident_id"], "--limit", "1")
    assert further.returncode == 0, further.stderr
    lines = further.stdout.splitlines()
    assert lines[0] == f"1 further findings on {incident['incident_id']}, newest first"
    assert lines[1].split()[:3] == ["SEQUENCE", "AT", "SOURCE"] and lines[2].split()[0] == "1"

    released = _cli(stack, "release", victim["instance_id"], "--reason", "cleared", "--wait")
    assert released.returncode == 0, released.stderr
    assert f"{incident['incident_id']}: RELEASED (release released)" in released.stdout
    restored = released.stdout.split("Restored:\n", 1)[1]
    assert f"isolate-interface {next(iter(victim['interfaces']))} groups" in restored
    again = _cli(stack, "--json", "status", incident["incident_id"])
    assert json.loads(again.stdout)["status"] == "RELEASED"


def test_the_caller_is_the_signing_keys_user_and_the_page_is_written_locally(stack, tmp_path):
    """As API Gateway's IAM authorization names the caller, the local API takes it from the
    key the request is signed with: the incident says who asked."""
    iam = stack.client("iam")
    iam.create_user(UserName="responder")
    key = iam.create_access_key(UserName="responder")["AccessKey"]
    victim = make_victim(stack, interfaces=1, volumes=1)
    started = _cli(stack, "--json", "quarantine", victim["instance_id"], "--reason", "mine",
                   keys={"AWS_ACCESS_KEY_ID": key["AccessKeyId"],
                         "AWS_SECRET_ACCESS_KEY": key["SecretAccessKey"]})
    assert started.returncode == 0, started.stderr
    incident_id = json.loads(started.stdout)["incident_id"]
    finish(stack, json.loads(started.stdout))
    shown = json.loads(_cli(stack, "status", incident_id, "--json").stdout)
    assert shown["requested_by"] == "arn:aws:iam::123456789012:user/responder"

    written = _cli(stack, "report", incident_id, "--html", str(tmp_path / "page.html"))
    assert written.returncode == 0, written.stderr
    assert written.stdout.strip() == f"{incident_id}: its page written to {tmp_path}/page.html"
    page = (tmp_path / "page.html").read_text()
    assert page.startswith("<!doctype html>") and "<svg" in page and "responder" in page
    unwritable = _cli(stack, "report", incident_id, "--html", str(tmp_path / "no" / "x.html"))
    assert unwritable.returncode == 1 and unwritable.stderr.startswith(
        f"error: cannot write {tmp_path}/no/x.html: No such file or directory")


def test_exempt_grant_list_and_revoke_from_the_command_line(stack):
    instance = make_victim(stack, interfaces=1, volumes=1)["instance_id"]
    granted = _cli(stack, "exempt", "grant", instance, "--reason", "load test", "--for", "2h")
    assert granted.returncode == 0, granted.stderr
    assert granted.stdout.startswith(f"{instance}: exemption granted, until ")
    listed = _cli(stack, "exempt", "list")
    assert listed.stdout.splitlines()[0].split()[:3] == ["INSTANCE_ID", "STANDING", "EXPIRES_AT"]
    assert listed.stdout.splitlines()[1].split()[:2] == [instance, "True"]
    revoked = _cli(stack, "--json", "exempt", "revoke", instance, "--reason", "done")
    assert revoked.returncode == 0, revoked.stderr
    assert json.loads(revoked.stdout)["exemption"]["revocation_reason"] == "done"
    wrong = _cli(stack, "exempt", "grant", instance, "--reason", "x", "--for", "a week")
    assert wrong.returncode == 1 and "--for 'a week'" in wrong.stderr


def test_errors_are_printed_not_raised(stack):
    failed = _cli(stack, "quarantine", "i-nothex", "--reason", "x")
    assert failed.returncode == 1 and "InvalidInstanceId" in failed.stderr
    env = {k: v for k, v in os.environ.items() if k != "EC2_QUARANTINE_API_URL"}
    missing = subprocess.run([CLI, "list"], env=env, capture_output=True, text=True)
    assert missing.returncode == 2 and "--api-url" in missing.stderr


class _Capture(BaseHTTPRequestHandler):
    seen = []

    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        _Capture.seen.append((self.command, self.path, dict(self.headers), body))
        data = json.dumps({"incident_id": "inc-0123456789ab", "status": "OPEN"}).encode()
        self.send_response(202)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


def test_requests_carry_a_sigv4_signature_botocore_verifies():
    server = HTTPServer(("127.0.0.1", 0), _Capture)
    threading.Thread(target=server.handle_request, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    env = {**os.environ, **KEYS, "EC2_QUARANTINE_API_URL": url}
    env.pop("AWS_SESSION_TOKEN", None)
    subprocess.run([CLI, "quarantine", "i-0123456789abcdef0", "--reason", "x"], env=env,
                   check=True, capture_output=True, timeout=60)
    server.server_close()

    method, path, headers, body = _Capture.seen[0]
    authorization = headers["Authorization"]
    assert authorization.startswith("AWS4-HMAC-SHA256 Credential=AKIAOPERATOR/")
    assert "/us-east-1/execute-api/aws4_request" in authorization
    signed = authorization.split("SignedHeaders=")[1].split(",")[0].split(";")
    unsigned = {k: v for k, v in headers.items() if k.lower() in signed}
    request = AWSRequest(method=method, url=url + path, data=body, headers=unsigned)
    request.context["timestamp"] = headers["X-Amz-Date"]
    signer = SigV4Auth(Credentials(KEYS["AWS_ACCESS_KEY_ID"], KEYS["AWS_SECRET_ACCESS_KEY"]),
                       "execute-api", "us-east-1")
    expected = signer.signature(signer.string_to_sign(request, signer.canonical_request(request)),
                                request)
    assert authorization.endswith(f"Signature={expected}")
    wrong = SigV4Auth(Credentials(KEYS["AWS_ACCESS_KEY_ID"], "another-secret"), "execute-api",
                      "us-east-1")
    assert not authorization.endswith(
        "Signature=" + wrong.signature(wrong.string_to_sign(request,
                                                            wrong.canonical_request(request)),
                                       request))
