"""Instance-level containment: credentials cut, metadata off, preservation attributes,
quarantine tags.

Attributes DescribeInstances does not return are read just before each is changed (after the
network swap, never in front of it), and the value found is what release restores.
"""

from chalicelib import revocation
from chalicelib.actions import Action, OnRelease, Skipped, apply_each, change, narrowed

TAG_INCIDENT = "QuarantineIncident"
TAG_STATUS = "QuarantineStatus"
TAG_FINDING = "QuarantineFinding"
TAGS = (TAG_INCIDENT, TAG_STATUS, TAG_FINDING)
DENY_ALL = "deny-all"  # the scope of a profile swap that may hand out only the deny-all profile


def sets_attribute(name: str) -> str:
    """ModifyInstanceAttribute for attribute `name` only (the API sets one per call)."""
    return narrowed("ec2:ModifyInstanceAttribute", name)


def preserves(name: str, value) -> str:
    """ModifyInstanceAttribute setting attribute `name` to `value` only (containment protects;
    setting it back is release's)."""
    return narrowed("ec2:ModifyInstanceAttribute", f"{name}={iam_value(value)}")


def attribute_key(name: str) -> str:
    """DescribeInstanceAttribute's `name` as ModifyInstanceAttribute and the answer spell it."""
    return name[0].upper() + name[1:]


def attribute_value(answer: dict, name: str):
    """The value of attribute `name` in a DescribeInstanceAttribute answer."""
    return answer[attribute_key(name)]["Value"]


def iam_value(value) -> str:
    """`value` as IAM compares it in `ec2:Attribute/<Name>`."""
    return str(value).lower() if isinstance(value, bool) else str(value)


class DetachInstanceProfile(Action):
    """Cut the instance's role credentials off by disassociating its instance profile."""

    name = "detach-instance-profile"
    permissions = ("ec2:DescribeIamInstanceProfileAssociations",
                   "ec2:DisassociateIamInstanceProfile")
    undo_permissions = ("ec2:AssociateIamInstanceProfile", "iam:PassRole")
    on_release = OnRelease.UNDONE

    def _associations(self, target) -> dict:
        """Association ids by profile ARN (an instance has one associated profile at most)."""
        return {a["IamInstanceProfile"]["Arn"]: a["AssociationId"]
                for a in target.ec2.describe_iam_instance_profile_associations(Filters=[
                    {"Name": "instance-id", "Values": [target.instance_id]},
                    {"Name": "state", "Values": ["associated"]},
                ])["IamInstanceProfileAssociations"]}

    def _changes(self, target, associations):
        return [change(self.name, target.instance_id, "instance-profile", arn, None)
                for arn in associations]

    def _make(self, target, association_id, record):
        target.ec2.disassociate_iam_instance_profile(AssociationId=association_id)

    def plan(self, target):
        return self._changes(target, self._associations(target))

    def apply(self, target):
        associations = self._associations(target)
        return apply_each(self._changes(target, associations), lambda record: self._make(
            target, associations[record["before"]], record))

    def undo(self, target, record):
        target.ec2.associate_iam_instance_profile(
            IamInstanceProfile={"Arn": record["before"]}, InstanceId=target.instance_id)

    def foreign(self, target, record):
        """Only the profile the instance had when the incident opened is given back."""
        had = target.pre_state.get("instance_profile")
        if record.get("before") != had:
            return f"{record.get('before')!r} is not the profile {target.instance_id} had ({had})"
        return super().foreign(target, record)


