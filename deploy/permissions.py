"""Each function's IAM policy, derived from what its code and its actions declare (build time
only: not packaged).

Actions are declared next to the code that calls them; this module decides only *where* each may
act. The product's own resources (table, topic, bucket, state machine, log groups) are named by
the stage's deterministic names, and each function may assume only its own member role
(`member_assume_statements`); instance-facing actions are placed by deploy/grants.py. An action
in none of these places stops the build, so a new call forces a decision.

`python -m deploy.permissions` writes `.chalice/policy-<stage>-<function>.json` for every
stage and function, and `deploy/member-role-<stage>.yaml` (`make policies`); a test fails when
a committed file is stale.
"""

import json
import os
import sys

from chalicelib import accounts, http, incidents, workflow
from chalicelib.steps import contain, evidence, memory, release, report
from deploy import grants, member_role, names
from deploy.project import CHALICE_DIR

STAGES = ("dev", "prod")
LOG_ACTIONS = ("logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents")


def _of_actions(classes) -> set[str]:
    return {permission for cls in classes for permission in cls.permissions}


def needs() -> dict[str, set[str]]:
    """IAM actions per function (Chalice's names: the API's function is `api_handler`)."""
    return {
        "api_handler": {*workflow.PERMISSIONS, *incidents.READ_PERMISSIONS, *http.PERMISSIONS},
        "release": release.undo_permissions() | set(release.PERMISSIONS),
        "on_guardduty_finding": set(workflow.PERMISSIONS),
        "capture_memory": (_of_actions(memory.ACTION_CLASSES) | set(memory.PERMISSIONS)
                           | set(accounts.PERMISSIONS)),
        "contain": (_of_actions(contain.ACTION_CLASSES) | set(contain.PERMISSIONS)
                    | set(accounts.PERMISSIONS)),
        "collect_evidence": (_of_actions(evidence.COLLECT_ACTION_CLASSES)
                             | set(evidence.COLLECT_PERMISSIONS) | set(accounts.PERMISSIONS)),
        "check_snapshots": (_of_actions(evidence.CHECK_ACTION_CLASSES)
                            | set(evidence.CHECK_PERMISSIONS) | set(accounts.PERMISSIONS)),
        "report": set(report.PERMISSIONS),
    }


def _product_resources(service: str, stage: str) -> list[str] | None:
    """The product's own resources a service's actions are scoped to, by deterministic names."""
    if service == "dynamodb":
        table = f"arn:aws:dynamodb:*:*:table/{names.incidents_table(stage)}"
        return [table, f"{table}/index/*"]
    if service == "states":  # StartExecution on the machine, DescribeExecution on its runs
        machine = names.state_machine(stage)
        return [f"arn:aws:states:*:*:stateMachine:{machine}",
                f"arn:aws:states:*:*:execution:{machine}:*"]
    if service == "sns":
        return [f"arn:aws:sns:*:*:{names.topic(stage)}"]
    if service == "s3":  # ListBucket is granted on the bucket, PutObject on its objects
        bucket = f"arn:aws:s3:::{names.APP_NAME}-{stage}-evidence-*"
        return [bucket, f"{bucket}/*"]
    if service == "logs":
        return [f"arn:aws:logs:*:*:log-group:/aws/lambda/{names.APP_NAME}-{stage}*"]
    return None


def stage_setting(stage: str, name: str, overrides: dict | None = None) -> str:
    """A setting as the stage's functions will read it: `overrides` (the embedded AWS's
    environment), stage, then app, then default."""
    from chalicelib.settings import DEFAULTS

    with open(os.path.join(CHALICE_DIR, "config.json")) as handle:
        config = json.load(handle)
    values = {**DEFAULTS, **config.get("environment_variables", {}),
              **config["stages"][stage].get("environment_variables", {}), **(overrides or {})}
    return values[name]


def statements(wanted: set[str], stage: str) -> list[dict]:
    """Policy statements granting `wanted`, each action where it may act and nowhere else."""
    found, placed = [], set()
    for service in sorted({action.split(":")[0] for action in wanted}):
        actions = sorted(a for a in wanted
                         if a.startswith(service + ":") and a not in grants.UNSCOPABLE)
        resources = _product_resources(service, stage) if actions else None
        if resources:
            found.append({"Sid": service.capitalize(), "Effect": "Allow", "Action": actions,
                          "Resource": resources})
            placed.update(actions)
    for grant in (*grants.INSTANCE_GRANTS, grants.records_key_grant(stage)):
        statement = grant.statement(wanted)
        if statement:
            found.append(statement)
            if grant.effect == "Allow":
                placed.update(statement["Action"])
    unscopable = sorted(wanted.intersection(grants.UNSCOPABLE))
    if unscopable:
        found.append({"Sid": "Unscopable", "Effect": "Allow", "Action": unscopable,
                      "Resource": "*"})
        placed.update(unscopable)
    if wanted - placed:
        raise ValueError(f"no scope declared for {sorted(wanted - placed)}: add a Grant, a "
                         "product resource or (with the reason) an UNSCOPABLE entry")
    return found


