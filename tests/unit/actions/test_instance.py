"""Instance-level actions: credentials cut (profile detached or swapped, sessions revoked),
the metadata service turned off, preservation attributes, and the quarantine tags."""

import json

import pytest
from botocore.exceptions import ClientError

from chalicelib import actions, aws
from chalicelib.actions.instance import (
    DetachInstanceProfile,
    DisableApiStop,
    DisableInstanceMetadata,
    KeepVolumesOnTermination,
    QuarantineTags,
    RevokeRoleSessions,
    ShutdownBehaviourStop,
    SwapToDenyAllProfile,
    TerminationProtection,
)
from local.victims import make_victim
from tests.unit.actions.world import ACCOUNT, EXFILTRATION, associated_profiles, attribute, tags

COVERS = (DetachInstanceProfile, SwapToDenyAllProfile, RevokeRoleSessions,
          DisableInstanceMetadata, KeepVolumesOnTermination, TerminationProtection, ShutdownBehaviourStop, DisableApiStop,
          QuarantineTags)
DENY_ALL = f"arn:aws:iam::{ACCOUNT}:instance-profile/ec2-quarantine-deny-all"


# -- DetachInstanceProfile ------------------------------------------------------------------------
def test_detach_plan_names_the_profile_and_changes_nothing(world, victim, settings):
    target = world.target(victim["instance_id"], settings)
    profile = target.pre_state["instance_profile"]

    assert DetachInstanceProfile().plan(target) == [actions.change(
        "detach-instance-profile", victim["instance_id"], "instance-profile", profile, None)]
    assert associated_profiles(world.client("ec2"), victim["instance_id"]) == [profile]


def test_detach_apply_leaves_no_profile_and_undo_puts_it_back(world, victim, settings):
    target = world.target(victim["instance_id"], settings)
    ec2, profile = world.client("ec2"), target.pre_state["instance_profile"]

    made = DetachInstanceProfile().apply(target)

    assert made == [actions.change("detach-instance-profile", victim["instance_id"],
                                   "instance-profile", profile, None)]
    assert associated_profiles(ec2, victim["instance_id"]) == []
    DetachInstanceProfile().undo(target, made[0])
    assert associated_profiles(ec2, victim["instance_id"]) == [profile]


def test_detach_failure_raises_partial_failure_with_what_was_made(world, victim, settings):
    target = world.target(victim["instance_id"], settings)
    world.fail("ec2", "DisassociateIamInstanceProfile")

    with pytest.raises(actions.PartialFailure) as raised:
        DetachInstanceProfile().apply(target)

    assert raised.value.made == []  # AWS holds one association per instance: nothing was made
    assert isinstance(raised.value.error, ClientError)
    assert associated_profiles(world.client("ec2"), victim["instance_id"]) == [
        target.pre_state["instance_profile"]]


# -- SwapToDenyAllProfile ---------------------------------------------------------------------
def _deny_all_profile(world):
    """The deny-all profile as the product's stack makes it in each account (a role that may do
    nothing); the setting names another account's, the action takes the instance's own."""
    iam = world.client("iam")
    iam.create_role(RoleName="ec2-quarantine-deny-all", AssumeRolePolicyDocument=json.dumps({
        "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole",
                                                "Principal": {"Service": "ec2.amazonaws.com"}}]}))
    iam.create_instance_profile(InstanceProfileName="ec2-quarantine-deny-all")
    iam.add_role_to_instance_profile(InstanceProfileName="ec2-quarantine-deny-all",
                                     RoleName="ec2-quarantine-deny-all")


@pytest.fixture
def deny_all(world, configure):
    _deny_all_profile(world)
    return configure(CREDENTIALS_MODE="deny-all")


def test_swap_plan_names_the_accounts_own_deny_all_profile(world, victim, deny_all):
    target = world.target(victim["instance_id"], deny_all)
    profile = target.pre_state["instance_profile"]

    assert SwapToDenyAllProfile().plan(target) == [actions.change(
        "deny-all-instance-profile", victim["instance_id"], "instance-profile", profile, DENY_ALL)]
    assert associated_profiles(world.client("ec2"), victim["instance_id"]) == [profile]


