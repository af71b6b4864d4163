"""Each function's IAM policy, derived from what its code and its actions declare (build time
only: not packaged).

Actions are declared next to the code that calls them; this module decides only *where* each may
act. The product's own resources (table, topic, bucket, state machine, member role, log groups)
are named by the stage's deterministic names. Instance-facing actions are scoped to the resource
types they touch, with a condition where IAM supports one (the product's own groups, its own tag
keys, its own snapshots). What IAM cannot scope at all is listed in UNSCOPABLE with the reason;
an action in none of these places stops the build, so a new call forces a decision.

`python -m deploy.permissions` writes `.chalice/policy-<stage>-<function>.json` for every
stage and function, and `deploy/member-role.yaml` (`make policies`); a test fails when a
committed file is stale.
"""

import json
import os
import sys
from dataclasses import dataclass

from chalicelib import accounts, incidents, workflow
from deploy import names, statemachine
from chalicelib.actions import instance as instance_actions
from chalicelib.actions import isolation
from chalicelib.steps import contain, evidence, memory, release, report
from deploy import resources

STAGES = ("dev", "prod")
LOG_ACTIONS = ("logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents")
PROJECT_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CHALICE_DIR = os.path.join(PROJECT_DIR, ".chalice")


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


# -- where each action may act ----------------------------------------------------------------

@dataclass(frozen=True)
class Grant:
    """Some actions on some resources, under an optional condition: one policy statement."""

    sid: str
    actions: tuple[str, ...]
    resources: tuple[str, ...]
    condition: dict | None = None
    effect: str = "Allow"

    def statement(self, wanted: set[str]) -> dict | None:
        actions = sorted(wanted.intersection(self.actions))
        if not actions:
            return None
        statement = {"Sid": self.sid, "Effect": self.effect, "Action": actions,
                     "Resource": list(self.resources)}
        if self.condition:
            statement["Condition"] = self.condition
        return statement


def _ec2(*types: str) -> tuple[str, ...]:
    return tuple(f"arn:aws:ec2:*:*:{kind}/*" for kind in types)


PRODUCT_GROUPS = {"StringEquals": {f"aws:ResourceTag/{isolation.ROLE_TAG}": sorted(
    isolation.GROUP_NAMES)}}
INCIDENT_TAG_KEYS = sorted({instance_actions.TAG_INCIDENT, instance_actions.TAG_STATUS,
                            instance_actions.TAG_FINDING})
PRODUCT_SNAPSHOTS = {"Null": {f"aws:ResourceTag/{instance_actions.TAG_INCIDENT}": "false"}}
QUARANTINED_INSTANCES = {"Null": {f"aws:ResourceTag/{instance_actions.TAG_INCIDENT}": "false"}}

