"""Fault injection for the embedded AWS: named operations fail with a chosen error for N calls.

moto has no fault injection, so the embedded AWS wraps moto's WSGI app: a request whose service and
action (optionally a resource id found in the request) match an armed fault is answered with that
fault's error, in the service's own wire format, so botocore raises exactly what AWS would have
raised. A fault can be limited to calls made by one of the app's functions (its clients name it
in their user agent). Tests use the Python API (`FaultRegistry.arm`); anything else (`make local`, another
process) uses the HTTP control at `/_local/faults` on the embedded AWS's port.

A trigger (`FaultRegistry.when`, Python only) matches requests as a fault does and runs something
when the N-th match arrives, before that request is answered: what happens in the world while a
request is on its way (an instance's guest powers it off: `local.scenario.power_off`).
"""

import io
import json
import re
import threading
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass
from urllib.parse import parse_qs

CONTROL_PATH = "/_local/faults"

# Default HTTP status per error code (AWS's own); anything else is a 400 client error.
STATUS = {
    "AccessDenied": 403,
    "AccessDeniedException": 403,
    "UnauthorizedOperation": 403,
    "AuthorizationError": 403,
    "RequestLimitExceeded": 503,
    "ServiceUnavailable": 503,
    "InternalError": 500,
    "InternalFailure": 500,
    "ServiceException": 500,
    "TooManyRequestsException": 429,
}

# The code each service answers a call that IAM denies with (what `denied(service)` returns).
DENIED = {
    "ec2": "UnauthorizedOperation",
    "sns": "AuthorizationError",
    "s3": "AccessDenied",
    "iam": "AccessDenied",
    "autoscaling": "AccessDenied",
    "elasticloadbalancing": "AccessDenied",
    "sts": "AccessDenied",
}
# The code each service answers a call it throttles with (what `throttled(service)` returns).
THROTTLED = {
    "ec2": "RequestLimitExceeded",
    "s3": "SlowDown",
    "lambda": "TooManyRequestsException",
    "sns": "Throttling",
    "iam": "Throttling",
    "autoscaling": "Throttling",
    "elasticloadbalancing": "Throttling",
    "sts": "Throttling",
}
JSON_SERVICES = {"dynamodb", "states", "ssm", "events", "sqs", "logs", "kms", "cloudtrail"}
_CREDENTIAL_SCOPE = re.compile(r"Credential=[^/]+/\d{8}/[^/]+/([^/]+)/aws4_request")
_APP_USER_AGENT = re.compile(r"ec2-quarantine/(\S+)")  # chalicelib.aws names the function


def denied(service: str) -> str:
    """The error code `service` answers with when IAM denies the call."""
    return DENIED.get(service, "AccessDeniedException")


def throttled(service: str) -> str:
    """The error code `service` answers with when it throttles a call."""
    return THROTTLED.get(service, "ThrottlingException")


def caller(headers) -> str | None:
    """The app's function whose client sent the request (its user agent names it), or None."""
    match = _APP_USER_AGENT.search(headers.get("User-Agent") or "")
    return match.group(1) if match else None


class RequestMatch:
    """Which requests a fault or a trigger applies to: those of `service` and `action`, and when
    set, only those that mention `resource` and those sent by the app's function `caller`."""

    service: str
    action: str
    resource: str | None
    caller: str | None

    def matches(self, service: str, action: str, text: str, function: str | None = None) -> bool:
        return (
            self.service == service
            and self.action == action
            and (self.resource is None or self.resource in text)
            and (self.caller is None or function is not None and (
                function == self.caller or function.endswith("-" + self.caller)))
        )


@dataclass
class Fault(RequestMatch):
    service: str  # signing name, as in the credential scope: ec2, sns, states, dynamodb, lambda…
    action: str  # API action: ModifyNetworkInterfaceAttribute, Publish, PutItem, Invoke…
    error: str  # error code returned: AccessDenied, Throttling, RequestLimitExceeded…
    #             (for lambda Invoke, "Crash" makes the function raise instead)
    count: int = 1  # how many matching calls fail before the fault disarms
    resource: str | None = None  # only calls whose request mentions this id
    caller: str | None = None  # only calls by this function of the app ("contain" or its
    #                            deployed name "ec2-quarantine-dev-contain")
    message: str = ""
    status: int = 0  # HTTP status; 0 = the code's usual one

    def __post_init__(self):
        if self.count < 1:
            raise ValueError(f"count must be at least 1, not {self.count}")
        self.status = self.status or STATUS.get(self.error, 400)
        self.message = self.message or f"Injected fault: {self.error} on {self.service}:{self.action}"


