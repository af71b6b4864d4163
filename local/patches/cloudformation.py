"""CloudFormation fidelity: RetainExceptOnCreate keeps what a successful create made; a stack's
state machines land where the Step Functions API looks for them; a stack's KMS keys are the keys
its template declares."""

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
