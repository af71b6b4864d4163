"""The in-process Lambda service: invocations answered by the app's own handlers.

moto cannot run Lambda code without Docker, so every invocation that would reach Lambda — a Step
Functions task, an EventBridge target, a step asking the revoking function — is dispatched here
to the Chalice app's handler, with a context that looks like Lambda's (function ARN with account
and region) and, as Lambda gives a function, the credentials of that function's own role
(`roles`). Invocations never reach moto's
request recorder or its IAM enforcement, so the bridge counts them itself for request budgets and
authorizes a caller's lambda:InvokeFunction itself (`local.iam.check`). An Invoke is answered
with Lambda's HTTP response in place of sending the request (`local.patches.awslambda` does it
for every Lambda client), so botocore parses and retries it as it would Lambda's.
"""

import io
import json
import logging
import re
import threading
import time
import traceback
import uuid
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import unquote, urlsplit

from botocore.awsrequest import AWSResponse

from chalicelib import aws
from deploy import names
from local import iam

log = logging.getLogger("local.bridge")
CRASH = "Crash"  # a fault "error" that makes the function itself fail, as an unhandled raise


class LambdaContext:
    """The attributes and method of the context object Lambda hands a Python handler."""

    def __init__(self, function_arn: str, timeout_seconds: int = 900, memory_mb: int = 256):
        self.invoked_function_arn = function_arn
        self.function_name = function_arn.rsplit(":", 1)[-1]
        self.function_version = "$LATEST"
        self.memory_limit_in_mb = memory_mb
        self.aws_request_id = str(uuid.uuid4())
        self.log_group_name = f"/aws/lambda/{self.function_name}"
        self.log_stream_name = time.strftime("%Y/%m/%d/[$LATEST]") + uuid.uuid4().hex
        self._deadline = time.monotonic() + timeout_seconds

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


class Invocation:
    """One answered invocation, kept for tests and request budgets."""

    def __init__(self, function_name, event, source, caller=None):
        self.function_name = function_name
        self.event = event
        self.source = source
        self.caller = caller  # the app's function that invoked it (None: a service did)
        self.started = time.monotonic()  # the benchmark counts what was invoked before isolation
        self.result = None
        self.error = None


