"""Fixtures shared by every suite: one embedded AWS per test session, reset before each test."""

import os

import pytest

from local import stack as local_stack

# Step Functions' Wait really sleeps on the embedded AWS: poll snapshots every second.
TEST_SETTINGS = {"SNAPSHOT_POLL_SECONDS": "1", "SNAPSHOT_DEADLINE_SECONDS": "20"}


@pytest.fixture(scope="session")
def running_stack():
    started = local_stack.start(aws_port=0, api_port=0, environ={**os.environ, **TEST_SETTINGS})
    yield started
    started.stop()


@pytest.fixture
def stack(running_stack):
    """The embedded AWS, freshly provisioned, with no faults armed and default settings."""
    running_stack.reset()
    yield running_stack
    running_stack.bridge.wait_idle()
