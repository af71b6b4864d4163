"""CloudFormation fidelity: RetainExceptOnCreate keeps what a successful create made; a stack's
state machines land where the Step Functions API looks for them; a stack's KMS keys are the keys
its template declares; a stack's table gains and loses indexes as CloudFormation's does; an update
keeps a parameter's previous value, its default too."""

import json
import threading


def patch_retain_except_on_create():
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


def patch_state_machines():
    """moto's CloudFormation creates, updates and deletes state machines in the plain backend,
    while the API (execute_state_machine on) serves the parser's: a stack's state machine was
    invisible. Run those handlers against the served backend."""
    from moto.stepfunctions import models

    served = _ServedBackends()
    swapping = threading.Lock()  # the backends are swapped module-wide for one handler at a time
    for name in ("create_from_cloudformation_json", "update_from_cloudformation_json",
                 "delete_from_cloudformation_json"):
        original = getattr(models.StateMachine, name).__func__

        def handler(cls, *args, _original=original, **kwargs):
            with swapping:
                plain, models.stepfunctions_backends = models.stepfunctions_backends, served
                try:
                    return _original(cls, *args, **kwargs)
                finally:
                    models.stepfunctions_backends = plain

        setattr(models.StateMachine, name, classmethod(handler))


def patch_kms_keys():
    """moto's CloudFormation makes every `AWS::KMS::Key` a symmetric encryption key whatever its
    KeySpec and KeyUsage (an HMAC key could not MAC), and stores a KeyPolicy object where KMS
    keeps JSON text (DescribeKey then fails). Create the key the template declares."""
    from moto.kms import models

    def create_from_cloudformation_json(cls, resource_name, cloudformation_json, account_id,
                                        region_name, **kwargs):
        properties = cloudformation_json["Properties"]
        policy = properties.get("KeyPolicy")
        key = models.kms_backends[account_id][region_name].create_key(
            policy=json.dumps(policy) if isinstance(policy, dict) else policy,
            key_usage=properties.get("KeyUsage", "ENCRYPT_DECRYPT"),
            key_spec=properties.get("KeySpec", "SYMMETRIC_DEFAULT"),
            description=properties.get("Description"),
            tags=properties.get("Tags", []))
        key.key_rotation_status = properties.get("EnableKeyRotation", False)
        key.enabled = properties.get("Enabled", True)
        return key

    models.Key.create_from_cloudformation_json = classmethod(create_from_cloudformation_json)


BACKFILL_SECONDS = 1.0  # how long an index added to a stack's table stays CREATING


def patch_table_indexes():
    """moto's CloudFormation ignores every change to an `AWS::DynamoDB::Table` in a stack update
    (an index added to the template never appears); AWS adds or deletes one global secondary
    index per update (more fails the update) and returns before the new one is backfilled: it is
    CREATING, and a Query on it or another index change is refused, until it turns ACTIVE.
    Apply that (a refused change fails UpdateStack itself, where AWS fails the update and rolls
    back)."""
    import time

    from moto.cloudformation.exceptions import ValidationError
    from moto.dynamodb.exceptions import MockValidationException
    from moto.dynamodb.models import DynamoDBBackend, dynamodb_backends
    from moto.dynamodb.models.table import GlobalSecondaryIndex, Table

    def update_from_cloudformation_json(cls, original_resource, new_resource_name,
                                        cloudformation_json, account_id, region_name):
        table, properties = original_resource, cloudformation_json["Properties"]
        live = {index.name: index.describe() for index in table.global_indexes}
        wanted = {index["IndexName"]: index
                  for index in properties.get("GlobalSecondaryIndexes", [])}
        same = {name for name in live.keys() & wanted.keys()
                if (live[name]["KeySchema"], live[name]["Projection"])
                == (wanted[name]["KeySchema"], wanted[name]["Projection"])}
        changes = ([{"Delete": {"IndexName": name}} for name in live if name not in same]
                   + [{"Create": index} for name, index in wanted.items() if name not in same])
        if len(changes) > 1:
            raise ValidationError(table.name, "Cannot perform more than one GSI creation or "
                                  f"deletion in a single update (table {table.name})")
        backfilling = [index.name for index in table.global_indexes
                       if settled(index).status != "ACTIVE"]
        if changes and backfilling:
            raise ValidationError(table.name, "Subscriber limit exceeded: Only 1 online index "
                                  "can be created or deleted simultaneously per table (table "
                                  f"{table.name}, index {backfilling[0]} is CREATING)")
        table.attr = properties["AttributeDefinitions"]
        dynamodb_backends[account_id][region_name].update_table_global_indexes(table, changes)
        for index in table.global_indexes:
            if index.name in wanted and index.name not in same:
                index.status, index.active_at = "CREATING", time.monotonic() + BACKFILL_SECONDS
        return table

    def settled(index):
        if index.status == "CREATING" and time.monotonic() >= getattr(index, "active_at", 0):
            index.status = "ACTIVE"
        return index

    describe = GlobalSecondaryIndex.describe
    GlobalSecondaryIndex.describe = lambda self: describe(settled(self))
    query = DynamoDBBackend.query

    def query_active(self, table_name, *args, index_name=None, **kwargs):
        for index in self.get_table(table_name).global_indexes:
            if index.name == index_name and settled(index).status != "ACTIVE":
                raise MockValidationException(
                    f"Cannot read from backfilling global secondary index: {index_name}")
        return query(self, table_name, *args, index_name=index_name, **kwargs)

    Table.update_from_cloudformation_json = classmethod(update_from_cloudformation_json)
    DynamoDBBackend.query = query_active


def patch_previous_parameters():
    """moto knows a stack's previous parameter values only for those given when it was made: a
    `UsePreviousValue` for one that took its default fails the update (KeyError, a 500); AWS
    keeps the value the stack has. Such a parameter keeps its default (what it had, unless the
    template's default changed)."""
    from moto.cloudformation.models import CloudFormationBackend, Stack

    original = CloudFormationBackend._resolve_update_parameters

    def resolve(self, instance, incoming_params):
        if isinstance(instance, Stack):
            incoming_params = [p for p in incoming_params if not p.get("UsePreviousValue")
                               or p["ParameterKey"] in instance.parameters]
        return original(self, instance, incoming_params)

    CloudFormationBackend._resolve_update_parameters = resolve
