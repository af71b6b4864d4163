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

from chalicelib import (accounts, cut, exemptions, http, incidents, publish, revocation,
                        rules, securityhub, settings, tamper, workflow)
from chalicelib.steps import approval, contain, evidence, memory, release, report
from deploy import grants, member_role, names
from deploy.project import CHALICE_DIR

STAGES = ("dev", "prod")
LOG_ACTIONS = ("logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents")


def _of_actions(classes, undo: bool = False) -> set[str]:
    return {permission for cls in classes
            for permission in (cls.undo_permissions if undo else cls.permissions)}


def needs(current=None) -> dict[str, set[str]]:
    """IAM actions per function (Chalice's names: the API's function is `api_handler`) under
    the settings `current` (default: every option's default): an option that is off grants
    nothing, and a function that acts only in the home account assumes no member role."""
    current = current or settings.load({})
    members = set(accounts.PERMISSIONS) if current.member_accounts else set()
    capture = memory.capture_classes(current)
    approving = bool(rules.needs_approvers(current.response_rules))
    following = set(securityhub.INVOKE_PERMISSIONS) if current.security_hub else set()
    entry = (set(workflow.PERMISSIONS) | set(cut.entry_permissions(current)) | members
             | set(workflow.approval_permissions(current)) | following
             | (set(incidents.GET_PERMISSIONS) if current.dry_run else set()))  # the exemption
    declared = {
        "api_handler": entry | {*incidents.READ_PERMISSIONS, *incidents.FINDINGS_PERMISSIONS,
                                *http.PERMISSIONS, *exemptions.PERMISSIONS},
        "release": (release.undo_permissions() | set(release.PERMISSIONS)
                    | set(publish.INVOKE_PERMISSIONS) | members | following),
        "on_guardduty_finding": entry,
        # its requests carry no finding: no stolen credentials to revoke (_revoke_stolen)
        "on_security_hub_action": (entry - set(revocation.INVOKE_PERMISSIONS)
                                   if current.security_hub else set()),
        "capture_memory": (_of_actions(capture) | set(memory.PERMISSIONS) | members
                           if capture else set()),
        "contain": (_of_actions(contain.containment_classes(current))
                    | set(contain.PERMISSIONS) | members),
        "collect_evidence": (_of_actions(evidence.COLLECT_ACTION_CLASSES)
                             | set(evidence.COLLECT_PERMISSIONS) | members),
        "check_snapshots": (_of_actions(evidence.after_evidence_classes(current))
                            | set(evidence.CHECK_PERMISSIONS) | members),
        "report": set(report.PERMISSIONS) | set(publish.INVOKE_PERMISSIONS) | following,
        "approval": set(approval.PERMISSIONS) | following if approving else set(),
        "revoke_sessions": {*revocation.READ_PERMISSIONS, *revocation.LIFT_PERMISSIONS,
                            *revocation.REVOKE_PERMISSIONS} | members,
        "on_tampering": tamper.permissions(current) | set(publish.INVOKE_PERMISSIONS) | members,
        "sweep": (tamper.permissions(current, sweep_too=True) | set(publish.INVOKE_PERMISSIONS)
                  | members | (set(approval.CLOSE_PERMISSIONS) if approving else set())
                  | following),
        "publish_page": set(publish.PERMISSIONS),
        "sync_findings": set(securityhub.PERMISSIONS) if current.security_hub else set(),
    }
    if "*" not in current.member_accounts:  # only `*` asks Organizations who is a member
        declared = {function: wanted - set(accounts.ORGANIZATION_PERMISSIONS)
                    for function, wanted in declared.items()}
    return declared