# Instance-facing actions (home and member accounts), by resource type and condition.
INSTANCE_GRANTS = (
    Grant("Ec2ProductGroupsCreate", ("ec2:CreateSecurityGroup",), _ec2("security-group"),
          {"StringEquals": {f"aws:RequestTag/{isolation.ROLE_TAG}": sorted(
              isolation.GROUP_NAMES)}}),
    Grant("Ec2ProductGroupsInVpc", ("ec2:CreateSecurityGroup",), _ec2("vpc")),
    Grant("Ec2ProductGroupsRules",
          ("ec2:AuthorizeSecurityGroupEgress", "ec2:AuthorizeSecurityGroupIngress",
           "ec2:RevokeSecurityGroupEgress", "ec2:RevokeSecurityGroupIngress"),
          _ec2("security-group"), PRODUCT_GROUPS),
    Grant("Ec2TagOnCreate", ("ec2:CreateTags",), _ec2("security-group", "snapshot"),
          {"StringEquals": {"ec2:CreateAction": ["CreateSecurityGroup", "CreateSnapshots"]}}),
    Grant("Ec2IncidentTags", ("ec2:CreateTags", "ec2:DeleteTags"), _ec2("instance"),
          {"ForAllValues:StringEquals": {"aws:TagKeys": INCIDENT_TAG_KEYS},
           "Null": {"aws:TagKeys": "false"}}),  # DeleteTags naming no key deletes every tag
    Grant("Ec2Interfaces", ("ec2:ModifyNetworkInterfaceAttribute",),
          _ec2("network-interface", "security-group", "instance", "vpc")),
    Grant("Ec2Instances",
          ("ec2:ModifyInstanceAttribute", "ec2:AssociateIamInstanceProfile",
           "ec2:DisassociateIamInstanceProfile", "ec2:ReplaceIamInstanceProfileAssociation",
           "ec2:GetConsoleOutput", "ec2:GetConsoleScreenshot", "ec2:StartInstances"),
          _ec2("instance", "security-group", "volume")),
    Grant("Ec2StopQuarantined", ("ec2:StopInstances",), _ec2("instance"), QUARANTINED_INSTANCES),
    Grant("Ec2Addresses", ("ec2:AssociateAddress", "ec2:DisassociateAddress"),
          _ec2("elastic-ip", "instance", "network-interface")),
    Grant("Ec2Snapshots", ("ec2:CreateSnapshots",), _ec2("instance", "volume", "snapshot")),
    Grant("Ec2ShareProductSnapshots", ("ec2:ModifySnapshotAttribute",), _ec2("snapshot"),
          PRODUCT_SNAPSHOTS),
    Grant("AutoScalingGroups",
          ("autoscaling:DetachInstances", "autoscaling:EnterStandby",
           "autoscaling:SetInstanceProtection"),
          ("arn:aws:autoscaling:*:*:autoScalingGroup:*:autoScalingGroupName/*",)),
    Grant("TargetGroups", ("elasticloadbalancing:DeregisterTargets",
                           "elasticloadbalancing:RegisterTargets"),
          ("arn:aws:elasticloadbalancing:*:*:targetgroup/*/*",)),
    Grant("ClassicLoadBalancers", ("elasticloadbalancing:DeregisterInstancesFromLoadBalancer",
                                   "elasticloadbalancing:RegisterInstancesWithLoadBalancer"),
          ("arn:aws:elasticloadbalancing:*:*:loadbalancer/*",)),
    Grant("IamProfiles", ("iam:GetInstanceProfile",), ("arn:aws:iam::*:instance-profile/*",)),
    Grant("IamRoles", ("iam:ListInstanceProfilesForRole", "iam:PutRolePolicy",
                       "iam:DeleteRolePolicy"), ("arn:aws:iam::*:role/*",)),
    # Revocation writes on the instance's role, unknown in advance; never on the product's own
    # roles (its functions', the member role, deny-all): a compromised step cannot raise itself.
    Grant("NeverOnTheProductsRoles", ("iam:PutRolePolicy", "iam:DeleteRolePolicy"),
          (f"arn:aws:iam::*:role/{names.APP_NAME}-*",), effect="Deny"),
    Grant("IamPassRoleToEc2", ("iam:PassRole",), ("arn:aws:iam::*:role/*",),
          {"StringEquals": {"iam:PassedToService": "ec2.amazonaws.com"}}),
    Grant("SsmMemoryCapture", ("ssm:SendCommand",),
          ("arn:aws:ssm:*:*:document/*",) + _ec2("instance")),
)

