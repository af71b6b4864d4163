"""Each function's IAM policy, derived from what its code and its actions declare.

`python -m chalicelib.permissions` writes `.chalice/policy-<stage>-<function>.json` for every
stage and function (`make policies`); a test fails when a committed file is stale.
"""

import json
import os
import sys

from chalicelib import accounts, incidents, names, workflow
from chalicelib.steps import contain, evidence, memory, release, report

STAGES = ("dev", "prod")
LOG_ACTIONS = ("logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents")


def _of_actions(classes) -> set[str]:
    return {permission for cls in classes for permission in cls.permissions}


def needs() -> dict[str, set[str]]:
    """IAM actions per function (Chalice's names: the API's function is `api_handler`)."""
    return {
        "api_handler": {*workflow.PERMISSIONS, *incidents.READ_PERMISSIONS},
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


def _resources(service: str, stage: str) -> list[str]:
    """The resources a service's actions are scoped to (by the stage's deterministic names)."""
    if service == "dynamodb":
        table = f"arn:aws:dynamodb:*:*:table/{names.incidents_table(stage)}"
        return [table, f"{table}/index/*"]
    if service == "states":
        return [f"arn:aws:states:*:*:stateMachine:{names.state_machine(stage)}"]
    if service == "sns":
        return [f"arn:aws:sns:*:*:{names.topic(stage)}"]
    if service == "sts":
        return [f"arn:aws:iam::*:role/{settings_member_role()}"]
    if service == "s3":
        return [f"arn:aws:s3:::{names.APP_NAME}-{stage}-evidence-*/*"]
    if service == "logs":
        return [f"arn:aws:logs:*:*:log-group:/aws/lambda/{names.APP_NAME}-{stage}*"]
    return ["*"]  # EC2, Auto Scaling, ELB, IAM, SSM: scoped further with deployment (issue 6)


def settings_member_role() -> str:
    """The member role every stage may assume (MEMBER_ROLE_NAME's default)."""
    from chalicelib.settings import DEFAULTS

    return DEFAULTS["MEMBER_ROLE_NAME"]


def policy(stage: str, function: str) -> dict:
    wanted = sorted(needs()[function] | set(LOG_ACTIONS))
    services = sorted({action.split(":")[0] for action in wanted})
    return {
        "Version": "2012-10-17",
        "Statement": [
            {"Sid": service.capitalize(), "Effect": "Allow",
             "Action": [a for a in wanted if a.startswith(service + ":")],
             "Resource": _resources(service, stage)}
            for service in services
        ],
    }


def policy_file(stage: str, function: str) -> str:
    return f"policy-{stage}-{function}.json"


def render(stage: str, function: str) -> str:
    return json.dumps(policy(stage, function), indent=2) + "\n"


def write(chalice_dir: str) -> list[str]:
    written = []
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