def test_swap_apply_leaves_the_deny_all_profile_and_undo_the_own_one(world, victim, deny_all):
    target = world.target(victim["instance_id"], deny_all)
    ec2, profile = world.client("ec2"), target.pre_state["instance_profile"]

    made = SwapToDenyAllProfile().apply(target)

    assert made == [actions.change("deny-all-instance-profile", victim["instance_id"],
                                   "instance-profile", profile, DENY_ALL)]
    assert associated_profiles(ec2, victim["instance_id"]) == [DENY_ALL]
    assert SwapToDenyAllProfile().plan(target) == []  # already swapped: nothing to do
    SwapToDenyAllProfile().undo(target, made[0])
    assert associated_profiles(ec2, victim["instance_id"]) == [profile]


def test_swap_failure_raises_partial_failure_with_what_was_made(world, victim, deny_all):
    target = world.target(victim["instance_id"], deny_all)
    world.fail("ec2", "ReplaceIamInstanceProfileAssociation")

    with pytest.raises(actions.PartialFailure) as raised:
        SwapToDenyAllProfile().apply(target)

    assert raised.value.made == []
    assert isinstance(raised.value.error, ClientError)
    assert associated_profiles(world.client("ec2"), victim["instance_id"]) == [
        target.pre_state["instance_profile"]]


# -- RevokeRoleSessions -----------------------------------------------------------------------
@pytest.fixture
def sharing(world, victim):
    """A second instance whose profile is the victim's: revocation cuts its sessions too."""
    profile = world.instance(victim["instance_id"])["IamInstanceProfile"]["Arn"]
    other = make_victim(world, interfaces=1, volumes=1, profile=False)["instance_id"]
    world.client("ec2").associate_iam_instance_profile(
        InstanceId=other, IamInstanceProfile={"Arn": profile})
    return {"role": profile.rsplit("/", 1)[-1], "other": other}


def _policies(world, role):
    return world.client("iam").list_role_policies(RoleName=role)["PolicyNames"]


def _document(world, role, name):
    return world.client("iam").get_role_policy(RoleName=role, PolicyName=name)["PolicyDocument"]


@pytest.fixture
def revoking(configure):
    """The options of an execution started with REVOKE_ROLE_SESSIONS on."""
    return configure(REVOKE_ROLE_SESSIONS="true")


def test_revoke_plan_names_the_role_and_who_keeps_working(world, victim, sharing, revoking):
    target = world.target(victim["instance_id"], revoking)
    name = f"ec2-quarantine-revoke-{target.incident['incident_id']}"

    assert RevokeRoleSessions().plan(target) == [actions.change(
        "revoke-role-sessions", sharing["role"], f"policy:{name}", None,
        {"denies_sessions_issued_before": "now", "scope": "instance",
         "keep_working": [sharing["other"]]})]
    assert _policies(world, sharing["role"]) == []


def test_revoke_apply_denies_the_instances_earlier_sessions_and_undo_lifts_it(
        world, victim, sharing, revoking, revoker):
    target = world.target(victim["instance_id"], revoking)

    made = RevokeRoleSessions().apply(target)

    [record] = made
    name = record["attribute"].split(":", 1)[1]
    assert _policies(world, sharing["role"]) == [name]
    [statement] = _document(world, sharing["role"], name)["Statement"]
    assert (statement["Effect"], statement["Action"], statement["Resource"]) == ("Deny", "*", "*")
    assert statement["Condition"] == {
        "StringEquals": {"ec2:SourceInstanceARN":
                         f"arn:aws:ec2:us-east-1:{ACCOUNT}:instance/{victim['instance_id']}"},
        "DateLessThan": {"aws:TokenIssueTime": record["after"]["denies_sessions_issued_before"]}}
    assert [r["operation"] for r in revoker] == ["revoke"]  # the revoking function wrote it
    RevokeRoleSessions().undo(target, record)
    assert _policies(world, sharing["role"]) == []
    assert [r["operation"] for r in revoker] == ["revoke", "lift"]


