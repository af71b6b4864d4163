"""When each request reached the embedded AWS and when it was answered.

moto's request recorder counts requests but keeps no times. This WSGI wrapper, put in front of the
running server by the benchmarks only, stamps each AWS request (service, action, arrival, answer),
so that "isolated" and "report sent" are the moments AWS answered the isolating swap and the
report's publish. Its count is checked against the recorder's.
"""

import threading
import time
from dataclasses import dataclass

from local.faults import identify_request


@dataclass(frozen=True)
class Stamp:
    service: str | None
    action: str | None
    arrived: float  # time.monotonic()
    answered: float

    @property
    def name(self) -> str:
        return f"{self.service}:{self.action}"


class Clock:
    """Stamps every AWS request the wrapped WSGI app answers (not moto's own API)."""

    def __init__(self, app):
        self.app = app
        self._lock = threading.Lock()
        self._stamps: list[Stamp] = []

    def __call__(self, environ, start_response):
        path = environ.get("PATH_INFO", "")
        if path.startswith(("/moto-api/", "/_local/")):
            return self.app(environ, start_response)
        arrived = time.monotonic()
        service, action, _, _ = identify_request(environ)
        answer = self.app(environ, start_response)
        with self._lock:
            self._stamps.append(Stamp(service, action, arrived, time.monotonic()))
        return answer

    def reset(self) -> None:
        with self._lock:
            self._stamps.clear()

    def stamps(self) -> list[Stamp]:
        """Every stamped request since the last reset, in the order they were answered."""
        with self._lock:
            return list(self._stamps)

    def count(self) -> int:
        with self._lock:
            return len(self._stamps)


def install(stack) -> Clock:
    """Put a clock in front of the stack's embedded AWS server; returns it."""
    server = stack._moto_server.server
    if not isinstance(server.app, Clock):
        server.app = Clock(server.app)
    return server.app
