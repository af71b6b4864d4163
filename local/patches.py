"""Fidelity patches: where moto (pinned in requirements-dev.txt) differs from AWS, make it agree.

Each patch is small, applied once per process by `apply()`, and has a test in tests/local that
fails on plain moto. The product's code is never bent to moto; moto is bent to AWS.
"""

import copy
import json
import sys
import threading
from datetime import datetime, timezone

import boto3
from botocore.config import Config

from local.iam import assume, authorizations

_applied = False
_lock = threading.Lock()
_bridge = None  # the LambdaBridge that answers Lambda invocations
_endpoint = None  # the embedded AWS's own URL, for the ASL interpreter's clients
_snapshot_hold = {"polls": 0}
_ssm_managed: set = set()  # instance ids with an (imaginary) online SSM agent
_state_clients: dict = {}


def apply(bridge, endpoint: str) -> None:
    """Install every patch (once) and point them at this stack's bridge and endpoint."""
    global _applied, _bridge, _endpoint
    with _lock:
        _bridge, _endpoint = bridge, endpoint
        _state_clients.clear()
        if _applied:
            return
        _patch_interface_groups()
        _patch_instance_attributes()
        _patch_dynamodb_transaction_backup()  # first: the atomic writes' lock wraps it
        _patch_dynamodb_atomic_writes()
        _patch_console()
        _patch_ssm()
        _patch_snapshots()
        _patch_state_machine_clients()
        _patch_lambda_error_names()
        _patch_event_envelope()
        _patch_lambda_targets()
        _patch_retain_except_on_create()
        _patch_state_machines_from_cloudformation()
        _patch_iam_resources()
        _patch_iam_implied_actions()
        _patch_iam_json_errors()
        _applied = True


def manage_with_ssm(instance_id: str) -> None:
    """Make `instance_id` look SSM-managed (an online agent) to DescribeInstanceInformation."""
    _ssm_managed.add(instance_id)


def forget_ssm() -> None:
    _ssm_managed.clear()


def forget_credentials() -> None:
    """Drop the ASL interpreter's cached clients (their credentials die with a moto reset)."""
    with _lock:
        _state_clients.clear()


# -- EC2: a primary interface's groups are its own -------------------------------------------
def _patch_interface_groups():
    """moto reads a primary interface's groups as the union of its own and the instance's
    launch-time groups, so a swap never removes the old ones; AWS reads back exactly what was set.
    Setting the primary interface's groups also sets the instance's, as in AWS, and
    `ModifyInstanceAttribute Groups=` replaces the primary interface's groups instead of adding.
    """
    from moto.ec2.models.elastic_network_interfaces import NetworkInterface, NetworkInterfaceBackend
    from moto.ec2.models.instances import InstanceBackend

    NetworkInterface.group_set = property(lambda self: list(self._group_set))

    original_modify_eni = NetworkInterfaceBackend.modify_network_interface_attribute

    def modify_network_interface_attribute(self, eni_id, group_ids, *args, **kwargs):
        original_modify_eni(self, eni_id, group_ids, *args, **kwargs)
        eni = self.get_network_interface(eni_id)
        if group_ids and eni.instance is not None and eni.instance.nics.get(0) is eni:
            eni.instance.security_groups = list(eni._group_set)

    NetworkInterfaceBackend.modify_network_interface_attribute = modify_network_interface_attribute

    original_modify_instance = InstanceBackend.modify_instance_security_groups

    def modify_instance_security_groups(self, instance_id, new_group_id_list):
        instance = original_modify_instance(self, instance_id, new_group_id_list)
        if 0 in instance.nics:
            instance.nics[0]._group_set = list(instance.security_groups)
        return instance

    InstanceBackend.modify_instance_security_groups = modify_instance_security_groups


def _patch_instance_attributes():
    """moto ignores `ModifyInstanceAttribute InstanceInitiatedShutdownBehavior=` and, worse, falls
    through to its groups handler with no groups, wiping the instance's security groups. AWS sets
    the attribute and leaves the groups alone."""
    from moto.ec2.responses.instances import InstanceResponse

    original_dot_value = InstanceResponse._dot_value_instance_attribute_handler
    original_groups = InstanceResponse._security_grp_instance_attribute_handler

    def dot_value(self):
        value = self._get_param("InstanceInitiatedShutdownBehavior.Value")
        if value is None:
            return original_dot_value(self)
        self.error_on_dryrun()
        self.ec2_backend.modify_instance_attribute(
            self._get_param("InstanceId"), "instance_initiated_shutdown_behavior", value)
        return True

    def groups(self):
        return bool(self._get_param("Groups", [])) and original_groups(self)

    InstanceResponse._dot_value_instance_attribute_handler = dot_value
    InstanceResponse._security_grp_instance_attribute_handler = groups


