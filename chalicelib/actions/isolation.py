"""Network isolation: the connection-tracking two-step on every interface.

Changing security groups does not cut tracked connections. Each interface first gets a group that
allows all traffic from and to 0.0.0.0/0 and ::/0 (flows become untracked), then the isolation
group with no rules at all. One pair of groups per VPC, shared by every incident there, found by tag
and VPC in one request, created race-safely, and checked for rules before every use.
"""

import logging
import uuid

from chalicelib import aws
from chalicelib.actions import Action, OnRelease, change, narrowed

log = logging.getLogger(__name__)

ROLE_TAG = "ec2-quarantine"  # tag key on the product's groups; value "open" or "isolation"
GROUP_NAMES = {"open": "ec2-quarantine-open", "isolation": "ec2-quarantine-isolation"}
DESCRIPTIONS = {
    "open": "ec2-quarantine: allows all traffic so existing flows become untracked",
    "isolation": "ec2-quarantine: no rules; isolates what it is attached to",
}
# Containment puts the product's groups on interfaces and no others (release puts back any).
PRODUCT_GROUPS_ONLY = narrowed("ec2:ModifyNetworkInterfaceAttribute", "product-groups")
GROUP_PERMISSIONS = (
    "ec2:DescribeSecurityGroups",
    "ec2:CreateSecurityGroup",
    "ec2:CreateTags",
    "ec2:AuthorizeSecurityGroupIngress",
    "ec2:AuthorizeSecurityGroupEgress",
    "ec2:RevokeSecurityGroupIngress",
    "ec2:RevokeSecurityGroupEgress",
)


def find_groups(ec2, vpc_id: str) -> dict:
    """The VPC's groups by role ("open", "isolation"), as described; one request."""
    described = ec2.describe_security_groups(Filters=[
        {"Name": "vpc-id", "Values": [vpc_id]},
        {"Name": f"tag:{ROLE_TAG}", "Values": list(GROUP_NAMES)},
    ])["SecurityGroups"]
    found = {}
    for group in described:
        role = next(t["Value"] for t in group.get("Tags", []) if t["Key"] == ROLE_TAG)
        found.setdefault(role, group)
    return found


def isolation_groups(target, vpc_id: str) -> dict:
    """{"open": group id, "isolation": group id} for `vpc_id`, ready to use (cached per step)."""
    cache = target.cache.setdefault("groups", {})
    if vpc_id not in cache:
        ec2 = target.ec2
        found = target.cache.setdefault("found", {})  # read ahead (prefetch), not yet checked
        groups = found.pop(vpc_id) if vpc_id in found else find_groups(ec2, vpc_id)
        for role in GROUP_NAMES:
            created = role not in groups
            if created:
                groups[role] = _create(ec2, vpc_id, role)
            _make_rules_right(ec2, role, groups[role], created)
        cache[vpc_id] = {role: group["GroupId"] for role, group in groups.items()}
    return cache[vpc_id]


def _create(ec2, vpc_id: str, role: str) -> dict:
    """Create the group, or take the one a concurrent step created a moment ago. A group of
    that name without the product's tag is someone else's (IAM lets the steps change only
    tagged groups): it is left alone, and the product's is created under a name of its own."""
    def create(name):
        return aws.tolerate(
            "InvalidGroup.Duplicate", ec2.create_security_group,
            GroupName=name, Description=DESCRIPTIONS[role], VpcId=vpc_id,
            TagSpecifications=[{"ResourceType": "security-group", "Tags": [
                {"Key": ROLE_TAG, "Value": role}, {"Key": "Name", "Value": name}]}])

    created = create(GROUP_NAMES[role])
    if created is None:
        (named,) = ec2.describe_security_groups(Filters=[
            {"Name": "vpc-id", "Values": [vpc_id]},
            {"Name": "group-name", "Values": [GROUP_NAMES[role]]}])["SecurityGroups"]
        if {"Key": ROLE_TAG, "Value": role} in named.get("Tags", []):
            return named  # a concurrent step created it: take that one
        log.warning("group %s in %s is named %s but is not the product's (no %s=%s tag): "
                    "not used", named["GroupId"], vpc_id, GROUP_NAMES[role], ROLE_TAG, role)
        created = create(f"{GROUP_NAMES[role]}-{uuid.uuid4().hex[:8]}")
    group_id = created["GroupId"]
    log.info("created %s group %s in %s", role, group_id, vpc_id)
    # A new VPC group holds AWS's default egress rule; _make_rules_right removes it.
    return {"GroupId": group_id, "IpPermissions": [],
            "IpPermissionsEgress": ec2.describe_security_groups(GroupIds=[group_id])[
                "SecurityGroups"][0]["IpPermissionsEgress"]}


def prefetch(target, vpc_ids) -> None:
    """Read the VPCs' groups ahead (beside another request), for `isolation_groups` to check
    and use: the swap then waits for nothing more."""
    found = target.cache.setdefault("found", {})
    for vpc_id in vpc_ids:
        found[vpc_id] = find_groups(target.ec2, vpc_id)