# Actions IAM cannot scope to a resource (no resource type in AWS's Service Authorization
# Reference): each is read-only or acts on what it is given by id.
UNSCOPABLE = {
    "ec2:DescribeAddresses": "EC2 Describe* actions take no resource",
    "ec2:DescribeIamInstanceProfileAssociations": "EC2 Describe* actions take no resource",
    "ec2:DescribeInstanceAttribute": "read-only; treated as a Describe* action",
    "ec2:DescribeInstances": "EC2 Describe* actions take no resource",
    "ec2:DescribeNetworkAcls": "EC2 Describe* actions take no resource",
    "ec2:DescribeNetworkInterfaces": "EC2 Describe* actions take no resource",
    "ec2:DescribeRouteTables": "EC2 Describe* actions take no resource",
    "ec2:DescribeSecurityGroups": "EC2 Describe* actions take no resource",
    "ec2:DescribeSnapshots": "EC2 Describe* actions take no resource",
    "elasticloadbalancing:DescribeLoadBalancers": "ELB Describe* actions take no resource",
    "elasticloadbalancing:DescribeTargetGroups": "ELB Describe* actions take no resource",
    "elasticloadbalancing:DescribeTargetHealth": "ELB Describe* actions take no resource",
    "ssm:DescribeInstanceInformation": "takes no resource",
    "ssm:GetCommandInvocation": "takes no resource (the command id is the scope)",
    "ssm:CancelCommand": "takes no resource (the command id is the scope)",
    **{action: "log delivery (the state machine's execution history) takes no resource"
       for action in statemachine.LOG_DELIVERY_ACTIONS},
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
                         if a.startswith(service + ":") and a not in UNSCOPABLE)
        resources = _product_resources(service, stage) if actions else None
        if resources:
            found.append({"Sid": service.capitalize(), "Effect": "Allow", "Action": actions,
                          "Resource": resources})
            placed.update(actions)
    for grant in INSTANCE_GRANTS:
        statement = grant.statement(wanted)
        if statement:
            found.append(statement)
            if grant.effect == "Allow":
                placed.update(statement["Action"])
    unscopable = sorted(wanted.intersection(UNSCOPABLE))
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
MEMBER_ROLE_TEMPLATE = "member-role.yaml"


def member_role_actions() -> list[str]:
    """What the app does inside a member account: the instance-facing actions of every function."""
    return sorted({action for actions in needs().values() for action in actions
                   if action.split(":")[0] in MEMBER_SERVICES})


def member_role_policy() -> dict:
    return {"Version": "2012-10-17",
            "Statement": statements(set(member_role_actions()), STAGES[0])}


def member_role_template() -> str:
    """CloudFormation for the member-account role, ready for StackSets."""
    document = json.dumps(member_role_policy(), indent=2).replace("\n", "\n" + " " * 12)
    return f"""AWSTemplateFormatVersion: "2010-09-09"
Description: >-
  ec2-quarantine member-account role (generated by `make policies` from the actions the app
  declares; do not edit). Deploy it in every member account, for example with StackSets.
Parameters:
  CentralAccountId:
    Type: String
    AllowedPattern: '^[0-9]{{12}}$'
    Description: account where ec2-quarantine runs (the GuardDuty delegated administrator)
  ExternalId:
    Type: String
    MinLength: 2
    NoEcho: true
    Description: the MEMBER_EXTERNAL_ID setting of the central deployment
  RoleName:
    Type: String
    Default: ec2-quarantine-member
    Description: the MEMBER_ROLE_NAME setting of the central deployment
  DenyAllProfileName:
    Type: String
    Default: {names.deny_all_profile("prod")}
    Description: >-
      the name in the central deployment's DENY_ALL_PROFILE_ARN: CREDENTIALS_MODE=deny-all swaps
      an instance's profile for the one of that name in the instance's own account
Resources:
  DenyAllRole:
    Type: AWS::IAM::Role
    Properties:
      RoleName: !Ref DenyAllProfileName
      AssumeRolePolicyDocument: {json.dumps(resources.EC2_TRUST)}
      Policies:
        - PolicyName: deny-all
          PolicyDocument: {json.dumps(resources.DENY_ALL)}
  DenyAllProfile:
    Type: AWS::IAM::InstanceProfile
    Properties:
      InstanceProfileName: !Ref DenyAllProfileName
      Roles:
        - !Ref DenyAllRole
  MemberRole:
    Type: AWS::IAM::Role
    Properties:
      RoleName: !Ref RoleName
      AssumeRolePolicyDocument:
        Version: "2012-10-17"
        Statement:
          - Effect: Allow
            Principal:
              AWS: !Sub "arn:aws:iam::${{CentralAccountId}}:root"
            Action: sts:AssumeRole
            Condition:
              StringEquals:
                sts:ExternalId: !Ref ExternalId
      Policies:
        - PolicyName: ec2-quarantine
          PolicyDocument:
            {document}
Outputs:
  RoleArn:
    Value: !GetAtt MemberRole.Arn
"""



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
    written = [os.path.join(deploy_dir, MEMBER_ROLE_TEMPLATE)]
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
