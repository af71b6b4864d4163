"""`make local`: the embedded AWS and the API, provisioned, until interrupted (Ctrl-C)."""

import logging
import signal
import sys
import threading

from local import stack


def main() -> int:
    logging.basicConfig(level=logging.INFO, stream=sys.stdout,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    running = stack.start(verbose=True)
    print(f"  AWS clients: endpoint_url={running.endpoint}, region {running.region}, any credentials")
    for name, value in sorted(running.names.items()):
        print(f"  {name}={value}")
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
