"""Each function's IAM policy, derived from what its code and its actions declare (build time
only: not packaged).

Actions are declared next to the code that calls them; this module decides only *where* each may
act. The product's own resources (table, topic, bucket, state machine, member role, log groups)
are named by the stage's deterministic names; instance-facing actions are placed by
deploy/grants.py. An action in none of these places stops the build, so a new call forces a
decision.

`python -m deploy.permissions` writes `.chalice/policy-<stage>-<function>.json` for every
stage and function, and `deploy/member-role.yaml` (`make policies`); a test fails when a
committed file is stale.
"""

import json
import os
import sys

from chalicelib import accounts, http, incidents, revocation, workflow
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
        "revoke_sessions": set(revocation.PERMISSIONS),
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
    if service == "sts":
        return [f"arn:aws:iam::*:role/{stage_setting(stage, 'MEMBER_ROLE_NAME')}"]
    if service == "s3":  # ListBucket is granted on the bucket, PutObject on its objects
        bucket = f"arn:aws:s3:::{names.APP_NAME}-{stage}-evidence-*"
        return [bucket, f"{bucket}/*"]
    if service == "logs":
        return [f"arn:aws:logs:*:*:log-group:/aws/lambda/{names.APP_NAME}-{stage}*"]
    return None


def stage_setting(stage: str, name: str) -> str:
    """A setting as the stage's functions will read it: stage, then app, then default."""
    from chalicelib.settings import DEFAULTS

    with open(os.path.join(CHALICE_DIR, "config.json")) as handle:
        config = json.load(handle)
    values = {**DEFAULTS, **config.get("environment_variables", {}),
              **config["stages"][stage].get("environment_variables", {})}
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
    for grant in (*grants.INSTANCE_GRANTS, grants.records_key_grant(stage),
                  grants.revoker_grant(stage)):
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


def policy(stage: str, function: str) -> dict:
    wanted = needs()[function] | set(LOG_ACTIONS)
    return {"Version": "2012-10-17", "Statement": statements(wanted, stage)}


MEMBER_SERVICES = ("ec2", "autoscaling", "elasticloadbalancing", "iam", "ssm")


def member_role_actions() -> list[str]:
    """What the app does inside a member account: the instance-facing actions of every function."""
    return sorted({action for actions in needs().values() for action in actions
                   if action.split(":")[0] in MEMBER_SERVICES})


def member_role_policy() -> dict:
    return {"Version": "2012-10-17",
            "Statement": statements(set(member_role_actions()), STAGES[0])}


def member_role_template() -> str:
    """CloudFormation for the member-account role, ready for StackSets."""
    return member_role.template(member_role_policy())


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
    written = [os.path.join(deploy_dir, member_role.FILE)]
    with open(written[0], "w") as handle:
        handle.write(member_role_template())
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
