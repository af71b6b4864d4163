"""Where each instance-facing action, each MAC with the records key and each signature with the
evidence signing key may act, and which actions IAM cannot scope at all.

Instance-facing actions are scoped to the resource types they touch, with a condition where IAM
supports one (the product's own groups, its own tag keys, its own snapshots). The records key's
MAC actions are scoped to that key by its alias, `kms:Sign` to the evidence signing key by its
own. What IAM cannot scope is listed in UNSCOPABLE with the reason. deploy/permissions.py places
every action a function declares by these decisions, or stops the build.
"""

from dataclasses import dataclass

from chalicelib import exemptions, manifests, publish, revocation, seals, securityhub
from chalicelib.actions import narrowed
from chalicelib.steps import approval
from chalicelib.actions import instance as instance_actions
from chalicelib.actions import isolation
from deploy import names, statemachine


@dataclass(frozen=True)
class Grant:
    """Some actions on some resources, under an optional condition: one policy statement.
    An action may be `narrowed` (chalicelib.actions): the grant for that narrow use carries its
    condition, the statement names the IAM action."""

    sid: str
    actions: tuple[str, ...]
    resources: tuple[str, ...]
    condition: dict | None = None
    effect: str = "Allow"

    def matched(self, wanted: set[str]) -> set[str]:
        return wanted.intersection(self.actions)

    def statement(self, wanted: set[str]) -> dict | None:
        matched = self.matched(wanted)
        if not matched:
            return None
        statement = {"Sid": self.sid, "Effect": self.effect,
                     "Action": sorted({iam_action(a) for a in matched}),
                     "Resource": list(self.resources)}
        if self.condition:
            statement["Condition"] = self.condition
        return statement


def iam_action(permission: str) -> str:
    """The IAM action of a declared permission (`narrowed` ones carry their use after a /)."""
    return permission.split("/", 1)[0]


def _ec2(*types: str) -> tuple[str, ...]:
    return tuple(f"arn:aws:ec2:*:*:{kind}/*" for kind in types)


PRODUCT_GROUPS = {"StringEquals": {f"aws:ResourceTag/{isolation.ROLE_TAG}": sorted(
    isolation.GROUP_NAMES)}}


# One of the product's groups, by its role: rules are added only to "open", taken only from
# "isolation".
PRODUCT_GROUP = {role: {"StringEquals": {f"aws:ResourceTag/{isolation.ROLE_TAG}": role}}
                 for role in isolation.GROUP_NAMES}


INCIDENT_TAG_KEYS = sorted({instance_actions.TAG_INCIDENT, instance_actions.TAG_STATUS,
                            instance_actions.TAG_FINDING})
PRODUCT_SNAPSHOTS = {"Null": {f"aws:ResourceTag/{instance_actions.TAG_INCIDENT}": "false"}}
QUARANTINED_INSTANCES = {"Null": {f"aws:ResourceTag/{instance_actions.TAG_INCIDENT}": "false"}}
EC2_ONLY = {"StringEquals": {"iam:PassedToService": "ec2.amazonaws.com"}}
MALWARE_PROTECTION = "malware-protection.guardduty.amazonaws.com"  # its service-linked role's

def _input(operation: str) -> dict:
    """The request members of an EC2 operation, as botocore's model has them: read from the
    model, so an attribute AWS adds later is excluded as soon as botocore knows it."""
    import botocore.session

    return botocore.session.get_session().get_service_model("ec2").operation_model(
        operation).input_shape.members


def _settable(operation: str, *besides: str) -> tuple[str, ...]:
    """What a request of `operation` may set (IAM names each one a request sets
    `ec2:Attribute/<Name>`), but the ids, the dry run and `besides`."""
    skipped = {"DryRun", "InstanceId", "NetworkInterfaceId", "Attribute", "Value", *besides}
    return tuple(sorted(name for name in _input(operation) if name not in skipped))


# ModifyInstanceAttribute sets one attribute per call; the product sets these three and
# BlockDeviceMappings, never UserData, the kernel, the type...
SET_ATTRIBUTES = ("DisableApiTermination", "InstanceInitiatedShutdownBehavior",
                  "DisableApiStop")
