"""boto3 clients: lazy, thread-safe, kept per service, region, credentials and calling function.

Clients are made on first use, never at import, so a cold start pays only for what it calls.
One boto3 session backs them all; creating a client is serialized by a lock (boto3 sessions are
not thread-safe, the clients they make are). Each client retries in AWS's *standard* mode and
names the Lambda function that uses it in its user agent, so CloudTrail tells the steps apart.
"""

import contextlib
import functools
import os
import threading
from contextvars import ContextVar
from typing import NamedTuple

APP_NAME = "ec2-quarantine"
MAX_ATTEMPTS = 5  # in all, the first included
# Requests one function makes at once: the first cut's widest round (8 interfaces: 8 swaps, 8
# connection-tracking changes, 3 preservation attributes) goes out in one.
MAX_CONCURRENT = 32

# In Lambda the process is one function (AWS_LAMBDA_FUNCTION_NAME) holding its role's credentials
# in the environment; the embedded AWS runs them all in one process and names each invocation's
# function, and the credentials of that function's role, with acting_as().
_function_name: ContextVar[str] = ContextVar(
    "function_name", default=os.environ.get("AWS_LAMBDA_FUNCTION_NAME", APP_NAME))
_own_credentials: ContextVar["Credentials | None"] = ContextVar("own_credentials", default=None)
_lock = threading.Lock()
_clients: dict = {}
_session = None


class Credentials(NamedTuple):
    """Temporary credentials (from STS) to act with instead of the function's own role."""

    access_key_id: str
    secret_access_key: str
    session_token: str


@contextlib.contextmanager
def acting_as(function_name: str, credentials: Credentials | None = None):
    """Name the function whose clients are handed out inside this block (thread-local), and
    the credentials they use when a caller passes none (None: boto3's default chain).

    In Lambda each function is its own process, given its role's credentials in the environment;
    the embedded AWS runs every function in one process, so it hands each invocation the
    credentials of that function's own role here, imitating Lambda.
    """
    tokens = _function_name.set(function_name), _own_credentials.set(credentials)
    try:
        yield
    finally:
        _function_name.reset(tokens[0])
        _own_credentials.reset(tokens[1])


def current_function() -> str:
    """The function whose code is running (in Lambda: this process's function)."""
    return _function_name.get()


def client(service: str, region: str | None = None, credentials: Credentials | None = None):
    """A cached client for `service` in `region` (default: the session's), as `credentials`
    (default: the function's own)."""
    key = (service, region, credentials or _own_credentials.get(), _function_name.get())
    found = _clients.get(key)
    if found is None:
        with _lock:
            found = _clients.get(key)
            if found is None:
                found = _clients[key] = _make_client(*key)
    return found


def _make_client(service, region, credentials, function):
    global _session
    import boto3  # imported on first use: the cold start does not pay for it
    from botocore.config import Config

    if _session is None:
        _session = boto3.session.Session()
    config = Config(
        retries={"mode": "standard", "total_max_attempts": MAX_ATTEMPTS},
        user_agent_extra=f"{APP_NAME}/{function}",
        connect_timeout=5,
        read_timeout=30,
        max_pool_connections=MAX_CONCURRENT,  # the first cut sends every interface's swap at once
        signature_version="s3v4" if service == "s3" else None,  # presigned URLs too (SSE-KMS)
    )
    keys = {}
    if credentials is not None:
        keys = {
            "aws_access_key_id": credentials.access_key_id,
            "aws_secret_access_key": credentials.secret_access_key,
            "aws_session_token": credentials.session_token,
        }
    return _session.client(service, region_name=region, config=config, **keys)


def reset() -> None:
    """Drop every cached client (the embedded AWS calls this when its endpoint changes)."""
    global _session
    with _lock:
        _clients.clear()
        _session = None
    _home_by_sts.cache_clear()


def error_code(error: BaseException) -> str | None:
    """The AWS error code a call failed with (`AccessDenied`, …); None for any other failure."""
    response = getattr(error, "response", None)
    return (response or {}).get("Error", {}).get("Code") if isinstance(response, dict) else None


def tolerate(codes: str | tuple[str, ...], call, **kwargs):
    """Make `call`; a failure with one of `codes` (someone else already did it, or there is
    nothing to do) counts as success and returns None."""
    from botocore.exceptions import ClientError

    try:
        return call(**kwargs)
    except ClientError as error:
        if error_code(error) not in ((codes,) if isinstance(codes, str) else codes):
            raise
        return None


def home(function_arn: str) -> tuple[str, str]:
    """(account, region) the app runs in: from its function's own ARN in Lambda (no request);
    where a context carries no real ARN (`chalice local`), from STS and the configured region,
    asked once per process."""
    parts = (function_arn or "").split(":")
    if len(parts) >= 7 and parts[4].isdigit() and parts[3]:
        return parts[4], parts[3]
    return _home_by_sts()


@functools.cache
def _home_by_sts() -> tuple[str, str]:
    import boto3

    region = boto3.session.Session().region_name  # AWS_REGION, AWS_DEFAULT_REGION or profile
    if not region:
        raise RuntimeError("no region: set AWS_REGION (or AWS_DEFAULT_REGION)")
    return client("sts", region).get_caller_identity()["Account"], region


def region_of(arn: str) -> str:
    """The region an ARN names (arn:partition:service:REGION:account:…)."""
    return arn.split(":")[3]


def concurrently(calls) -> list:
    """Make zero-argument `calls` at once, each in this context (the function and credentials
    it acts as travel in context variables, which new threads do not inherit); their results in
    order. The first failure raises, once every call has ended."""
    return [outcome.result() for outcome in _run_all(calls)]


def settled(calls) -> list:
    """Make `calls` at once, as `concurrently` does; each one's result, or the exception it
    raised in its place: one failure neither hides nor stops the others."""
    return [outcome.exception() or outcome.result() for outcome in _run_all(calls)]


def _run_all(calls) -> list:
    """The futures of `calls`, each ended."""
    import contextvars
    from concurrent.futures import ThreadPoolExecutor

    calls = list(calls)
    with ThreadPoolExecutor(max(1, min(MAX_CONCURRENT, len(calls)))) as pool:
        return [pool.submit(contextvars.copy_context().run, call) for call in calls]
