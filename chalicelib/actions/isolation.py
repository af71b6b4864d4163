"""Network isolation: the connection-tracking two-step on every interface.

Changing security groups does not cut tracked connections. Each interface first gets a group that
allows all traffic from and to 0.0.0.0/0 and ::/0 (flows become untracked), then the isolation
group with no rules at all. One pair of groups per VPC, shared by every incident there, found by tag
and VPC in one request, created race-safely, and checked for rules before every use.
"""

import logging
import re
import uuid

from chalicelib import aws
from chalicelib.actions import Action, OnRelease, PartialFailure, change, narrowed

log = logging.getLogger(__name__)

ROLE_TAG = "ec2-quarantine"  # tag key on the product's groups; value "open" or "isolation"
GROUP_NAMES = {"open": "ec2-quarantine-open", "isolation": "ec2-quarantine-isolation"}
DESCRIPTIONS = {
    "open": "ec2-quarantine: allows all traffic so existing flows become untracked",
    "isolation": "ec2-quarantine: no rules; isolates what it is attached to",
}
# Containment puts the product's groups on interfaces and no others (release puts back any).
PRODUCT_GROUPS_ONLY = narrowed("ec2:ModifyNetworkInterfaceAttribute", "product-groups")
TAGS_ON_CREATE = narrowed("ec2:CreateTags", "on-create")  # the new group's tags, nothing else
GROUP_PERMISSIONS = (
    "ec2:DescribeSecurityGroups",
    "ec2:CreateSecurityGroup",
    TAGS_ON_CREATE,
    "ec2:AuthorizeSecurityGroupIngress",
    "ec2:AuthorizeSecurityGroupEgress",
    "ec2:RevokeSecurityGroupIngress",
    "ec2:RevokeSecurityGroupEgress",
)


def product_group_name(name: str) -> str | None:
    """The role a group of this name plays for the product ("open", "isolation"), if the
    product names its groups so (its own name, or that name and 8 hex digits when a squatter
    held it); None for any other group."""
    for role, base in GROUP_NAMES.items():
        if re.fullmatch(rf"{base}(-[0-9a-f]{{8}})?", name):
            return role
    return None


def find_groups(ec2, vpc_ids=None) -> dict:
    """The product's groups by VPC, then by role ("open", "isolation"), as described; one
    request. Without `vpc_ids`, in every VPC (the entry function reads them beside the
    instance, before it knows the instance's VPCs). A group counts only if its tag and its
    name both say the role: tagging an existing group (an instance's own, say) does not make
    it the product's; the product's own name comes first."""
    filters = [{"Name": f"tag:{ROLE_TAG}", "Values": list(GROUP_NAMES)}]
    if vpc_ids:
        filters.append({"Name": "vpc-id", "Values": sorted(vpc_ids)})
    found: dict = {}
    described = ec2.describe_security_groups(Filters=filters)["SecurityGroups"]
    for group in sorted(described, key=lambda g: (g["GroupName"] not in GROUP_NAMES.values(),
                                                  g["GroupName"])):
        role = next(t["Value"] for t in group.get("Tags", []) if t["Key"] == ROLE_TAG)
        if product_group_name(group["GroupName"]) != role:
            log.warning("group %s (%s) is tagged %s=%s but is not named as the product names "
                        "it: not used", group["GroupId"], group["GroupName"], ROLE_TAG, role)
            continue
        found.setdefault(group["VpcId"], {}).setdefault(role, group)
    return found


def remember(target, found: dict, vpc_ids=None) -> None:
    """Keep groups read ahead, beside another request (`find_groups`' answer, for `vpc_ids` or
    every VPC), for `ready_groups` to check and use: the swap then waits for nothing more."""
    target.cache["found"] = {"vpcs": set(vpc_ids) if vpc_ids else None, "groups": found}


def ready_groups(target, vpc_ids) -> dict:
    """{vpc: {"open": group id, "isolation": group id}} for `vpc_ids`, ready to use (cached per
    step): groups read ahead or now, the missing ones created at once, every rule made right at
    once (a created group's rules are known: it is not read again)."""
    cache = target.cache.setdefault("groups", {})
    todo = sorted(set(vpc_ids) - set(cache))
    if todo:
        ec2 = target.ec2
        ahead = target.cache.pop("found", None)  # read ahead (remember): not yet checked
        found = dict(ahead["groups"]) if ahead else {}
        unread = [] if ahead and ahead["vpcs"] is None else [
            vpc for vpc in todo if not ahead or vpc not in ahead["vpcs"]]
        if unread:
            found.update(find_groups(ec2, unread))
        missing = [(vpc, role) for vpc in todo for role in GROUP_NAMES
                   if role not in found.get(vpc, {})]
        created = dict(zip(missing, aws.concurrently(
            lambda vpc=vpc, role=role: _create(ec2, vpc, role) for vpc, role in missing)))
        groups = {vpc: {role: created.get((vpc, role)) or found[vpc][role]
                        for role in GROUP_NAMES} for vpc in todo}
        aws.concurrently(call for vpc in todo for role in GROUP_NAMES
                         for call in _rule_calls(ec2, role, groups[vpc][role]))
        cache.update({vpc: {role: group["GroupId"] for role, group in groups[vpc].items()}
                      for vpc in todo})
    return {vpc: cache[vpc] for vpc in vpc_ids}


