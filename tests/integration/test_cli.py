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

from tests.helpers import make_victim

CLI = os.path.join(os.path.dirname(sys.executable), "ec2-quarantine")
KEYS = {"AWS_ACCESS_KEY_ID": "AKIAOPERATOR", "AWS_SECRET_ACCESS_KEY": "operator-secret",
        "AWS_DEFAULT_REGION": "us-east-1"}


def _cli(stack, *args):
    env = {**os.environ, **KEYS, "EC2_QUARANTINE_API_URL": stack.api_url}
    env.pop("AWS_SESSION_TOKEN", None)
    return subprocess.run([CLI, "--poll", "0.2", *args], env=env, capture_output=True,
                          text=True, timeout=120)


def test_quarantine_status_list_and_release_from_the_command_line(stack):
    victim = make_victim(stack, interfaces=1, volumes=1)

    done = _cli(stack, "quarantine", victim["instance_id"], "--reason", "beaconing", "--wait")
    assert done.returncode == 0, done.stderr
    assert "contain: contained" in done.stdout and "CONTAINED" in done.stdout

    listed = _cli(stack, "--json", "list", "--instance-id", victim["instance_id"])
    (incident,) = json.loads(listed.stdout)["incidents"]
    assert incident["status"] == "CONTAINED"
    table = _cli(stack, "list")
    assert table.stdout.splitlines()[0].split() == [
        "INCIDENT_ID", "STATUS", "INSTANCE_ID", "REGION", "OPENED_AT"]
    shown = _cli(stack, "status", incident["incident_id"])
    assert "step" in shown.stdout and incident["incident_id"] in shown.stdout
    again = _cli(stack, "quarantine", victim["instance_id"], "--reason", "still beaconing")
    assert again.returncode == 0, again.stderr
    further = _cli(stack, "findings", incident["incident_id"], "--limit", "1")
    assert further.returncode == 0, further.stderr
    lines = further.stdout.splitlines()
    assert lines[0] == f"1 further findings on {incident['incident_id']}, newest first"
    assert lines[1].split()[:3] == ["SEQUENCE", "AT", "SOURCE"] and lines[2].split()[0] == "1"

    released = _cli(stack, "--json", "release", victim["instance_id"], "--reason", "cleared",
                    "--wait")
    assert released.returncode == 0, released.stderr
    assert json.loads(released.stdout)["status"] == "RELEASED"


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