def test_role_wide_revocation_names_every_instance_it_hits(world, victim, sharing, configure,
                                                            revoker, deployment):
    deployment(REVOKE_SCOPE="role")  # the revoker's own setting: a step cannot widen it
    target = world.target(victim["instance_id"], configure(REVOKE_ROLE_SESSIONS="true",
                                                           REVOKE_SCOPE="role"))

    [record] = RevokeRoleSessions().apply(target)

    assert (record["after"]["scope"], record["after"]["also_affects"]) == (
        "role", [sharing["other"]])
    [statement] = _document(world, sharing["role"], record["attribute"][7:])["Statement"]
    assert statement["Condition"] == {"DateLessThan": {
        "aws:TokenIssueTime": record["after"]["denies_sessions_issued_before"]}}


def test_revoke_failure_leaves_the_role_as_it_was(world, victim, sharing, revoking, revoker):
    target = world.target(victim["instance_id"], revoking)
    def refuse(model, **_):  # IAM refuses the revoking function's write, as AWS answers
        if model.name == "PutRolePolicy":
            raise ClientError({"Error": {"Code": "AccessDenied", "Message": "no"}}, model.name)
    aws.client("iam", "us-east-1").meta.events.register_first("before-call", refuse)

    changes, errors = actions.run([RevokeRoleSessions()], target)

    assert changes == []
    assert [(e["action"], e["code"]) for e in errors] == [("revoke-role-sessions", "AccessDenied")]
    assert _policies(world, sharing["role"]) == []


def test_revoke_has_nothing_to_do_without_a_profile(world, revoking):
    bare = make_victim(world, interfaces=1, volumes=1, profile=False)["instance_id"]
    assert RevokeRoleSessions().apply(world.target(bare, revoking)) == []


def test_with_revocation_off_only_a_credential_exfiltration_revokes_and_on_the_instance(
        world, victim, sharing, configure):
    off = configure(REVOKE_SCOPE="role")  # REVOKE_ROLE_SESSIONS is off by default
    stolen = world.target(victim["instance_id"], off, finding_type=EXFILTRATION)

    assert RevokeRoleSessions().plan(world.target(victim["instance_id"], off)) == []
    [planned] = RevokeRoleSessions().plan(stolen)
    assert (planned["resource"], planned["after"]["scope"], planned["after"]["keep_working"]) \
        == (sharing["role"], "instance", [sharing["other"]])


# -- instance attributes ----------------------------------------------------------------------
ATTRIBUTES = [(TerminationProtection, "disableApiTermination", False, True),
              (ShutdownBehaviourStop, "instanceInitiatedShutdownBehavior", "terminate", "stop"),
              (DisableApiStop, "disableApiStop", False, True)]


@pytest.mark.parametrize("cls, name, before, after", ATTRIBUTES)
def test_attribute_plan_says_what_it_would_set(world, victim, settings, cls, name, before, after):
    target = world.target(victim["instance_id"], settings)

    assert cls().plan(target) == [actions.change(cls.name, victim["instance_id"], name, before,
                                                 after)]
    assert attribute(world.client("ec2"), victim["instance_id"], name) == before


@pytest.mark.parametrize("cls, name, before, after", ATTRIBUTES)
def test_attribute_apply_sets_it_and_undo_restores_it(world, victim, settings, cls, name, before,
                                                     after):
    target = world.target(victim["instance_id"], settings)
    ec2, groups = world.client("ec2"), world.instance(victim["instance_id"])["SecurityGroups"]

    made = cls().apply(target)

    assert made == [actions.change(cls.name, victim["instance_id"], name, before, after)]
    assert attribute(ec2, victim["instance_id"], name) == after
    assert world.instance(victim["instance_id"])["SecurityGroups"] == groups  # groups untouched
    assert cls().apply(target) == []  # already set: nothing to do, nothing to undo
    cls().undo(target, made[0])
    assert attribute(ec2, victim["instance_id"], name) == before


@pytest.mark.parametrize("cls, name, before, after", ATTRIBUTES)
def test_attribute_failure_leaves_it_as_it_was(world, victim, settings, cls, name, before, after):
    target = world.target(victim["instance_id"], settings)
    world.fail("ec2", "ModifyInstanceAttribute")

    changes, errors = actions.run([cls()], target)

    assert (changes, [e["code"] for e in errors]) == ([], ["UnauthorizedOperation"])
    assert attribute(world.client("ec2"), victim["instance_id"], name) == before


