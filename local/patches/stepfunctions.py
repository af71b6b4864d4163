"""Step Functions fidelity: the ASL interpreter signs with the state machine's role, and names a
Lambda task's errors as AWS does."""

import sys
import threading

import boto3
from botocore.config import Config

from chalicelib.aws import error_code
from local.iam import assume
from local.patches import wiring

_lock = threading.Lock()
_clients: dict = {}  # (region, service, role ARN) -> the interpreter's client


def forget_credentials() -> None:
    """Drop the ASL interpreter's cached clients (their credentials die with a moto reset)."""
    with _lock:
        _clients.clear()


def patch_state_machine_clients():
    """moto's ASL interpreter signs its service calls with a fixed key ("ak"), which IAM
    enforcement rejects; AWS signs them with the state machine's role. Sign with credentials
    issued for that role (Lambda tasks reach the bridge as every Lambda client does:
    `local.patches.awslambda`)."""
    import moto.stepfunctions.parser.asl.utils.boto_client as boto_client_module

    original = boto_client_module.boto_client_for
    _import_task_modules()  # each task module holds its own reference to the function
    for module in list(sys.modules.values()):
        if getattr(module, "boto_client_for", None) is original:
            module.boto_client_for = state_machine_client


def _import_task_modules():
    import importlib
    import pkgutil

    import moto.stepfunctions.parser.asl.component.state.exec.state_task as tasks

    for info in pkgutil.walk_packages(tasks.__path__, tasks.__name__ + "."):
        importlib.import_module(info.name)


def state_machine_client(region: str, service: str, state_credentials=None):
    """A client for the ASL interpreter, signed as the state machine's role."""
    role_arn = getattr(state_credentials, "role_arn", None)
    key = (region, service, role_arn)
    with _lock:
        found = _clients.get(key)
        if found is None:
            keys = assume(role_arn, region, "states-execution") if role_arn else ("ak", "sk", None)
            found = boto3.session.Session().client(
                service,
                region_name=region,
                endpoint_url=wiring.endpoint,
                aws_access_key_id=keys[0],
                aws_secret_access_key=keys[1],
                aws_session_token=keys[2],
                config=Config(
                    parameter_validation=False,
                    retries={"max_attempts": 0, "total_max_attempts": 1},
                    connect_timeout=60,
                    read_timeout=60,
                ),
            )
            found.meta.events.register("after-call", _ensure_request_id)
            _clients[key] = found
    return found


def _ensure_request_id(parsed, **_):
    """moto's authorization failures carry no request id; AWS's always do, and the interpreter's
    error mapping reads it (a KeyError there fails the whole execution with States.Runtime)."""
    metadata = parsed.setdefault("ResponseMetadata", {})
    metadata.setdefault("RequestId", "00000000-0000-0000-0000-000000000000")


def patch_lambda_error_names():
    """moto names every Lambda service error of a task "Exception"; Step Functions names it
    `Lambda.<Code>` (Lambda.TooManyRequestsException…), which is what Retry rules match on.
    (tests/faults: a throttled Invoke is retried and the incident succeeds.)"""
    from moto.stepfunctions.parser.asl.component.common.error_name.custom_error_name import (
        CustomErrorName,
    )
    from moto.stepfunctions.parser.asl.component.state.exec.state_task.state_task_lambda import (
        StateTaskLambda,
    )

    original = StateTaskLambda._from_error

    def _from_error(self, env, ex):
        failure = original(self, env, ex)
        code = error_code(ex)
        if code is not None:
            name = "Lambda." + (code if code.endswith("Exception") else code + "Exception")
            failure.error_name = CustomErrorName(name)
            details = failure.event_details.get("lambdaFunctionFailedEventDetails")
            if details is not None:
                details["error"] = name
        return failure

    StateTaskLambda._from_error = _from_error


def patch_stop_ends_callback_waits():
    """StopExecution ends an execution at once in AWS (ABORTED, nothing more runs), whatever
    its state waits on; moto marks it stopped, but a `.waitForTaskToken` task waits on until
    its token is answered or times out (RUNNING meanwhile), and then ends it FAILED. End
    those waits as the stop is made, and keep the execution ABORTED."""
    from moto.stepfunctions.parser.api import ExecutionStatus
    from moto.stepfunctions.parser.backend.execution import (
        BaseExecutionWorkerCommunication, Execution)

    original_stop = Execution.stop
    original_reflect = BaseExecutionWorkerCommunication._reflect_execution_status

    def stop(self, stop_date, error, cause):
        original_stop(self, stop_date=stop_date, error=error, cause=cause)
        self.exec_status, self.stop_date = ExecutionStatus.ABORTED, stop_date
        worker = self.exec_worker
        if worker is not None and worker.env is not None:
            for endpoint in list(worker.env.callback_pool_manager._pool.values()):
                endpoint.interrupt_all()

    def reflect(self):
        if self.execution.exec_status != ExecutionStatus.ABORTED:
            original_reflect(self)

    Execution.stop = stop
    BaseExecutionWorkerCommunication._reflect_execution_status = reflect