@dataclass
class Trigger(RequestMatch):
    """Something that happens in the world when the nth matching request arrives."""

    service: str
    action: str
    run: Callable[[], object]  # what happens when the nth matching request arrives
    nth: int = 1
    resource: str | None = None
    caller: str | None = None
    seen: int = 0  # matching requests so far: it ran when seen == nth

    def __post_init__(self):
        if self.nth < 1:
            raise ValueError(f"nth must be at least 1, not {self.nth}")


class FaultRegistry:
    """Armed faults, shared by the WSGI middleware, the Lambda bridge and the control."""

    def __init__(self):
        self._lock = threading.Lock()
        self._armed: list[Fault] = []
        self._triggers: list[Trigger] = []
        self.fired: list[dict] = []  # every injected failure, for tests to read

    def arm(self, service, action, error, count=1, resource=None, caller=None, message="",
            status=0) -> Fault:
        fault = Fault(service, action, error, count, resource, caller, message, status)
        with self._lock:
            self._armed.append(fault)
        return fault

    def when(self, service, action, run, nth=1, resource=None, caller=None) -> Trigger:
        """Call `run()` when the `nth` request matching (as `arm`'s faults match) reaches the
        embedded AWS's port, before it is answered or failed; then forget it. Lambda
        invocations, answered in process by the bridge, are not seen."""
        trigger = Trigger(service, action, run, nth, resource, caller)
        with self._lock:
            self._triggers.append(trigger)
        return trigger

    def reset(self) -> None:
        with self._lock:
            self._armed.clear()
            self._triggers.clear()
            self.fired.clear()

    def armed(self) -> list[Fault]:
        with self._lock:
            return list(self._armed)

    def active(self) -> bool:
        return bool(self._armed or self._triggers)

    def arrive(self, service: str, action: str, text: str = "",
               function: str | None = None) -> None:
        """Count this request against the triggers it matches; run those it is the nth of
        (outside the lock: what they run may send requests)."""
        with self._lock:
            due = []
            for trigger in list(self._triggers):
                if trigger.matches(service, action, text, function):
                    trigger.seen += 1
                    if trigger.seen == trigger.nth:
                        self._triggers.remove(trigger)
                        due.append(trigger)
        for trigger in due:
            trigger.run()

    def take(self, service: str, action: str, text: str = "",
             function: str | None = None) -> Fault | None:
        """The fault this call hits, if any, counting the call against it."""
        with self._lock:
            for fault in self._armed:
                if fault.matches(service, action, text, function):
                    fault.count -= 1
                    if fault.count == 0:
                        self._armed.remove(fault)
                    self.fired.append({"service": service, "action": action, "error": fault.error,
                                       "caller": function})
                    return fault
        return None


class FaultMiddleware:
    """WSGI middleware in front of moto's app: the control endpoint, then armed faults."""

    def __init__(self, app, registry: FaultRegistry):
        self.app = app
        self.registry = registry

    def __call__(self, environ, start_response):
        if environ.get("PATH_INFO", "").startswith(CONTROL_PATH):
            return self._control(environ, start_response)
        if self.registry.active():
            service, action, headers, text = identify_request(environ)
            fault, function = None, caller(headers)
            if service and action:
                self.registry.arrive(service, action, text, function)
                fault = self.registry.take(service, action, text, function)
            if fault is not None:
                status, headers, payload = error_response(fault, service, environ)
                start_response(status, headers)
                return [payload]
        return self.app(environ, start_response)

    def _control(self, environ, start_response):
        method = environ["REQUEST_METHOD"]
        try:
            if method == "POST":
                spec = json.loads(read_body(environ) or "{}")
                self.registry.arm(**spec)
            elif method == "DELETE":
                self.registry.reset()
            elif method != "GET":
                raise ValueError(f"method {method} not supported")
        except (TypeError, ValueError) as error:
            return _json(start_response, "400 Bad Request", {"error": str(error)})
        return _json(
            start_response,
            "200 OK",
            {"armed": [asdict(f) for f in self.registry.armed()], "fired": self.registry.fired},
        )


