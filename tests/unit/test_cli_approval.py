"""`ec2-quarantine approve` and `deny` (response rules with approval), and what the CLI shows of
an incident a rule holds: driven against a local stand-in for the API that records each request
and answers what the app answers (the app's own routes are tested in
tests/integration/test_approval.py)."""

import io
import json
import os
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

import quarantine_cli

CLI = os.path.join(os.path.dirname(sys.executable), "ec2-quarantine")
KEYS = {"AWS_ACCESS_KEY_ID": "AKIAOPERATOR", "AWS_SECRET_ACCESS_KEY": "operator-secret",
        "AWS_DEFAULT_REGION": "us-east-1"}
INCIDENT = "inc-0123456789ab"
APPROVER = "arn:aws:iam::123456789012:user/approver"
APPROVAL = {"rule": "production", "on_timeout": "close", "timeout_seconds": 3600,
            "deadline": "2026-05-01T13:00:00Z"}
APPROVED = {"decision": "approved", "by": APPROVER, "at": "2026-05-01T12:10:00Z",
            "reason": "confirmed compromise", "seal": "c2VhbA=="}
DENIED = {**APPROVED, "decision": "denied", "reason": "a planned load test"}
RESOLUTION = f"denied by {APPROVER}: a planned load test"


def _incident(status: str, **fields) -> dict:
    """An incident as GET /incidents/{id} answers it."""
    return {"incident_id": INCIDENT, "status": status, "instance_id": "i-0123456789abcdef0",
            "account_id": "123456789012", "region": "us-east-1", "opened_at":
            "2026-05-01T12:00:00Z", "source": "guardduty", "reason": "GuardDuty finding",
            "execution_arn": "arn:aws:states:us-east-1:123456789012:execution:q:x",
            "timeline": [], "changes": [], "errors": [], "evidence": {}, **fields}


def _decided(status: str, made: dict, **fields) -> dict:
    """The answer of POST /incidents/{id}/approve or …/deny (outcomes.Decided.summary)."""
    return {key: value for key, value in _incident(status).items() if key in (
        "incident_id", "status", "instance_id", "account_id", "region", "execution_arn")} | {
        "status_url": f"/incidents/{INCIDENT}", "decision": made,
        "execution": "woken", **fields}


class _Api(BaseHTTPRequestHandler):
    """Answers each (method, path) with the next of `answers[(method, path)]` (the last one
    again once the others are used): (status, body). Records every request in `seen`."""

    answers: dict = {}
    seen: list = []

    def _answer(self):
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        _Api.seen.append((self.command, self.path, json.loads(raw) if raw else None,
                          dict(self.headers)))
        queue = _Api.answers.get((self.command, self.path.split("?")[0]))
        status, body = (queue.pop(0) if len(queue) > 1 else queue[0]) if queue else (
            404, {"error": "NotFound", "message": "no such route in the test"})
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_DELETE = _answer

    def log_message(self, *args):
        pass


@pytest.fixture
def api(monkeypatch, tmp_path):
    """The stand-in's URL (with its stage), and the caller's keys in the environment only."""
    empty = tmp_path / "aws-config"
    empty.write_text("")
    for name in [k for k in os.environ if k.startswith("AWS_")]:
        monkeypatch.delenv(name)
    for name, value in {**KEYS, "AWS_CONFIG_FILE": str(empty),
                        "AWS_SHARED_CREDENTIALS_FILE": str(empty),
                        "AWS_EC2_METADATA_DISABLED": "true"}.items():
        monkeypatch.setenv(name, value)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Api)
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    _Api.answers, _Api.seen = {}, []
    yield f"http://127.0.0.1:{server.server_address[1]}/api"
    server.shutdown()
    server.server_close()


RUN = quarantine_cli.run


def _main(url, *argv, monkeypatch, capsys) -> tuple[int, str, str]:
    """(exit code, stdout, stderr) of the CLI's entry point, in this process (fast)."""
    out = io.StringIO()
    monkeypatch.setattr(quarantine_cli, "run", lambda args: RUN(args, out))
    capsys.readouterr()
    try:
        code = quarantine_cli.main(["--api-url", url, "--poll", "0", *argv])
    except SystemExit as leaving:  # argparse's usage errors
        code = leaving.code
    captured = capsys.readouterr()
    return code, out.getvalue() + captured.out, captured.err


