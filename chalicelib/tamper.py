"""The tamper watch: containment that someone undoes is put back, and the incident records who
undid it.

Two ways in, one check. CloudTrail's management events for the calls that can undo
containment (EVENT_PATTERN) name the instances, interfaces, groups and policies they touched;
a scheduled sweep checks every active incident the events may have missed (CloudTrail delivers
best-effort, and member accounts' events need forwarding). Either way the incident's instance
is read as it is now, compared with what containment made, and whatever differs is made so
again.
"""

import json
import logging
import re
from dataclasses import dataclass, field

from chalicelib import (accounts, actions, approvals, aws, bindings, cut, findings, incidents,
                        malware, publish, report, revocation, securityhub, settings, workflow)
from chalicelib.actions import instance as instance_actions, isolation
from chalicelib.actions.isolation import IsolateInterface
from chalicelib.actions.evidence import StopInstance
from chalicelib.actions.instance import (DetachInstanceProfile, DisableApiStop,
                                         DisableInstanceMetadata, KeepVolumesOnTermination,
                                         QuarantineTags, ShutdownBehaviourStop,
                                         SwapToDenyAllProfile, TerminationProtection)
from chalicelib.steps import approval, target_acting

log = logging.getLogger(__name__)

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
    """The actions whose effect the watch puts back; their rights, and no others, are the
    watch's (it isolates with the product's groups only: never restores). What it puts back
    is what the incident's sealed records say containment made, whatever the settings are
    today, so both ways of cutting credentials are granted; stopping an instance only while
    STOP_AFTER_EVIDENCE is on (a watch that may stop any instance is a right worth keeping
    off)."""
    return (DetachInstanceProfile, SwapToDenyAllProfile, DisableInstanceMetadata,
            TerminationProtection, ShutdownBehaviourStop, KeepVolumesOnTermination,
            DisableApiStop, QuarantineTags,
            *((StopInstance,) if options.stop_after_evidence else ()))


READ_PERMISSIONS = (*cut.OBSERVE_PERMISSIONS, "ec2:DescribeIamInstanceProfileAssociations",
                    "iam:GetRolePolicy")  # read()
WATCH_PERMISSIONS = (*incidents.READ_PERMISSIONS, *incidents.UPDATE_PERMISSIONS,
                     *bindings.VERIFY_PERMISSIONS, *READ_PERMISSIONS,
                     *isolation.GROUP_PERMISSIONS, isolation.PRODUCT_GROUPS_ONLY,
                     *revocation.INVOKE_PERMISSIONS, "sns:Publish")
# incidents_touched(): the instance an interface a call named is attached to
PERMISSIONS = (*WATCH_PERMISSIONS, "ec2:DescribeNetworkInterfaces")
# settling what is left OPEN; following a malware scan started under MALWARE_SCAN, whatever the
# setting says today (a scan under way is not left unread)
SWEEP_PERMISSIONS = (*WATCH_PERMISSIONS, "states:DescribeExecution", *malware.PERMISSIONS)


def permissions(options, sweep_too: bool = False) -> set[str]:
    """What the event handler (or, `sweep_too`, the sweep) needs under `options`."""
    return {*(SWEEP_PERMISSIONS if sweep_too else PERMISSIONS),
            *(p for cls in repair_classes(options) for p in cls.permissions)}



# Ids a call names, wherever CloudTrail puts them in its request or response (its shapes differ
# call by call and change over time; the ids do not).
IDS = {"instance": re.compile(r"\bi-(?:[0-9a-f]{17}|[0-9a-f]{8})\b"),
       "interface": re.compile(r"\beni-(?:[0-9a-f]{17}|[0-9a-f]{8})\b"),
       "group": re.compile(r"\bsg-(?:[0-9a-f]{17}|[0-9a-f]{8})\b"),
       "association": re.compile(r"\biip-assoc-(?:[0-9a-f]{17}|[0-9a-f]{8})\b")}
REVOCATION_POLICY = re.compile(re.escape(revocation.POLICY_PREFIX) + r"(inc-[0-9a-f]{12})\Z")
SCANNED = 64 * 1024  # how much of a call's request and response is searched for ids
MAX_TARGETS = 20  # incidents one event may send the watch to check (the sweep sees the rest)
# The calls whose group ids mean "this group changed" (elsewhere a group id is only a value:
# an interface given groups, a description that names one).
GROUP_CALLS = ("AuthorizeSecurityGroupIngress", "AuthorizeSecurityGroupEgress",
               "RevokeSecurityGroupIngress", "RevokeSecurityGroupEgress",
               "ModifySecurityGroupRules", "CreateTags", "DeleteTags")
TEXT = 256  # longest text kept from an event


def _text(value) -> str:
    return value[:TEXT] if isinstance(value, str) else ""


