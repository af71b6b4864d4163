"""What release does with each action's changes is declared on the action (`on_release`), and an
action that makes several changes records the ones it made before failing, so release can undo
them."""

import functools
from types import SimpleNamespace

import boto3
import pytest
from moto import mock_aws

from chalicelib import actions
from chalicelib.actions import Action, OnRelease, PartialFailure, Target
from chalicelib.actions.instance import DetachInstanceProfile, SwapToDenyAllProfile
from chalicelib.actions.memory import CaptureMemory
from chalicelib.steps import release

REGION = "us-east-1"
ACCOUNT = "123456789012"  # moto's


def _action_classes(cls=Action):
    """Every subclass of Action the product defines (a test's own fakes left out)."""
    for sub in cls.__subclasses__():
        if sub.__module__.startswith("chalicelib."):
            yield sub
        yield from _action_classes(sub)


def test_every_action_declares_what_release_does_and_release_knows_it():
    concrete = {cls for cls in _action_classes() if cls.name != Action.name}  # not a base
    assert concrete == set(release.ACTION_CLASSES)
    for cls in concrete:
        assert isinstance(cls.on_release, OnRelease), cls.__name__


def test_only_what_release_undoes_has_an_undo_and_its_permissions():
    for cls in release.ACTION_CLASSES:
        undoes = cls.on_release in (OnRelease.UNDONE, OnRelease.ON_REQUEST)
        assert bool(cls.undo_permissions) == undoes, cls.__name__
        if undoes:
            assert cls.undo is not Action.undo, cls.__name__


def test_evidence_is_kept_and_the_auto_scaling_group_not_rejoined():
    """As the README's action table says."""
    by_disposition = {}
    for cls in release.ACTION_CLASSES:
        by_disposition.setdefault(cls.on_release, set()).add(cls.name)
    assert by_disposition[OnRelease.KEPT] == {"snapshots", "evidence-store", "share-snapshots",
                                              "capture-memory", "malware-scan"}
    assert by_disposition[OnRelease.NOT_REATTACHED] == {"leave-autoscaling-group"}
    assert by_disposition[OnRelease.ON_REQUEST] == {"leave-target-groups",
                                                    "leave-classic-load-balancers"}


@pytest.mark.parametrize("reregister", [False, True])
def test_release_undoes_keeps_or_notes_each_change_as_its_action_declares(reregister):
    records = [{"action": cls.name, "resource": f"r-{cls.name}", "attribute": "autoscaling-group",
                "before": "group", "after": "detached"} for cls in release.ACTION_CLASSES]
    undo, notes = release.to_undo(records, set(), reregister)
    assert undo == [r for r in reversed(records)
                    if release.BY_NAME[r["action"]].on_release is OnRelease.UNDONE
                    or (reregister and release.BY_NAME[r["action"]].on_release
                        is OnRelease.ON_REQUEST)]
    register = [] if reregister else [
        'not registered again with r-leave-classic-load-balancers (ask with "reregister": true)',
        'not registered again with r-leave-target-groups (ask with "reregister": true)']
    assert notes == register + [  # newest first, as the changes are undone
        "not re-attached to Auto Scaling group group: the group launched a replacement"]


def test_a_change_restored_by_an_earlier_release_is_not_undone_again():
    record = {"action": "termination-protection", "resource": "i-1",
              "attribute": "disableApiTermination", "before": False, "after": True}
    assert release.to_undo([record], set(), False) == ([record], [])
    assert release.to_undo([record], {"termination-protection|i-1|disableApiTermination"},
                           False) == ([], [])


# -- several changes, one failing part-way (moto in-process) -----------------------------------

