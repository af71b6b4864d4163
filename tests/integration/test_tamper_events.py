"""The tamper watch through CloudTrail, tried as the insider and the host would: each call that
can undo containment, made by another principal after the incident is contained, reaches the
watch as CloudTrail delivers it (the embedded AWS emits the events, EventBridge routes them by
the app's own pattern), is undone within the same delivery, and is recorded with who made it;
a benign change elsewhere triggers nothing; a release is never fought."""

import pytest

from chalicelib import tamper
from deploy import names
from local.victims import make_instance_profile
from tests.helpers import (
    deliver_finding,
    finish,
    guardduty_event,
    incident,
    instance_attribute,
    instance_tags,
    interface_groups,
    make_victim,
    messages,
    principal,
    product_groups,
    release,
    subscribe_queue,
)

EVERYTHING = [{"IpProtocol": "-1", "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}]


class Scene:
    """A contained instance, its VPC's product groups, and an insider's client."""

    def __init__(self, stack, victim, record, insider, insider_arn):
        self.stack, self.victim, self.record = stack, victim, record
        self.instance_id = victim["instance_id"]
        self.eni = next(iter(victim["interfaces"]))
        groups = product_groups(stack, victim["vpc_id"])
        self.isolation, self.open = groups["isolation"]["GroupId"], groups["open"]["GroupId"]
        self.ec2, self.iam = insider("ec2"), insider("iam")
        self.insider_arn = insider_arn

    def describe(self) -> dict:
        return self.stack.client("ec2").describe_instances(InstanceIds=[self.instance_id])[
            "Reservations"][0]["Instances"][0]

    def profiles(self) -> list[str]:
        return [a["IamInstanceProfile"]["Arn"].rsplit("/", 1)[-1] for a in
                self.stack.client("ec2").describe_iam_instance_profile_associations(Filters=[
                    {"Name": "instance-id", "Values": [self.instance_id]},
                    {"Name": "state", "Values": ["associated"]}])[
                    "IamInstanceProfileAssociations"]]

    def revocation(self) -> tuple[str, str]:
        (revoked,) = [c for c in self.record["changes"] if c["action"] == "revoke-role-sessions"]
        return revoked["resource"], revoked["attribute"].split(":", 1)[1]


def _interface_back(scene):
    scene.ec2.modify_network_interface_attribute(
        NetworkInterfaceId=scene.eni, Groups=scene.victim["interfaces"][scene.eni])
    return lambda: interface_groups(scene.stack, scene.eni) == [scene.isolation]


def _groups_through_the_instance(scene):
    scene.ec2.modify_instance_attribute(InstanceId=scene.instance_id,
                                        Groups=scene.victim["interfaces"][scene.eni])
    return lambda: all(interface_groups(scene.stack, eni) == [scene.isolation]
                       for eni in scene.victim["interfaces"])


def _new_interface(scene):
    """The host's way out: a fresh interface with an open group, attached after the cut."""
    admin = scene.stack.client("ec2")
    group = admin.create_security_group(GroupName="way-out", Description="out",
                                        VpcId=scene.victim["vpc_id"])["GroupId"]
    eni = admin.create_network_interface(SubnetId=scene.victim["subnet_id"],
                                         Groups=[group])["NetworkInterface"]["NetworkInterfaceId"]
    scene.ec2.attach_network_interface(NetworkInterfaceId=eni, InstanceId=scene.instance_id,
                                       DeviceIndex=5)
    return lambda: interface_groups(scene.stack, eni) == [scene.isolation]


def _rule_on_isolation(direction):
    def make(scene):
        getattr(scene.ec2, f"authorize_security_group_{direction}")(
            GroupId=scene.isolation, IpPermissions=EVERYTHING)
        return lambda: not (product_groups(scene.stack, scene.victim["vpc_id"])["isolation"][
            "IpPermissions"] or product_groups(scene.stack, scene.victim["vpc_id"])[
            "isolation"]["IpPermissionsEgress"])
    return make


def _open_group_open(scene) -> bool:
    return any(r.get("IpProtocol") == "-1" and {"CidrIp": "0.0.0.0/0"} in r["IpRanges"]
               for r in product_groups(scene.stack, scene.victim["vpc_id"])["open"][
                   "IpPermissions"])


def _open_group_narrowed(scene):
    """The all-open group made to track flows again: the next cut would keep connections."""
    scene.ec2.revoke_security_group_ingress(GroupId=scene.open, IpPermissions=EVERYTHING)
    return lambda: _open_group_open(scene)


def _rule_modified(scene):
    rules = scene.stack.client("ec2").describe_security_group_rules(Filters=[
        {"Name": "group-id", "Values": [scene.open]}])["SecurityGroupRules"]
    rule = next(r for r in rules if not r["IsEgress"] and r.get("CidrIpv4") == "0.0.0.0/0")
    scene.ec2.modify_security_group_rules(GroupId=scene.open, SecurityGroupRules=[{
        "SecurityGroupRuleId": rule["SecurityGroupRuleId"], "SecurityGroupRule": {
            "IpProtocol": "tcp", "FromPort": 443, "ToPort": 443, "CidrIpv4": "10.0.0.0/8"}}])
    return lambda: _open_group_open(scene)


def _profile_associated(scene):
    other = make_instance_profile(scene.stack.client("iam"))
    scene.ec2.associate_iam_instance_profile(InstanceId=scene.instance_id,
                                             IamInstanceProfile={"Name": other})
    return lambda: scene.profiles() == []


def _profile_replaced(scene):
    other = make_instance_profile(scene.stack.client("iam"))
    (association,) = scene.stack.client("ec2").describe_iam_instance_profile_associations(
        Filters=[{"Name": "instance-id", "Values": [scene.instance_id]}])[
        "IamInstanceProfileAssociations"]
    scene.ec2.replace_iam_instance_profile_association(
        AssociationId=association["AssociationId"], IamInstanceProfile={"Name": other})
    return lambda: scene.profiles() == [names.deny_all_profile(scene.stack.stage)]


def _protection_off(scene):
    scene.ec2.modify_instance_attribute(InstanceId=scene.instance_id,
                                        DisableApiTermination={"Value": False})
    return lambda: instance_attribute(scene.stack, scene.instance_id,
                                      "disableApiTermination") is True


def _metadata_on(scene):
    scene.ec2.modify_instance_metadata_options(InstanceId=scene.instance_id,
                                               HttpEndpoint="enabled")
    return lambda: scene.describe()["MetadataOptions"]["HttpEndpoint"] == "disabled"


def _tags_deleted(scene):
    scene.ec2.delete_tags(Resources=[scene.instance_id], Tags=[
        {"Key": "QuarantineIncident"}, {"Key": "QuarantineStatus"}])
    return lambda: instance_tags(scene.stack, scene.instance_id).get(
        "QuarantineIncident") == scene.record["incident_id"]


def _status_overwritten(scene):
    scene.ec2.create_tags(Resources=[scene.instance_id], Tags=[
        {"Key": "QuarantineStatus", "Value": "RELEASED"}])
    return lambda: instance_tags(scene.stack, scene.instance_id)["QuarantineStatus"] == \
        "CONTAINED"


def _group_untagged(scene):
    """Without its role tag the isolation group is no longer the product's: the watch's rights
    on it end, a rule could be added unseen. A new one is made and the interfaces moved."""
    scene.ec2.delete_tags(Resources=[scene.isolation], Tags=[{"Key": "ec2-quarantine"}])

    def whole():
        isolation = product_groups(scene.stack, scene.victim["vpc_id"]).get("isolation")
        return bool(isolation) and not isolation["IpPermissionsEgress"] and all(
            interface_groups(scene.stack, eni) == [isolation["GroupId"]]
            for eni in scene.victim["interfaces"])
    return whole


def _revocation_deleted(scene):
    role, policy = scene.revocation()
    written = scene.stack.client("iam").get_role_policy(RoleName=role, PolicyName=policy)[
        "PolicyDocument"]
    scene.iam.delete_role_policy(RoleName=role, PolicyName=policy)
    return lambda: scene.stack.client("iam").get_role_policy(
        RoleName=role, PolicyName=policy)["PolicyDocument"] == written


def _restarted(scene):
    scene.ec2.start_instances(InstanceIds=[scene.instance_id])
    return lambda: scene.describe()["State"]["Name"] in ("stopping", "stopped")


CALLS = {  # call: (how it is made, the insider's rights, the settings it needs)
    "ModifyNetworkInterfaceAttribute": (_interface_back, ["ec2:ModifyNetworkInterfaceAttribute"],
                                        {}),
    "ModifyInstanceAttribute groups": (_groups_through_the_instance,
                                       ["ec2:ModifyInstanceAttribute"], {}),
    "AttachNetworkInterface": (_new_interface, ["ec2:AttachNetworkInterface"], {}),
    "AuthorizeSecurityGroupEgress": (_rule_on_isolation("egress"),
                                     ["ec2:AuthorizeSecurityGroupEgress"], {}),
    "AuthorizeSecurityGroupIngress": (_rule_on_isolation("ingress"),
                                      ["ec2:AuthorizeSecurityGroupIngress"], {}),
    "RevokeSecurityGroupIngress": (_open_group_narrowed, ["ec2:RevokeSecurityGroupIngress"], {}),
    "ModifySecurityGroupRules": (_rule_modified, ["ec2:ModifySecurityGroupRules"], {}),
    "AssociateIamInstanceProfile": (_profile_associated,
                                    ["ec2:AssociateIamInstanceProfile", "iam:PassRole"], {}),
    "ReplaceIamInstanceProfileAssociation": (
        _profile_replaced, ["ec2:ReplaceIamInstanceProfileAssociation", "iam:PassRole"],
        {"CREDENTIALS_MODE": "deny-all"}),
    "ModifyInstanceAttribute protection": (_protection_off, ["ec2:ModifyInstanceAttribute"], {}),
    "ModifyInstanceMetadataOptions": (_metadata_on, ["ec2:ModifyInstanceMetadataOptions"], {}),
    "DeleteTags": (_tags_deleted, ["ec2:DeleteTags"], {}),
    "CreateTags": (_status_overwritten, ["ec2:CreateTags"], {}),
    "DeleteTags group": (_group_untagged, ["ec2:DeleteTags"], {}),
    "DeleteRolePolicy": (_revocation_deleted, ["iam:DeleteRolePolicy"],
                         {"REVOKE_ROLE_SESSIONS": "true"}),
    "StartInstances": (_restarted, ["ec2:StartInstances"], {"STOP_AFTER_EVIDENCE": "true"}),
}


def contained_scene(stack, rights, settings) -> Scene:
    stack.configure(**settings)
    victim = make_victim(stack, interfaces=2, volumes=1)
    record, _ = finish(stack, deliver_finding(stack, guardduty_event(victim["instance_id"])))
    assert record["status"] == "CONTAINED", record["errors"]
    insider = principal(stack, "insider", rights)
    arn = stack.client("iam").get_user(UserName="insider")["User"]["Arn"]
    return Scene(stack, victim, record, insider, arn)


@pytest.mark.parametrize("call", CALLS)
def test_each_call_that_undoes_containment_is_undone_and_recorded(stack, call):
    make, rights, settings = CALLS[call]
    scene = contained_scene(stack, rights, settings)
    queue = subscribe_queue(stack)
    with stack.enforce_iam():  # the insider and the watch each held to their own rights
        whole = make(scene)
        stack.bridge.wait_idle()  # CloudTrail's delivery, and the watch's repair

    assert whole(), f"{call} was not undone"
    entries = incident(stack, scene.record["incident_id"]).get("tamper") or []
    by_the_insider = [e for e in entries if e.get("by", {}).get("arn") == scene.insider_arn]
    assert by_the_insider, entries
    entry = by_the_insider[0]
    assert entry["found_by"] == "event" and entry["call"] == call.split()[0]
    assert entry["by"]["type"] == "IAMUser" and entry["by"]["accessKeyId"]
    assert entry["from"] and entry["at"] and entry["event_id"]
    assert all(d["outcome"] == "put back" for d in entry["drift"]), entry
    alerts = [m for m in messages(stack, queue) if "containment undone" in m["Subject"]]
    assert alerts and scene.insider_arn in alerts[0]["Text"]
    assert stack.tick("sweep")["sweep"]["repaired"] == []  # nothing left for the sweep


def test_the_calls_tested_are_the_calls_watched():
    assert {call.split()[0] for call in CALLS} - {"RevokeSecurityGroupEgress"} <= set(
        tamper.EC2_CALLS + tamper.IAM_CALLS)
    assert set(tamper.EC2_CALLS + tamper.IAM_CALLS) - {call.split()[0] for call in CALLS} == {
        "RevokeSecurityGroupEgress", "PutRolePolicy"}  # shown by the sweep's tests


def test_a_benign_change_elsewhere_triggers_nothing(stack):
    queue = subscribe_queue(stack)
    scene = contained_scene(stack, ["ec2:ModifyNetworkInterfaceAttribute",
                                    "ec2:AuthorizeSecurityGroupIngress", "ec2:CreateTags",
                                    "ec2:ModifyInstanceAttribute"], {})
    bystander = make_victim(stack, interfaces=1, volumes=1)
    (eni,) = bystander["interfaces"]
    stack.bridge.wait_idle()  # the setup's own events delivered
    messages(stack, queue)
    before = len(stack.bridge.invocations)
    with stack.enforce_iam():
        scene.ec2.modify_network_interface_attribute(
            NetworkInterfaceId=eni, Groups=[bystander["interfaces"][eni][0]])
        own = scene.victim["interfaces"][scene.eni][0]  # the instance's own group, not in use
        scene.ec2.authorize_security_group_ingress(GroupId=own, IpPermissions=EVERYTHING)
        scene.ec2.create_tags(Resources=[scene.instance_id], Tags=[
            {"Key": "Owner", "Value": "team-a"}])
        scene.ec2.modify_instance_attribute(InstanceId=bystander["instance_id"],
                                            DisableApiTermination={"Value": True})
        stack.bridge.wait_idle()

    watched = [i for i in stack.bridge.invocations[before:]
               if i.function_name == names.function(stack.stage, "on_tampering")
               and i.event["detail"]["userIdentity"].get("arn") == scene.insider_arn]
    assert len(watched) == 4 and all(i.error is None for i in watched)  # each one checked
    assert interface_groups(stack, eni) == [bystander["interfaces"][eni][0]]
    assert "tamper" not in incident(stack, scene.record["incident_id"])
    assert not [m for m in messages(stack, queue) if "containment undone" in m["Subject"]]


def test_a_release_is_never_fought(stack):
    """Release's own calls arrive as CloudTrail events too, while its lease holds and after
    the incident reads RELEASED: the watch puts nothing back."""
    scene = contained_scene(stack, ["ec2:DescribeInstances"], {"REVOKE_ROLE_SESSIONS": "true"})
    with stack.enforce_iam():
        release(stack, scene.instance_id)
        stack.bridge.wait_idle()
    for eni, groups in scene.victim["interfaces"].items():
        assert interface_groups(stack, eni) == sorted(groups)
    record = incident(stack, scene.record["incident_id"])
    assert record["status"] == "RELEASED" and "tamper" not in record
    assert scene.describe()["MetadataOptions"]["HttpEndpoint"] == "enabled"