def _create(ec2, vpc_id: str, role: str) -> dict:
    """Create the group, or take the one a concurrent step created a moment ago. A group of
    that name without the product's tag is someone else's (IAM lets the steps change only
    tagged groups): it is left alone, and the product's is created under a name of its own.
    A group created here is marked `fresh`: its rules are AWS's defaults."""
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
            return named  # a concurrent step created it: take that one, rules as read
        log.warning("group %s in %s is named %s but is not the product's (no %s=%s tag): "
                    "not used", named["GroupId"], vpc_id, GROUP_NAMES[role], ROLE_TAG, role)
        created = create(f"{GROUP_NAMES[role]}-{uuid.uuid4().hex[:8]}")
    log.info("created %s group %s in %s", role, created["GroupId"], vpc_id)
    return {"GroupId": created["GroupId"], "fresh": True}


def _rule_calls(ec2, role: str, group: dict) -> list:
    """The requests that make `group`'s rules right, each independent of the others.
    Isolation: no rule at all (AWS's default egress rule, or one someone added). Open: all
    traffic both ways. A fresh group holds AWS's default egress (all IPv4, and all IPv6 in a
    VPC with IPv6) and no ingress."""
    group_id = group["GroupId"]
    everything = {"IpProtocol": "-1"}
    v4, v6 = {"IpRanges": [{"CidrIp": "0.0.0.0/0"}]}, {"Ipv6Ranges": [{"CidrIpv6": "::/0"}]}

    def call(operation, code, rules):
        return lambda: aws.tolerate(code, getattr(ec2, operation), GroupId=group_id,
                                    IpPermissions=rules)

    if role == "isolation":
        revoke = ("InvalidPermission.NotFound",)
        if group.get("fresh"):
            return [call("revoke_security_group_egress", revoke, [{**everything, **v4}]),
                    call("revoke_security_group_egress", revoke, [{**everything, **v6}])]
        calls = []
        for direction in ("ingress", "egress"):
            rules = group.get("IpPermissions" if direction == "ingress" else
                              "IpPermissionsEgress")
            if rules:
                log.warning("isolation group %s had %s rules; removing them", group_id,
                            direction)
                calls.append(call(f"revoke_security_group_{direction}", revoke, _bare(rules)))
        return calls
    if group.get("fresh"):
        return [call("authorize_security_group_ingress", "InvalidPermission.Duplicate",
                     [{**everything, **v4, **v6}]),
                call("authorize_security_group_egress", "InvalidPermission.Duplicate",
                     [{**everything, **v6}])]
    calls = []
    for direction, rules in (("ingress", group.get("IpPermissions")),
                             ("egress", group.get("IpPermissionsEgress"))):
        missing = _missing_all_traffic(rules or [])
        if missing:
            calls.append(call(f"authorize_security_group_{direction}",
                              "InvalidPermission.Duplicate", [{**everything, **missing}]))
    return calls


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


def named_groups(target) -> dict:
    """The incident field naming the product's groups this step used, by id (the report shows
    names); {} when it used none."""
    names = {group: GROUP_NAMES[role] for roles in target.cache.get("groups", {}).values()
             for role, group in roles.items()}
    return {"product_groups": names} if names else {}


