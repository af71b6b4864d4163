"""The KMS HMAC key that seals incident records (chalicelib/seals.py), and who may use it.

The key policy is the only place that lets anyone MAC with the key: the account (its IAM
administrators) administers it, and each MAC action is allowed only to the roles of the
functions that declare it (deploy/permissions.py), whose own IAM policy must allow it as well
(deploy/grants.py). Nobody else — not an account administrator, not the member role — can make
or check a seal without first rewriting this policy (kms:PutKeyPolicy, which CloudTrail records).

The function roles are named through the account root with an `aws:PrincipalArn` condition
rather than as principals: KMS rejects a key policy naming a principal that does not exist yet,
and Chalice creates the roles after this stack; a condition is evaluated per request, so the
policy holds whatever the order of creation, and a role deleted and created again under its
name is still the product's role. `aws:PrincipalArn` of an assumed role is the role's ARN.

The key is retained with the stack like the incidents table: without it no sealed record could
be verified, so no incident could be released. Only `make destroy PURGE=1` schedules its
deletion (deploy/retained.py).
"""

from deploy import grants, names

PURGE_WINDOW_DAYS = 30  # KMS's longest: a purge can still be cancelled for a month
# What the account's administrators may do with the key: manage it, never use it. No
# kms:CreateGrant (a grant would let a principal MAC without this policy naming it).
ADMINISTRATION = (
    "kms:CancelKeyDeletion", "kms:CreateAlias", "kms:DeleteAlias", "kms:DescribeKey",
    "kms:DisableKey", "kms:EnableKey", "kms:GetKeyPolicy", "kms:ListGrants",
    "kms:ListKeyPolicies", "kms:ListResourceTags", "kms:PutKeyPolicy", "kms:RevokeGrant",
    "kms:ScheduleKeyDeletion", "kms:TagResource", "kms:UntagResource", "kms:UpdateAlias",
    "kms:UpdateKeyDescription",
)


def users(stage: str, actions=grants.RECORDS_KEY_ACTIONS) -> dict[str, list[str]]:
    """Per action on the key (default: the MACs), the roles (by name) of the functions that
    declare it."""
    from deploy import permissions  # late: permissions -> project -> resources -> here

    declared = permissions.needs(permissions.stage_settings(stage))
    return {action: sorted(names.function_role(stage, function)
                           for function, wanted in declared.items() if action in wanted)
            for action in actions}


def policy(stage: str, account: str, actions=grants.RECORDS_KEY_ACTIONS,
           account_actions: tuple[str, ...] = ()) -> dict:
    """The key policy (`account` may be CloudFormation's `${AWS::AccountId}`): the account
    administers the key (and may make `account_actions`), each of `actions` is allowed to the
    roles that declare it."""
    root = {"AWS": {"Fn::Sub": f"arn:aws:iam::{account}:root"}}
    statements = [{"Sid": "AccountAdministersTheKey", "Effect": "Allow", "Principal": root,
                   "Action": list(ADMINISTRATION) + list(account_actions), "Resource": "*"}]
    for action, roles in users(stage, actions).items():
        if roles:
            statements.append({
                "Sid": f"{action.split(':')[1]}ByTheProductsFunctions", "Effect": "Allow",
                "Principal": root, "Action": [action], "Resource": "*",
                "Condition": {"ArnEquals": {"aws:PrincipalArn": [
                    {"Fn::Sub": f"arn:aws:iam::{account}:role/{role}"} for role in roles]}}})
    return {"Version": "2012-10-17", "Statement": statements}


def retained_key(logical_id: str, description: str, spec: str, usage: str, key_policy: dict,
                 alias: str) -> dict:
    """A key and its alias (the IAM grants find the key by the alias), both retained: what
    the key made (seals, signatures) outlives the stack."""
    kept = {"DeletionPolicy": "RetainExceptOnCreate",  # a failed create leaves nothing
            "UpdateReplacePolicy": "Retain"}
    return {
        logical_id: {
            "Type": "AWS::KMS::Key", **kept,
            "Properties": {"Description": description, "KeySpec": spec, "KeyUsage": usage,
                           "KeyPolicy": key_policy},
        },
        f"{logical_id}Alias": {
            "Type": "AWS::KMS::Alias", **kept,
            "Properties": {"AliasName": alias, "TargetKeyId": {"Ref": logical_id}},
        },
    }


def resources(stage: str, account: str) -> dict:
    """The records key and its alias."""
    return retained_key("RecordsKey", f"{names.APP_NAME} ({stage}): seals incident records",
                        "HMAC_256", "GENERATE_VERIFY_MAC", policy(stage, account),
                        names.records_key_alias(stage))
