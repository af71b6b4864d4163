"""The embedded AWS: one function, `start()`, used by the tests, `make local` and `make demo`.

moto runs in-process in server mode (Step Functions executing the real definition), behind the
fault-injection middleware and CloudTrail's (`local.cloudtrail`: EC2 and IAM calls become events
on the default bus); the fidelity patches are applied; Lambda invocations go to the app's own
handlers through the bridge; the app's resources are provisioned; and the Chalice API is served
with the stage's settings, overridden by the process environment. Scheduled rules fire on
`tick()`, or at their rate once `start_ticker()` is called (`local.schedule`).
"""

import contextlib
import json
import logging
import os
import socket
import tempfile
import threading
import time
import urllib.request

from deploy import statemachine
from local import iam, patches, provision, scenario, schedule
from local.bridge import LambdaBridge
from local.cloudtrail import CloudTrailMiddleware
from local.faults import CONTROL_PATH, FaultMiddleware, FaultRegistry

REGION = "us-east-1"
ACCOUNT = "123456789012"  # moto's default account
HOST = "127.0.0.1"
PROJECT_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def stage_environment(stage: str, environ=None, project_dir: str = PROJECT_DIR) -> dict:
    """The settings a function of `stage` sees: the stage's values, overridden by `environ`.

    `chalice local` does the opposite (the stage's values win over the shell's); here any setting
    given in the environment of `make local` or a test wins, as the README promises.
    """
    from chalicelib.settings import DEFAULTS

    with open(os.path.join(project_dir, ".chalice", "config.json")) as handle:
        config = json.load(handle)
    values = dict(config.get("environment_variables", {}))
    values.update(config["stages"][stage].get("environment_variables", {}))
    environ = os.environ if environ is None else environ
    for name in DEFAULTS:
        if name in environ:
            values[name] = environ[name]
    return values


