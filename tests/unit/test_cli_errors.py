"""Every mistake an operator makes with the CLI, and every refusal on the way to the API, is one
line on stderr saying what to do, never a traceback: driven against a stand-in for API Gateway
that answers its own error bodies, a closed port, an unknown profile."""

import json
import os
import socket
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

import quarantine_cli
from chalicelib import incidents

CLI = os.path.join(os.path.dirname(sys.executable), "ec2-quarantine")
KEYS = {"AWS_ACCESS_KEY_ID": "AKIAOPERATOR", "AWS_SECRET_ACCESS_KEY": "operator-secret",
        "AWS_DEFAULT_REGION": "us-east-1"}
DENIED = ("User: arn:aws:iam::123456789012:user/alice is not authorized to perform: "
          "execute-api:Invoke on resource: arn:aws:execute-api:us-east-1:********9012:"
          "abc123/api/POST/quarantine")


class _Gateway(BaseHTTPRequestHandler):
    """Answers each request with the next of `answers`: (status, content type, body)."""

    answers: list = []
    seen: list = []

    def _answer(self):
        _Gateway.seen.append((self.command, self.path))
        status, kind, body = _Gateway.answers.pop(0) if len(_Gateway.answers) > 1 else \
            _Gateway.answers[0]
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_DELETE = _answer

    def log_message(self, *args):
        pass


@pytest.fixture
def gateway():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Gateway)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    _Gateway.seen = []
    yield f"http://127.0.0.1:{server.server_address[1]}/api"
    server.shutdown()
    server.server_close()


def _run(*args, env=None, url=None):
    environment = {k: v for k, v in os.environ.items()
                   if not k.startswith("AWS_") and k != quarantine_cli.API_URL_VARIABLE}
    environment.update(KEYS if env is None else env)
    if url:
        environment[quarantine_cli.API_URL_VARIABLE] = url
    return subprocess.run([CLI, *args], env=environment, capture_output=True, text=True,
                          timeout=120)


def _one_line(done) -> str:
    assert done.returncode != 0 and done.stdout == "", done
    assert "Traceback" not in done.stderr and done.stderr.count("\n") == 1, done.stderr
    return done.stderr.strip()


def _json(status: int, body) -> tuple:
    return status, "application/json", json.dumps(body)


@pytest.mark.parametrize("answer,said", [
    (_json(403, {"Message": DENIED}),
     "error: 403 from API Gateway: arn:aws:iam::123456789012:user/alice may not call POST "
     "/api/quarantine: it needs execute-api:Invoke on arn:aws:execute-api:us-east-1:"
     "********9012:abc123/api/POST/quarantine (IAM)"),
    (_json(403, {"Message": "Forbidden"}),
     "error: 403 from API Gateway: Forbidden: the call needs execute-api:Invoke on "
     "arn:aws:execute-api:us-east-1:*:*/api/POST/quarantine (IAM)"),
    (_json(403, {"message": "Missing Authentication Token"}),
     "error: 403 from API Gateway: no route POST /api/quarantine (or the request was not "
     "signed): check --api-url, which ends with the API's stage (.../api)"),
    (_json(403, {"message": "Signature expired: 20261201T000000Z is now earlier than ..."}),
     "error: 403 from API Gateway: the request's signature was refused (Signature expired: "
     "20261201T000000Z is now earlier than ...): check your AWS credentials (`aws sts "
     "get-caller-identity`) and --region (us-east-1)"),
    (_json(504, {"message": "Endpoint request timed out"}),
     "error: 504 from API Gateway: Endpoint request timed out: the API did not answer in time "
     "and may still have acted: check with `ec2-quarantine list` before trying again"),
    ((502, "text/html", "<html><body>Bad Gateway</body></html>"),
     "error: 502: the answer is not the API's JSON (text/html: '<html><body>Bad "
     "Gateway</body></html>'): is --api-url the API's URL?"),
    (_json(409, {"error": "ExemptInstance", "message": "give force"}),
     "error 409 ExemptInstance: give force"),
])
def test_each_refusal_is_one_line_saying_what_to_do(gateway, answer, said):
    _Gateway.answers = [answer]
    assert _one_line(_run("quarantine", "i-0123456789abcdef0", "--reason", "x",
                          url=gateway)) == said


def test_throttling_is_tried_again_then_said_in_one_line(gateway):
    _Gateway.answers = [_json(429, {"message": "Too Many Requests"})]
    said = _one_line(_run("list", url=gateway))
    assert said == ("error: 429 from API Gateway: GET /api/incidents throttled (Too Many "
                    "Requests; tried 4 times): try again in a minute")
    assert len(_Gateway.seen) == 4
    _Gateway.seen, _Gateway.answers = [], [_json(429, {"message": "Too Many Requests"}),
                                           _json(200, {"incidents": []})]
    listed = _run("list", "--json", url=gateway)
    assert listed.returncode == 0 and json.loads(listed.stdout) == {"incidents": []}


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_mistakes_on_the_callers_side_are_one_line(tmp_path):
    empty = tmp_path / "config"
    empty.write_text("")
    nowhere = {"AWS_CONFIG_FILE": str(empty), "AWS_SHARED_CREDENTIALS_FILE": str(empty),
               "AWS_EC2_METADATA_DISABLED": "true"}
    port = _closed_port()
    assert _one_line(_run("--api-url", "abc123.execute-api.us-east-1.amazonaws.com/api",
                          "list")) == (
        "error: --api-url 'abc123.execute-api.us-east-1.amazonaws.com/api' is not the API's "
        "URL: give it with its scheme, e.g. https://abc123.execute-api.us-east-1.amazonaws.com"
        "/api")
    assert _one_line(_run("list", url="https://x", env={**nowhere, "AWS_PROFILE": "nope"})) == (
        "error: AWS profile 'nope' is not in your AWS configuration: `aws configure --profile "
        "NAME`, or unset AWS_PROFILE")
    assert _one_line(_run("list", url="https://x", env=nowhere)) == (
        "error: no AWS credentials found (environment, profile or instance role): `aws "
        "configure`, or set AWS_PROFILE")
    assert _one_line(_run("list", url=f"http://127.0.0.1:{port}/api")) == (
        f"error: 127.0.0.1:{port} refused the connection: is the API served there? (`make "
        "local` serves it on 127.0.0.1:8000)")
    assert _one_line(_run("list", url="https://no-such-host.invalid/api")) == (
        "error: cannot resolve no-such-host.invalid: check --api-url and your network (DNS)")
    assert _one_line(_run("list", "--status", "held", url="https://x")) == (
        "error: argument --status: 'held' is not a status: one of OPEN, CONTAINED, PARTIAL, "
        "FAILED, RELEASED, DRY_RUN, AWAITING_APPROVAL, NOTIFIED (any case) (`ec2-quarantine "
        "list --help` shows the options)")
    assert _one_line(_run("list", "--bogus", url="https://x")).startswith(
        "error: unrecognized arguments: --bogus")


def test_the_clis_statuses_are_the_incidents():
    assert quarantine_cli.STATUSES == incidents.STATUSES
