"""The Chalice API served locally, one request at a time, with Lambda-like contexts.

`chalice local` serves requests on threads sharing one `current_request`, so concurrent requests
can read each other's bodies: requests are handled under a lock (a single-threaded server would
stall on keep-alive connections instead). Its contexts carry no function ARN, so each request gets
the bridge's Lambda-like context for the API's function, and runs with that function's own role's
credentials, as in Lambda. As API Gateway's IAM authorization does, each request's `identity`
names the caller of the key it is signed with (`local.iam.identity`); its signature itself is
not checked.
"""

import functools
import re
import threading

from chalice.config import Config
from chalice.local import ChaliceRequestHandler, LocalDevServer, LocalGateway, create_local_server

from local import iam

_one_at_a_time = threading.Lock()


class SerialRequestHandler(ChaliceRequestHandler):
    def __init__(self, request, client_address, server, app_object, config, bridge):
        self.bridge = bridge
        self.local_gateway = LocalGateway(app_object, config)
        self.local_gateway._generate_lambda_context = lambda: bridge.context(
            bridge.api_function_name
        )
        converter = self.local_gateway.event_converter
        converter.create_lambda_event = functools.partial(
            _with_identity, converter.create_lambda_event, bridge.region)
        # BaseHTTPRequestHandler handles the request inside __init__.
        super(ChaliceRequestHandler, self).__init__(request, client_address, server)

    def _generic_handle(self):
        with _one_at_a_time, self.bridge.acting_as(self.bridge.api_function_name):
            ChaliceRequestHandler._generic_handle(self)

    do_GET = do_PUT = do_POST = do_HEAD = do_DELETE = do_PATCH = do_OPTIONS = _generic_handle


def _with_identity(create_event, region: str, method, path, headers, body=None):
    """chalice local's event, with the caller's identity as API Gateway's IAM authorization
    gives it (from the key the request is signed with), so `requested_by` is the caller's."""
    event = create_event(method, path, headers, body)
    signed = {k.lower(): v for k, v in headers.items()}
    key = re.search(r"Credential=([A-Z0-9]+)/", signed.get("authorization", ""))
    if key:
        event["requestContext"]["identity"].update(
            iam.identity(key.group(1), signed.get("x-amz-security-token"), region))
    return event


def make_server(app, stage: str, host: str, port: int, bridge) -> LocalDevServer:
    """A local API server for `app`, bound but not yet serving (call serve_forever on a thread)."""
    config = Config.create(chalice_stage=stage, app_name=app.app_name, chalice_app=app)
    server = create_local_server(app, config, host, port)  # also makes current_request per thread
    server.server.RequestHandlerClass = functools.partial(
        SerialRequestHandler, app_object=app, config=config, bridge=bridge
    )
    server.server.socket.listen(128)  # http.server's backlog of 5 resets concurrent clients
    return server