class SwapToDenyAllProfile(DetachInstanceProfile):
    """Replace the instance profile with one whose role denies everything
    (CREDENTIALS_MODE=deny-all): the instance keeps a profile, its calls all fail."""

    name = "deny-all-instance-profile"
    permissions = ("ec2:DescribeIamInstanceProfileAssociations",
                   narrowed("ec2:ReplaceIamInstanceProfileAssociation", DENY_ALL),
                   narrowed("iam:PassRole", DENY_ALL))
    undo_permissions = ("ec2:DescribeIamInstanceProfileAssociations",
                        "ec2:ReplaceIamInstanceProfileAssociation", "iam:PassRole")

    @staticmethod
    def _deny_all(target) -> str:
        """The deny-all profile of the instance's own account (same name in every account)."""
        name = target.settings.deny_all_profile_arn.rsplit("/", 1)[-1]
        return f"arn:aws:iam::{target.incident['account_id']}:instance-profile/{name}"

    def _changes(self, target, associations):
        deny_all = self._deny_all(target)
        return [change(self.name, target.instance_id, "instance-profile", arn, deny_all)
                for arn in associations if arn != deny_all]

    def _make(self, target, association_id, record):
        target.ec2.replace_iam_instance_profile_association(
            IamInstanceProfile={"Arn": record["after"]}, AssociationId=association_id)

    def undo(self, target, record):
        for association_id in self._associations(target).values():
            target.ec2.replace_iam_instance_profile_association(
                IamInstanceProfile={"Arn": record["before"]}, AssociationId=association_id)


class RevokeRoleSessions(Action):
    """Deny the instance's role sessions issued before now (REVOKE_ROLE_SESSIONS=true, or a
    credential exfiltration finding: `revocation.scope_for`): credentials already taken off the
    instance stop working. The revoking function writes the policy (chalicelib/revocation.py)
    once it checked the request against the sealed incident and its own settings: this step
    only asks it, with the incident's seal (the record carries it only once containment is
    recorded). Scoped to the instance by default (`REVOKE_SCOPE`; always for an exfiltration
    with REVOKE_ROLE_SESSIONS off), so the other instances sharing the role keep working;
    role-wide, they lose their current sessions too. The change names them either way."""

    name = "revoke-role-sessions"
    permissions = (*revocation.PROFILE_PERMISSIONS, "iam:ListInstanceProfilesForRole",
                   "ec2:DescribeIamInstanceProfileAssociations", *revocation.INVOKE_PERMISSIONS)
    undo_permissions = (*revocation.PROFILE_PERMISSIONS, *revocation.INVOKE_PERMISSIONS)
    on_release = OnRelease.UNDONE

    def _role(self, target):
        profile_arn = target.pre_state.get("instance_profile")
        return revocation.profile_role(target.client("iam"), profile_arn) if profile_arn else None

    def _sharing(self, target, role):
        """Other instances whose profile carries `role`."""
        pages = target.client("iam").get_paginator("list_instance_profiles_for_role").paginate(
            RoleName=role)
        profiles = {p["Arn"] for page in pages for p in page["InstanceProfiles"]}
        paginator = target.ec2.get_paginator("describe_iam_instance_profile_associations")
        return sorted({a["InstanceId"] for page in paginator.paginate()
                       for a in page["IamInstanceProfileAssociations"]
                       if a["IamInstanceProfile"]["Arn"] in profiles
                       and a["InstanceId"] != target.instance_id})

    @staticmethod
    def _attribute(target) -> str:
        return f"policy:{revocation.policy_name(target.incident['incident_id'])}"

    def _request(self, target, operation: str, role: str, scope: str) -> dict:
        incident = target.incident
        return {"operation": operation, "account_id": incident["account_id"],
                "region": incident["region"], "role_name": role,
                "instance_arn": revocation.instance_arn(incident["region"],
                                                        incident["account_id"],
                                                        target.instance_id),
                "incident_id": incident["incident_id"], "scope": scope,
                "seal": incident["seal"]}

    def plan(self, target):
        scope = revocation.scope_for(target.incident, target.settings)
        role = self._role(target) if scope else None
        if not role:
            return []
        sharing = self._sharing(target, role)
        after = {"denies_sessions_issued_before": "now", "scope": scope,
                 **({"also_affects": sharing} if scope == "role" else {"keep_working": sharing})}
        return [change(self.name, role, self._attribute(target), None, after)]

    def apply(self, target):
        def revoke(record):
            request = self._request(target, "revoke", record["resource"],
                                    record["after"]["scope"])
            answer = revocation.invoke({**request, "issued_before": revocation.now()})
            record["after"]["denies_sessions_issued_before"] = answer["issued_before"]

        return apply_each(self.plan(target), revoke)

    def undo(self, target, record):
        revocation.invoke(self._request(target, "lift", record["resource"],
                                        record["after"].get("scope", "role")))

    def foreign(self, target, record):
        """Only this incident's own policy, on the role of the profile the instance had."""
        if record.get("attribute") != self._attribute(target):
            return f"{record.get('attribute')!r} is not this incident's revocation policy"
        role = self._role(target)
        if record.get("resource") != role:
            return (f"role {record.get('resource')!r} is not the role of the profile "
                    f"{target.instance_id} had ({role})")
        return None


