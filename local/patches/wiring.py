"""What the stack's patches answer through: the running stack's Lambda bridge and endpoint.

Set by `local.patches.apply()`; None under plain `mock_aws`, where those patches are not applied.
"""

bridge = None  # the LambdaBridge that answers Lambda invocations
endpoint = None  # the embedded AWS's own URL, for the ASL interpreter's clients


def point_at(new_bridge, new_endpoint: str) -> None:
    global bridge, endpoint
    bridge, endpoint = new_bridge, new_endpoint
