"""Fixtures shared by every suite: one embedded AWS per test session, reset before each test."""

import pytest

from local import stack as local_stack


@pytest.fixture(scope="session")
def running_stack():
    started = local_stack.start(aws_port=0, api_port=0)
    yield started
    started.stop()


@pytest.fixture
def stack(running_stack):
    """The embedded AWS, freshly provisioned, with no faults armed and default settings."""
    running_stack.reset()
    yield running_stack
    running_stack.bridge.wait_idle()