class InstanceValue(Action):
    """Set one value of the instance (`attribute`) to `value`, recording the value before
    (`_before`); undo sets that one back."""

    attribute = ""
    value = None
    on_release = OnRelease.UNDONE

    def _before(self, target):
        raise NotImplementedError

    def _set(self, target, value) -> None:
        raise NotImplementedError

    def plan(self, target):
        before = self._before(target)
        if before == self.value:
            return []
        return [change(self.name, target.instance_id, self.attribute, before, self.value)]

    def undo(self, target, record):
        self._set(target, record["before"])


class DisableInstanceMetadata(InstanceValue):
    """Turn the instance metadata service off (`HttpEndpoint=disabled`): nothing on the host
    fetches role credentials, user data or tags from it any more. Only the endpoint is set:
    tokens, hop limit and tags in metadata stay as they are, and release sets the endpoint back
    to the value the sealed pre-incident state holds (read with the instance, no request more)."""

    name = "disable-instance-metadata"
    attribute = "metadata:HttpEndpoint"
    value = "disabled"
    permissions = (narrowed("ec2:ModifyInstanceMetadataOptions", f"HttpEndpoint={value}"),)
    undo_permissions = ("ec2:ModifyInstanceMetadataOptions",)

    def _before(self, target) -> str:
        before = (target.pre_state.get("metadata") or {}).get("HttpEndpoint")
        if before is None:  # an incident opened before the pre-incident state held it
            raise Skipped(f"the metadata endpoint of {target.instance_id} before the incident "
                          "is not known: left as it is")
        return before

    def _set(self, target, value):
        target.ec2.modify_instance_metadata_options(InstanceId=target.instance_id,
                                                    HttpEndpoint=value)

    def apply(self, target):
        """Off whatever it reads now (someone may have turned it on since the describe); a
        change is recorded only if it was on before the incident."""
        made = self.plan(target)
        self._set(target, self.value)
        return made

    def foreign(self, target, record):
        """Only the endpoint state the instance had when the incident opened is given back."""
        had = (target.pre_state.get("metadata") or {}).get("HttpEndpoint")
        if record.get("attribute") != self.attribute or record.get("before") != had:
            return (f"{record.get('attribute')!r} = {record.get('before')!r} is not the "
                    f"metadata endpoint {target.instance_id} had ({had})")
        return super().foreign(target, record)


class KeepVolumesOnTermination(Action):
    """DeleteOnTermination=false on every attached volume: a termination keeps the disks."""

    name = "keep-volumes-on-termination"
    permissions = (sets_attribute("BlockDeviceMappings"),)
    undo_permissions = permissions
    on_release = OnRelease.UNDONE

    def plan(self, target):
        return [change(self.name, v["id"], "DeleteOnTermination", True, False)
                for v in target.pre_state.get("volumes", []) if v["delete_on_termination"]]

    def _set(self, target, volumes, value):
        devices = {v["id"]: v["device"] for v in target.pre_state["volumes"]}
        target.ec2.modify_instance_attribute(InstanceId=target.instance_id, BlockDeviceMappings=[
            {"DeviceName": devices[v], "Ebs": {"DeleteOnTermination": value}} for v in volumes])
        target.cache.setdefault("live_volumes", {}).update({v: value for v in volumes})

    def early(self, target) -> list:
        """The request sent with the first swap: a power-off then keeps the disks."""
        live = target.cache.get("live_volumes", {})
        volumes = [r["resource"] for r in self.plan(target) if live.get(r["resource"], True)]
        return [lambda: self._set(target, volumes, False)] if volumes else []

    def apply(self, target):
        made = self.plan(target)
        live = target.cache.get("live_volumes", {})  # as last read or set; unknown: set it
        still = [r["resource"] for r in made if live.get(r["resource"], True)]
        if still:
            self._set(target, still, False)
        return made

    def undo(self, target, record):
        self._set(target, [record["resource"]], record["before"])

    def foreign(self, target, record):
        volumes = {v["id"] for v in target.pre_state.get("volumes", [])}
        if record.get("resource") not in volumes:
            return f"{record.get('resource')!r} was not a volume of {target.instance_id}"
        return None