# The value containment gives each (chalicelib/actions/instance.py's InstanceAttribute).
PROTECTING = {cls._key: cls.value for cls in (instance_actions.TerminationProtection,
                                              instance_actions.ShutdownBehaviourStop,
                                              instance_actions.DisableApiStop)}
OTHER_ATTRIBUTES = _settable("ModifyInstanceAttribute", "BlockDeviceMappings")
# The generic form (`Attribute=userData, Value=...`) names its attribute in `ec2:Attribute`;
# those the product never sets are denied outright (a Deny on a key a request lacks is inert).
NEVER_SET = sorted(set(_input("ModifyInstanceAttribute")["Attribute"].enum) - {
    name[0].lower() + name[1:] for name in SET_ATTRIBUTES} - {"blockDeviceMapping"})
# ModifyNetworkInterfaceAttribute: the product changes an interface's groups, or its
# connection tracking, and nothing else.
INTERFACE_ATTRIBUTES = _settable("ModifyNetworkInterfaceAttribute", "Groups")
TRACKING = "ConnectionTrackingSpecification"


def _attribute_grants() -> tuple[Grant, ...]:
    """One Allow per attribute the product sets, each conditioned on that attribute: no
    statement lets a step rewrite UserData (code run at the next start) or the kernel."""
    named = tuple(Grant(f"Ec2Set{name}", (instance_actions.sets_attribute(name),),
                        _ec2("instance"), {"Null": {f"ec2:Attribute/{name}": "false"}})
                  for name in SET_ATTRIBUTES)
    # Containment sets each to the value that protects, no other (release sets them back).
    protecting = tuple(Grant(f"Ec2Protect{name}", (instance_actions.preserves(name, value),),
                             _ec2("instance"), {"StringEquals": {
                                 f"ec2:Attribute/{name}": instance_actions.iam_value(value)}})
                       for name, value in PROTECTING.items())
    # IAM has no key naming BlockDeviceMappings: that grant requires instead that the request
    # sets none of the other attributes.
    block_devices = Grant(
        "Ec2SetBlockDeviceMappings", (instance_actions.sets_attribute("BlockDeviceMappings"),),
        _ec2("instance", "volume"),
        {"Null": {f"ec2:Attribute/{name}": "true" for name in OTHER_ATTRIBUTES}})
    generic = Grant("NeverTheseAttributes",
                    (*(instance_actions.sets_attribute(name)
                       for name in (*SET_ATTRIBUTES, "BlockDeviceMappings")),
                     *(instance_actions.preserves(name, value)
                       for name, value in PROTECTING.items())),
                    _ec2("instance"),
                    {"StringEqualsIgnoreCase": {"ec2:Attribute": NEVER_SET}}, effect="Deny")
    return (*named, *protecting, block_devices, generic)


def deny_all_profile(current) -> str:
    """The deny-all instance profile's name (with its path), under the settings `current`."""
    return current.deny_all_profile_arn.split(":instance-profile/", 1)[-1]


def product_roles(current) -> tuple[str, ...]:
    """ARN patterns of every role the product owns, under the settings `current`: its
    functions' (by the app's prefix), its member roles (MEMBER_ROLE_NAME may be any name) and
    the deny-all role."""
    deny_all = current.deny_all_profile_arn.rsplit("/", 1)[-1]
    return tuple(dict.fromkeys((f"arn:aws:iam::*:role/{names.APP_NAME}-*",
                                f"arn:aws:iam::*:role/{current.member_role_name}*",
                                f"arn:aws:iam::*:role/{deny_all}")))