class Stack:
    """A running embedded AWS with the app provisioned on it."""

    def __init__(self, stage, moto_server, endpoint, api_server, api_url, bridge, faults, names,
                 settings_env=None):
        self.stage = stage
        self.settings_env = settings_env or {}  # what reset() returns the app's settings to
        self.region = REGION
        self.account = ACCOUNT
        self.endpoint = endpoint
        self.api_url = api_url
        self.bridge = bridge
        self.faults = faults
        self.names = names  # what provisioning created: topic_arn, table, state_machine_arn…
        self._moto_server = moto_server
        self._api_server = api_server
        self._lock = threading.Lock()
        self._session = None
        self._clients = {}
        self._keys = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}
        self._admin_keys = None  # made, with the functions' roles, by the first enforce_iam()
        self._ticker = None

    def client_environment(self) -> dict[str, str]:
        """What another process needs to use this embedded AWS and the app's resources on it,
        as `chalice local --stage dev`, the CLI and `make drill` do (`make local` writes it to
        build/local.env)."""
        from quarantine_cli import API_URL_VARIABLE

        served = {API_URL_VARIABLE: self.api_url} if self.api_url else {}
        return {"AWS_ENDPOINT_URL": self.endpoint, "AWS_REGION": self.region,
                "AWS_DEFAULT_REGION": self.region, "AWS_ACCESS_KEY_ID": "local",
                "AWS_SECRET_ACCESS_KEY": "local", **served, **self.names}

    def client(self, service: str, region: str = REGION, account: str = ACCOUNT):
        """A boto3 client on the embedded AWS (no retries to hide faults), in `account` (moto
        switches accounts on AssumeRole: another account is reached through a role there)."""
        import boto3
        from botocore.config import Config

        key = (service, region, account)
        with self._lock:
            if key not in self._clients:
                if self._session is None:
                    self._session = boto3.session.Session()
                keys = self._keys
                if account != ACCOUNT:
                    issued = self._session.client(
                        "sts", region_name=region, endpoint_url=self.endpoint, **keys
                    ).assume_role(RoleArn=f"arn:aws:iam::{account}:role/admin",
                                  RoleSessionName="local")["Credentials"]
                    keys = {"aws_access_key_id": issued["AccessKeyId"],
                            "aws_secret_access_key": issued["SecretAccessKey"],
                            "aws_session_token": issued["SessionToken"]}
                self._clients[key] = self._session.client(
                    service, region_name=region, endpoint_url=self.endpoint,
                    config=Config(retries={"mode": "standard", "total_max_attempts": 1}), **keys)
            return self._clients[key]

    @contextlib.contextmanager
    def enforce_iam(self):
        """moto's IAM enforcement on inside this block: each function is then held to its own
        role's policy, the state machine to its role's, and `client()` acts as an administrator
        user. Everything is as before afterwards (other tests of this worker are unaffected);
        `local.iam.authorizations` holds the block's decisions. The functions' roles are made
        here, not with the rest: without enforcement moto never reads them (and a reset is
        faster without)."""
        previous = self._keys
        if self._admin_keys is None:
            self.bridge.roles.provision(self.client("iam"))
            access_key, secret = iam.admin_keys(self.client("iam"))
            self._admin_keys = {"aws_access_key_id": access_key, "aws_secret_access_key": secret}
        self._use_keys(self._admin_keys)
        try:
            with iam.enforcement():
                yield
        finally:
            self._use_keys(previous)

    def _use_keys(self, keys: dict) -> None:
        with self._lock:
            self._keys = keys
            self._clients = {}

    def configure(self, **settings: str) -> None:
        """Set settings for the app (as `make local`'s environment would) and reload them."""
        from chalicelib import settings as app_settings

        os.environ.update({name: str(value) for name, value in settings.items()})
        app_settings.reload()
        if "CHATBOT_TOPIC_ARN" in settings:  # the state machine publishes the cards itself
            provision.state_machine(self, statemachine.Topics(self.names["TOPIC_ARN"],
                                                 settings["CHATBOT_TOPIC_ARN"]))
        if app_settings.get().security_hub:  # its custom action, as a redeploy makes it
            provision.security_hub(self)
        if self._admin_keys is not None:  # the functions' roles exist: as a redeploy would
            self.bridge.roles.grant(self.client("iam"))

    def manage_with_ssm(self, instance_id: str) -> None:
        """Make the instance look SSM-managed (an online agent), as the SSM agent would."""
        scenario.manage_with_ssm(instance_id)

    def hang_ssm_commands(self) -> None:
        """Commands sent from now on never finish (their agents upload, then hang)."""
        scenario.hang_ssm_commands()

    def power_off(self, instance_id: str) -> str:
        """The instance's guest powers it off now: stopped or terminated, as its
        instanceInitiatedShutdownBehavior says (`local.scenario.power_off`); returns its state.
        At a given request: `stack.faults.when(..., run=lambda: stack.power_off(instance_id))`."""
        return scenario.power_off(instance_id, self.account, self.region)

    def hold_snapshots(self, polls: int) -> None:
        """New snapshots read `pending` for their first `polls` DescribeSnapshots calls."""
        scenario.hold_snapshots(polls)

    def moto_api(self, path: str, payload=None):
        """Call moto's own API (reset, config, recorder…) on this server."""
        data = None if payload is None else (
            payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        )
        request = urllib.request.Request(
            f"{self.endpoint}/moto-api/{path}", data=data,
            method="GET" if data is None else "POST", headers={"Content-Type": "text/plain"},
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.read()

    def reset(self) -> None:
        """Back to a freshly provisioned stack: moto's state, faults, holds and counters."""
        from chalicelib import accounts, aws

        self.bridge.wait_idle()
        self.faults.reset()
        scenario.reset()
        self.moto_api("reset", b"")
        patches.forget_credentials()
        self.bridge.roles.forget()
        self._admin_keys = None
        aws.reset()
        accounts.forget()
        self._clients = {key: c for key, c in self._clients.items() if key[2] == ACCOUNT}
        self._restore_settings()
        self._provision()

    def _provision(self) -> None:
        """Provision the app; forget the invocations provisioning led to (the CloudTrail events
        of its own calls reaching the app's rules)."""
        self.names = provision.provision(self)
        self.bridge.wait_idle()
        self.bridge.forget()

    def tick(self, rule: str | None = None) -> dict:
        """Fire the scheduled rule `rule` ("sweep", as the app names it, or the rule's name), or
        every one, now, as EventBridge would; wait for the functions. Returns what each returned
        (Lambda's error payload if it raised), by its name in the app: {"sweep": ...}."""
        return schedule.tick(self, rule)

    def start_ticker(self, environ=None) -> None:
        """Fire each scheduled rule at its own rate from now on, in the background, until the
        stack stops; LOCAL_TICK_SECONDS in `environ` (default: the process's) sets one period,
        in seconds, for every rule."""
        environ = os.environ if environ is None else environ
        period = float(environ["LOCAL_TICK_SECONDS"]) if environ.get("LOCAL_TICK_SECONDS") else None
        self.stop_ticker()
        self._ticker = schedule.Ticker(self, period).start()

    def stop_ticker(self) -> None:
        if self._ticker is not None:
            self._ticker.stop()
            self._ticker = None

    def _restore_settings(self) -> None:
        from chalicelib import settings as app_settings

        for name in app_settings.DEFAULTS:
            os.environ.pop(name, None)
        os.environ.update(self.settings_env)
        app_settings.reload()

    def stop(self) -> None:
        self.stop_ticker()
        if self._api_server is not None:
            self._api_server.shutdown()
        self._moto_server.stop()


class _FaultableMotoServer:
    """moto's ThreadedMotoServer, with the fault middleware in front of its WSGI app, and
    CloudTrail's events made of what moto answers."""

    def __init__(self, port: int, faults: FaultRegistry):
        from moto.moto_server.werkzeug_app import (
            DomainDispatcherApplication,
            MotoRequestHandler,
            create_backend_app,
        )
        from werkzeug.serving import make_server

        app = FaultMiddleware(CloudTrailMiddleware(DomainDispatcherApplication(create_backend_app)),
                              faults)
        self.server = make_server(HOST, port, app, threaded=True, request_handler=MotoRequestHandler)
        self.port = self.server.server_address[1]
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True, name="moto")
        self._thread.start()

    def stop(self):
        self.server.shutdown()
        self._thread.join()


