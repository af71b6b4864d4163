"""The tamper watch: containment that someone undoes is put back, and the incident records who
undid it.

Two ways in, one check. CloudTrail's management events for the calls that can undo
containment (EVENT_PATTERN) name the instances, interfaces, groups and policies they touched;
a scheduled sweep checks every active incident the events may have missed (CloudTrail delivers
best-effort, and member accounts' events need forwarding). Either way the incident's instance
is read as it is now, compared with what containment made, and whatever differs is made so
again.
"""

from chalicelib import bindings, cut, incidents, revocation
from chalicelib.actions import isolation
from chalicelib.actions.evidence import StopInstance
from chalicelib.actions.instance import (DetachInstanceProfile, DisableApiStop,
                                         DisableInstanceMetadata, KeepVolumesOnTermination,
                                         QuarantineTags, ShutdownBehaviourStop,
                                         SwapToDenyAllProfile, TerminationProtection)

# The calls that can undo containment, as CloudTrail names them (`eventName`). EC2's arrive in
# the region they were made in, IAM's in us-east-1 only (IAM is global).
EC2_CALLS = (
    "ModifyNetworkInterfaceAttribute", "AttachNetworkInterface",
    "AuthorizeSecurityGroupIngress", "AuthorizeSecurityGroupEgress",
    "RevokeSecurityGroupIngress", "RevokeSecurityGroupEgress", "ModifySecurityGroupRules",
    "AssociateIamInstanceProfile", "ReplaceIamInstanceProfileAssociation",
    "ModifyInstanceAttribute", "ModifyInstanceMetadataOptions", "DeleteTags", "CreateTags",
    "StartInstances",
)
IAM_CALLS = ("DeleteRolePolicy", "PutRolePolicy")
SWEEP_MINUTES = 5  # how often the sweep runs (a schedule: fixed at deployment)

EVENT_PATTERN = {
    "source": ["aws.ec2", "aws.iam"],
    "detail-type": ["AWS API Call via CloudTrail"],
    "detail": {"eventSource": ["ec2.amazonaws.com", "iam.amazonaws.com"],
               "eventName": [*EC2_CALLS, *IAM_CALLS],
               "errorCode": [{"exists": False}]},  # a call that failed undid nothing
}


def repair_classes(options) -> tuple:
    """The actions whose effect the watch puts back under `options`; their rights, and no
    others, are the watch's (it isolates with the product's groups only: never restores)."""
    return (SwapToDenyAllProfile if options.credentials_mode == "deny-all"
            else DetachInstanceProfile,
            DisableInstanceMetadata, TerminationProtection, ShutdownBehaviourStop,
            KeepVolumesOnTermination, *((DisableApiStop,) if options.disable_api_stop else ()),
            QuarantineTags, *((StopInstance,) if options.stop_after_evidence else ()))


READ_PERMISSIONS = (*cut.OBSERVE_PERMISSIONS, "ec2:DescribeNetworkInterfaces",
                    "ec2:DescribeIamInstanceProfileAssociations", "iam:GetRolePolicy")
PERMISSIONS = (*incidents.READ_PERMISSIONS, *incidents.UPDATE_PERMISSIONS,
               *bindings.VERIFY_PERMISSIONS, *READ_PERMISSIONS, *isolation.GROUP_PERMISSIONS,
               isolation.PRODUCT_GROUPS_ONLY, *revocation.INVOKE_PERMISSIONS, "sns:Publish")
SWEEP_PERMISSIONS = (*PERMISSIONS, "states:DescribeExecution")  # settling what is left OPEN


def permissions(options, sweep_too: bool = False) -> set[str]:
    """What the event handler (or, `sweep_too`, the sweep) needs under `options`."""
    return {*(SWEEP_PERMISSIONS if sweep_too else PERMISSIONS),
            *(p for cls in repair_classes(options) for p in cls.permissions)}


def handle_event(detail, home_account: str) -> dict:
    """Check and repair the incidents a CloudTrail event touched."""
    raise NotImplementedError


def sweep(home_account: str) -> dict:
    """Check and repair every active incident; settle those left OPEN whose execution ended."""
    raise NotImplementedError