def policy(stage: str, function: str, overrides: dict | None = None) -> dict:
    """`overrides`: settings the functions run with instead of the stage's (the embedded AWS)."""
    wanted = needs()[function] | set(LOG_ACTIONS)
    assume = set(accounts.PERMISSIONS)
    found = statements(wanted - assume, stage)
    if wanted & assume:
        found += member_assume_statements(stage, function, overrides)
    return {"Version": "2012-10-17", "Statement": found}


MEMBER_SERVICES = ("ec2", "autoscaling", "elasticloadbalancing", "iam", "ssm")


def member_assume_statements(stage: str, function: str, overrides: dict | None = None) -> list:
    """sts:AssumeRole on the function's own member role only: in the accounts MEMBER_ACCOUNTS
    lists, by ARN; with `*`, in any account of the caller's own organization (`aws:ResourceOrgID`
    equal to `aws:PrincipalOrgID`, AWS's data-perimeter idiom); none when it lists no account."""
    from chalicelib.settings import accounts as parse_accounts

    listed = parse_accounts("MEMBER_ACCOUNTS", stage_setting(stage, "MEMBER_ACCOUNTS", overrides))
    role = member_role_name(stage, function, overrides)
    found = []
    if set(listed) - {"*"}:
        found.append({"Sid": "OwnMemberRole", "Effect": "Allow", "Action": ["sts:AssumeRole"],
                      "Resource": [f"arn:aws:iam::{account}:role/{role}"
                                   for account in listed if account != "*"]})
    if "*" in listed:
        found.append({"Sid": "OwnMemberRoleInOrganization", "Effect": "Allow",
                      "Action": ["sts:AssumeRole"], "Resource": [f"arn:aws:iam::*:role/{role}"],
                      "Condition": {"StringEquals": {
                          "aws:ResourceOrgID": "${aws:PrincipalOrgID}"}}})
    return found


def member_role_name(stage: str, function: str, overrides: dict | None = None) -> str:
    """Function `function`'s member role (as `accounts.credentials` names it at run time)."""
    name = accounts.member_role(stage_setting(stage, "MEMBER_ROLE_NAME", overrides),
                                names.deployed_function(stage, function))
    if len(name) > 64:
        raise ValueError(f"member role {name} is longer than IAM's 64 characters: shorten "
                         "MEMBER_ROLE_NAME")
    return name


def member_role_actions(function: str) -> list[str]:
    """What `function` does inside a member account: its instance-facing actions."""
    return sorted(action for action in needs()[function]
                  if action.split(":")[0] in MEMBER_SERVICES)


def member_role_policy(stage: str, function: str) -> dict:
    return {"Version": "2012-10-17",
            "Statement": statements(set(member_role_actions(function)), stage)}


def member_roles(stage: str, overrides: dict | None = None) -> list[member_role.MemberRole]:
    """One member role per function that acts in member accounts, trusting that function's
    role only (functions with no member-account action get none)."""
    return [member_role.MemberRole(function=function,
                                   name=member_role_name(stage, function, overrides),
                                   trusted_role=names.function_role(stage, function),
                                   policy=member_role_policy(stage, function))
            for function in needs() if member_role_actions(function)]


def member_role_template(stage: str) -> str:
    """CloudFormation for the stage's member-account roles, ready for StackSets."""
    return member_role.template(stage, member_roles(stage))


def policy_file(stage: str, function: str) -> str:
    return f"policy-{stage}-{function}.json"


def render(stage: str, function: str) -> str:
    return json.dumps(policy(stage, function), indent=2) + "\n"


def stale(chalice_dir: str = CHALICE_DIR) -> list[str]:
    """Committed policy files that differ from what the code declares (`make policies`)."""
    found = []
    for stage in STAGES:
        for function in needs():
            path = os.path.join(chalice_dir, policy_file(stage, function))
            try:
                with open(path) as handle:
                    current = handle.read()
            except FileNotFoundError:
                current = None
            if current != render(stage, function):
                found.append(path)
    return found


def write(chalice_dir: str, deploy_dir: str = "deploy") -> list[str]:
    written = []
    for stage in STAGES:
        written.append(os.path.join(deploy_dir, member_role.file(stage)))
        with open(written[-1], "w") as handle:
            handle.write(member_role_template(stage))
    for stage in STAGES:
        for function in needs():
            path = os.path.join(chalice_dir, policy_file(stage, function))
            with open(path, "w") as handle:
                handle.write(render(stage, function))
            written.append(path)
    return written


if __name__ == "__main__":
    for path in write(sys.argv[1] if len(sys.argv) > 1 else ".chalice"):
        print(path)
