"""chalicelib.aws: lazy, cached per service/region/credentials/function, thread-safe clients."""

import sys
import threading

from chalicelib import aws


def test_importing_the_app_creates_no_client_and_imports_no_boto3():
    code = ("import sys; import app; from chalicelib import aws; "
            "assert aws._clients == {}; assert 'boto3' not in sys.modules, 'boto3 imported'")
    import subprocess

    from local.stack import PROJECT_DIR

    subprocess.run([sys.executable, "-c", code], cwd=PROJECT_DIR, check=True)


def test_clients_are_cached_per_service_region_credentials_and_function():
    aws.reset()
    first = aws.client("ec2", "us-east-1")
    assert aws.client("ec2", "us-east-1") is first
    assert aws.client("ec2", "eu-west-1") is not first
    assert aws.client("sns", "us-east-1") is not first
    other = aws.Credentials("AKIAOTHER", "secret", "token")
    assert aws.client("ec2", "us-east-1", other) is not first
    with aws.acting_as("contain"):
        assert aws.client("ec2", "us-east-1") is not first
    assert aws.client("ec2", "us-east-1") is first


def test_a_function_acts_with_its_own_credentials_unless_given_others():
    aws.reset()
    own = aws.Credentials("AKIAOWN", "secret", "token")
    member = aws.Credentials("AKIAMEMBER", "secret", "token")

    def key(client):
        return getattr(client._request_signer._credentials, "access_key", None)

    with aws.acting_as("ec2-quarantine-dev-contain", own):
        assert key(aws.client("ec2", "us-east-1")) == "AKIAOWN"
        assert key(aws.client("ec2", "us-east-1", member)) == "AKIAMEMBER"
    assert key(aws.client("ec2", "us-east-1")) not in ("AKIAOWN", "AKIAMEMBER")


def test_concurrent_first_use_makes_one_client():
    aws.reset()
    made = []
    barrier = threading.Barrier(20)

    def use():
        barrier.wait()
        made.append(aws.client("dynamodb", "us-east-1"))

    threads = [threading.Thread(target=use) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len({id(client) for client in made}) == 1


def test_clients_retry_in_standard_mode():
    aws.reset()
    retries = aws.client("ec2", "us-east-1").meta.config.retries
    assert retries["mode"] == "standard"
    assert retries["total_max_attempts"] == aws.MAX_ATTEMPTS


def test_tolerate_treats_only_the_named_codes_as_success():
    from botocore.exceptions import ClientError

    def fails(code):
        def call(**kwargs):
            raise ClientError({"Error": {"Code": code, "Message": "m"}}, "Op")
        return call

    assert aws.tolerate("InvalidPermission.Duplicate", fails("InvalidPermission.Duplicate")) is None
    assert aws.tolerate(("A", "B"), fails("B")) is None
    assert aws.tolerate("A", lambda **kw: kw, x=1) == {"x": 1}
    try:
        aws.tolerate("A", fails("AccessDenied"))
    except ClientError as error:
        assert aws.error_code(error) == "AccessDenied"
    else:
        raise AssertionError("an untolerated code must raise")
    assert aws.error_code(ValueError("not AWS")) is None


def test_region_of_an_arn():
    assert aws.region_of("arn:aws:states:eu-west-1:123456789012:stateMachine:m") == "eu-west-1"


def test_the_home_comes_from_the_functions_arn_and_else_from_sts(monkeypatch):
    """In Lambda the function's ARN names account and region (no request); `chalice local`
    gives an empty ARN: then STS and the configured region, once per process."""
    from moto import mock_aws

    aws.reset()
    assert aws.home("arn:aws:lambda:eu-west-1:111122223333:function:ec2-quarantine-dev") == (
        "111122223333", "eu-west-1")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "ap-southeast-2")
    monkeypatch.delenv("AWS_REGION", raising=False)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    with mock_aws():
        assert aws.home("") == ("123456789012", "ap-southeast-2")
    aws.reset()
    monkeypatch.delenv("AWS_DEFAULT_REGION")
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    import pytest

    with mock_aws(), pytest.raises(RuntimeError, match="no region: set AWS_REGION"):
        aws.home("")
    aws.reset()