@dataclass(frozen=True)
class Call:
    """A CloudTrail event, as much of it as the watch relies on: who made which call, where,
    and the ids it names. Everything else the event says is not trusted, only recorded."""

    name: str
    account: str
    region: str
    who: dict
    at: str
    source_ip: str
    user_agent: str
    event_id: str
    ids: dict = field(default_factory=dict)  # kind -> sorted ids named
    role: str = ""  # IAM calls: the role and policy named
    policy: str = ""
    tag_keys: tuple | None = None  # CreateTags/DeleteTags: the keys named (None: every tag)

    def record(self) -> dict:
        """The tamper entry's account of the call."""
        return {"call": self.name, "by": self.who, "at": self.at, "from": self.source_ip,
                "user_agent": self.user_agent, "event_id": self.event_id,
                "account_id": self.account, "region": self.region}


class NotACall(ValueError):
    """The event is not a CloudTrail record of a call the watch follows."""


def who(identity) -> dict:
    """CloudTrail's `userIdentity`, the fields that say who (bounded)."""
    identity = identity if isinstance(identity, dict) else {}
    issuer = ((identity.get("sessionContext") or {}).get("sessionIssuer") or {}) \
        if isinstance(identity.get("sessionContext"), dict) else {}
    summary = {key: _text(identity.get(key)) for key in ("type", "arn", "accountId",
                                                           "principalId", "accessKeyId",
                                                           "userName", "invokedBy")}
    if isinstance(issuer, dict) and issuer.get("arn"):
        summary["sessionIssuer"] = _text(issuer.get("arn"))
    return {key: value for key, value in summary.items() if value}


def parse(detail) -> Call:
    if not isinstance(detail, dict):
        raise NotACall("the event has no detail")
    name = detail.get("eventName")
    if name not in (*EC2_CALLS, *IAM_CALLS) or detail.get("errorCode"):
        raise NotACall(f"not a call the watch follows: {_text(name)!r}")
    account = detail.get("recipientAccountId") or (detail.get("userIdentity") or {}).get(
        "accountId")
    region = detail.get("awsRegion")
    if not (isinstance(account, str) and settings.ACCOUNT_ID.match(account)
            and isinstance(region, str) and findings.REGION.match(region)):
        raise NotACall("the event names no valid account and region")
    request = detail.get("requestParameters") or {}
    named = json.dumps([request, detail.get("responseElements")], default=str)[:SCANNED]
    ids = {kind: sorted(set(pattern.findall(named))) for kind, pattern in IDS.items()}
    if name not in GROUP_CALLS:
        ids["group"] = []
    role = policy = ""
    if name in IAM_CALLS and isinstance(request, dict):
        role, policy = _text(request.get("roleName")), _text(request.get("policyName"))
    tag_keys = None
    if name in ("CreateTags", "DeleteTags") and isinstance(request, dict):
        tags = ((request.get("tagSet") or {}).get("items")
                if isinstance(request.get("tagSet"), dict) else None)
        tag_keys = tuple(_text(t.get("key")) for t in tags if isinstance(t, dict)) \
            if isinstance(tags, list) else None
    return Call(name, account, region, who(detail.get("userIdentity")),
                _text(detail.get("eventTime")), _text(detail.get("sourceIPAddress")),
                _text(detail.get("userAgent")), _text(detail.get("eventID")), ids, role, policy,
                tag_keys)


def handle_event(detail, home_account: str) -> dict:
    """Check and repair the incidents a CloudTrail event touched."""
    current = settings.get()
    try:
        call = parse(detail)
    except NotACall as why:
        log.info("event ignored: %s", why)
        return {"ignored": str(why)}
    if by_the_watch(call, home_account, current):
        log.info("%s by the tamper watch itself: its own repair", call.name)
        return {"ignored": "the watch's own repair"}
    refusal = accounts.refusal(call.account, home_account, current)
    if refusal:
        log.warning("%s in account %s ignored: %s", call.name, call.account, refusal)
        return {"ignored": refusal}
    if call.name in ("CreateTags", "DeleteTags") and call.tag_keys is not None and \
            not set(call.tag_keys) & set(WATCHED_TAGS):
        log.info("%s of other tags (%s): not tampering", call.name, ", ".join(call.tag_keys))
        return {"ignored": "other tags"}
    try:
        touched = incidents_touched(call, home_account)
    except Exception as error:  # the sweep checks every incident all the same
        log.exception("could not tell which incidents %s by %s touched", call.name,
                      call.who.get("arn"))
        return {"call": call.name, "error": aws.error_code(error) or str(error)}
    if not touched:
        log.info("%s by %s touched no contained instance", call.name, call.who.get("arn"))
    results = aws.concurrently(lambda i=i: checked(i, home_account, call) for i in touched)
    return {"call": call.name, "incidents": touched, "results": results}


WATCH_FUNCTIONS = ("on_tampering", "sweep")  # their Chalice names (app.py)


