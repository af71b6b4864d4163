"""Where each instance-facing action and each MAC with the records key may act, and which
actions IAM cannot scope at all.

Instance-facing actions are scoped to the resource types they touch, with a condition where IAM
supports one (the product's own groups, its own tag keys, its own snapshots). The records key's
MAC actions are scoped to that key by its alias. What IAM cannot scope is listed in UNSCOPABLE
with the reason. deploy/permissions.py places every action a function declares by these
decisions, or stops the build.
"""

from dataclasses import dataclass

from chalicelib import revocation, seals
from chalicelib.actions import instance as instance_actions
from chalicelib.actions import isolation
from deploy import names, statemachine


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
    Grant("IamRoles", ("iam:ListInstanceProfilesForRole",), ("arn:aws:iam::*:role/*",)),
    # Only the revoking function declares these (chalicelib/revocation.py): it writes the Deny
    # itself, on the instance's role, unknown in advance; never on the product's own roles (its
    # functions', the member role, deny-all), which it refuses and IAM denies as well.
    Grant("IamRevocation", ("iam:PutRolePolicy", "iam:DeleteRolePolicy"),
          ("arn:aws:iam::*:role/*",)),
    Grant("NeverOnTheProductsRoles", ("iam:PutRolePolicy", "iam:DeleteRolePolicy"),
          (f"arn:aws:iam::*:role/{names.APP_NAME}-*",), effect="Deny"),
    Grant("IamPassRoleToEc2", ("iam:PassRole",), ("arn:aws:iam::*:role/*",),
          {"StringEquals": {"iam:PassedToService": "ec2.amazonaws.com"}}),
    Grant("SsmMemoryCapture", ("ssm:SendCommand",),
          ("arn:aws:ssm:*:*:document/*",) + _ec2("instance")),
)

# What the product does with its records key (deploy/records_key.py): seal and verify, no more.
RECORDS_KEY_ACTIONS = (*seals.SEAL_PERMISSIONS, *seals.VERIFY_PERMISSIONS)


def records_key_grant(stage: str) -> Grant:
    """MACs with the stage's records key only. KMS makes the key's ARN, so the key is found by
    the alias the stack gives it (`kms:ResourceAliases`, evaluated per request); the key policy
    names the functions' roles as well, so both sides must agree."""
    return Grant("RecordsKeyMacs", RECORDS_KEY_ACTIONS, ("arn:aws:kms:*:*:key/*",),
                 {"ForAnyValue:StringEquals": {
                     "kms:ResourceAliases": [names.records_key_alias(stage)]}})


def revoker_grant(stage: str) -> Grant:
    """The steps that revoke sessions may invoke the revoking function of their stage, no other
    function."""
    return Grant("InvokeTheRevoker", revocation.INVOKE_PERMISSIONS,
                 (f"arn:aws:lambda:*:*:function:{names.function(stage, revocation.FUNCTION)}",))


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
