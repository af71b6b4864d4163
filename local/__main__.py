"""`make local`: the embedded AWS and the API, provisioned, until interrupted (Ctrl-C); scheduled
rules fire at their rate (LOCAL_TICK_SECONDS: every rule at that period instead)."""

import logging
import os
import signal
import sys
import threading

from local import stack


def main() -> int:
    logging.basicConfig(level=logging.INFO, stream=sys.stdout,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    running = stack.start(verbose=True)
    running.start_ticker()
    print(f"  AWS clients: endpoint_url={running.endpoint}, region {running.region}, any credentials")
    for name, value in sorted(running.names.items()):
        print(f"  {name}={value}")
    period = os.environ.get("LOCAL_TICK_SECONDS")
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