# A 1x1 JPEG: what GetConsoleScreenshot returns base64-encoded in ImageData.
TINY_JPEG = (
    "/9j/4AAQSkZJRgABAQEASABIAAD/2wBDAP//////////////////////////////////////////////////////"
    "////////////////////////////////wgALCAABAAEBAREA/8QAFBABAAAAAAAAAAAAAAAAAAAAAP/aAAgBAQAB"
    "PxA="
)


def _patch_console():
    """moto answers GetConsoleScreenshot with a 500; AWS returns a base64 JPEG."""
    from moto.ec2.responses.general import General

    def get_console_screenshot(self):
        from moto.core.responses import ActionResult

        instance = self.ec2_backend.get_instance(self._get_param("InstanceId"))
        return ActionResult({"InstanceId": instance.id, "ImageData": TINY_JPEG})

    General.get_console_screenshot = get_console_screenshot


def _patch_ssm():
    """moto has no DescribeInstanceInformation (500) and its SendCommand succeeds for any
    instance; in AWS only instances with an online agent are listed and can run commands."""
    from moto.core.exceptions import JsonRESTError
    from moto.core.responses import ActionResult
    from moto.ssm.responses import SimpleSystemManagerResponse

    def describe_instance_information(self):
        wanted = None
        for item in self._get_param("Filters", []) or []:
            if item.get("Key") == "InstanceIds":
                wanted = set(item.get("Values", []))
        listed = sorted(i for i in _ssm_managed if wanted is None or i in wanted)
        return ActionResult({"InstanceInformationList": [
            {"InstanceId": i, "PingStatus": "Online", "PlatformType": "Linux",
             "ResourceType": "EC2Instance"} for i in listed]})

    original_send = SimpleSystemManagerResponse.send_command

    def send_command(self):
        unmanaged = [i for i in self._get_param("InstanceIds", []) if i not in _ssm_managed]
        if unmanaged:
            raise JsonRESTError("InvalidInstanceId",
                                f"Instances {unmanaged} not in a valid state for account")
        result = original_send(self)
        _write_agent_output(self, result.result["Command"]["CommandId"])
        return result

    def _write_agent_output(response, command_id):
        """The agent writes each instance's output under OutputS3KeyPrefix, as in AWS."""
        from moto.s3.models import s3_backends

        bucket = response._get_param("OutputS3BucketName")
        if not bucket:
            return
        prefix = response._get_param("OutputS3KeyPrefix", "").rstrip("/")
        backend = s3_backends[response.current_account]["aws"]
        for instance in response._get_param("InstanceIds", []):
            key = f"{prefix}/{command_id}/{instance}/awsrunShellScript/0.awsrunShellScript/stdout"
            backend.put_object(bucket, key.lstrip("/"), b"memory image")

    SimpleSystemManagerResponse.describe_instance_information = describe_instance_information
    SimpleSystemManagerResponse.send_command = send_command


def _patch_dynamodb_atomic_writes():
    """moto's threaded server applies concurrent writes to one item without isolation, so
    concurrent `list_append` updates lose entries; DynamoDB applies each write atomically.
    Serialize moto's item writes."""
    from moto.dynamodb.models import DynamoDBBackend

    writes = threading.RLock()  # transact_write_items calls put_item itself
    for name in ("put_item", "update_item", "delete_item", "transact_write_items"):
        original = getattr(DynamoDBBackend, name)

        def atomic(self, *args, _original=original, **kwargs):
            with writes:
                return _original(self, *args, **kwargs)

        setattr(DynamoDBBackend, name, atomic)


class _TablesNotCopied:
    """`copy` for moto's transaction backup: tables are kept as they are (their named items are
    backed up instead); anything else is copied as usual."""

    def __init__(self, real):
        self._real = real

    def deepcopy(self, value, *args):
        from moto.dynamodb.models import Table

        return value if isinstance(value, Table) else self._real.deepcopy(value, *args)

    def __getattr__(self, name):
        return getattr(self._real, name)


