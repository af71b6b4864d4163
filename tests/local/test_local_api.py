"""The local API: concurrent requests each get their own answer; settings from the environment
override the stage's, in-process and through `python -m local` (what `make local` runs)."""

import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor

from local.stack import PROJECT_DIR, stage_environment
from tests.helpers import guardduty_event


def _get(url):
    try:
        with urllib.request.urlopen(url, timeout=30) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as error:
        return error.code, json.load(error)


def test_twenty_concurrent_requests_each_get_their_own_answer(stack):
    ids = [f"inc-{n:012x}" for n in range(20)]
    stack.client("dynamodb").put_item(TableName=stack.names["INCIDENTS_TABLE"], Item={
        "pk": {"S": ids[7]}, "incident_id": {"S": ids[7]}, "status": {"S": "OPEN"}})

    with ThreadPoolExecutor(max_workers=20) as pool:
        answers = list(pool.map(lambda i: _get(f"{stack.api_url}/incidents/{i}"), ids))

    for incident_id, (status, body) in zip(ids, answers):
        if incident_id == ids[7]:
            assert (status, body["incident_id"]) == (200, incident_id)
        else:
            assert status == 404
            assert body == {"error": "IncidentNotFound", "message": f"no incident {incident_id}"}


def test_twenty_concurrent_posts_each_get_the_answer_to_their_own_body(stack):
    """chalice local's threads share current_request: without the lock bodies get swapped."""
    from tests.helpers import api

    ids = [f"i-{n:08x}" + "z" for n in range(20)]  # invalid on purpose: the error names each
    with ThreadPoolExecutor(max_workers=20) as pool:
        answers = list(pool.map(
            lambda i: api(stack, "POST", "/quarantine", {"instance_id": i}), ids))
    for instance_id, (status, body) in zip(ids, answers):
        assert status == 400 and f"'{instance_id}'" in body["message"]


def test_environment_overrides_the_stages_settings():
    assert stage_environment("dev", {})["SEVERITY_THRESHOLD"] == "7.0"
    assert stage_environment("dev", {"SEVERITY_THRESHOLD": "8.5"})["SEVERITY_THRESHOLD"] == "8.5"
    assert stage_environment("prod", {})["INCIDENTS_TABLE"] == "ec2-quarantine-prod-incidents"
    assert "HOME" not in stage_environment("dev", {"HOME": "/x"})  # only the app's settings


def test_make_local_serves_both_ports_and_applies_environment_settings(tmp_path):
    """`python -m local` with SEVERITY_THRESHOLD=9.5 in its environment drops a 8.0 finding."""
    import boto3

    env = dict(os.environ, LOCAL_AWS_PORT="0", LOCAL_API_PORT="0", SEVERITY_THRESHOLD="9.5")
    log = open(tmp_path / "local.log", "w+")
    process = subprocess.Popen([sys.executable, "-m", "local"], cwd=PROJECT_DIR, env=env,
                               stdout=log, stderr=subprocess.STDOUT)
    try:
        ready = _wait_for_line(tmp_path / "local.log", "ready", process)
        endpoint = ready.split("embedded AWS at ")[1].split(",")[0]
        api = ready.split("API at ")[1].strip()
        assert _get(f"{api}/incidents/inc-000000000000")[0] == 404
        event = guardduty_event("i-0123456789abcdef0", severity=8.0)
        boto3.client("events", endpoint_url=endpoint, region_name="us-east-1",
                     aws_access_key_id="a", aws_secret_access_key="b").put_events(Entries=[{
                         "Source": event["source"], "DetailType": event["detail-type"],
                         "Detail": json.dumps(event["detail"])}])
        dropped = _wait_for_line(tmp_path / "local.log", "dropped finding", process)
        assert "below SEVERITY_THRESHOLD 9.5" in dropped
    finally:
        process.terminate()
        process.wait(timeout=30)


def _wait_for_line(path, text, process, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for line in path.read_text().splitlines():
            if text in line:
                return line
        assert process.poll() is None, path.read_text()
        time.sleep(0.1)
    raise TimeoutError(f"no line with {text!r} in:\n{path.read_text()}")
