"""CloudFormation fidelity: RetainExceptOnCreate keeps what a successful create made; a stack's
state machines land where the Step Functions API looks for them."""

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