def instance_grants(current) -> tuple[Grant, ...]:
    """Instance-facing actions (home and member accounts), by resource type and condition,
    under the settings `current` (the memory document, the forensic account, the deny-all
    profile are theirs)."""
    deny_all = current.deny_all_profile_arn.rsplit("/", 1)[-1]
    return (
        Grant("Ec2ProductGroupsCreate", ("ec2:CreateSecurityGroup",), _ec2("security-group"),
              {"StringEquals": {f"aws:RequestTag/{isolation.ROLE_TAG}": sorted(
                  isolation.GROUP_NAMES)}}),
        Grant("Ec2ProductGroupsInVpc", ("ec2:CreateSecurityGroup",), _ec2("vpc")),
        # Rules are only ever added to the all-open group and taken from the isolation group.
        Grant("Ec2OpenGroupRules",
              ("ec2:AuthorizeSecurityGroupEgress", "ec2:AuthorizeSecurityGroupIngress"),
              _ec2("security-group"), PRODUCT_GROUP["open"]),
        Grant("Ec2IsolationGroupRules",
              ("ec2:RevokeSecurityGroupEgress", "ec2:RevokeSecurityGroupIngress"),
              _ec2("security-group"), PRODUCT_GROUP["isolation"]),
        Grant("Ec2TagOnCreate", ("ec2:CreateTags", isolation.TAGS_ON_CREATE),
              _ec2("security-group", "snapshot"),
              {"StringEquals": {"ec2:CreateAction": ["CreateSecurityGroup", "CreateSnapshots"]}}),
        Grant("Ec2IncidentTags", ("ec2:CreateTags", "ec2:DeleteTags"), _ec2("instance"),
              {"ForAllValues:StringEquals": {"aws:TagKeys": INCIDENT_TAG_KEYS},
               "Null": {"aws:TagKeys": "false"}}),  # DeleteTags naming no key deletes every tag
        # The API's function mirrors the exemptions it issues on the instance: that key alone.
        Grant("Ec2ExemptTag", (exemptions.MIRROR_TAGGING, exemptions.MIRROR_UNTAGGING),
              _ec2("instance"), {"ForAllValues:StringEquals": {"aws:TagKeys": [
                  current.exempt_tag]}, "Null": {"aws:TagKeys": "false"}}),
        # Release puts back the groups its verified records name (any); containment may put
        # only the product's own groups on an interface (each group is authorized apart). On
        # the interface itself, the groups only: never a public IP, source/dest check off, an
        # attachment or tracking change.
        Grant("Ec2InterfacesGroupsOnly", ("ec2:ModifyNetworkInterfaceAttribute",
                                          isolation.PRODUCT_GROUPS_ONLY),
              _ec2("network-interface"),
              {"Null": {f"ec2:Attribute/{name}": "true" for name in INTERFACE_ATTRIBUTES}}),
        Grant("Ec2InterfacesOfInstances", ("ec2:ModifyNetworkInterfaceAttribute",
                                           isolation.PRODUCT_GROUPS_ONLY,
                                           isolation.TRACKING_ONLY),
              _ec2("instance", "vpc")),
        # Connection tracking: the timeouts alone, never the groups or anything else.
        Grant("Ec2InterfacesTrackingOnly", (isolation.TRACKING_ONLY,), _ec2("network-interface"),
              {"Null": {f"ec2:Attribute/{name}": "false" if name == TRACKING else "true"
                        for name in (*INTERFACE_ATTRIBUTES, "Groups")}}),
        Grant("Ec2InterfacesAnyGroup", ("ec2:ModifyNetworkInterfaceAttribute",),
              _ec2("security-group")),
        Grant("Ec2InterfacesProductGroups", (isolation.PRODUCT_GROUPS_ONLY,),
              _ec2("security-group"), PRODUCT_GROUPS),
        Grant("Ec2ReadInstanceAttributes", ("ec2:DescribeInstanceAttribute",), _ec2("instance")),
        *_attribute_grants(),
        Grant("Ec2Instances",
              ("ec2:DisassociateIamInstanceProfile", "ec2:GetConsoleOutput",
               "ec2:GetConsoleScreenshot"), _ec2("instance")),
        # Release hands back the profile its verified records name (any profile: the one the
        # instance had); containment may hand out only the deny-all profile.
        Grant("Ec2GiveBackProfile", ("ec2:AssociateIamInstanceProfile",
                                     "ec2:ReplaceIamInstanceProfileAssociation"),
              _ec2("instance")),
        Grant("Ec2SwapToDenyAll", (narrowed("ec2:ReplaceIamInstanceProfileAssociation",
                                            instance_actions.DENY_ALL),), _ec2("instance"),
              {"ArnLike": {"ec2:NewInstanceProfile":
                           f"arn:aws:iam::*:instance-profile/{deny_all_profile(current)}"}}),
        # Containment turns the metadata endpoint off and may not turn it on; release sets it
        # back to the value its verified records name.
        Grant("Ec2MetadataOff", instance_actions.DisableInstanceMetadata.permissions,
              _ec2("instance"), {"StringEquals": {
                  "ec2:MetadataHttpEndpoint": instance_actions.DisableInstanceMetadata.value}}),
        Grant("Ec2MetadataBack", instance_actions.DisableInstanceMetadata.undo_permissions,
              _ec2("instance")),
        Grant("Ec2StopStartQuarantined", ("ec2:StopInstances", "ec2:StartInstances"),
              _ec2("instance"), QUARANTINED_INSTANCES),
        Grant("Ec2Addresses", ("ec2:AssociateAddress", "ec2:DisassociateAddress"),
              _ec2("elastic-ip", "instance", "network-interface")),
        Grant("Ec2Snapshots", ("ec2:CreateSnapshots",), _ec2("instance", "volume", "snapshot")),
        Grant("Ec2ShareProductSnapshots", ("ec2:ModifySnapshotAttribute",), _ec2("snapshot"),
              {**PRODUCT_SNAPSHOTS,
               "ForAllValues:StringEquals": {"ec2:Add/userId": [current.forensic_account_id]},
               "Null": {**PRODUCT_SNAPSHOTS["Null"], "ec2:Add/userId": "false",
                        "ec2:Add/group": "true"}}),  # never "all": public
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
        # Only the revoking function declares these (chalicelib/revocation.py): it writes the
        # Deny itself, on the instance's role, unknown in advance; never on the product's own
        # roles (its functions', the member roles, deny-all), which it refuses and IAM denies.
        Grant("IamRevocation", ("iam:PutRolePolicy", "iam:DeleteRolePolicy"),
              ("arn:aws:iam::*:role/*",)),
        Grant("NeverOnTheProductsRoles", ("iam:PutRolePolicy", "iam:DeleteRolePolicy"),
              product_roles(current), effect="Deny"),
        # The tamper watch reads whether an incident's revocation policy is still in place.
        Grant("IamRevocationPolicyRead", ("iam:GetRolePolicy",), ("arn:aws:iam::*:role/*",)),
        # Release gives back the role the instance had, which may be any: only from change
        # records whose seal and ownership it verified first. Containment passes deny-all only.
        Grant("IamPassRoleToEc2", ("iam:PassRole",), ("arn:aws:iam::*:role/*",), EC2_ONLY),
        Grant("IamPassDenyAllToEc2", (narrowed("iam:PassRole", instance_actions.DENY_ALL),),
              (f"arn:aws:iam::*:role/{deny_all}",), EC2_ONLY),
        # The first malware scan in an account makes GuardDuty's service-linked role: that
        # role, for that service, and no other.
        Grant("IamMalwareProtectionRole", ("iam:CreateServiceLinkedRole",),
              (f"arn:aws:iam::*:role/aws-service-role/{MALWARE_PROTECTION}/"
               "AWSServiceRoleForAmazonGuardDutyMalwareProtection",),
              {"StringEquals": {"iam:AWSServiceName": MALWARE_PROTECTION}}),
        # The document only: it uploads to presigned URLs, SendCommand names no bucket.
        Grant("SsmMemoryDocument", ("ssm:SendCommand",),
              (f"arn:aws:ssm:*:*:document/{current.memory_capture_document}",)),
        # Capture runs before isolation and the tags: any instance, but that document only.
        Grant("SsmMemoryCaptureInstances", ("ssm:SendCommand",), _ec2("instance")),
    )