def _product_resources(service: str, stage: str, current: settings.Settings
                       ) -> list[str] | None:
    """The product's own resources a service's actions are scoped to, by deterministic names
    (and the Chatbot topic the stage names, when it names one)."""
    if service == "dynamodb":
        table = f"arn:aws:dynamodb:*:*:table/{names.incidents_table(stage)}"
        return [table, f"{table}/index/*"]
    if service == "states":  # StartExecution on the machine, DescribeExecution on its runs
        machine = names.state_machine(stage)
        return [f"arn:aws:states:*:*:stateMachine:{machine}",
                f"arn:aws:states:*:*:execution:{machine}:*"]
    if service == "sns":
        return [f"arn:aws:sns:*:*:{names.topic(stage)}",
                *([current.chatbot_topic_arn] if current.chatbot_topic_arn else [])]
    if service == "s3":  # ListBucket is granted on the bucket, PutObject on its objects
        bucket = f"arn:aws:s3:::{names.evidence_bucket_prefix(stage)}*"
        return [bucket, f"{bucket}/*"]
    if service == "logs":
        return [f"arn:aws:logs:*:*:log-group:/aws/lambda/{names.APP_NAME}-{stage}*"]
    return None


def stage_values(stage: str) -> dict[str, str]:
    """The settings' raw values as the stage's functions will read them: stage, then app,
    then default."""
    with open(os.path.join(CHALICE_DIR, "config.json")) as handle:
        config = json.load(handle)
    return {**settings.DEFAULTS, **config.get("environment_variables", {}),
            **config["stages"][stage].get("environment_variables", {})}


def stage_setting(stage: str, name: str) -> str:
    return stage_values(stage)[name]


def stage_settings(stage: str, values: dict[str, str] | None = None) -> settings.Settings:
    """The stage's settings parsed (from `values`, default its config). Deployment writes the
    deny-all profile's ARN (a stack output); its name is the stage's, known in advance."""
    values = dict(stage_values(stage) if values is None else values)
    if not values.get("DENY_ALL_PROFILE_ARN"):
        values["DENY_ALL_PROFILE_ARN"] = (
            f"arn:aws:iam::000000000000:instance-profile/{names.deny_all_profile(stage)}")
    return settings.load(values)


# Every option that brings or widens actions switched on (but DISABLE_API_STOP: it contradicts
# STOP_AFTER_EVIDENCE): the widest policies the settings can make, which the static checks and
# the linters read beside the stages' own.
EVERY_OPTION = {"REVOKE_ROLE_SESSIONS": "true", "DISASSOCIATE_ELASTIC_IP": "true",
                "CREDENTIALS_MODE": "deny-all", "STOP_AFTER_EVIDENCE": "true",
                "FORENSIC_ACCOUNT_ID": "210987654321",
                "MEMORY_CAPTURE_DOCUMENT": "AWSSupport-ExampleMemoryCapture",
                "MEMBER_ACCOUNTS": "111111111111,*",
                "RESPONSE_RULES": '[{"name": "every", "mode": "approve", "on_timeout": "close"}]',
                "APPROVER_ARNS": "arn:aws:iam::111111111111:role/approver",
                "SECURITY_HUB": "true", "MALWARE_SCAN": "true"}


def profiles(stage: str) -> dict[str, settings.Settings]:
    """The settings the build checks a stage's policies under: its own, and every option on."""
    return {"settings": stage_settings(stage),
            "every-option": stage_settings(stage, {**stage_values(stage), **EVERY_OPTION})}


def statements(wanted: set[str], stage: str, current: settings.Settings | None = None
               ) -> list[dict]:
    """Policy statements granting `wanted` (under the settings `current`, default the stage's),
    each action where it may act and nowhere else."""
    current = current or stage_settings(stage)
    found, placed = [], set()
    for service in sorted({action.split(":")[0] for action in wanted}):
        actions = sorted(a for a in wanted
                         if a.startswith(service + ":") and a not in grants.UNSCOPABLE
                         and grants.iam_action(a) == a)
        resources = _product_resources(service, stage, current) if actions else None
        if resources:
            found.append({"Sid": service.capitalize(), "Effect": "Allow", "Action": actions,
                          "Resource": resources})
            placed.update(actions)
    for grant in (*grants.instance_grants(current), grants.ORGANIZATION_ACCOUNTS,
                  grants.records_key_grant(stage), grants.evidence_signing_grant(stage),
                  grants.revoker_grant(stage), grants.page_publisher_grant(stage),
                  grants.approval_closer_grant(stage), grants.findings_sync_grant(stage),
                  grants.FINDINGS_FOLLOW_INCIDENTS):
        statement = grant.statement(wanted)
        if statement:
            found.append(statement)
            if grant.effect == "Allow":
                placed.update(grant.matched(wanted))
    unscopable = sorted(wanted.intersection(grants.UNSCOPABLE))
    if unscopable:
        found.append({"Sid": "Unscopable", "Effect": "Allow", "Action": unscopable,
                      "Resource": "*"})
        placed.update(unscopable)
    if wanted - placed:
        raise ValueError(f"no scope declared for {sorted(wanted - placed)}: add a Grant, a "
                         "product resource or (with the reason) an UNSCOPABLE entry")
    return found