def _patch_dynamodb_transaction_backup():
    """moto backs a transaction up by deep-copying every table it names, whole: its cost grows
    with the table (a burst of 1,000 findings slowed to 2 a second and 3.8 GB). Back up only
    the items the transaction names, and put exactly those back when it is cancelled."""
    from moto.dynamodb import models

    original = models.DynamoDBBackend.transact_write_items

    def transact_write_items(self, transact_items):
        saved = []
        for entry in transact_items:
            _, op = next(iter(entry.items()))
            table = self.tables.get(op.get("TableName"))
            if table is None:
                continue
            key = op.get("Key") or {name: op["Item"][name] for name in (
                table.hash_key_attr, table.range_key_attr) if name and name in op.get("Item", {})}
            item = self.get_item(table.name, key)
            saved.append((table.name, key, copy.deepcopy(item.to_json()["Attributes"])
                          if item else None))
        real_copy, models.copy = models.copy, _TablesNotCopied(models.copy)
        try:
            return original(self, transact_items)
        except Exception:
            for table_name, key, attributes in saved:
                if attributes is not None:
                    self.put_item(table_name, attributes)
                elif self.get_item(table_name, key) is not None:
                    self.delete_item(table_name, key)
            raise
        finally:
            models.copy = real_copy

    models.DynamoDBBackend.transact_write_items = transact_write_items


# -- EBS: snapshots that take time -------------------------------------------------------------
def hold_snapshots(polls: int) -> None:
    """Snapshots created from now on read `pending` for their first `polls` DescribeSnapshots."""
    _snapshot_hold["polls"] = max(0, int(polls))


def _patch_snapshots():
    """moto completes snapshots at once and CreateSnapshots returns no State; in AWS a snapshot
    is `pending` for a while and every CreateSnapshots entry carries its State and Progress."""
    from moto.ec2.models.elastic_block_store import EBSBackend, Snapshot

    original_init = Snapshot.__init__

    def __init__(self, *args, **kwargs):
        self._hold_polls = _snapshot_hold["polls"]
        self._polls_seen = 0
        original_init(self, *args, **kwargs)

    def get_status(self):
        # describe_snapshots counts a poll before the response is rendered: poll n sees n.
        if self._hold_polls and self._polls_seen <= self._hold_polls:
            return "pending"
        return self._status

    def set_status(self, value):
        self._status = value

    Snapshot.__init__ = __init__
    Snapshot.status = property(get_status, set_status)
    Snapshot.state = property(get_status)
    Snapshot.progress = property(lambda self: "100%" if get_status(self) == "completed" else "0%")

    original_describe = EBSBackend.describe_snapshots

    def describe_snapshots(self, snapshot_ids=None, filters=None):
        matches = original_describe(self, snapshot_ids=snapshot_ids, filters=filters)
        for snapshot in matches:
            snapshot._polls_seen += 1
        return matches

    EBSBackend.describe_snapshots = describe_snapshots


