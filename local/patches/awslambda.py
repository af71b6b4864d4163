"""Lambda fidelity: an Invoke from any client in the process reaches the app's functions."""

from local.patches import wiring


def patch_invocations():
    """moto runs no function code without Docker; AWS runs the function. Every Lambda client
    made in this process (a step's own, the ASL interpreter's, a test's) has its Invoke answered
    by the stack's bridge: authorized as the caller (`local.iam.check`), run as the function,
    with its own role's credentials. Under plain `mock_aws` (no bridge) the call goes on to moto."""
    import botocore.session

    original = botocore.session.Session.create_client

    def create_client(self, service_name, *args, **kwargs):
        client = original(self, service_name, *args, **kwargs)
        if service_name == "lambda":
            client.meta.events.register("before-send.lambda.Invoke", _answer)
        return client

    botocore.session.Session.create_client = create_client


def _answer(**kwargs):
    return wiring.bridge.answer(**kwargs) if wiring.bridge is not None else None