# -- DisableInstanceMetadata ------------------------------------------------------------------
LAUNCHED = {"HttpTokens": "required", "HttpPutResponseHopLimit": 2, "HttpEndpoint": "enabled",
            "HttpProtocolIpv6": "disabled", "InstanceMetadataTags": "disabled"}


def _metadata(world, instance_id) -> dict:
    return {k: v for k, v in world.instance(instance_id)["MetadataOptions"].items()
            if k != "State"}


def test_metadata_plan_says_it_would_turn_the_endpoint_off(world, victim, settings):
    target = world.target(victim["instance_id"], settings)

    assert DisableInstanceMetadata().plan(target) == [actions.change(
        "disable-instance-metadata", victim["instance_id"], "metadata:HttpEndpoint", "enabled",
        "disabled")]
    assert _metadata(world, victim["instance_id"]) == LAUNCHED


def test_metadata_apply_turns_the_endpoint_off_and_undo_back_on_the_rest_untouched(
        world, victim, settings):
    target = world.target(victim["instance_id"], settings)
    assert _metadata(world, victim["instance_id"]) == LAUNCHED

    made = DisableInstanceMetadata().apply(target)

    assert made == DisableInstanceMetadata().plan(target)
    assert _metadata(world, victim["instance_id"]) == {**LAUNCHED, "HttpEndpoint": "disabled"}
    DisableInstanceMetadata().undo(target, made[0])
    assert _metadata(world, victim["instance_id"]) == LAUNCHED


def test_metadata_off_before_the_incident_records_no_change_yet_is_put_off_again(
        world, victim, settings):
    ec2 = world.client("ec2")
    ec2.modify_instance_metadata_options(InstanceId=victim["instance_id"],
                                         HttpEndpoint="disabled")
    target = world.target(victim["instance_id"], settings)  # its pre-incident state: off
    ec2.modify_instance_metadata_options(InstanceId=victim["instance_id"],
                                         HttpEndpoint="enabled")  # turned on since

    assert actions.run([DisableInstanceMetadata()], target) == ([], [])
    assert _metadata(world, victim["instance_id"]) == {**LAUNCHED, "HttpEndpoint": "disabled"}


def test_metadata_failure_leaves_the_endpoint_on(world, victim, settings):
    target = world.target(victim["instance_id"], settings)
    world.fail("ec2", "ModifyInstanceMetadataOptions")

    changes, errors = actions.run([DisableInstanceMetadata()], target)

    assert (changes, [e["code"] for e in errors]) == ([], ["UnauthorizedOperation"])
    assert _metadata(world, victim["instance_id"]) == LAUNCHED


def test_metadata_release_gives_back_only_the_sealed_endpoint_state(world, victim, settings):
    target = world.target(victim["instance_id"], settings)
    (record,) = DisableInstanceMetadata().plan(target)

    assert DisableInstanceMetadata().foreign(target, record) is None
    assert "is not the metadata endpoint" in DisableInstanceMetadata().foreign(
        target, {**record, "before": "disabled"})
    assert "is not the metadata endpoint" in DisableInstanceMetadata().foreign(
        target, {**record, "attribute": "metadata:HttpTokens", "before": "enabled"})
    assert "is not instance" in DisableInstanceMetadata().foreign(
        target, {**record, "resource": "i-0123456789abcdef0"})


# -- KeepVolumesOnTermination -----------------------------------------------------------------
def _delete_on_termination(world, instance_id):
    return {m["Ebs"]["VolumeId"]: m["Ebs"]["DeleteOnTermination"]
            for m in world.instance(instance_id)["BlockDeviceMappings"]}


@pytest.fixture
def two_deleted(world, victim):
    """The victim with a data volume deleted on termination as well as the root volume."""
    ec2 = world.client("ec2")
    data = world.instance(victim["instance_id"])["BlockDeviceMappings"][1]
    ec2.modify_instance_attribute(InstanceId=victim["instance_id"], BlockDeviceMappings=[
        {"DeviceName": data["DeviceName"], "Ebs": {"DeleteOnTermination": True}}])
    return _delete_on_termination(world, victim["instance_id"])


