"""Further findings on one contained instance, through the entry function as EventBridge hands
them to it (GuardDuty keeps updating a finding on a contained instance): the handler's time and
requests for the 1st, 100th, 1,000th and 5,000th further finding, each delivered alone; the
findings between them are delivered 8 at a time. Afterwards, what the incident shows of them
through the local API (GET /incidents/{id}, and GET /incidents/{id}/findings where the API has
it), so that a finding not recorded shows.
"""

import json
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from deploy import names

from bench import remediation
from bench.burst import HANDLER, envelope


@dataclass
class Probe:
    nth: int  # the nth further finding
    seconds: float  # the handler's run
    requests: int  # every AWS request it sent
    decision: str  # what it answered ("recorded"), or the error it raised


@dataclass
class Further:
    probes: list[Probe]
    delivered: int  # further findings in all
    errors: int  # deliveries that did not end "recorded"
    per_second: float  # while filling in between the probes
    shown: dict  # what the incident shows of its findings (see `finding_fields`)
    listed: int | None  # findings GET /incidents/{id}/findings pages through; None: no such route

    @property
    def kept(self) -> int:
        """Further findings the incident holds: those its findings route lists, else those on
        the incident itself."""
        return self.listed if self.listed is not None else self.shown.get("findings", 0)


def finding_fields(incident: dict) -> dict[str, int]:
    """The incident's fields about its findings, as counts: a list by its length, a number as
    it is (e.g. findings: 20, findings_not_kept: 4980)."""
    shown = {}
    for key, value in sorted(incident.items()):
        if "finding" not in key or isinstance(value, bool):
            continue
        if isinstance(value, list):
            shown[key] = len(value)
        elif isinstance(value, int):
            shown[key] = value
    return shown


def api_get(stack, path: str, timeout: float = 60) -> tuple[int, dict]:
    """A GET of the local API; (status, its JSON body, or {} for an error's)."""
    try:
        with urllib.request.urlopen(f"{stack.api_url}{path}", timeout=timeout) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as error:
        return error.code, {}


def listed_findings(stack, incident_id: str) -> int | None:
    """How many findings GET /incidents/{id}/findings pages through; None when the API answers
    that path with no list of findings (the route does not exist)."""
    count, token = 0, None
    while True:
        query = f"?next_token={urllib.request.quote(token)}" if token else ""
        status, body = api_get(stack, f"/incidents/{incident_id}/findings{query}")
        if status != 200 or not isinstance(body.get("findings"), list):
            return None if count == 0 and token is None else count
        count += len(body["findings"])
        token = body.get("next_token")
        if not token:
            return count


def run(stack, clock, at=(1, 100, 1000, 5000), workers: int = 8) -> Further:
    stack.reset()
    victim = remediation.SHAPES[remediation.CONTAINMENT_SHAPE].make(stack)
    function = names.function(stack.stage, HANDLER)
    serial = iter(range(10**9))

    def deliver(_=None) -> tuple[str, float]:
        event = envelope(victim["instance_id"], f"further-{next(serial)}")
        started = time.monotonic()
        payload, error = stack.bridge.invoke(function, event, "eventbridge")
        return error or payload.get("decision"), time.monotonic() - started

    opened, _ = stack.bridge.invoke(function, envelope(victim["instance_id"], "opening"),
                                    "eventbridge")
    if opened.get("decision") != "acted":
        raise RuntimeError(f"the first finding was not acted on: {opened}")
    remediation.wait_execution(stack, opened["execution_arn"])
    stack.bridge.wait_idle()

    probes, decisions, filling, delivered = [], [], 0.0, 0
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for nth in sorted(at):
            started = time.monotonic()
            decisions += list(d for d, _ in pool.map(deliver, range(nth - 1 - delivered)))
            filling += time.monotonic() - started
            clock.reset()
            decision, seconds = deliver()
            probes.append(Probe(nth, seconds, len(clock.flights()), decision))
            decisions.append(decision)
            delivered = nth
    stack.bridge.wait_idle()
    status, incident = api_get(stack, f"/incidents/{opened['incident_id']}")
    if status != 200:
        raise RuntimeError(f"GET /incidents/{opened['incident_id']} answered {status}")
    fill = delivered - len(probes)
    return Further(probes, delivered, sum(d != "recorded" for d in decisions),
                   fill / filling if filling else 0.0, finding_fields(incident),
                   listed_findings(stack, opened["incident_id"]))