def by_the_watch(call: Call, home_account: str, current) -> bool:
    """Whether the call is one of the watch's own repairs: its session issuer is exactly one of
    the watch's two roles, in the home account, or their member roles in the call's account
    (names a role of its own cannot take: IAM names are unique in an account). A repair that
    did not hold must not set off another one, for ever; the next sweep sees it."""
    deployment = current.state_machine_arn.rsplit(":", 1)[-1]  # <app>-<stage>
    own = {(home_account, f"{deployment}-{name}") for name in WATCH_FUNCTIONS}
    own |= {(call.account, accounts.member_role(current.member_role_name,
                                                f"{deployment}-{name}"))
            for name in WATCH_FUNCTIONS}
    issuer = call.who.get("sessionIssuer", "")
    match = re.fullmatch(r"arn:aws[a-z-]*:iam::([0-9]{12}):role/([\w+=,.@-]+)", issuer)
    return bool(match) and match.groups() in own


# The tags whose removal or change matters: the instance's quarantine tags, and the role tag
# that makes a group one of the product's (without it the group is no longer found as such).
WATCHED_TAGS = (*instance_actions.TAGS, isolation.ROLE_TAG)


def checked(incident_id: str, home_account: str, call=None) -> dict:
    """`watch`, never raising: one incident that cannot be checked (a record the watch cannot
    read, an instance gone, AWS failing) must not stop the others; the next sweep tries it
    again."""
    try:
        return watch(incident_id, home_account, call)
    except Exception as error:
        log.exception("could not check %s", incident_id)
        return {"incident_id": incident_id, "error": aws.error_code(error) or str(error)}


def incidents_touched(call: Call, home_account: str) -> list[str]:
    """The active incidents whose containment the call may have undone: of the instances it
    names, of the instances its interfaces and profile associations belong to, of every
    instance in the VPC of a product group it changed, or the incident a revocation policy
    is named after."""
    if call.name in IAM_CALLS:
        named = REVOCATION_POLICY.match(call.policy)
        return [named.group(1)] if named else []
    ec2 = accounts.client("ec2", call.account, call.region, home_account)
    instances = set(call.ids["instance"])
    if call.ids["interface"]:
        described = aws.tolerate("InvalidNetworkInterfaceID.NotFound",
                                 ec2.describe_network_interfaces,
                                 NetworkInterfaceIds=call.ids["interface"][:MAX_TARGETS])
        instances |= {(n.get("Attachment") or {}).get("InstanceId")
                      for n in (described or {}).get("NetworkInterfaces", [])} - {None}
    if call.ids["association"] and not instances:  # one each: a replaced one is gone
        for described in aws.concurrently(
                lambda a=a: aws.tolerate("InvalidAssociationID.NotFound",
                                         ec2.describe_iam_instance_profile_associations,
                                         AssociationIds=[a])
                for a in call.ids["association"][:MAX_TARGETS]):
            instances |= {a["InstanceId"] for a in (described or {}).get(
                "IamInstanceProfileAssociations", [])}
    touched = aws.concurrently(
        lambda i=i: incidents.active_for(call.account, call.region, i)
        for i in sorted(instances)[:MAX_TARGETS])
    if call.ids["group"]:
        touched += _incidents_in_vpcs(call, ec2, _product_group_vpcs(ec2, call.ids["group"]))
    return sorted({incident_id for incident_id in touched if incident_id})[:MAX_TARGETS]


def _product_group_vpcs(ec2, group_ids: list[str]) -> set[str]:
    """The VPCs of those of `group_ids` that are the product's own groups (by name: one whose
    role tag was just removed still counts)."""
    described = aws.concurrently(
        lambda g=g: aws.tolerate("InvalidGroup.NotFound", ec2.describe_security_groups,
                                 GroupIds=[g]) for g in group_ids[:MAX_TARGETS])
    return {group["VpcId"] for answer in described if answer
            for group in answer["SecurityGroups"]
            if isolation.product_group_name(group["GroupName"]) and group.get("VpcId")}


def _incidents_in_vpcs(call: Call, ec2, vpcs: set[str]) -> list[str]:
    if not vpcs:
        return []
    return [incident["incident_id"] for incident in watched()
            if (incident["account_id"], incident["region"]) == (call.account, call.region)
            and _vpcs_of(incidents.get(incident["incident_id"]) or {}) & vpcs]


def _vpcs_of(incident: dict) -> set[str]:
    return {i["vpc_id"] for i in (incident.get("pre_state") or {}).get("interfaces", [])}


def watched() -> list[dict]:
    """Every incident the watch may keep contained (as listed: id, instance, account, region):
    CONTAINED and PARTIAL ones, and OPEN ones (Contain may have ended while the evidence is
    still collected: `_contained` decides)."""
    return listed(*incidents.WATCHED, "OPEN")


