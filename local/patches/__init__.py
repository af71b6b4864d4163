"""Fidelity patches: where moto (pinned in requirements-dev.txt) differs from AWS, make it agree.

Each patch is small, applied once per process, and has a test in tests/local that fails on plain
moto. The product's code is never bent to moto; moto is bent to AWS. One module per service.

Two entries: `apply_backend_fidelity()` installs what a service answers (EC2, SSM, DynamoDB, KMS,
the EventBridge envelope and scheduled rules, CloudFormation's retention, KMS keys, table indexes
and previous parameters, API Gateway's stages and imports, Security Hub's custom actions and
finding updates, GuardDuty's malware scans), which needs nothing but moto and so
serves in-process tests under `mock_aws` as well; `apply(bridge, endpoint)` installs those and
what only the embedded AWS switches on: Step Functions execution, Lambda targets through the
bridge, IAM enforcement. Both may be called any number of times, in any order.
"""

import threading

from local.patches import (apigateway, awslambda, cloudformation, dynamodb, ec2, events,
                           guardduty, iam, kms, securityhub, ssm, stepfunctions, wiring)
from local.patches.stepfunctions import forget_credentials

BACKEND = (
    ec2.patch_interface_groups,
    ec2.patch_connection_tracking,
    ec2.patch_instance_attributes,
    ec2.patch_metadata_options,
    ec2.patch_console,
    ec2.patch_snapshots,
    ssm.patch_ssm,
    dynamodb.patch_transaction_backup,  # first: the atomic writes' lock wraps it
    dynamodb.patch_atomic_writes,
    events.patch_event_envelope,
    events.patch_scheduled_rules,
    kms.patch_message_limits,
    kms.patch_key_arns,
    kms.patch_digests,
    cloudformation.patch_retain_except_on_create,
    cloudformation.patch_kms_keys,
    apigateway.patch_deployment_to_existing_stage,
    apigateway.patch_openapi_2,
    apigateway.patch_import_without_description,
    cloudformation.patch_table_indexes,
    cloudformation.patch_previous_parameters,
    securityhub.patch_security_hub,
    guardduty.patch_malware_scans,
)
STACK = (
    stepfunctions.patch_state_machine_clients,
    stepfunctions.patch_lambda_error_names,
    stepfunctions.patch_stop_ends_callback_waits,
    events.patch_lambda_targets,
    awslambda.patch_invocations,
    cloudformation.patch_state_machines,
    iam.patch_resources,
    iam.patch_implied_actions,
    iam.patch_conditions,
    iam.patch_json_errors,
    iam.patch_bodyless_signatures,
    iam.patch_ec2_denials,
    iam.patch_trust,
    iam.patch_presigned_s3,
)

_lock = threading.Lock()
_applied: set = set()


def apply_backend_fidelity() -> None:
    """Install the patches that need no running stack (once): for tests under `mock_aws`."""
    _install(BACKEND)


def apply(bridge, endpoint: str) -> None:
    """Install every patch (once) and point them at this stack's bridge and endpoint."""
    wiring.point_at(bridge, endpoint)
    forget_credentials()  # clients signed for another endpoint
    _install(BACKEND + STACK)


def _install(patches) -> None:
    with _lock:
        for patch in patches:
            if patch not in _applied:
                patch()
                _applied.add(patch)