def two_step(target, interfaces: list[dict], beside=(), restore: bool = False) -> list:
    """The connection-tracking two-step on `interfaces` at once: every one onto the all-open
    group, `beside` (zero-argument calls: preservation, connection tracking) sent with them,
    then every one onto the isolation group; a failed second swap is tried once more. An
    interface already on the isolation group alone (`live_groups`) is left as it is, one on the
    all-open group alone goes on to the second swap. Each
    interface's outcome is kept in `target.cache["isolated"]` (None: isolated; else why not);
    returns the outcomes of `beside`, results or exceptions. With `restore`, an interface the
    second swap still fails on gets its own groups back (a step that may put any group on an
    interface); without it, it is left on the all-open group for Contain to finish."""
    groups = ready_groups(target, {i["vpc_id"] for i in interfaces})
    ec2, outcomes = target.ec2, target.cache.setdefault("isolated", {})
    live = _live_groups(target, interfaces)

    def swap(interface, role):
        return lambda: ec2.modify_network_interface_attribute(
            NetworkInterfaceId=interface["id"], Groups=[groups[interface["vpc_id"]][role]])

    def now_on(interface, role):
        return live.get(interface["id"]) == [groups[interface["vpc_id"]][role]]

    pending = [i for i in interfaces if not now_on(i, "isolation")]
    outcomes.update({i["id"]: None for i in interfaces if i not in pending})
    half_cut = [i for i in pending if now_on(i, "open")]  # a cut whose second swap failed
    pending = [i for i in pending if i not in half_cut]
    first = aws.settled([swap(i, "open") for i in pending] + list(beside))
    opened = half_cut + [i for i, failed in zip(pending, first) if not isinstance(failed, Exception)]
    for interface, failed in zip(pending, first):
        if isinstance(failed, Exception):
            outcomes[interface["id"]] = f"not moved to the all-open group ({failed}): its own " \
                                        "groups are unchanged"
    failures = dict(zip((i["id"] for i in opened),
                        aws.settled(swap(i, "isolation") for i in opened)))
    again = [i for i in opened if isinstance(failures[i["id"]], Exception)]
    if again:
        log.warning("isolation group not applied to %s: trying once more", [i["id"] for i in again])
        failures.update(zip((i["id"] for i in again),
                            aws.settled(swap(i, "isolation") for i in again)))
    stuck = [i for i in opened if isinstance(failures[i["id"]], Exception)]
    left_open = target.cache.setdefault("left_open", set())
    restored = aws.settled(
        (lambda i=i: ec2.modify_network_interface_attribute(NetworkInterfaceId=i["id"],
                                                            Groups=i["groups"]))
        for i in stuck) if restore else [RuntimeError("left for Contain")] * len(stuck)
    for interface in opened:
        outcomes[interface["id"]] = None
        left_open.discard(interface["id"])
    for interface, undone in zip(stuck, restored):
        if isinstance(undone, Exception):
            left_open.add(interface["id"])
        left = ("its original groups were restored" if not isinstance(undone, Exception) else
                f"it is LEFT ON THE ALL-OPEN GROUP {groups[interface['vpc_id']]['open']}" +
                (": fix it by hand" if restore else ": Contain finishes or restores it"))
        outcomes[interface["id"]] = (f"isolation group not applied to {interface['id']} "
                                     f"({failures[interface['id']]}); {left}")
    for interface in interfaces:
        log.info("isolation of %s on %s: %s", interface["id"], target.instance_id,
                 outcomes[interface["id"]] or "on the isolation group alone")
    return first[len(pending):]


def groups_by_interface(described) -> dict:
    """{interface id: its group ids} of interfaces as EC2 describes them (DescribeInstances'
    or DescribeNetworkInterfaces' shape)."""
    return {n["NetworkInterfaceId"]: [g["GroupId"] for g in n.get("Groups", [])]
            for n in described}


def _live_groups(target, interfaces) -> dict:
    """The groups on each interface now: as read with the instance, else read here (an
    interface isolated already must not be put back on the all-open group). Unknown when even
    that read fails: every interface is then taken as not yet isolated."""
    live = target.cache.get("live_groups")
    if live is None:
        try:
            live = groups_by_interface(target.ec2.describe_network_interfaces(
                NetworkInterfaceIds=[i["id"] for i in interfaces])["NetworkInterfaces"])
        except Exception:
            log.warning("could not read the groups on %s's interfaces", target.instance_id,
                        exc_info=True)
            return {}
    return live


class InterfaceAction(Action):
    """An action on one interface of the instance, as the pre-incident state has it."""

    def __init__(self, interface: dict | None = None):  # None: only to undo a record
        self.interface = interface or {}  # {"id", "vpc_id", "groups", "tracking"} before
        self.resource = self.interface.get("id", "")