def listed(*statuses: str) -> list[dict]:
    """Every incident of the statuses, as listed."""
    found = []
    for status in statuses:
        start = None
        while True:
            page, start = incidents.search(None, status, None, 100, start)
            found += page
            if not start:
                break
    return found


# -- one incident: read, compare, repair, record --------------------------------------------

def watch(incident_id: str, home_account: str, call: Call | None = None) -> dict:
    """Compare the incident's instance with what containment made and put back what differs;
    the tamper entry says what, who (the call, if an event brought it) and how it ended. Only
    an incident the product can vouch for: its seal whole, its instance's active incident, a
    containment change sealed in its records (no dry run, nothing made up)."""
    incident = incidents.get(incident_id)
    if incident is None or not _contained(incident):
        return {"incident_id": incident_id, "skipped": "not contained"}
    if incident["status"] == "OPEN" and not _contain_recorded(incident):  # the first cut's
        return {"incident_id": incident_id, "skipped": "not contained"}  # outcome: Contain's
    try:
        bindings.verified_incident(incident)
    except bindings.Refused as refusal:
        log.warning("tamper watch refused %s: %s", incident_id, refusal)
        return {"incident_id": incident_id, "skipped": f"refused: {refusal}"}
    changes = bindings.trusted_changes(incident)
    why = _not_watched(incident, changes)
    if why:
        log.warning("tamper watch keeps off %s: %s", incident_id, why)
        return {"incident_id": incident_id, "skipped": why}
    target = target_acting(incident, settings.get())
    drift = differences(target, changes)
    if not drift:
        log.info("%s: containment of %s is whole%s", incident_id, incident["instance_id"],
                 f" after {call.name}" if call else "")
        return {"incident_id": incident_id, "drift": []}
    try:
        token = incidents.hold_for_repair(incident_id)
    except incidents.Held as held:
        log.info("not repairing: %s", held)
        return {"incident_id": incident_id, "skipped": str(held)}
    repaired = [{**d, "named_by_call": _named(call, d, incident)} if call else d
                for d in repair(target, drift)]
    entry = {"found_at": incidents.now(), "found_by": "event" if call else "sweep",
             **(call.record() if call else {}), "drift": repaired}
    log.warning("containment of %s (%s) was undone%s: %s", incident["instance_id"], incident_id,
                f" (checked after {call.name} by {call.who.get('arn')})" if call
                else " (found by the sweep)",
                "; ".join(f"{d['what']} {d['resource']}: {d['outcome']}" for d in repaired))
    try:
        incident = incidents.record_tamper(incident_id, entry, token)
        publish.request(incident_id)
    except Exception:  # the alert still goes: what was found is in it and in the log
        log.exception("could not record tampering on %s", incident_id)
    workflow.announce_quietly(report.tampered(incident, entry))
    return {"incident_id": incident_id, "drift": repaired}


def _contain_recorded(incident: dict) -> bool:
    """Whether Contain recorded its outcome (not a plan): until then it is changing the
    instance itself, and the watch keeps off."""
    return any(isinstance(step, dict) and step.get("step") == "contain"
               and step.get("outcome") != "planned" for step in incident.get("timeline") or [])


def _contained(incident: dict) -> bool:
    """CONTAINED or PARTIAL, or still OPEN with Contain's outcome recorded (the evidence is
    being collected: containment must hold meanwhile too; the first cut's outcome, recorded
    before Contain runs, comes without the seal Contain records with its own)."""
    return incident.get("status") in incidents.WATCHED or (
        incident.get("status") == "OPEN" and incident.get("containment") in incidents.WATCHED)


def status_shown(incident: dict) -> str:
    """The status the quarantine tag shows: Contain's outcome until the report settles it."""
    return incident["status"] if incident["status"] != "OPEN" else incident["containment"]


def _not_watched(incident: dict, changes: list[dict]) -> str | None:
    """Why the watch keeps off the incident (None: it watches it)."""
    from chalicelib.steps.contain import CRITICAL

    if not any(c.get("action") in CRITICAL for c in changes):
        return "no sealed record that containment made anything"
    if incidents.active_for(incident["account_id"], incident["region"],
                            incident["instance_id"]) != incident["incident_id"]:
        return "it is not its instance's active incident"
    if incidents.lease_held(incident, "releasing_until", incidents.RELEASE_LEASE_SECONDS):
        return "a release step holds it"
    if (incident.get("release") or {}).get("restored"):
        return "a release restored part of it (the person releasing it decides what follows)"
    return None


def _named(call: Call, difference: dict, incident: dict) -> bool:
    """Whether the call that prompted the check named what differs (else another call, or one
    CloudTrail did not deliver, did it)."""
    named = {i for ids in call.ids.values() for i in ids} | {call.role}
    return difference["resource"] in named or (
        difference["resource"] == incident["instance_id"] and incident["instance_id"] in named)


