"""The HTTP edge: the error shape of the API and the validation of what callers send.

Every failure a caller can cause becomes `{"error": "<Code>", "message": "<what to fix>"}` with
a 4xx status naming the offending value; a failure of AWS itself becomes a 503 (try again), so
the API never answers 500.
"""

import json
import logging

from chalice import Response

from chalicelib import incidents

log = logging.getLogger(__name__)


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def _json(status: int, body) -> Response:
    return Response(
        body=json.dumps(body, default=str),
        status_code=status,
        headers={"Content-Type": "application/json"},
    )


def respond(action) -> Response:
    """Run `action` (returning (status, body)) and turn every failure into the API's error shape."""
    try:
        status, body = action()
        return _json(status, body)
    except ApiError as error:
        log.info("refused (%s %s): %s", error.status, error.code, error.message)
        return _json(error.status, {"error": error.code, "message": error.message})
    except Exception:  # AWS or the app failed, not the caller: say so, never a 500
        log.exception("request failed")
        return _json(
            503,
            {"error": "ServiceUnavailable",
             "message": "the service failed to complete the request (logged); try again"},
        )


def incident(incident_id: str, lookup) -> tuple[int, dict]:
    """GET /incidents/{incident_id}."""
    if not incidents.INCIDENT_ID.match(incident_id):
        raise ApiError(
            400, "InvalidIncidentId",
            f"incident id {incident_id!r} is not 'inc-' followed by 12 hexadecimal characters",
        )
    found = lookup(incident_id)
    if found is None:
        raise ApiError(404, "IncidentNotFound", f"no incident {incident_id}")
    return 200, found