class LambdaBridge:
    """Maps deployed function names of one stage to the app's handlers and invokes them."""

    def __init__(self, app, stage: str, region: str, account: str, faults=None):
        self.region = region
        self.account = account
        self.faults = faults
        self.roles = iam.FunctionRoles(stage, region, account)
        self._handlers = {
            names.function(stage, name): handler
            for name, handler in app.handler_map.items()
            if name not in _route_view_names(app)
        }
        self.api_function_name = names.api_function(stage)
        self._lock = threading.Lock()
        self._invocations: list[Invocation] = []
        self._pending = 0
        self._idle = threading.Condition(self._lock)
        self._executor = ThreadPoolExecutor(max_workers=8, thread_name_prefix="lambda-async")

    # -- what tests and budgets read -------------------------------------------------------
    @property
    def invocations(self) -> list[Invocation]:
        with self._lock:
            return list(self._invocations)

    def count(self) -> int:
        with self._lock:
            return len(self._invocations)

    def forget(self) -> None:
        with self._lock:
            self._invocations.clear()

    def wait_idle(self, timeout: float = 120.0) -> None:
        """Block until no asynchronous work (EventBridge delivery, CloudTrail event) is running.
        The timeout only guards against a hang: a large instance's CloudTrail events each set
        off a tamper check, and on a loaded machine they outlast 30 s."""
        with self._idle:
            if not self._idle.wait_for(lambda: self._pending == 0, timeout):
                raise TimeoutError(f"{self._pending} asynchronous tasks still running")

    # -- invoking --------------------------------------------------------------------------
    def function_arn(self, function_name: str) -> str:
        return f"arn:aws:lambda:{self.region}:{self.account}:function:{function_name}"

    def context(self, function_name: str) -> LambdaContext:
        return LambdaContext(self.function_arn(function_name))

    def acting_as(self, function_name: str):
        """Run as `function_name`: its name on clients, its own role's credentials."""
        return aws.acting_as(function_name, self.roles.credentials(function_name))

    def invoke(self, function: str, event, source: str = "direct", caller: str | None = None):
        """Run `function` (name or ARN) on `event`; returns (payload, error_type or None)."""
        name = function.rsplit(":", 1)[-1] if function.startswith("arn:") else function
        invocation = Invocation(name, event, source, caller)
        with self._lock:
            self._invocations.append(invocation)
        handler = self._handlers.get(name)
        if handler is None:
            invocation.error = "ResourceNotFoundException"
            return {"errorMessage": f"Function not found: {name}"}, invocation.error
        context = self.context(name)
        try:
            with self.acting_as(name):
                invocation.result = handler(event, context)
            return invocation.result, None
        except Exception as error:  # what Lambda reports as an unhandled error
            log.exception("function %s raised", name)
            invocation.error = type(error).__name__
            return {
                "errorMessage": str(error),
                "errorType": invocation.error,
                "stackTrace": traceback.format_tb(error.__traceback__),
            }, invocation.error

    def invoke_async(self, function: str, event, source: str = "event",
                     caller: str | None = None) -> None:
        """Lambda's asynchronous invocation (how EventBridge delivers): queued, run on a pool."""
        self.submit(self.invoke, function, event, source, caller)

    def submit(self, work, *args) -> None:
        """Run `work(*args)` on the pool as asynchronous work `wait_idle()` waits for (an
        invocation, or a delivery that may lead to one: `local.cloudtrail`)."""
        with self._lock:
            self._pending += 1

        def run():
            try:
                work(*args)
            finally:
                with self._idle:
                    self._pending -= 1
                    self._idle.notify_all()

        self._executor.submit(run)

    # -- botocore hook (local.patches.awslambda): answers an Invoke without sending it ---------
    def answer(self, request, **_):
        """Lambda's HTTP answer to a signed Invoke request, in place of sending it: botocore
        parses it and retries it as it would Lambda's own (a throttled call is retried). Made in
        the caller's thread, so one of the app's functions calling is `aws.current_function()`."""
        function = unquote(urlsplit(request.url).path.split("/")[3])
        caller = _app_caller()
        arn = function if function.startswith("arn:") else self.function_arn(function)
        if not iam.check(_signer(request), "lambda:InvokeFunction", arn, self.region):
            with self._lock:
                self._invocations.append(Invocation(function, None, "denied", caller))
            return _error(403, "AccessDeniedException", "not authorized to perform: "
                          f"lambda:InvokeFunction on resource: {arn}")
        fault = self.faults.take("lambda", "Invoke", function, caller) if self.faults else None
        if fault is not None and fault.error == CRASH:  # the function ran and raised
            with self._lock:
                self._invocations.append(Invocation(function, None, "crash", caller))
            return _response(200, {"errorMessage": fault.message, "errorType": "InjectedCrash"},
                             {"X-Amz-Function-Error": "Unhandled"})
        if fault is not None:
            with self._lock:
                self._invocations.append(Invocation(function, None, "fault", caller))
            return _error(fault.status, fault.error, fault.message)
        body = request.body or b"{}"
        event = json.loads(body.decode() if isinstance(body, bytes) else body)
        if _header(request, "X-Amz-Invocation-Type") == "Event":
            self.invoke_async(function, event, "invoke", caller)
            return _response(202, None)
        payload, error = self.invoke(function, event, "invoke", caller)
        return _response(200, payload, {"X-Amz-Function-Error": "Unhandled"} if error else {})


def _signer(request):
    """The caller's access key and session token, as its signature names them."""
    from types import SimpleNamespace

    scope = re.search(r"Credential=([^/]+)/", _header(request, "Authorization") or "")
    return SimpleNamespace(access_key=scope.group(1) if scope else "",
                           token=_header(request, "X-Amz-Security-Token"))


def _header(request, name: str) -> str | None:
    value = request.headers.get(name)
    return value.decode() if isinstance(value, bytes) else value


def _app_caller() -> str | None:
    """The app's function running in this thread (None outside one: a service's thread)."""
    function = aws.current_function()
    return function if function.startswith(f"{names.APP_NAME}-") else None


def _route_view_names(app) -> set[str]:
    """Names of route view functions: they run behind the API handler, not as functions."""
    return {
        entry.view_name for methods in app.routes.values() for entry in methods.values()
    }


class _Raw(io.BytesIO):
    """A response body as urllib3 hands it to botocore (read, or streamed)."""

    def stream(self, **_):
        while chunk := self.read(65536):
            yield chunk


def _response(status: int, payload, headers=None) -> AWSResponse:
    data = b"" if payload is None else json.dumps(payload, default=str).encode()
    return AWSResponse("http://lambda.local", status, {
        "Content-Type": "application/json", "Content-Length": str(len(data)),
        "X-Amz-Executed-Version": "$LATEST", **(headers or {})}, _Raw(data))


def _error(status: int, code: str, message: str) -> AWSResponse:
    """An error as Lambda answers it: its code in a header, the message in the body."""
    return _response(status, {"Type": "User", "message": message}, {"x-amzn-ErrorType": code})
