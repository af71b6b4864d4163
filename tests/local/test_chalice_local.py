"""Chalice's own `chalice local --stage dev` against the embedded AWS, as the README shows it
beside `make local`: the routes answer (home account and region from STS and the configured
region, since chalice local's context carries no function ARN), and a quarantine it starts runs
through the embedded AWS's state machine to containment."""

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

from deploy import project
from tests.helpers import finish, interface_groups, make_victim, product_groups

CHALICE = os.path.join(os.path.dirname(sys.executable), "chalice")
CLI = os.path.join(os.path.dirname(sys.executable), "ec2-quarantine")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def chalice_local(stack):
    """`chalice local --stage dev` in a process of its own, with the environment `make local`
    writes to build/local.env; its URL once it answers."""
    port = _free_port()
    environment = {**os.environ, **stack.client_environment(), "PYTHONDONTWRITEBYTECODE": "1"}
    server = subprocess.Popen([CHALICE, "local", "--stage", "dev", "--port", str(port)],
                              cwd=project.PROJECT_DIR, env=environment,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            try:
                urllib.request.urlopen(f"{url}/nothing-here", timeout=1)
            except urllib.error.HTTPError:
                break  # it answers
            except OSError:
                assert server.poll() is None, server.stdout.read()
                time.sleep(0.1)
        yield url
    finally:
        server.terminate()
        server.wait(timeout=30)


def _cli(stack, url, *arguments):
    environment = {**os.environ, **stack.client_environment(), "EC2_QUARANTINE_API_URL": url}
    return subprocess.run([CLI, *arguments], env=environment, capture_output=True, text=True,
                          timeout=120)


def test_chalice_local_answers_and_its_quarantine_contains_the_instance(stack, chalice_local):
    listed = _cli(stack, chalice_local, "--json", "list")
    assert listed.returncode == 0, listed.stdout + listed.stderr
    assert '"incidents": []' in listed.stdout

    victim = make_victim(stack, interfaces=2, volumes=1)
    started = _cli(stack, chalice_local, "--json", "quarantine", victim["instance_id"],
                   "--reason", "through chalice local")
    assert started.returncode == 0, started.stdout + started.stderr
    answer = json.loads(started.stdout)
    assert answer["status"] == "OPEN" and answer["account_id"] == stack.account
    incident, execution = finish(stack, answer)
    assert execution["status"] == "SUCCEEDED" and incident["status"] == "CONTAINED"
    isolation = product_groups(stack, victim["vpc_id"])["isolation"]["GroupId"]
    assert all(interface_groups(stack, eni) == [isolation] for eni in victim["interfaces"])