def test_keep_volumes_plan_names_the_volumes_deleted_on_termination(world, victim, two_deleted,
                                                                    settings):
    target = world.target(victim["instance_id"], settings)
    deleted = sorted(v for v, flag in two_deleted.items() if flag)

    planned = KeepVolumesOnTermination().plan(target)

    assert sorted(p["resource"] for p in planned) == deleted and len(two_deleted) == 3
    assert {(p["attribute"], p["before"], p["after"]) for p in planned} == {
        ("DeleteOnTermination", True, False)}
    assert _delete_on_termination(world, victim["instance_id"]) == two_deleted


def test_keep_volumes_apply_keeps_them_and_undo_restores_each(world, victim, two_deleted,
                                                              settings):
    target = world.target(victim["instance_id"], settings)

    made = KeepVolumesOnTermination().apply(target)

    assert made == KeepVolumesOnTermination().plan(target)
    assert set(_delete_on_termination(world, victim["instance_id"]).values()) == {False}
    KeepVolumesOnTermination().undo(target, made[0])
    after_undo = _delete_on_termination(world, victim["instance_id"])
    assert after_undo == {**{v: False for v in two_deleted}, made[0]["resource"]: True}


def test_keep_volumes_failure_leaves_every_volume_as_it_was(world, victim, two_deleted, settings):
    target = world.target(victim["instance_id"], settings)
    world.fail("ec2", "ModifyInstanceAttribute")

    with pytest.raises(ClientError):
        KeepVolumesOnTermination().apply(target)

    assert _delete_on_termination(world, victim["instance_id"]) == two_deleted


# -- QuarantineTags ---------------------------------------------------------------------------
@pytest.fixture
def released_before(world, victim):
    """The victim carries the status tag of an earlier, released incident."""
    world.client("ec2").create_tags(Resources=[victim["instance_id"]], Tags=[
        {"Key": "QuarantineStatus", "Value": "RELEASED"}])


def _expected_tags(target):
    return [actions.change("quarantine-tags", target.instance_id, "tag:QuarantineIncident", None,
                           target.incident["incident_id"]),
            actions.change("quarantine-tags", target.instance_id, "tag:QuarantineStatus",
                           "RELEASED", "CONTAINED"),
            actions.change("quarantine-tags", target.instance_id, "tag:QuarantineFinding", None,
                           "UnauthorizedAccess:EC2/SSHBruteForce")]


def test_tags_plan_shows_each_tag_before_and_after(world, victim, released_before, settings):
    target = world.target(victim["instance_id"], settings)

    assert QuarantineTags("CONTAINED").plan(target) == _expected_tags(target)
    assert tags(world.instance(victim["instance_id"])) == {"QuarantineStatus": "RELEASED"}


def test_tags_apply_marks_the_instance_and_undo_restores_the_earlier_tags(world, victim,
                                                                          released_before,
                                                                          settings):
    target = world.target(victim["instance_id"], settings)

    made = QuarantineTags("CONTAINED").apply(target)

    assert made == _expected_tags(target)
    assert tags(world.instance(victim["instance_id"])) == {
        "QuarantineIncident": target.incident["incident_id"], "QuarantineStatus": "CONTAINED",
        "QuarantineFinding": "UnauthorizedAccess:EC2/SSHBruteForce"}
    for record in made:
        QuarantineTags().undo(target, record)
    assert tags(world.instance(victim["instance_id"])) == {"QuarantineStatus": "RELEASED"}


def test_tags_failure_leaves_the_tags_as_they_were(world, victim, released_before, settings):
    target = world.target(victim["instance_id"], settings)
    world.fail("ec2", "CreateTags")

    changes, errors = actions.run([QuarantineTags("CONTAINED")], target)

    assert (changes, [e["action"] for e in errors]) == ([], ["quarantine-tags"])
    assert tags(world.instance(victim["instance_id"])) == {"QuarantineStatus": "RELEASED"}
