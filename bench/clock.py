"""When each request was made and answered, at the embedded AWS and at the client.

moto's request recorder counts requests but keeps no times. The benchmarks put two stamps on each
AWS request:
- at the server, a WSGI wrapper in front of the embedded AWS (`Stamp`: arrival, answer), so that
  "isolated" and "report sent" are the moments AWS answered the isolating swap and the report's
  publish, for Custodian's separate process too. Its count is checked against the recorder's.
- at the client, a wrapper around botocore's HTTP send in this process (`Flight`: sent, answered),
  which every request of the app and of the embedded Step Functions passes through. Round trips
  are counted on these: moto answers some requests within a millisecond, before a request sent
  beside it even arrives, so at the server concurrent requests can look sequential.
Both keep the answer's HTTP status and a query-protocol request's parameters (EC2's), so that a
swap to the isolation group can be told from the swap to the all-open group, a
connection-tracking change or a refused request.
"""

import threading
import time
from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit

from local.faults import identify, identify_request, read_body

FORM = "application/x-www-form-urlencoded"  # the query protocol's body: EC2, SNS, STS
SWAP = "ec2:ModifyNetworkInterfaceAttribute"  # a group swap, a connection-tracking change too


@dataclass(frozen=True)
class Stamp:
    service: str | None
    action: str | None
    arrived: float  # time.monotonic()
    answered: float
    status: int  # HTTP status of the answer
    params: dict[str, str]  # a query-protocol request's parameters; empty for other protocols

    @property
    def name(self) -> str:
        return f"{self.service}:{self.action}"


@dataclass(frozen=True)
class Flight:
    """One request in flight at the client: from its sending to its answer received."""
    name: str  # service:action
    sent: float  # time.monotonic()
    answered: float
    status: int  # HTTP status of the answer; 0 when none came (the connection failed)
    params: dict[str, str]  # a query-protocol request's parameters; empty for other protocols


def form_parameters(content_type: str | None, body: str) -> dict[str, str]:
    """The parameters of a query-protocol request (`NetworkInterfaceId`, `SecurityGroupId.1`…),
    each name once; empty for any other body (JSON, XML, S3's objects)."""
    if not (content_type or "").startswith(FORM):
        return {}
    return {name: values[0] for name, values in parse_qs(body).items()}


def swapped_groups(request) -> list[str] | None:
    """The groups an accepted swap (a `Stamp` or a `Flight`) set on its interface, in order;
    None for any other request (a connection-tracking change sets none)."""
    if request.name != SWAP or request.status != 200:
        return None
    return [value for name, value in request.params.items()
            if name.startswith("SecurityGroupId.")] or None


def last_of_firsts(requests: list, interfaces, accepted):
    """Of the first request `accepted` answered for each of `interfaces` (its
    NetworkInterfaceId), the last answered: the moment every interface had one."""
    first = {}
    for request in sorted(requests, key=lambda r: r.answered):
        if accepted(request):
            first.setdefault(request.params.get("NetworkInterfaceId"), request)
    missing = set(interfaces) - set(first)
    if missing:
        raise RuntimeError(f"no such swap answered for {sorted(missing)}")
    return max((first[interface] for interface in interfaces), key=lambda r: r.answered)


def round_trips(flights: list[Flight]) -> int:
    """Sequential round trips in `flights`: the longest chain of requests each sent after the one
    before it was answered. Requests in flight at the same time are never both in a chain, so
    concurrent requests count once; a long request beside two short sequential ones counts as
    those two. (Earliest answer first is the longest chain of intervals.)"""
    chain, free_at = 0, float("-inf")
    for flight in sorted(flights, key=lambda f: f.answered):
        if flight.sent >= free_at:
            chain, free_at = chain + 1, flight.answered
    return chain


class Clock:
    """Stamps every AWS request the wrapped WSGI app answers (not moto's own API), and every
    request botocore sends from this process."""

    def __init__(self, app):
        self.app = app
        self._lock = threading.Lock()
        self._stamps: list[Stamp] = []
        self._flights: list[Flight] = []

    def __call__(self, environ, start_response):
        path = environ.get("PATH_INFO", "")
        if path.startswith(("/moto-api/", "/_local/")):
            return self.app(environ, start_response)
        arrived = time.monotonic()
        service, action, _, _ = identify_request(environ)
        params = form_parameters(environ.get("CONTENT_TYPE"), read_body(environ))
        statuses = []

        def answer_with(status, headers, exc_info=None):
            statuses.append(int(status.split()[0]))
            return start_response(status, headers, exc_info)

        answer = self.app(environ, answer_with)
        with self._lock:
            self._stamps.append(Stamp(service, action, arrived, time.monotonic(), statuses[-1],
                                      params))
        return answer

    def flown(self, request, sent: float, answered: float, status: int) -> None:
        """Keep one request botocore sent (an `AWSPreparedRequest`, signed)."""
        headers = {key: value.decode() if isinstance(value, bytes) else value
                   for key, value in request.headers.items()}
        body = request.body if isinstance(request.body, (bytes, str)) else b""  # a stream: S3
        body = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
        url = urlsplit(request.url)
        service, action = identify(headers, request.method, url.path, url.query, body)
        params = form_parameters(headers.get("Content-Type"), body)
        with self._lock:
            self._flights.append(Flight(f"{service}:{action}", sent, answered, status, params))

    def reset(self) -> None:
        with self._lock:
            self._stamps.clear()
            self._flights.clear()

    def stamps(self) -> list[Stamp]:
        """Every stamped request since the last reset, in the order they were answered."""
        with self._lock:
            return list(self._stamps)

    def flights(self) -> list[Flight]:
        """Every request sent from this process since the last reset."""
        with self._lock:
            return list(self._flights)


def install(stack) -> Clock:
    """Put a clock in front of the stack's embedded AWS server and behind botocore's HTTP send
    in this process; returns it."""
    server = stack._moto_server.server
    if not isinstance(server.app, Clock):
        server.app = Clock(server.app)
        _time_sends(server.app)
    return server.app


def _time_sends(clock: Clock) -> None:
    """Wrap botocore's `Endpoint._send` (one HTTP attempt, as the recorder sees them)."""
    from botocore.endpoint import Endpoint

    send = Endpoint._send

    def timed_send(endpoint, request):
        sent, status = time.monotonic(), 0
        try:
            response = send(endpoint, request)
            status = response.status_code
            return response
        finally:
            clock.flown(request, sent, time.monotonic(), status)

    Endpoint._send = timed_send
