"""Cloud Custodian as a GuardDuty responder runs it in Lambda, in one long-lived process: run by
bench/.venv-c7n's python (c7n's own venv; this file imports nothing of the project), in a
directory holding the policy's config.json as `custodian` packages it into the Lambda archive.

It imports `c7n.handler` once (a cold start's import), says `{"ready": <time>}`, then for each
line on stdin, `{"event": <the EventBridge event>}`, calls `c7n.handler.dispatch_event` as the
archive's `custodian_policy.run` does, and answers one line `{"received", "done", "error"}`
(time.monotonic(): one clock for every process on Linux). The first event loads config.json,
asks STS for the account and loads the resource types (its cold start), later ones reuse them
(a warm container). Logs go to stderr, as Lambda's runtime sends them to CloudWatch.

    python bench/c7n_responder.py WORKDIR
"""

import json
import logging
import os
import sys
import time
import traceback
import uuid


class Context:
    """What Lambda hands the handler (c7n reads none of it for a guard-duty policy)."""

    def __init__(self):
        self.aws_request_id = str(uuid.uuid4())
        self.function_name = "custodian-bench"

    @staticmethod
    def get_remaining_time_in_millis() -> int:
        return 900_000


def main() -> int:
    os.chdir(sys.argv[1])
    logging.basicConfig(stream=sys.stderr)  # Lambda's runtime installs a root handler too
    from c7n import handler

    out = sys.stdout
    out.write(json.dumps({"ready": time.monotonic()}) + "\n")
    out.flush()
    for line in sys.stdin:
        received = time.monotonic()
        error = None
        try:
            handler.dispatch_event(json.loads(line)["event"], Context())
        except Exception:  # the parent reports it: a responder that failed isolated nothing
            error = traceback.format_exc()
        out.write(json.dumps({"received": received, "done": time.monotonic(),
                              "error": error}) + "\n")
        out.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