# -- Step Functions: the interpreter signs with the state machine's role ------------------------
def _patch_state_machine_clients():
    """moto's ASL interpreter signs its service calls with a fixed key ("ak"), which IAM
    enforcement rejects; AWS signs them with the state machine's role. Sign with credentials
    issued for that role, and answer Lambda tasks through the in-process bridge."""
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
        found = _state_clients.get(key)
        if found is None:
            keys = assume(role_arn, region, "states-execution") if role_arn else ("ak", "sk", None)
            found = boto3.session.Session().client(
                service,
                region_name=region,
                endpoint_url=_endpoint,
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
            if service == "lambda" and _bridge is not None:
                _bridge.install(found)
            _state_clients[key] = found
    return found


def _patch_lambda_error_names():
    """moto names every Lambda service error of a task "Exception"; Step Functions names it
    `Lambda.<Code>` (Lambda.TooManyRequestsException…), which is what Retry rules match on.
    (tests/faults: a throttled Invoke is retried and the incident succeeds.)"""
    from botocore.exceptions import ClientError
    from moto.stepfunctions.parser.asl.component.common.error_name.custom_error_name import (
        CustomErrorName,
    )
    from moto.stepfunctions.parser.asl.component.state.exec.state_task.state_task_lambda import (
        StateTaskLambda,
    )

    original = StateTaskLambda._from_error

    def _from_error(self, env, ex):
        failure = original(self, env, ex)
        if isinstance(ex, ClientError):
            code = ex.response["Error"]["Code"]
            name = "Lambda." + (code if code.endswith("Exception") else code + "Exception")
            failure.error_name = CustomErrorName(name)
            details = failure.event_details.get("lambdaFunctionFailedEventDetails")
            if details is not None:
                details["error"] = name
        return failure

    StateTaskLambda._from_error = _from_error


def _ensure_request_id(parsed, **_):
    """moto's authorization failures carry no request id; AWS's always do, and the interpreter's
    error mapping reads it (a KeyError there fails the whole execution with States.Runtime)."""
    metadata = parsed.setdefault("ResponseMetadata", {})
    metadata.setdefault("RequestId", "00000000-0000-0000-0000-000000000000")


# -- EventBridge: the envelope, and Lambda targets ---------------------------------------------
def _patch_event_envelope():
    """moto's default target input drops the envelope's `account`, which Chalice's event parsing
    (and every consumer of the EventBridge envelope) requires."""
    from moto.events.utils import EventTemplateParser

    template = EventTemplateParser.DEFAULT_EVENT_INPUT_TEMPLATE
    if '"account"' not in template:
        EventTemplateParser.DEFAULT_EVENT_INPUT_TEMPLATE = template.replace(
            '"version": "0",', '"version": "0", "account": "<account>",'
        )


def _patch_lambda_targets():
    """moto's EventBridge delivers to SQS, logs and buses, not Lambda; AWS invokes a Lambda
    target asynchronously with the event. Deliver Lambda targets to the in-process bridge."""
    from moto.events.models import Rule
    from moto.events.utils import EventTemplateParser
    from moto.utilities.arns import parse_arn

    original = Rule.send_to_targets

    def send_to_targets(self, original_event, transform_input=True):
        lambda_targets = [t for t in self.targets if parse_arn(t["Arn"]).service == "lambda"]
        if lambda_targets and _bridge is not None and self.event_pattern.matches_event(original_event):
            for target in lambda_targets:
                transformer = target.get("InputTransformer", {})
                event = EventTemplateParser.parse(
                    input_template=transformer.get("InputTemplate"),
                    input_paths_map=transformer.get("InputPathsMap", {}),
                    event=original_event,
                )
                if isinstance(event.get("time"), (int, float)):
                    event["time"] = datetime.fromtimestamp(event["time"], timezone.utc).strftime(
                        "%Y-%m-%dT%H:%M:%SZ"
                    )
                _bridge.invoke_async(target["Arn"], event, source="eventbridge")
        others = [t for t in self.targets if t not in lambda_targets]
        if others:
            rule = copy.copy(self)
            rule.targets = others
            original(rule, original_event, transform_input)

    Rule.send_to_targets = send_to_targets


# -- CloudFormation: RetainExceptOnCreate keeps what a successful create made -----------------

def _patch_retain_except_on_create():
    """moto keeps only `DeletionPolicy: Retain` resources when a stack is deleted; AWS also keeps
    `RetainExceptOnCreate` ones unless the stack's own creation failed (moto's never does)."""
    from moto.cloudformation.parsing import ResourceMap

    original = ResourceMap.delete

    def delete(self):
        for resource in self._resource_json_map.values():
            if resource.get("DeletionPolicy") == "RetainExceptOnCreate":
                resource["DeletionPolicy"] = "Retain"
        return original(self)

    ResourceMap.delete = delete


# -- CloudFormation: state machines land where the API looks for them ------------------------

class _ServedBackends:
    """`backends[account][region]` as the Step Functions API serves it (execute_state_machine
    on: the parser backend)."""

    def __getitem__(self, account):
        from moto.stepfunctions.responses import get_backend

        return _AccountBackends(account, get_backend)


class _AccountBackends:
    def __init__(self, account, get_backend):
        self._account, self._get_backend = account, get_backend

    def __getitem__(self, region):
        return self._get_backend(self._account, region)


def _patch_state_machines_from_cloudformation():
    """moto's CloudFormation creates, updates and deletes state machines in the plain backend,
    while the API (execute_state_machine on) serves the parser's: a stack's state machine was
    invisible. Run those handlers against the served backend."""
    from moto.stepfunctions import models

    served = _ServedBackends()
    for name in ("create_from_cloudformation_json", "update_from_cloudformation_json",
                 "delete_from_cloudformation_json"):
        original = getattr(models.StateMachine, name).__func__

        def handler(cls, *args, _original=original, **kwargs):
            with _lock:
                plain, models.stepfunctions_backends = models.stepfunctions_backends, served
                try:
                    return _original(cls, *args, **kwargs)
                finally:
                    models.stepfunctions_backends = plain

        setattr(models.StateMachine, name, classmethod(handler))
# -- IAM: what moto's enforcement checks --------------------------------------------------------
def _patch_iam_resources():
    """moto knows the resource of a request only for S3 (bucket, key), STS AssumeRole and IAM
    role operations; for every other request it matches the statement's Resource against "*",
    so no statement scoped to an ARN ever allows anything. AWS matches the request's own ARN.
    A request whose resource moto does not know matches any Resource (resources stay unchecked
    there, as moto's documentation says; the static policy test checks them)."""
    from moto.iam.access_control import IAMPolicyStatement

    original = IAMPolicyStatement._check_element_matches

    def _check_element_matches(self, statement_element, value):
        if statement_element == "Resource" and value == "*":
            return True
        return original(self, statement_element, value)

    IAMPolicyStatement._check_element_matches = _check_element_matches


# EC2 calls that give an instance a role: AWS checks iam:PassRole on the role as well.
_PASSES_ROLE = {"ec2:AssociateIamInstanceProfile", "ec2:ReplaceIamInstanceProfileAssociation"}
# DynamoDB transactions are authorized per item, by the item operation's own action.
_TRANSACT_ITEM_ACTIONS = {"Put": "dynamodb:PutItem", "Update": "dynamodb:UpdateItem",
                          "Delete": "dynamodb:DeleteItem",
                          "ConditionCheck": "dynamodb:ConditionCheckItem",
                          "Get": "dynamodb:GetItem"}


def implied_actions(action: str, data, body) -> list[str]:
    """The IAM actions AWS authorizes for a request of `action` (its query `data`, JSON `body`):
    TransactWriteItems and TransactGetItems are no IAM actions (each item's action is checked);
    tags given on create need ec2:CreateTags; handing an instance a profile needs iam:PassRole
    (RunInstances with a profile too)."""
    if action in ("dynamodb:TransactWriteItems", "dynamodb:TransactGetItems"):
        items = json.loads(body or b"{}").get("TransactItems", [])
        return sorted({_TRANSACT_ITEM_ACTIONS[kind] for item in items for kind in item})
    implied = [action]
    keys = list(data or {})
    if action.startswith("ec2:") and any(k.startswith("TagSpecification") for k in keys):
        implied.append("ec2:CreateTags")
    if action in _PASSES_ROLE or (action == "ec2:RunInstances" and any(
            k.startswith("IamInstanceProfile") for k in keys)):
        implied.append("iam:PassRole")
    return implied


def _patch_iam_implied_actions():
    """moto authorizes only the action a request names; AWS authorizes every action the request
    implies (`implied_actions`). Check each, and record every decision in
    `local.iam.authorizations` (what a function's role was actually allowed to do)."""
    from moto.iam.access_control import IAMRequestBase

    original = IAMRequestBase.check_action_permitted

    def check_action_permitted(self, resource):
        for action in implied_actions(self._action, self._data, self._body):
            self._action = action
            try:
                original(self, resource)
            except Exception:
                authorizations.record(self._access_key.arn, action, resource, allowed=False)
                raise
            authorizations.record(self._access_key.arn, action, resource, allowed=True)

    IAMRequestBase.check_action_permitted = check_action_permitted


# What a JSON-protocol service calls moto's authorization errors.
_JSON_AUTH_ERRORS = {"AccessDenied": "AccessDeniedException",
                     "InvalidClientTokenId": "UnrecognizedClientException",
                     "SignatureDoesNotMatch": "InvalidSignatureException"}


def _patch_iam_json_errors():
    """moto answers an unauthorized request in XML whatever the protocol, so botocore reads the
    code of a JSON-protocol service's denial (DynamoDB, Step Functions, SSM…) as "403"; AWS
    answers `{"__type": "AccessDeniedException"}` (status 400) there."""
    from moto.core.authorization import ActionAuthenticatorMixin
    from moto.core.exceptions import JsonRESTError

    original = ActionAuthenticatorMixin._authenticate_and_authorize_normal_action

    def _authenticate_and_authorize_normal_action(self, resource="*"):
        try:
            original(self, resource)
        except JsonRESTError:
            raise
        except Exception as error:
            code = _JSON_AUTH_ERRORS.get(getattr(error, "error_type", None))
            if code is None or not self.headers.get("X-Amz-Target"):
                raise
            raise JsonRESTError(code, error.message) from error

    ActionAuthenticatorMixin._authenticate_and_authorize_normal_action = (
        _authenticate_and_authorize_normal_action)