@dataclass
class Live:
    """The instance and what surrounds it, as AWS says now."""

    instance: dict
    groups: dict  # the product's groups by VPC, then role
    attributes: dict  # preservation attributes by name
    profiles: list  # ARNs of associated profiles
    policies: dict  # revocation record -> whether its policy is in place


def read(target, changes: list[dict]) -> Live:
    """Everything the comparison needs, read at once (one round trip)."""
    ec2, instance_id = target.ec2, target.instance_id
    revoked = _revocations(changes)
    attributes = [cls.attribute for cls in _attribute_classes(changes)]
    described, groups, associations, *answers = aws.concurrently([
        lambda: ec2.describe_instances(InstanceIds=[instance_id])["Reservations"][0][
            "Instances"][0],
        lambda: isolation.find_groups(ec2),
        lambda: ec2.describe_iam_instance_profile_associations(Filters=[
            {"Name": "instance-id", "Values": [instance_id]},
            {"Name": "state", "Values": ["associated", "associating"]}])[
            "IamInstanceProfileAssociations"],
        *(lambda name=name: ec2.describe_instance_attribute(InstanceId=instance_id,
                                                            Attribute=name)
          for name in attributes),
        *(lambda record=record: _policy_in_place(target, record) for record in revoked)])
    values = {name: instance_actions.attribute_value(answer, name)
              for name, answer in zip(attributes, answers)}
    target.cache["associations"] = associations
    return Live(described, groups, values,
                [a["IamInstanceProfile"]["Arn"] for a in associations],
                dict(zip((json.dumps(r, sort_keys=True) for r in revoked),
                         answers[len(attributes):])))


def _attribute_classes(changes: list[dict]) -> tuple:
    """The preservation attributes containment set: the first cut's always, stop protection
    where a sealed record says it was set."""
    return (TerminationProtection, ShutdownBehaviourStop,
            *((DisableApiStop,) if any(c.get("action") == DisableApiStop.name
                                       for c in changes) else ()))


def _revocations(changes: list[dict]) -> list[dict]:
    """The revocations in force: per role and policy, the one denying the latest sessions (a
    credential exfiltration found later writes the incident's policy again, for later
    sessions; comparing with the earlier record too would rewrite the policy for ever)."""
    latest: dict = {}
    for c in changes:
        if c.get("action") == instance_actions.RevokeRoleSessions.name:
            key = (c.get("resource"), c.get("attribute"))
            issued = str((c.get("after") or {}).get("denies_sessions_issued_before"))
            if key not in latest or issued >= str(latest[key]["after"].get(
                    "denies_sessions_issued_before")):
                latest[key] = c
    return list(latest.values())


def _policy_in_place(target, record: dict) -> bool:
    """Whether the revocation policy the record names is on its role, as it was written."""
    answer = aws.tolerate("NoSuchEntity", target.client("iam").get_role_policy,
                          RoleName=record["resource"],
                          PolicyName=record["attribute"].split(":", 1)[1])
    if answer is None:
        return False
    document = answer["PolicyDocument"]
    if isinstance(document, str):  # IAM answers it URL-encoded; boto3 decodes it
        from urllib.parse import unquote

        document = json.loads(unquote(document))
    incident = target.incident
    written = {"issued_before": record["after"].get("denies_sessions_issued_before"),
               "instance_arn": revocation.instance_arn(incident["region"],
                                                       incident["account_id"],
                                                       target.instance_id)}
    # The Deny as it was written, of its scope: anything else under that name (a Deny that
    # never matches, one narrowed to the instance) is not the product's.
    return document == revocation.policy({**written, "scope": record["after"].get("scope")})