class IsolateInterface(InterfaceAction):
    """One interface: the all-open group, then the isolation group. Contain makes the two-step
    on every interface at once (`two_step`) before its actions run; each records its interface's
    outcome, and an interface found isolated already (by the entry function's cut) counts."""

    name = "isolate-interface"
    # Containment puts the product's groups on an interface; only to give an interface whose
    # second swap failed its own groups back does Contain put others (release puts back any).
    permissions = GROUP_PERMISSIONS + (PRODUCT_GROUPS_ONLY, "ec2:ModifyNetworkInterfaceAttribute")
    undo_permissions = ("ec2:ModifyNetworkInterfaceAttribute", "ec2:DescribeNetworkInterfaces")
    on_release = OnRelease.UNDONE

    def plan(self, target):
        existing = find_groups(target.ec2, {self.interface["vpc_id"]}).get(
            self.interface["vpc_id"], {})
        open_group, isolation = (existing.get(role, {}).get("GroupId", f"(new {role} group)")
                                 for role in ("open", "isolation"))
        return [change(self.name, self.resource, "groups", self.interface["groups"], [open_group]),
                change(self.name, self.resource, "groups", [open_group], [isolation])]

    def apply(self, target):
        if self.resource not in target.cache.get("isolated", {}):
            two_step(target, [self.interface], restore=True)
        why_not = target.cache["isolated"][self.resource]
        vpc = self.interface["vpc_id"]
        groups = ready_groups(target, {vpc})[vpc]
        if why_not and self.resource in target.cache.get("left_open", ()):
            # on the all-open group: recorded, so that release gives it its own groups back
            raise PartialFailure([change(self.name, self.resource, "groups",
                                         self.interface["groups"], [groups["open"]])],
                                 RuntimeError(why_not))
        if why_not:
            raise RuntimeError(why_not)
        return [change(self.name, self.resource, "groups", self.interface["groups"],
                       [groups["isolation"]])]

    def undo(self, target, record):
        target.ec2.modify_network_interface_attribute(
            NetworkInterfaceId=record["resource"], Groups=record["before"])

    def foreign(self, target, record):
        """One of the instance's interfaces, still attached to it, given back the groups it had."""
        why = interface_of(target, record)
        if why:
            return why
        had = {i["id"]: i["groups"] for i in target.pre_state["interfaces"]}
        eni = record["resource"]
        if record.get("before") != had[eni]:
            return f"{eni} had groups {had[eni]}, not {record.get('before')!r}"
        return None


def interface_of(target, record) -> str | None:
    """Why `record`'s interface is not one of the instance's, still attached (None: it is)."""
    eni = record.get("resource")
    if eni not in {i["id"] for i in target.pre_state["interfaces"]}:
        return f"{eni!r} was not an interface of {target.instance_id}"
    described = target.ec2.describe_network_interfaces(NetworkInterfaceIds=[eni])
    attached = (described["NetworkInterfaces"][0].get("Attachment") or {}).get("InstanceId")
    if attached != target.instance_id:
        return f"{eni} is no longer attached to {target.instance_id} (now: {attached})"
    return None


SHORT_TRACKING = {"TcpEstablishedTimeout": 60, "UdpStreamTimeout": 60, "UdpTimeout": 30}
# What an interface tracks with when nobody set it (AWS's defaults): what release puts back
# when DescribeInstances showed no configuration.
DEFAULT_TRACKING = {"TcpEstablishedTimeout": 432000, "UdpStreamTimeout": 180, "UdpTimeout": 30}
TRACKING_ONLY = narrowed("ec2:ModifyNetworkInterfaceAttribute", "connection-tracking")


class ShortenConnectionTracking(InterfaceAction):
    """The shortest idle timeouts AWS allows on one interface's tracked connections (60 s TCP
    established, 60 s UDP stream, 30 s UDP): what the two-step leaves tracked dies soon. Nitro
    instances only: elsewhere it fails, is recorded, and containment does not depend on it."""

    name = "connection-tracking"
    permissions = (TRACKING_ONLY,)
    undo_permissions = (TRACKING_ONLY, "ec2:DescribeNetworkInterfaces")
    on_release = OnRelease.UNDONE

    def _set(self, target, eni, timeouts):
        target.ec2.modify_network_interface_attribute(
            NetworkInterfaceId=eni, ConnectionTrackingSpecification=timeouts)

    def early(self, target) -> list:
        """The request sent with the first swap (it waits for nothing)."""
        if self._shortened(target):
            return []

        def shorten():
            self._set(target, self.resource, SHORT_TRACKING)
            target.cache.setdefault("live_tracking", {})[self.resource] = SHORT_TRACKING
        return [shorten]

    def _shortened(self, target) -> bool:
        live = target.cache.get("live_tracking", {}).get(self.resource) or {}
        return all(live.get(k) == v for k, v in SHORT_TRACKING.items())

    def _record(self):
        before = self.interface.get("tracking") or None
        return [change(self.name, self.resource, "connection-tracking", before, SHORT_TRACKING)]

    def plan(self, target):
        return self._record()

    def apply(self, target):
        if not self._shortened(target):
            self._set(target, self.resource, SHORT_TRACKING)
        return self._record()

    def undo(self, target, record):
        self._set(target, record["resource"], record["before"] or DEFAULT_TRACKING)

    def foreign(self, target, record):
        return interface_of(target, record)
