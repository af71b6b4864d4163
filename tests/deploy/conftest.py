"""Fixtures of the deployment tests."""

import pytest
from moto import mock_aws


@pytest.fixture
def aws(monkeypatch):
    """An in-process moto (`mock_aws`) and a boto3 session on it, the embedded AWS's
    endpoint out of the way."""
    for name, value in (("AWS_ACCESS_KEY_ID", "x"), ("AWS_SECRET_ACCESS_KEY", "x"),
                        ("AWS_DEFAULT_REGION", "us-east-1")):
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    with mock_aws():
        import boto3

        yield boto3.session.Session()