def differences(target, changes: list[dict]) -> list[dict]:
    """What differs from containment, one entry per thing: `what`, `resource`, `found`,
    `expected`."""
    live = read(target, changes)
    if live.instance["State"]["Name"] in ("shutting-down", "terminated"):
        log.warning("%s is %s: nothing left to keep contained", target.instance_id,
                    live.instance["State"]["Name"])
        return []
    cut.remember(target, live.instance, live.groups, live.attributes)
    target.cache["live_instance"] = live.instance
    target.cache["revocations"] = {r["resource"]: r for r in _revocations(changes)}
    drift = []

    def differs(what, resource, found, expected):
        drift.append({"what": what, "resource": resource, "found": _bounded(found),
                      "expected": expected})

    groups = live.groups
    # What containment isolated (by its sealed records), any interface attached since, and any
    # left on the all-open group. One containment could not isolate (a PARTIAL incident: Contain
    # gave it its groups back; the first cut's record of the all-open step is all it has) is the
    # report's and the person's to decide, not the watch's.
    open_ids = {g.get("open", {}).get("GroupId") for g in groups.values() if g} - {None}
    isolated = {c["resource"] for c in changes if c.get("action") == IsolateInterface.name
                and not set(c.get("after") or ()) <= open_ids}
    had = {i["id"] for i in target.pre_state["interfaces"]}
    for interface in live.instance.get("NetworkInterfaces", []):
        vpc, eni = interface["VpcId"], interface["NetworkInterfaceId"]
        isolating = (groups.get(vpc) or {}).get("isolation", {}).get("GroupId")
        on = [g["GroupId"] for g in interface.get("Groups", [])]
        if eni in had and eni not in isolated and not set(on) & open_ids:
            continue
        if on != [isolating]:
            differs("interface-groups", eni, on, [isolating or "the isolation group"])
    for vpc in sorted({n["VpcId"] for n in live.instance.get("NetworkInterfaces", [])}):
        for role in isolation.GROUP_NAMES.keys() - (groups.get(vpc) or {}).keys():
            differs(f"{role}-group", vpc, "missing (deleted, or its tag removed)",
                    "the product's group")  # made again, the interfaces moved onto it
        for role, group in (groups.get(vpc) or {}).items():
            rules = group.get("IpPermissions", []) + group.get("IpPermissionsEgress", [])
            if role == "isolation" and rules:
                differs("isolation-group-rules", group["GroupId"], isolation._bare(rules), [])
            if role == "open" and (isolation._missing_all_traffic(group.get("IpPermissions", []))
                                   or isolation._missing_all_traffic(
                                       group.get("IpPermissionsEgress", []))):
                differs("open-group-rules", group["GroupId"], isolation._bare(rules),
                        "all traffic both ways")
    deny_all = SwapToDenyAllProfile._deny_all(target) if any(
        c.get("action") == SwapToDenyAllProfile.name for c in changes) else None
    if live.profiles not in ([], [deny_all]):
        differs("instance-profile", target.instance_id, live.profiles,
                [deny_all] if deny_all else [])
    endpoint = (live.instance.get("MetadataOptions") or {}).get("HttpEndpoint")
    if endpoint != DisableInstanceMetadata.value:
        differs("metadata-endpoint", target.instance_id, endpoint, DisableInstanceMetadata.value)
    for cls in _attribute_classes(changes):
        if live.attributes[cls.attribute] != cls.value:
            differs(cls.name, target.instance_id, live.attributes[cls.attribute], cls.value)
    deleting = sorted(v for v, kept in target.cache["live_volumes"].items() if kept)
    if deleting:
        differs(KeepVolumesOnTermination.name, ",".join(deleting), True, False)
    tags = {t["Key"]: t["Value"] for t in live.instance.get("Tags", [])}
    wanted = QuarantineTags(status_shown(target.incident))._tags(target)
    if any(tags.get(key) != value for key, value in wanted.items()):
        differs(QuarantineTags.name, target.instance_id,
                {key: tags.get(key) for key in wanted}, wanted)
    state = live.instance["State"]["Name"]
    if state in ("pending", "running") and any(
            c.get("action") == StopInstance.name for c in changes):
        differs(StopInstance.name, target.instance_id, state, "stopped")
    for record in _revocations(changes):
        if not live.policies[json.dumps(record, sort_keys=True)]:
            differs(instance_actions.RevokeRoleSessions.name, record["resource"], "absent",
                    record["attribute"])
    return drift


def _bounded(found):
    """What was found, as it is, or cut short as text (the attacker chose it: sixty rules on
    a group must not fill the incident's record)."""
    text = json.dumps(found, default=str)
    return found if len(text) <= 1000 else text[:1000] + "..."


def repair(target, drift: list[dict]) -> list[dict]:
    """Make each difference right again; each entry gains its `outcome`. The network first
    (the groups' rules, then the interfaces, both steps of the swap), the rest at once."""
    by_what = {}
    for difference in drift:
        by_what.setdefault(difference["what"], []).append(difference)
    outcomes = {}
    if by_what.keys() & NETWORK:
        outcomes.update(_repair_network(target, by_what))
    calls = [(d, fix) for d in drift if d["what"] in FIXES for fix in [FIXES[d["what"]]]]
    for (difference, _), answer in zip(calls, aws.settled(
            lambda d=d, fix=fix: fix(target, d) for d, fix in calls)):
        outcomes[id(difference)] = _outcome(answer)
    return [{**d, "outcome": outcomes.get(id(d), "not repaired")} for d in drift]


NETWORK = {"interface-groups", "isolation-group-rules", "open-group-rules", "isolation-group",
           "open-group"}  # put back together: the groups made right, then the interfaces


def _outcome(answer) -> str:
    if isinstance(answer, Exception):
        return f"NOT PUT BACK: {aws.error_code(answer) or type(answer).__name__}: " \
               f"{str(answer)[:300]}"
    return "put back"