# Whether an account is in the organization (MEMBER_ACCOUNTS=*, chalicelib/accounts.py), on
# accounts of an organization only.
ORGANIZATION_ACCOUNTS = Grant("OrganizationAccounts", ("organizations:DescribeAccount",),
                              ("arn:aws:organizations::*:account/o-*/*",))

# What the product does with its records key (deploy/records_key.py): seal and verify, no more.
RECORDS_KEY_ACTIONS = (*seals.SEAL_PERMISSIONS, *seals.VERIFY_PERMISSIONS)


def records_key_grant(stage: str) -> Grant:
    """MACs with the stage's records key only. KMS makes the key's ARN, so the key is found by
    the alias the stack gives it (`kms:ResourceAliases`, evaluated per request); the key policy
    names the functions' roles as well, so both sides must agree."""
    return Grant("RecordsKeyMacs", RECORDS_KEY_ACTIONS, ("arn:aws:kms:*:*:key/*",),
                 {"ForAnyValue:StringEquals": {
                     "kms:ResourceAliases": [names.records_key_alias(stage)]}})


def evidence_signing_grant(stage: str) -> Grant:
    """Signs with the stage's evidence signing key only (deploy/signing_key.py), found by its
    alias as the records key is."""
    return Grant("EvidenceSigningKeySigns", (*manifests.SIGN_PERMISSIONS,
                                             *publish.VERIFY_PERMISSIONS),
                 ("arn:aws:kms:*:*:key/*",),
                 {"ForAnyValue:StringEquals": {
                     "kms:ResourceAliases": [names.evidence_signing_key_alias(stage)]}})