@pytest.fixture
def cli(api, monkeypatch, capsys):
    return lambda *argv: _main(api, *argv, monkeypatch=monkeypatch, capsys=capsys)


def _posted():
    return [(method, path, body) for method, path, body, _ in _Api.seen if method == "POST"]


def test_approve_posts_the_reason_and_says_containment_runs(api, cli):
    _Api.answers[("POST", f"/api/incidents/{INCIDENT}/approve")] = [
        (200, _decided("OPEN", APPROVED))]
    code, out, err = cli("approve", INCIDENT, "--reason", "confirmed compromise")
    assert (code, err) == (0, "")
    assert _posted() == [("POST", f"/api/incidents/{INCIDENT}/approve",
                          {"reason": "confirmed compromise"})]
    headers = _Api.seen[0][3]
    assert headers["Content-Type"] == "application/json"
    assert headers["Authorization"].startswith("AWS4-HMAC-SHA256 Credential=AKIAOPERATOR/")
    assert out.splitlines() == [
        f"{INCIDENT}: approved, now OPEN",
        f"  decision: approved by {APPROVER} at 2026-05-01T12:10:00Z, reason confirmed "
        "compromise",
        "  wait: woken",
        f"  containment runs: `ec2-quarantine status {INCIDENT}` follows it"]
    assert "seal" not in out and "{" not in out


def test_deny_posts_the_reason_and_shows_the_resolution(api, cli):
    _Api.answers[("POST", f"/api/incidents/{INCIDENT}/deny")] = [
        (200, _decided("NOTIFIED", DENIED, resolution=RESOLUTION))]
    code, out, err = cli("deny", INCIDENT, "--reason", "a planned load test")
    assert (code, err) == (0, "")
    assert _posted() == [("POST", f"/api/incidents/{INCIDENT}/deny",
                          {"reason": "a planned load test"})]
    assert out.splitlines()[:3] == [
        f"{INCIDENT}: denied, now NOTIFIED",
        f"  decision: denied by {APPROVER} at 2026-05-01T12:10:00Z, reason a planned load test",
        f"  resolution: {RESOLUTION}"]
    assert "containment runs" not in out


def test_json_prints_the_answer_as_it_came(api, cli):
    answer = _decided("NOTIFIED", DENIED, resolution=RESOLUTION)
    _Api.answers[("POST", f"/api/incidents/{INCIDENT}/deny")] = [(200, answer)]
    code, out, _ = cli("deny", INCIDENT, "--reason", "a planned load test", "--json")
    assert code == 0 and json.loads(out) == answer


def test_approve_wait_follows_containment_until_it_leaves_open_then_shows_the_incident(api, cli):
    path = f"/api/incidents/{INCIDENT}"
    _Api.answers[("POST", path + "/approve")] = [(200, _decided("OPEN", APPROVED))]
    cut = {"step": "cut", "start": "2026-05-01T12:10:00Z", "end": "2026-05-01T12:10:01Z",
           "outcome": "cut"}
    contain = {"step": "contain", "start": "2026-05-01T12:10:02Z",
               "end": "2026-05-01T12:10:04Z", "outcome": "contained"}
    _Api.answers[("GET", path)] = [
        (200, _incident("OPEN", approval=APPROVAL, decision=APPROVED, timeline=[cut])),
        (200, _incident("OPEN", approval=APPROVAL, decision=APPROVED, timeline=[cut])),
        (200, _incident("CONTAINED", approval=APPROVAL, decision=APPROVED,
                        timeline=[cut, contain]))]
    code, out, err = cli("approve", INCIDENT, "--reason", "confirmed compromise", "--wait")
    assert (code, err) == (0, "")
    assert [m for m, *_ in _Api.seen] == ["POST", "GET", "GET", "GET"]
    lines = out.splitlines()
    assert lines[0] == f"{INCIDENT}: approved, now OPEN"
    assert f"{INCIDENT}: waiting" in lines
    assert "  ... OPEN: containing" in lines
    assert sum("  cut: cut" in line for line in lines) == 2  # as it ended, then in the show
    shown = out[out.index(f"{INCIDENT}: CONTAINED, instance "):]
    assert "  approval: rule production, on timeout close, deadline 2026-05-01T13:00:00Z" in \
        shown.splitlines()
    assert f"  decision: approved by {APPROVER} at 2026-05-01T12:10:00Z, reason confirmed " \
        "compromise" in shown.splitlines()
    assert "Timeline:" in shown and "contain: contained" in shown
    assert "containment runs" not in out  # it ran: the wait showed it