def _repair_network(target, by_what: dict) -> dict:
    outcomes = {}
    interfaces = [{"id": n["NetworkInterfaceId"], "vpc_id": n["VpcId"],
                   "groups": [g["GroupId"] for g in n.get("Groups", [])]}
                  for n in target.cache["live_instance"].get("NetworkInterfaces", [])]
    rules = [d for what in NETWORK - {"interface-groups"} for d in by_what.get(what, [])]
    try:  # rules made right (read with the instance), missing groups made
        isolation.ready_groups(target, {i["vpc_id"] for i in interfaces})
        outcomes.update({id(d): "put back" for d in rules})
    except Exception as error:
        outcomes.update({id(d): _outcome(error) for d in rules})
    drifted = {d["resource"]: d for d in by_what.get("interface-groups", [])}
    if drifted:
        try:
            isolation.two_step(target, [i for i in interfaces if i["id"] in drifted])
            for eni, difference in drifted.items():
                why = target.cache["isolated"].get(eni)
                outcomes[id(difference)] = "put back" if not why else f"NOT PUT BACK: {why}"
        except Exception as error:
            outcomes.update({id(d): _outcome(error) for d in drifted.values()})
    return outcomes


def _profile(target, difference):
    """Every profile associated now (or being associated) off, or swapped for deny-all where
    containment swapped it so."""
    deny_all = difference["expected"][0] if difference["expected"] else None
    action = SwapToDenyAllProfile() if deny_all else DetachInstanceProfile()
    for association in target.cache["associations"]:
        if association["IamInstanceProfile"]["Arn"] != deny_all:
            action._make(target, association["AssociationId"],
                         {"before": association["IamInstanceProfile"]["Arn"], "after": deny_all})


def _volumes(target, difference):
    """DeleteOnTermination off again on every volume attached now (one attached since
    containment too)."""
    devices = {m["Ebs"]["VolumeId"]: m["DeviceName"]
               for m in target.cache["live_instance"].get("BlockDeviceMappings", []) if "Ebs" in m}
    target.ec2.modify_instance_attribute(InstanceId=target.instance_id, BlockDeviceMappings=[
        {"DeviceName": devices[volume], "Ebs": {"DeleteOnTermination": False}}
        for volume in difference["resource"].split(",")])


def _revoke_again(target, difference):
    """The revoking function writes the incident's Deny again, for the same sessions (issued
    before the time containment revoked): it checks the request against the sealed incident
    as it did then."""
    record = target.cache["revocations"][difference["resource"]]
    incident = target.incident
    revocation.invoke({"operation": "revoke", "account_id": incident["account_id"],
                       "region": incident["region"], "role_name": record["resource"],
                       "instance_arn": revocation.instance_arn(
                           incident["region"], incident["account_id"], target.instance_id),
                       "incident_id": incident["incident_id"],
                       "scope": record["after"].get("scope", "role"), "seal": incident["seal"],
                       "issued_before": record["after"]["denies_sessions_issued_before"]})


FIXES = {
    "instance-profile": _profile,
    "metadata-endpoint": lambda target, d: DisableInstanceMetadata()._set(
        target, DisableInstanceMetadata.value),
    TerminationProtection.name: lambda target, d: TerminationProtection().apply(target),
    ShutdownBehaviourStop.name: lambda target, d: ShutdownBehaviourStop().apply(target),
    DisableApiStop.name: lambda target, d: DisableApiStop().apply(target),
    KeepVolumesOnTermination.name: _volumes,
    QuarantineTags.name: lambda target, d: QuarantineTags(
        status_shown(target.incident)).apply(target),
    StopInstance.name: lambda target, d: StopInstance().apply(target),
    instance_actions.RevokeRoleSessions.name: _revoke_again,
}


# What each difference the watch repairs on the instance is, as a change record names it (the
# others are named alike). The product's groups are the VPC's, never released.
RECORDED_AS = {"interface-groups": (IsolateInterface.name,),
               "instance-profile": (DetachInstanceProfile.name, SwapToDenyAllProfile.name),
               "metadata-endpoint": (DisableInstanceMetadata.name,)}


def repairs_release_leaves(incident: dict) -> list[str]:
    """Release notes: what the watch put in place that no change record covers, so release
    does not undo it (containment failed there, or an interface was attached since)."""
    recorded = {(c.get("action"), c.get("resource")) for c in incident.get("changes") or []}
    notes = []
    for entry in incident.get("tamper") or []:
        for repaired in entry.get("drift") or []:
            what, resource = repaired.get("what"), repaired.get("resource")
            if what in NETWORK - {"interface-groups"} or repaired.get("outcome") != "put back":
                continue
            if all(any((name, one) in recorded for name in RECORDED_AS.get(what, (what,)))
                   for one in str(resource).split(",")):  # volumes: one entry for them all
                continue
            note = (f"left as is: {what} of {resource}, put in place by the tamper watch "
                    f"(found {json.dumps(repaired.get('found'), default=str)}, made "
                    f"{json.dumps(repaired.get('expected'), default=str)}; containment recorded "
                    "no change there): set it back by hand if it should be")
            if note not in notes:
                notes.append(note)
    return notes


