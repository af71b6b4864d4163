"""The Chalice API served locally, one request at a time, with Lambda-like contexts.

`chalice local` serves requests on threads sharing one `current_request`, so concurrent requests
can read each other's bodies: requests are handled under a lock (a single-threaded server would
stall on keep-alive connections instead). Its contexts carry no function ARN, so each request gets
the bridge's Lambda-like context for the API's function, and runs with that function's own role's
credentials, as in Lambda.
"""

import functools
import threading

from chalice.config import Config
from chalice.local import ChaliceRequestHandler, LocalDevServer, LocalGateway, create_local_server

_one_at_a_time = threading.Lock()


class SerialRequestHandler(ChaliceRequestHandler):
    def __init__(self, request, client_address, server, app_object, config, bridge):
        self.bridge = bridge
        self.local_gateway = LocalGateway(app_object, config)
        self.local_gateway._generate_lambda_context = lambda: bridge.context(
            bridge.api_function_name
        )
        # BaseHTTPRequestHandler handles the request inside __init__.
        super(ChaliceRequestHandler, self).__init__(request, client_address, server)

    def _generic_handle(self):
        with _one_at_a_time, self.bridge.acting_as(self.bridge.api_function_name):
            ChaliceRequestHandler._generic_handle(self)

    do_GET = do_PUT = do_POST = do_HEAD = do_DELETE = do_PATCH = do_OPTIONS = _generic_handle


def make_server(app, stage: str, host: str, port: int, bridge) -> LocalDevServer:
    """A local API server for `app`, bound but not yet serving (call serve_forever on a thread)."""
    config = Config.create(chalice_stage=stage, app_name=app.app_name, chalice_app=app)
    server = create_local_server(app, config, host, port)  # also makes current_request per thread
    server.server.RequestHandlerClass = functools.partial(
        SerialRequestHandler, app_object=app, config=config, bridge=bridge
    )
    server.server.socket.listen(128)  # http.server's backlog of 5 resets concurrent clients
    return server