def start(stage: str = "dev", aws_port: int | None = None, api_port: int | None = None,
          environ=None, serve_api: bool = True, verbose: bool = False) -> Stack:
    """Start the embedded AWS and the local API; ports from LOCAL_AWS_PORT / LOCAL_API_PORT
    (default 5000 / 8000; 0 picks a free port). Settings: the stage's, then `environ`'s."""
    environ = dict(os.environ if environ is None else environ)
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one line per request otherwise
    aws_port = int(environ.get("LOCAL_AWS_PORT", 5000)) if aws_port is None else aws_port
    api_port = int(environ.get("LOCAL_API_PORT", 8000)) if api_port is None else api_port

    faults = FaultRegistry()
    moto_server = _FaultableMotoServer(aws_port, faults)
    endpoint = f"http://{HOST}:{moto_server.port}"
    os.environ.update(
        {
            "MOTO_PORT": str(moto_server.port),  # the ASL interpreter calls localhost:$MOTO_PORT
            "AWS_ENDPOINT_URL": endpoint,
            "AWS_ACCESS_KEY_ID": environ.get("AWS_ACCESS_KEY_ID", "testing"),
            "AWS_SECRET_ACCESS_KEY": environ.get("AWS_SECRET_ACCESS_KEY", "testing"),
            "AWS_DEFAULT_REGION": REGION,
            "AWS_REGION": REGION,
        }
    )
    os.environ.pop("AWS_PROFILE", None)
    os.environ.pop("AWS_SESSION_TOKEN", None)
    settings_env = stage_environment(stage, environ)
    _point_recorder_at_temp_file()

    import app as chalice_app_module  # the app reads its settings lazily, after the env is set
    from chalicelib import aws

    aws.reset()
    bridge = LambdaBridge(chalice_app_module.app, stage, REGION, ACCOUNT, faults)
    patches.apply(bridge, endpoint)
    stack = Stack(stage, moto_server, endpoint, None, None, bridge, faults, {}, settings_env)
    stack.moto_api("config", {"stepfunctions": {"execute_state_machine": True}})
    stack._restore_settings()
    stack._provision()

    if serve_api:
        from local.api import make_server

        api_server = make_server(chalice_app_module.app, stage, HOST, api_port, bridge)
        threading.Thread(target=api_server.server.serve_forever, daemon=True, name="api").start()
        stack._api_server = api_server
        stack.api_url = f"http://{HOST}:{api_server.server.server_address[1]}"
    _wait_until_answering(stack)
    if verbose:
        print(f"ready: embedded AWS at {stack.endpoint}, API at {stack.api_url}", flush=True)
    return stack


def _point_recorder_at_temp_file():
    """moto records requests to ./moto_recording by default; keep them out of the work tree."""
    from moto.moto_api import recorder

    if recorder._location == "moto_recording":
        handle, path = tempfile.mkstemp(prefix="moto-recording-", suffix=".jsonl")
        os.close(handle)
        recorder._location = path


def _wait_until_answering(stack: Stack, timeout: float = 30.0) -> None:
    urls = [f"{stack.endpoint}{CONTROL_PATH}"]
    if stack.api_url:
        urls.append(stack.api_url)
    deadline = time.monotonic() + timeout
    for url in urls:
        while True:
            try:
                host, port = url.split("//")[1].split("/")[0].split(":")
                with socket.create_connection((host, int(port)), timeout=1):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{url} did not answer within {timeout} s") from None
                time.sleep(0.05)