@pytest.mark.parametrize("command,status,error,message", [
    ("approve", 403, "NotAnApprover", "arn:aws:iam::123456789012:user/alice is not in "
     "APPROVER_ARNS: only those named there may approve or deny a containment"),
    ("deny", 409, "NotAwaitingApproval", f"incident {INCIDENT} is OPEN, not awaiting approval: "
     f"approved by {APPROVER} at 2026-05-01T12:10:00Z; nothing was changed"),
    ("approve", 404, "IncidentNotFound", f"no incident {INCIDENT}"),
])
def test_refusals_are_one_line_without_a_traceback(api, command, status, error, message):
    """Through the installed entry point, as an operator runs it."""
    _Api.answers[("POST", f"/api/incidents/{INCIDENT}/{command}")] = [
        (status, {"error": error, "message": message})]
    environment = {k: v for k, v in os.environ.items()
                   if k != quarantine_cli.API_URL_VARIABLE}  # the fixture's keys only
    done = subprocess.run([CLI, "--api-url", api, command, INCIDENT, "--reason", "why"],
                          env=environment, capture_output=True, text=True, timeout=60)
    assert done.returncode == 1 and done.stdout == "", done
    assert "Traceback" not in done.stderr
    assert done.stderr == f"error {status} {error}: {message}\n"
    assert _posted() == [("POST", f"/api/incidents/{INCIDENT}/{command}", {"reason": "why"})]


def test_refused_approve_wait_does_not_wait(api, cli):
    _Api.answers[("POST", f"/api/incidents/{INCIDENT}/approve")] = [
        (409, {"error": "NotAwaitingApproval", "message": "it was denied"})]
    code, out, err = cli("approve", INCIDENT, "--reason", "why", "--wait")
    assert (code, out) == (1, "")
    assert err == "error 409 NotAwaitingApproval: it was denied\n"
    assert [m for m, *_ in _Api.seen] == ["POST"]


@pytest.mark.parametrize("reason,said", [
    ("", "a reason is required: say why you decide so"),
    ("  \t ", "a reason is required: say why you decide so"),
    ("x" * 1025, "the reason is 1025 characters: at most 1024"),
])
@pytest.mark.parametrize("command", ["approve", "deny"])
def test_the_reason_is_checked_before_anything_is_sent(api, cli, command, reason, said):
    code, out, err = cli(command, INCIDENT, "--reason", reason)
    assert (code, out) == (2, "")
    assert err == (f"error: argument --reason: {said} (`ec2-quarantine {command} --help` shows "
                   "the options)\n")
    assert _Api.seen == []


def test_a_reason_is_required_and_1024_characters_are_enough(api, cli):
    code, _, err = cli("deny", INCIDENT)
    assert code == 2 and "the following arguments are required: --reason" in err
    assert err.count("\n") == 1 and _Api.seen == []
    _Api.answers[("POST", f"/api/incidents/{INCIDENT}/deny")] = [
        (200, _decided("NOTIFIED", DENIED, resolution=RESOLUTION))]
    code, _, _ = cli("deny", INCIDENT, "--reason", "y" * 1024)
    assert code == 0 and _posted()[0][2] == {"reason": "y" * 1024}


@pytest.mark.parametrize("wrong", ["inc-0123456789AB", "inc-0123456789a", "inc-0123456789abc",
                                   "0123456789ab", "inc-0123456789ab/../x", "inc-0123456789ab\n",
                                   "i-0123456789abcdef0"])
def test_the_incident_id_is_checked_before_anything_is_sent(api, cli, wrong):
    code, out, err = cli("approve", wrong, "--reason", "why")
    assert (code, out) == (2, "")
    assert err == (f"error: argument incident_id: {wrong!r} is not an incident id: 'inc-' "
                   "followed by 12 lowercase hexadecimal characters, as `ec2-quarantine list` "
                   "shows them (`ec2-quarantine approve --help` shows the options)\n")
    assert _Api.seen == []