def _make_rules_right(ec2, role: str, group: dict, created: bool) -> None:
    """Isolation: no rule at all (AWS's default egress rule, or one someone added). Open: all
    traffic both ways."""
    group_id = group["GroupId"]
    if role == "isolation":
        for rules, revoke in ((group.get("IpPermissions"), ec2.revoke_security_group_ingress),
                              (group.get("IpPermissionsEgress"), ec2.revoke_security_group_egress)):
            if rules:
                if not created:
                    log.warning("isolation group %s had rules; removing them", group_id)
                aws.tolerate("InvalidPermission.NotFound", revoke, GroupId=group_id,
                             IpPermissions=_bare(rules))
        return
    for rules, authorize in ((group.get("IpPermissions"), ec2.authorize_security_group_ingress),
                             (group.get("IpPermissionsEgress"), ec2.authorize_security_group_egress)):
        missing = _missing_all_traffic(rules or [])
        if missing:
            aws.tolerate("InvalidPermission.Duplicate", authorize, GroupId=group_id,
                         IpPermissions=[{"IpProtocol": "-1", **missing}])


def _missing_all_traffic(rules) -> dict:
    """The all-traffic ranges (IPv4, IPv6) that `rules` do not grant yet."""
    everything = [rule for rule in rules if rule.get("IpProtocol") == "-1"]
    v4 = any(r.get("CidrIp") == "0.0.0.0/0" for rule in everything for r in rule.get("IpRanges", []))
    v6 = any(r.get("CidrIpv6") == "::/0" for rule in everything for r in rule.get("Ipv6Ranges", []))
    missing = {}
    if not v4:
        missing["IpRanges"] = [{"CidrIp": "0.0.0.0/0"}]
    if not v6:
        missing["Ipv6Ranges"] = [{"CidrIpv6": "::/0"}]
    return missing


def _bare(rules):
    """Rules as Revoke* accepts them (without the read-only fields Describe adds)."""
    keep = ("IpProtocol", "FromPort", "ToPort", "IpRanges", "Ipv6Ranges", "PrefixListIds",
            "UserIdGroupPairs")
    return [{k: v for k, v in rule.items() if k in keep and v not in (None, [])} for rule in rules]


class IsolateInterface(Action):
    """One interface: the all-open group, then the isolation group."""

    name = "isolate-interface"
    permissions = GROUP_PERMISSIONS + (PRODUCT_GROUPS_ONLY,)
    undo_permissions = ("ec2:ModifyNetworkInterfaceAttribute", "ec2:DescribeNetworkInterfaces")
    on_release = OnRelease.UNDONE

    def __init__(self, interface: dict | None = None):  # None: only to undo a record
        self.interface = interface or {}  # {"id", "vpc_id", "groups"} before the incident
        self.resource = self.interface.get("id", "")

    def plan(self, target):
        existing = find_groups(target.ec2, self.interface["vpc_id"])
        open_group, isolation = (existing.get(role, {}).get("GroupId", f"(new {role} group)")
                                 for role in ("open", "isolation"))
        return [change(self.name, self.resource, "groups", self.interface["groups"], [open_group]),
                change(self.name, self.resource, "groups", [open_group], [isolation])]

    def apply(self, target):
        groups = isolation_groups(target, self.interface["vpc_id"])
        ec2 = target.ec2
        ec2.modify_network_interface_attribute(NetworkInterfaceId=self.resource,
                                               Groups=[groups["open"]])
        try:
            ec2.modify_network_interface_attribute(NetworkInterfaceId=self.resource,
                                                   Groups=[groups["isolation"]])
        except Exception as error:
            # Never leave an interface on the all-open group: put its own groups back.
            try:
                ec2.modify_network_interface_attribute(NetworkInterfaceId=self.resource,
                                                       Groups=self.interface["groups"])
                left = "its original groups were restored"
            except Exception:
                left = f"it is LEFT ON THE ALL-OPEN GROUP {groups['open']}: fix it by hand"
            raise RuntimeError(f"isolation group not applied to {self.resource} ({error}); "
                               f"{left}") from error
        return [change(self.name, self.resource, "groups", self.interface["groups"],
                       [groups["isolation"]])]

    def undo(self, target, record):
        target.ec2.modify_network_interface_attribute(
            NetworkInterfaceId=record["resource"], Groups=record["before"])

    def foreign(self, target, record):
        """One of the instance's interfaces, still attached to it, given back the groups it had."""
        had = {i["id"]: i["groups"] for i in target.pre_state["interfaces"]}
        eni = record.get("resource")
        if eni not in had:
            return f"{eni!r} was not an interface of {target.instance_id}"
        if record.get("before") != had[eni]:
            return f"{eni} had groups {had[eni]}, not {record.get('before')!r}"
        described = target.ec2.describe_network_interfaces(NetworkInterfaceIds=[eni])
        attached = (described["NetworkInterfaces"][0].get("Attachment") or {}).get("InstanceId")
        if attached != target.instance_id:
            return f"{eni} is no longer attached to {target.instance_id} (now: {attached})"
        return None
