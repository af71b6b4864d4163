"""Read moto's request recorder as (service, action) calls, for request budgets and
no-mutation checks. The recorder is moto's own (`/moto-api/recorder/*`); this only parses it."""

import base64
import json
from dataclasses import dataclass
from urllib.parse import urlsplit

from local.faults import caller, identify


@dataclass(frozen=True)
class Call:
    service: str | None
    action: str | None
    body: str
    caller: str | None = None  # the app's function that sent it (None: not the app)

    @property
    def name(self) -> str:
        return f"{self.service}:{self.action}"


def start(stack) -> None:
    """Forget earlier requests and record from now on."""
    stack.moto_api("recorder/reset-recording", b"")
    stack.moto_api("recorder/start-recording", b"")


def stop(stack) -> None:
    stack.moto_api("recorder/stop-recording", b"")


def calls(stack) -> list[Call]:
    """Every request recorded since `start`, in order."""
    found = []
    for entry in _entries(stack.moto_api("recorder/download-recording").decode()):
        body = entry.get("body") or ""
        if entry.get("body_encoded"):
            body = base64.b64decode(body).decode("utf-8", "replace")
        url = urlsplit(entry["url"])
        service, action = identify(entry["headers"], entry["method"], url.path, url.query, body)
        found.append(Call(service, action, body, caller(entry["headers"])))
    return found


def _entries(recording: str):
    """Each recorded entry. moto's recorder appends from every request thread without a lock:
    two concurrent requests' entries can land on one line, so every object on it is read."""
    decoder = json.JSONDecoder()
    for line in recording.splitlines():
        at = 0
        while line[at:].strip():
            entry, end = decoder.raw_decode(line, len(line) - len(line[at:].lstrip()))
            yield entry
            at = end