def test_status_shows_the_approval_the_decision_and_the_resolution(api, cli):
    _Api.answers[("GET", f"/api/incidents/{INCIDENT}")] = [
        (200, _incident("NOTIFIED", approval=APPROVAL, decision=DENIED, resolution=RESOLUTION))]
    code, out, _ = cli("status", INCIDENT)
    assert code == 0
    lines = out.splitlines()
    assert lines[0].startswith(f"{INCIDENT}: NOTIFIED, instance i-0123456789abcdef0")
    facts = lines[1:lines.index("Timeline:")]
    assert facts[-3:] == [
        "  approval: rule production, on timeout close, deadline 2026-05-01T13:00:00Z",
        f"  decision: denied by {APPROVER} at 2026-05-01T12:10:00Z, reason a planned load test",
        f"  resolution: {RESOLUTION}"]
    assert "seal" not in out and "{" not in out and "['" not in out


def test_status_of_an_incident_without_them_shows_none_of_them(api, cli):
    # POST /quarantine's answer names the rule's decision as a word, not a decision object.
    _Api.answers[("GET", f"/api/incidents/{INCIDENT}")] = [
        (200, _incident("CONTAINED", decision="contain"))]
    code, out, _ = cli("status", INCIDENT)
    assert code == 0
    assert not any(line.startswith(("  approval:", "  decision:", "  resolution:"))
                   for line in out.splitlines())


def _quarantine_answers(*statuses, **fields):
    _Api.answers[("POST", "/api/quarantine")] = [(202, {
        key: value for key, value in _incident("OPEN").items()
        if key in ("incident_id", "status", "instance_id", "region")})]
    _Api.answers[("GET", f"/api/incidents/{INCIDENT}")] = [
        (200, _incident(status, **fields)) for status in statuses]


def test_quarantine_wait_stops_when_the_incident_awaits_approval_and_says_how_to_decide(api, cli):
    _quarantine_answers("OPEN", "AWAITING_APPROVAL", "CONTAINED", approval=APPROVAL)
    code, out, err = cli("quarantine", "i-0123456789abcdef0", "--reason", "beaconing", "--wait")
    assert (code, err) == (0, "")
    assert [m for m, *_ in _Api.seen] == ["POST", "GET", "GET"]  # not waiting for a person
    assert out.splitlines()[-3:] == [
        f"{INCIDENT}: AWAITING_APPROVAL: the containment awaits a person's approval (rule "
        "production, on timeout close, deadline 2026-05-01T13:00:00Z)",
        f"  approve: ec2-quarantine approve {INCIDENT} --reason TEXT [--wait]",
        f"  deny:    ec2-quarantine deny {INCIDENT} --reason TEXT"]


def test_quarantine_wait_json_prints_the_awaiting_incident_and_says_how_on_stderr(api, cli):
    _quarantine_answers("AWAITING_APPROVAL", approval=APPROVAL)
    code, out, err = cli("quarantine", "i-0123456789abcdef0", "--reason", "x", "--wait",
                         "--json")
    assert code == 0 and json.loads(out)["status"] == "AWAITING_APPROVAL"
    assert f"ec2-quarantine approve {INCIDENT} --reason TEXT" in err


def test_quarantine_wait_ends_on_notified(api, cli):
    _quarantine_answers("OPEN", "NOTIFIED", "CONTAINED",
                        resolution="a notify rule: announced, nothing changed")
    code, out, _ = cli("quarantine", "i-0123456789abcdef0", "--reason", "x", "--wait")
    assert code == 0 and [m for m, *_ in _Api.seen] == ["POST", "GET", "GET"]
    assert f"{INCIDENT}: NOTIFIED, instance " in out
    assert "  resolution: a notify rule: announced, nothing changed" in out.splitlines()


def test_the_new_statuses():
    assert quarantine_cli.STATUSES[-2:] == ("AWAITING_APPROVAL", "NOTIFIED")
    assert "NOTIFIED" in quarantine_cli.TERMINAL
    assert "AWAITING_APPROVAL" not in quarantine_cli.TERMINAL
    assert quarantine_cli.status_name("awaiting_approval") == "AWAITING_APPROVAL"
    assert quarantine_cli.status_name("Notified") == "NOTIFIED"


def test_list_filters_on_the_new_statuses(api, cli):
    _Api.answers[("GET", "/api/incidents")] = [(200, {"incidents": [
        {"incident_id": INCIDENT, "status": "AWAITING_APPROVAL", "instance_id": "i-1",
         "region": "us-east-1", "opened_at": "2026-05-01T12:00:00Z"}]})]
    code, out, _ = cli("list", "--status", "awaiting_approval")
    assert code == 0 and _Api.seen[0][1] == "/api/incidents?status=AWAITING_APPROVAL"
    assert "AWAITING_APPROVAL" in out.splitlines()[1]
