"""Deterministic names of the app's resources per stage.

Deployment, the embedded AWS and the state machine definition all derive names from here, so the
functions and the state machine can refer to each other without a dependency cycle. Build time
only (not packaged): the functions find their resources through the settings deployment wires.
"""

APP_NAME = "ec2-quarantine"
# On the table `make local` provisions (and a test's embedded AWS): its stage was not deployed,
# so a rehearsal of that stage there refuses with the true reason.
PROVISIONED_LOCALLY_TAG = f"{APP_NAME}:provisioned-by-make-local"


def function(stage: str, name: str) -> str:
    """The deployed name Chalice gives `@app.lambda_function(name=name)` in `stage`."""
    return f"{APP_NAME}-{stage}-{name}"


def deployed_function(stage: str, name: str) -> str:
    """The deployed name of Chalice's function `name` (the API's is `api_handler`)."""
    return api_function(stage) if name == "api_handler" else function(stage, name)


def function_arn(region: str, account: str, stage: str, name: str) -> str:
    return f"arn:aws:lambda:{region}:{account}:function:{function(stage, name)}"


def function_role(stage: str, name: str) -> str:
    """The role Chalice creates for function `name` (`api_handler` for the API) when it has its
    own `iam_policy_file`."""
    return f"{APP_NAME}-{stage}-{name}"


def api_function(stage: str) -> str:
    """The function behind the HTTP API."""
    return f"{APP_NAME}-{stage}"


def state_machine(stage: str) -> str:
    return f"{APP_NAME}-{stage}"


def state_machine_arn(region: str, account: str, stage: str) -> str:
    return f"arn:aws:states:{region}:{account}:stateMachine:{state_machine(stage)}"


def state_machine_role(stage: str) -> str:
    return f"{APP_NAME}-{stage}-states"


def topic(stage: str) -> str:
    return f"{APP_NAME}-{stage}-reports"


def topic_arn(region: str, account: str, stage: str) -> str:
    return f"arn:aws:sns:{region}:{account}:{topic(stage)}"


def incidents_table(stage: str) -> str:
    return f"{APP_NAME}-{stage}-incidents"


def incidents_table_arn(region: str, account: str, stage: str) -> str:
    return f"arn:aws:dynamodb:{region}:{account}:table/{incidents_table(stage)}"


def evidence_bucket_prefix(stage: str) -> str:
    """What every evidence bucket of `stage` is named with first (policies scope to it)."""
    return f"{APP_NAME}-{stage}-evidence-"


def evidence_bucket(region: str, account: str, stage: str) -> str:
    return f"{evidence_bucket_prefix(stage)}{account}-{region}"


def access_logs_bucket(region: str, account: str, stage: str) -> str:
    """Where S3 delivers the evidence bucket's server access logs."""
    return f"{APP_NAME}-{stage}-access-logs-{account}-{region}"


def rule(stage: str, handler: str) -> str:
    return f"{function(stage, handler)}-event"


def rule_arn(region: str, account: str, stage: str, handler: str) -> str:
    return f"arn:aws:events:{region}:{account}:rule/{rule(stage, handler)}"


def deny_all_profile(stage: str) -> str:
    """The instance profile (and role) that denies everything, for CREDENTIALS_MODE=deny-all."""
    return f"{APP_NAME}-{stage}-deny-all"


def records_key_alias(stage: str) -> str:
    """The alias of the KMS HMAC key that seals incident records (chalicelib/seals.py)."""
    return f"alias/{APP_NAME}-{stage}-records"


def evidence_signing_key_alias(stage: str) -> str:
    """The alias of the KMS asymmetric key that signs evidence manifests
    (chalicelib/manifests.py)."""
    return f"alias/{APP_NAME}-{stage}-evidence-signing"