@pytest.fixture
def aws(monkeypatch):
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.setenv(key, "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    with mock_aws():
        yield


@pytest.fixture
def instance(aws):
    """An instance with its own profile, a deny-all profile in the account, and a Target whose
    one EC2 client a test can hook into."""
    iam = boto3.client("iam", region_name=REGION)
    arns = {}
    for name in ("app", "ec2-quarantine-deny-all"):
        iam.create_role(RoleName=name, AssumeRolePolicyDocument="{}")
        arns[name] = iam.create_instance_profile(InstanceProfileName=name)[
            "InstanceProfile"]["Arn"]
        iam.add_role_to_instance_profile(InstanceProfileName=name, RoleName=name)
    client = functools.cache(lambda service: boto3.client(service, region_name=REGION))
    ec2 = client("ec2")
    instance_id = ec2.run_instances(ImageId="ami-12c6146b", MinCount=1, MaxCount=1)[
        "Instances"][0]["InstanceId"]
    ec2.associate_iam_instance_profile(IamInstanceProfile={"Arn": arns["app"]},
                                       InstanceId=instance_id)
    target = Target(client=client, home_client=client,
                    incident={"incident_id": "inc-1", "instance_id": instance_id,
                              "account_id": ACCOUNT, "pre_state": {}},
                    settings=SimpleNamespace(deny_all_profile_arn=arns["ec2-quarantine-deny-all"],
                                             memory_capture_document="AWS-RunShellScript"))
    return SimpleNamespace(target=target, ec2=ec2, id=instance_id, arns=arns)


def _list_one_more_association(instance):
    """DescribeIamInstanceProfileAssociations also lists an association that is gone by the
    time the action acts on it (listed after the real one): the second change fails."""
    def add(parsed, **_):
        parsed["IamInstanceProfileAssociations"].append({
            "AssociationId": "iip-assoc-0123456789abcdef0", "InstanceId": instance.id,
            "State": "associated", "IamInstanceProfile": {
                "Arn": f"arn:aws:iam::{ACCOUNT}:instance-profile/gone", "Id": "AIPAGONE"}})
    instance.ec2.meta.events.register(
        "after-call.ec2.DescribeIamInstanceProfileAssociations", add)
    return add


def _profiles(instance):
    """The profiles associated with the instance, as moto holds them."""
    return [a["IamInstanceProfile"]["Arn"]
            for a in instance.ec2.describe_iam_instance_profile_associations(Filters=[
                {"Name": "instance-id", "Values": [instance.id]}])[
                "IamInstanceProfileAssociations"]]


@pytest.mark.parametrize("cls, left_on", [(DetachInstanceProfile, []),
                                           (SwapToDenyAllProfile, ["ec2-quarantine-deny-all"])])
def test_a_credentials_cut_failing_part_way_records_what_it_changed(instance, cls, left_on):
    hook = _list_one_more_association(instance)
    with pytest.raises(PartialFailure) as failed:
        cls().apply(instance.target)
    made = failed.value.made
    assert [(r["resource"], r["before"]) for r in made] == [(instance.id, instance.arns["app"])]
    assert "InvalidAssociationID.NotFound" in str(failed.value.error)
    instance.ec2.meta.events.unregister(
        "after-call.ec2.DescribeIamInstanceProfileAssociations", hook)
    assert _profiles(instance) == [instance.arns[name] for name in left_on]

    cls().undo(instance.target, made[0])  # what release does with the record
    assert _profiles(instance) == [instance.arns["app"]]


def test_the_step_records_the_change_made_before_the_failure(instance):
    _list_one_more_association(instance)
    changes, errors = actions.run([SwapToDenyAllProfile()], instance.target)
    assert [(c["action"], c["before"], c["after"]) for c in changes] == [
        ("deny-all-instance-profile", instance.arns["app"],
         instance.arns["ec2-quarantine-deny-all"])]
    assert [(e["action"], e["code"]) for e in errors] == [
        ("deny-all-instance-profile", "InvalidAssociationID.NotFound")]


def test_an_instance_ssm_does_not_manage_is_a_note_for_who_keeps_notes(instance):
    from botocore.awsrequest import AWSResponse

    # moto has no DescribeInstanceInformation: answer as AWS does for an instance without agent
    ssm = instance.target.client("ssm")
    ssm.meta.events.register("before-call.ssm.DescribeInstanceInformation", lambda **_: (
        AWSResponse("", 200, {}, None), {"InstanceInformationList": []}))
    notes = []
    assert actions.run([CaptureMemory()], instance.target, notes=notes) == ([], [])
    assert notes == [f"{instance.id} is not managed by SSM (no online agent)"]
    changes, errors = actions.run([CaptureMemory()], instance.target)
    assert changes == [] and [(e["action"], e["code"]) for e in errors] == [
        ("capture-memory", "NotManaged")]