def identify(headers, method: str, path: str, query: str, body: str):
    """(service signing name, action) of a request, from its signature and its protocol."""
    match = _CREDENTIAL_SCOPE.search(headers.get("Authorization") or "")
    service = match.group(1) if match else None
    target = headers.get("X-Amz-Target")
    if target:
        return service, target.rsplit(".", 1)[-1]
    for source in (body, query):
        action = parse_qs(source).get("Action")
        if action:
            return service, action[0]
    if service == "s3":
        return service, _s3_action(method, path, parse_qs(query, keep_blank_values=True))
    return service, None


_S3_MULTIPART = {("POST", "uploads"): "CreateMultipartUpload", ("PUT", "uploadId"): "UploadPart",
                 ("GET", "uploadId"): "ListParts", ("POST", "uploadId"): "CompleteMultipartUpload",
                 ("DELETE", "uploadId"): "AbortMultipartUpload"}


def _s3_action(method: str, path: str, query: dict) -> str:
    """The S3 REST operation, enough to tell object writes, reads, a multipart upload's steps
    and a bucket's version listing from its object listing apart."""
    for parameter in ("uploads", "uploadId"):
        if parameter in query and (method, parameter) in _S3_MULTIPART:
            return _S3_MULTIPART[(method, parameter)]
    if path.strip("/").count("/") >= 1:
        return {"PUT": "PutObject", "GET": "GetObject", "HEAD": "HeadObject",
                "DELETE": "DeleteObject"}.get(method, method)
    if method == "GET" and "versions" in query:
        return "ListObjectVersions"
    return {"PUT": "CreateBucket", "GET": "ListObjectsV2", "HEAD": "HeadBucket",
            "DELETE": "DeleteBucket"}.get(method, method)


def error_response(fault: Fault, service: str, environ) -> tuple[str, list, bytes]:
    """The fault as the service itself would answer it on the wire."""
    request_id = str(uuid.uuid4())
    status = f"{fault.status} Injected"
    if environ.get("HTTP_X_AMZ_TARGET") or service in JSON_SERVICES:
        body = json.dumps({"__type": fault.error, "message": fault.message})
        headers = [("Content-Type", "application/x-amz-json-1.0"),
                   ("x-amzn-query-error", f"{fault.error};Sender")]
    elif service == "lambda":
        body = json.dumps({"Type": "User", "message": fault.message})
        headers = [("Content-Type", "application/json"), ("x-amzn-ErrorType", fault.error)]
    elif service == "ec2":
        body = (f"<Response><Errors><Error><Code>{fault.error}</Code><Message>{fault.message}"
                f"</Message></Error></Errors><RequestID>{request_id}</RequestID></Response>")
        headers = [("Content-Type", "text/xml")]
    elif service == "s3":
        body = (f"<Error><Code>{fault.error}</Code><Message>{fault.message}</Message>"
                f"<RequestId>{request_id}</RequestId></Error>")
        headers = [("Content-Type", "application/xml")]
    else:
        body = (f"<ErrorResponse><Error><Type>Sender</Type><Code>{fault.error}</Code>"
                f"<Message>{fault.message}</Message></Error><RequestId>{request_id}</RequestId>"
                "</ErrorResponse>")
        headers = [("Content-Type", "text/xml")]
    payload = body.encode()
    return status, headers + [("Content-Length", str(len(payload)))], payload


def identify_request(environ):
    """(service, action, headers, path?query+body) of a WSGI request; the body stays readable
    for the app behind."""
    body = read_body(environ)
    headers = {
        "Authorization": environ.get("HTTP_AUTHORIZATION", ""),
        "X-Amz-Target": environ.get("HTTP_X_AMZ_TARGET", ""),
        "User-Agent": environ.get("HTTP_USER_AGENT", ""),
    }
    path, query = environ.get("PATH_INFO", ""), environ.get("QUERY_STRING", "")
    service, action = identify(headers, environ["REQUEST_METHOD"], path, query, body)
    return service, action, headers, f"{path}?{query}{body}"


def read_body(environ) -> str:
    """Read the request body and put it back for the app behind us."""
    length = int(environ.get("CONTENT_LENGTH") or 0)
    data = environ["wsgi.input"].read(length) if length else b""
    environ["wsgi.input"] = io.BytesIO(data)
    return data.decode("utf-8", "replace")


def _json(start_response, status, payload):
    data = json.dumps(payload).encode()
    start_response(status, [("Content-Type", "application/json"), ("Content-Length", str(len(data)))])
    return [data]
