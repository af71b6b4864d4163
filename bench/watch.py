"""The tamper watch kept out of a measure of the responder's own requests.

On the embedded AWS CloudTrail delivers at once, so the swaps of the very first cut start
`on_tampering` invocations during the cut: their reads would be counted as the measured
responder's, and they compete with it for the cores. On AWS, CloudTrail delivers minutes later.
The watch's own cost is measured apart (bench/tamper.py).
"""

import contextlib

from deploy import names


@contextlib.contextmanager
def without_tamper_watch(stack):
    """The tamper watch's rule disabled inside the block, enabled again after it."""
    events = stack.client("events")
    rule = names.rule(stack.stage, "on_tampering")
    events.disable_rule(Name=rule)
    try:
        yield
    finally:
        events.enable_rule(Name=rule)
