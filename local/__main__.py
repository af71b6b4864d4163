"""`make local`: the embedded AWS and the API, provisioned, until interrupted (Ctrl-C); scheduled
rules fire at their rate (LOCAL_TICK_SECONDS: every rule at that period instead). It writes the
environment another process needs to use them to build/local.env (`chalice local`: README)."""

import logging
import os
import shlex
import signal
import sys
import threading

from local import stack

ENV_FILE = os.path.join("build", "local.env")


def write_environment(running) -> None:
    """`export NAME=value` lines: `. build/local.env` points a shell at this embedded AWS."""
    os.makedirs(os.path.dirname(ENV_FILE), exist_ok=True)
    with open(ENV_FILE, "w") as handle:
        handle.writelines(f"export {name}={shlex.quote(value)}\n"
                          for name, value in sorted(running.client_environment().items()))


def main() -> int:
    logging.basicConfig(level=logging.INFO, stream=sys.stdout,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    running = stack.start(verbose=True)
    running.start_ticker()
    print(f"  AWS clients: endpoint_url={running.endpoint}, region {running.region}, any credentials")
    for name, value in sorted(running.names.items()):
        print(f"  {name}={value}")
    period = os.environ.get("LOCAL_TICK_SECONDS")
    write_environment(running)
    print(f"  {ENV_FILE}: `. {ENV_FILE}` points a shell (chalice local, the AWS CLI) at it")
    print(f"  scheduled rules fire {'every ' + period + ' s' if period else 'at their rate'}"
          " (LOCAL_TICK_SECONDS); EC2 and IAM calls reach EventBridge as CloudTrail events")
    print("Ctrl-C to stop.", flush=True)
    stopped = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopped.set())
    try:
        stopped.wait()
    except KeyboardInterrupt:
        pass
    running.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