class InstanceAttribute(InstanceValue):
    """Set one instance attribute (`attribute`: DescribeInstanceAttribute's name), remembering
    its previous value."""

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        cls._key = attribute_key(cls.attribute)
        cls.permissions = ("ec2:DescribeInstanceAttribute", preserves(cls._key, cls.value))
        cls.undo_permissions = (sets_attribute(cls._key),)

    def _set(self, target, value):
        target.ec2.modify_instance_attribute(InstanceId=target.instance_id,
                                             **{self._key: {"Value": value}})
        target.cache.setdefault("attributes", {})[self.attribute] = value

    def _live(self, target):
        """The attribute as last read or set in this step (read now if neither)."""
        live = target.cache.setdefault("attributes", {})
        if self.attribute not in live:
            live[self.attribute] = attribute_value(target.ec2.describe_instance_attribute(
                InstanceId=target.instance_id, Attribute=self.attribute), self.attribute)
        return live[self.attribute]

    def _before(self, target):
        """The value before the incident: read with the instance when it opened (the entry
        function's cut may have changed it since), else now."""
        known = target.pre_state.get("attributes") or {}
        return known[self.attribute] if self.attribute in known else self._live(target)

    def early(self, target) -> list:
        """The request sent with the first swap, when the value before is known and differs."""
        known = target.pre_state.get("attributes") or {}
        live = target.cache.get("attributes", {})
        if self.value in (known.get(self.attribute, self.value), live.get(self.attribute)):
            return []
        return [lambda: self._set(target, self.value)]

    def apply(self, target):
        made = self.plan(target)
        if self._live(target) != self.value:
            self._set(target, self.value)
        return made


class TerminationProtection(InstanceAttribute):
    """Nobody terminates the evidence by accident (or on purpose, through the API)."""

    name = "termination-protection"
    attribute = "disableApiTermination"
    value = True


class ShutdownBehaviourStop(InstanceAttribute):
    """A shutdown from inside the instance stops it instead of terminating it."""

    name = "shutdown-behaviour"
    attribute = "instanceInitiatedShutdownBehavior"
    value = "stop"


class DisableApiStop(InstanceAttribute):
    """Nobody stops the instance through the API (DISABLE_API_STOP=true): memory is evidence."""

    name = "disable-api-stop"
    attribute = "disableApiStop"
    value = True


class QuarantineTags(Action):
    """Mark the instance with its incident, status and finding, for people and for tooling."""

    name = "quarantine-tags"
    permissions = ("ec2:CreateTags",)
    undo_permissions = ("ec2:CreateTags", "ec2:DeleteTags")
    on_release = OnRelease.UNDONE

    def __init__(self, status: str = ""):
        self.status = status

    def _tags(self, target):
        incident = target.incident
        finding = (incident.get("finding") or {}).get("type") or "manual"
        return {TAG_INCIDENT: incident["incident_id"], TAG_STATUS: self.status,
                TAG_FINDING: finding[:256]}

    def _changes(self, target):
        before = {t["Key"]: t["Value"] for t in target.pre_state.get("tags", [])}
        return [change(self.name, target.instance_id, f"tag:{key}", before.get(key), value)
                for key, value in self._tags(target).items()]

    def plan(self, target):
        return self._changes(target)

    def apply(self, target):
        target.ec2.create_tags(Resources=[target.instance_id], Tags=[
            {"Key": k, "Value": v} for k, v in self._tags(target).items()])
        return self._changes(target)

    def foreign(self, target, record):
        if record.get("attribute") not in {f"tag:{key}" for key in TAGS}:
            return f"{record.get('attribute')!r} is not one of the product's tags"
        return super().foreign(target, record)

    def undo(self, target, record):
        key = record["attribute"].split(":", 1)[1]
        if record["before"] is None:
            target.ec2.delete_tags(Resources=[target.instance_id], Tags=[{"Key": key}])
        else:
            target.ec2.create_tags(Resources=[target.instance_id],
                                   Tags=[{"Key": key, "Value": record["before"]}])