# -- the sweep -------------------------------------------------------------------------------


def sweep(home_account: str) -> dict:
    """Check and repair every active incident; settle those left OPEN whose execution ended,
    and close those left awaiting approval whose execution ended (nothing is left to act on a
    decision); follow the malware scans still running."""
    active = watched()
    settled = [outcome for outcome in aws.concurrently(
        [*(lambda i=i["incident_id"]: _settled(i) for i in active if i["status"] == "OPEN"),
         *(lambda i=i["incident_id"]: _settled(i, abandoned)
           for i in listed(incidents.AWAITING))]) if outcome]
    results = [r for r in aws.concurrently(lambda i=i["incident_id"]: checked(i, home_account)
                                           for i in active)
               if r.get("skipped") != "not contained"]
    scans = [outcome for outcome in aws.concurrently(
        lambda i=i: malware.followed(i)
        for i in incidents.with_running_scan(malware.look_back())) if outcome]
    repaired = [r["incident_id"] for r in results if r.get("drift")]
    failed = [r["incident_id"] for r in results if r.get("error")]
    log.info("sweep: %d incidents checked, %d repaired, %d could not be checked, %d settled, "
             "%d malware scans ended", len(results), len(repaired), len(failed), len(settled),
             len(scans))
    return {"checked": len(results), "repaired": repaired, "unchecked": failed,
            "settled": settled, "scans": scans}


def _settled(incident_id: str, how=None) -> dict | None:
    try:
        return (how or settle)(incident_id)
    except Exception:  # the next sweep tries again
        log.exception("could not settle %s", incident_id)
        return None


def abandoned(incident_id: str) -> dict | None:
    """An incident awaiting approval whose execution ended without a decision, closed by the
    approval function (approval.close_abandoned: it checks all of it again, and seals the
    closing; the sweep holds no seal) and the closing announced. One whose execution runs, or
    never started (the next request restarts it), is left as it is without asking."""
    if approvals.ended_execution(workflow.execution_arn(incident_id)) is None:
        return None
    answer = aws.client("lambda").invoke(
        FunctionName=settings.stage_function(approval.FUNCTION), InvocationType="RequestResponse",
        Payload=json.dumps({"phase": approval.CLOSE_ABANDONED,
                            "incident_id": incident_id}).encode())
    closed = json.loads(answer["Payload"].read() or b"null")
    if answer.get("FunctionError") or not isinstance(closed, dict) or not closed.get("closed"):
        log.warning("sweep: %s not closed: %s", incident_id,
                    str((closed or {}).get("reason") or closed)[:200])
        return None
    workflow.announce_quietly(report.notified(incidents.get(incident_id)))
    return {"incident_id": incident_id, "status": closed["status"]}


def settle(incident_id: str) -> dict | None:
    """An OPEN incident whose execution has ended (the report and its fallback both failed,
    or the execution was stopped) gets the status its records earn, so it stops holding the
    instance: Contain's outcome when it recorded one, PARTIAL when a containment change was
    recorded, FAILED (and the claim freed) when none was. An execution never started is left
    to the next request (workflow: it restarts it)."""
    incident = incidents.get(incident_id)
    if incident is None or incident.get("status") != "OPEN":
        return None
    try:
        bindings.verified_incident(incident)
    except bindings.Refused as refusal:
        log.warning("sweep will not settle %s: %s", incident_id, refusal)
        return None
    ended = incident.get("execution_arn") and approvals.execution_ended(incident)
    if not ended:
        return None
    from chalicelib.steps.contain import CRITICAL

    recorded = incident.get("containment")
    final = recorded if recorded in incidents.OUTCOMES else (
        "PARTIAL" if any(c.get("action") in CRITICAL for c in bindings.trusted_changes(incident))
        else "FAILED")
    why = f"execution {ended} with the incident still OPEN; settled by the sweep"
    try:
        incident = incidents.record_step(
            incident_id, "sweep", incidents.now(), incidents.OUTCOMES[final],
            errors=[actions.failure_record("sweep", incident["instance_id"], "SettledBySweep",
                                           why)],
            fields={"status": final, "containment": final},
            only_if=("#open_status = :open AND updated_at = :seen",
                     {":open": "OPEN", ":seen": incident.get("updated_at")},
                     {"#open_status": "status"}))
    except incidents._db().exceptions.ConditionalCheckFailedException:
        return None  # something recorded on it meanwhile: the next sweep looks again
    if final == "FAILED":
        incidents.release_claim(incident)
    log.warning("%s (%s): %s -> %s", incident_id, incident["instance_id"], why, final)
    publish.request(incident_id)
    securityhub.follow(incident_id)
    workflow.announce_quietly(report.final(incident))
    return {"incident_id": incident_id, "status": final, "execution": ended}