def policy(stage: str, function: str, current: settings.Settings | None = None) -> dict:
    """`function`'s policy in `stage` under `current` (default: the stage's settings)."""
    current = current or stage_settings(stage)
    wanted = needs(current)[function] | set(LOG_ACTIONS)
    assume = set(accounts.PERMISSIONS)
    found = statements(wanted - assume, stage, current)
    if wanted & assume:
        found += member_assume_statements(stage, function, current)
    return {"Version": "2012-10-17", "Statement": found}


MEMBER_SERVICES = ("ec2", "autoscaling", "elasticloadbalancing", "iam", "ssm", "guardduty")


def member_assume_statements(stage: str, function: str, current: settings.Settings) -> list:
    """sts:AssumeRole on the function's own member role only: in the accounts MEMBER_ACCOUNTS
    lists, by ARN; with `*`, in any account of the caller's own organization (`aws:ResourceOrgID`
    equal to `aws:PrincipalOrgID`, AWS's data-perimeter idiom); none when it lists no account."""
    listed = current.member_accounts
    role = member_role_name(stage, function, current)
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


def member_role_name(stage: str, function: str, current: settings.Settings) -> str:
    """Function `function`'s member role (as `accounts.credentials` names it at run time)."""
    name = accounts.member_role(current.member_role_name, names.deployed_function(stage, function))
    if len(name) > 64:
        raise ValueError(f"member role {name} is longer than IAM's 64 characters: shorten "
                         "MEMBER_ROLE_NAME")
    return name


def member_role_actions(function: str, current: settings.Settings) -> list[str]:
    """What `function` does inside a member account under `current`: its instance-facing
    actions."""
    return sorted(action for action in needs(current)[function]
                  if action.split(":")[0] in MEMBER_SERVICES)


def member_role_policy(stage: str, function: str, current: settings.Settings) -> dict:
    return {"Version": "2012-10-17",
            "Statement": statements(set(member_role_actions(function, current)), stage, current)}


def member_roles(stage: str, current: settings.Settings | None = None
                 ) -> list[member_role.MemberRole]:
    """One member role per function that acts in member accounts under `current` (default:
    the stage's settings), trusting that function's role only (functions with no member-account
    action get none)."""
    current = current or stage_settings(stage)
    return [member_role.MemberRole(function=function,
                                   name=member_role_name(stage, function, current),
                                   trusted_role=names.function_role(stage, function),
                                   policy=member_role_policy(stage, function, current))
            for function in needs(current) if member_role_actions(function, current)]


LONGEST_REGION = "ap-southeast-1"  # as long as any region's name


def tamper_forwarding_role(stage: str, current: settings.Settings) -> str:
    """What names the member accounts' role forwarding the tamper events, before the region
    (one role per region): under MEMBER_ROLE_NAME, a product role the guardrails protect."""
    prefix = member_role_name(stage, "tamper", current) + "-"
    if len(prefix + LONGEST_REGION) > 64:
        raise ValueError(f"role {prefix}{LONGEST_REGION} is longer than IAM's 64 characters: "
                         "shorten MEMBER_ROLE_NAME")
    return prefix


def member_role_template(stage: str) -> str:
    """CloudFormation for the stage's member-account roles and tamper forwarding, ready for
    StackSets."""
    current = stage_settings(stage)
    return member_role.template(stage, member_roles(stage, current),
                                current.deny_all_profile_arn.rsplit("/", 1)[-1],
                                tamper_forwarding_role(stage, current))


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