def revoker_grant(stage: str) -> Grant:
    """The steps that revoke sessions may invoke the revoking function of their stage, no other
    function."""
    return Grant("InvokeTheRevoker", revocation.INVOKE_PERMISSIONS,
                 (f"arn:aws:lambda:*:*:function:{names.function(stage, revocation.FUNCTION)}",))


def page_publisher_grant(stage: str) -> Grant:
    """The functions that ask for the incident page may invoke the publishing function of their
    stage, no other function."""
    return Grant("InvokeThePagePublisher", publish.INVOKE_PERMISSIONS,
                 (f"arn:aws:lambda:*:*:function:{names.function(stage, publish.FUNCTION)}",))


def approval_closer_grant(stage: str) -> Grant:
    """The sweep may invoke the approval function of its stage (to close an incident left
    undecided), no other function."""
    return Grant("InvokeTheApprovalStep", approval.CLOSE_PERMISSIONS,
                 (f"arn:aws:lambda:*:*:function:{names.function(stage, approval.FUNCTION)}",))


def findings_sync_grant(stage: str) -> Grant:
    """The functions that change an incident may invoke the findings sync of their stage, no
    other function."""
    return Grant("InvokeTheFindingsSync", securityhub.INVOKE_PERMISSIONS,
                 (f"arn:aws:lambda:*:*:function:{names.function(stage, securityhub.FUNCTION)}",))


# BatchUpdateFindings acts on the hub; IAM names each field a request writes
# (`securityhub:ASFFSyntaxPath/<field>`): the status may be NOTIFIED or RESOLVED only (never
# SUPPRESSED: no finding is hidden), the note is signed as the product's, and no severity, type
# or verification state is touched.
FINDINGS_FOLLOW_INCIDENTS = Grant(
    "SecurityHubFindingsFollowIncidents", securityhub.UPDATE_PERMISSIONS,
    ("arn:aws:securityhub:*:*:hub/default",),
    {"StringEquals": {"securityhub:ASFFSyntaxPath/Workflow.Status": list(securityhub.WORKFLOW),
                      "securityhub:ASFFSyntaxPath/Note.UpdatedBy": securityhub.UPDATED_BY},
     "Null": {f"securityhub:ASFFSyntaxPath/{name}": "true"
              for name in securityhub.NEVER_WRITTEN}})


# Actions IAM cannot scope to a resource (no resource type in AWS's Service Authorization
# Reference): each is read-only or acts on what it is given by id.
UNSCOPABLE = {
    "ec2:DescribeAddresses": "EC2 Describe* actions take no resource",
    "ec2:DescribeIamInstanceProfileAssociations": "EC2 Describe* actions take no resource",
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
    "states:SendTaskSuccess": "takes no resource: the task token names the waiting task",
    "ssm:GetCommandInvocation": "takes no resource (the command id is the scope)",
    "ssm:CancelCommand": "takes no resource (the command id is the scope)",
    "organizations:DescribeOrganization": "takes no resource (the caller's own organization)",
    **{action: "GuardDuty's malware scans take no resource (the scan is of the ARN it is given, "
               "in the caller's account)"
       for action in ("guardduty:StartMalwareScan", "guardduty:ListMalwareScans",
                      "guardduty:GetMalwareScan")},
    **{action: "log delivery (the state machine's execution history) takes no resource"
       for action in statemachine.LOG_DELIVERY_ACTIONS},
}
