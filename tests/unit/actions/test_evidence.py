"""Evidence: snapshots tagged with the incident, the evidence store with its hashes, sharing with
the forensic account, stopping the instance. Evidence is kept on release: undo leaves it."""

import base64
import hashlib
import json

import pytest
from botocore.exceptions import ClientError

from chalicelib import actions, manifests
from chalicelib.actions.evidence import (
    EvidenceNotCaptured,
    MalwareScan,
    ShareSnapshots,
    Snapshots,
    StopInstance,
    StoreEvidence,
)
from tests.unit.actions.world import snapshots_of, tags

COVERS = (Snapshots, StoreEvidence, ShareSnapshots, MalwareScan, StopInstance)
FORENSIC = "210987654321"  # conftest.SETTINGS


# -- Snapshots --------------------------------------------------------------------------------
def test_snapshots_plan_names_every_volume_and_takes_none(world, victim, settings):
    target = world.target(victim["instance_id"], settings)

    planned = Snapshots().plan(target)

    assert planned == [actions.change("snapshots", v["id"], "snapshot", None, "(new snapshot)")
                       for v in target.pre_state["volumes"]]
    assert len(planned) == 3 and snapshots_of(world.client("ec2"), victim["instance_id"]) == []


def test_snapshots_apply_takes_one_per_volume_tagged_and_undo_keeps_them(world, victim, settings):
    target = world.target(victim["instance_id"], settings)
    ec2 = world.client("ec2")

    made = Snapshots().apply(target)

    taken = {s["SnapshotId"]: s for s in snapshots_of(ec2, victim["instance_id"])}
    volumes = sorted(v["id"] for v in target.pre_state["volumes"])
    assert sorted(r["resource"] for r in made) == volumes
    assert sorted(r["after"] for r in made) == sorted(taken)
    for record in made:
        snapshot = taken[record["after"]]
        assert snapshot["VolumeId"] == record["resource"]
        assert tags(snapshot) == {"QuarantineIncident": target.incident["incident_id"],
                                  "QuarantineInstance": victim["instance_id"]}
        Snapshots().undo(target, record)
    assert len(snapshots_of(ec2, victim["instance_id"])) == 3


def test_snapshots_failure_takes_none_and_is_recorded(world, victim, settings):
    target = world.target(victim["instance_id"], settings)
    world.fail("ec2", "CreateSnapshots", code="SnapshotCreationPerVolumeRateExceeded")

    changes, errors = actions.run([Snapshots()], target)

    assert changes == [] and [(e["action"], e["code"]) for e in errors] == [
        ("snapshots", "SnapshotCreationPerVolumeRateExceeded")]
    assert snapshots_of(world.client("ec2"), victim["instance_id"]) == []


# -- StoreEvidence ----------------------------------------------------------------------------
PIECES = ["console-output.txt", "console-screenshot.jpg", "instance.json", "interfaces.json",
          "manifest.json", "network.json"]
SIGNED = sorted(PIECES + ["manifest.sig.json"])


@pytest.fixture
def signing_key(world):
    """The stage's evidence signing key, as the stack makes it (deploy/signing_key.py)."""
    return world.client("kms").create_key(KeySpec="ECC_NIST_P256", KeyUsage="SIGN_VERIFY")[
        "KeyMetadata"]["Arn"]


@pytest.fixture
def settings(configure, signing_key):
    return configure(EVIDENCE_SIGNING_KEY_ARN=signing_key)


@pytest.fixture
def bucket(world, settings):
    """Versioned, as the stack makes it: each write makes a version the manifest names."""
    s3 = world.client("s3")
    s3.create_bucket(Bucket=settings.evidence_bucket)
    s3.put_bucket_versioning(Bucket=settings.evidence_bucket,
                             VersioningConfiguration={"Status": "Enabled"})
    return settings.evidence_bucket


def _stored(world, bucket, prefix):
    """{name under the prefix: (bytes, sha256 metadata)}"""
    s3, found = world.client("s3"), {}
    for item in s3.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", []):
        got = s3.get_object(Bucket=bucket, Key=item["Key"])
        found[item["Key"][len(prefix):]] = (got["Body"].read(), got["Metadata"].get("sha256"))
    return found


def test_store_plan_names_the_prefix_and_writes_nothing(world, victim, bucket, settings):
    target = world.target(victim["instance_id"], settings)
    prefix = f"{target.incident['incident_id']}/"

    assert StoreEvidence().plan(target) == [
        actions.change("evidence-store", bucket, "prefix", None, prefix)]
    assert _stored(world, bucket, prefix) == {}


def test_store_apply_writes_every_piece_with_its_hash_and_undo_keeps_them(world, victim, bucket,
                                                                         settings):
    target = world.target(victim["instance_id"], settings)
    prefix = f"{target.incident['incident_id']}/"
    snapshot_ids = [r["after"] for r in Snapshots().apply(target)]

    made = StoreEvidence(snapshot_ids).apply(target)

    stored = _stored(world, bucket, prefix)
    assert sorted(stored) == SIGNED
    for name, (data, digest) in stored.items():
        assert digest == (None if name == "manifest.sig.json"
                          else hashlib.sha256(data).hexdigest())
    by_resource = lambda r: r["resource"]  # noqa: E731
    assert sorted(made, key=by_resource) == sorted([
        actions.change("evidence-store", f"s3://{bucket}/{prefix}{name}", "sha256", None,
                       stored[name][1]) for name in PIECES] + [
        actions.change("evidence-store", f"s3://{bucket}/{prefix}manifest.sig.json", "signature",
                       None, f"ECDSA_SHA_256 {stored['manifest.json'][1]}")], key=by_resource)
    manifest = json.loads(stored["manifest.json"][0])
    assert manifest["snapshot_ids"] == snapshot_ids and manifest["not_captured"] == []
    assert {o["key"]: o["sha256"] for o in manifest["objects"]} == {
        prefix + name: stored[name][1] for name in PIECES if name != "manifest.json"}
    interfaces = json.loads(stored["interfaces.json"][0])
    assert interfaces["pre_incident_groups"] == {i["id"]: i["groups"]
                                                 for i in target.pre_state["interfaces"]}
    assert stored["console-screenshot.jpg"][0].startswith(b"\xff\xd8")  # a JPEG
    for record in made:
        StoreEvidence().undo(target, record)
    assert sorted(_stored(world, bucket, prefix)) == SIGNED


def test_the_manifest_names_each_version_and_its_signature_verifies_offline(
        world, victim, bucket, settings, signing_key):
    """The public key from GetPublicKey alone checks the signature (cryptography, no KMS call):
    over the manifest's stored bytes, which are its canonical JSON; a byte changed fails."""
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.asymmetric.utils import Prehashed

    target = world.target(victim["instance_id"], settings)
    prefix = f"{target.incident['incident_id']}/"
    StoreEvidence().apply(target)

    s3 = world.client("s3")
    data = s3.get_object(Bucket=bucket, Key=prefix + "manifest.json")["Body"].read()
    manifest = json.loads(data)
    assert data == manifests.encode(manifest)  # canonical: sorted keys, no spaces
    for listed in manifest["objects"]:
        current = s3.head_object(Bucket=bucket, Key=listed["key"])["VersionId"]
        assert listed["version_id"] == current
    signature = json.loads(s3.get_object(Bucket=bucket, Key=prefix + "manifest.sig.json")[
        "Body"].read())
    assert (signature["key_id"], signature["signing_algorithm"], signature["message_type"],
            signature["manifest_sha256"]) == (signing_key, "ECDSA_SHA_256", "DIGEST",
                                              hashlib.sha256(data).hexdigest())
    public = serialization.load_der_public_key(
        world.client("kms").get_public_key(KeyId=signing_key)["PublicKey"])
    blob = base64.b64decode(signature["signature"])
    algorithm = ec.ECDSA(Prehashed(hashes.SHA256()))
    public.verify(blob, hashlib.sha256(data).digest(), algorithm)
    with pytest.raises(InvalidSignature):
        public.verify(blob, hashlib.sha256(data.replace(b'"size":', b'"size": ')).digest(),
                      algorithm)


def test_store_without_a_signing_key_keeps_the_evidence_and_fails_partially(
        world, victim, bucket, configure):
    settings = configure()  # EVIDENCE_SIGNING_KEY_ARN unset
    target = world.target(victim["instance_id"], settings)

    with pytest.raises(actions.PartialFailure) as raised:
        StoreEvidence().apply(target)

    assert sorted(_stored(world, bucket, f"{target.incident['incident_id']}/")) == PIECES
    assert "manifest.sig.json: EVIDENCE_SIGNING_KEY_ARN=''" in str(raised.value.error)


def test_store_lists_what_others_wrote_under_the_prefix_and_who(world, victim, bucket, settings):
    """The memory image is the instance's, uploaded through the capture step's presigned URLs;
    whoever wrote anything else there, the step does not know."""
    target = world.target(victim["instance_id"], settings)
    image = f"{target.incident['incident_id']}/memory/{victim['instance_id']}.mem"
    other = f"{target.incident['incident_id']}/memory/cmd/{victim['instance_id']}/stdout"
    for key, body in ((image, b"memory image"), (other, b"output")):
        world.client("s3").put_object(Bucket=bucket, Key=key, Body=body)

    StoreEvidence().apply(target)

    manifest = json.loads(_stored(world, bucket, f"{target.incident['incident_id']}/")[
        "manifest.json"][0])
    found = {o["key"]: (o["written_by"], o["size"], o["sha256"]) for o in manifest["objects"]
             if "written_by" in o}  # the step's own pieces name nobody: they are hashed
    assert found[image] == ("instance via presigned upload", 12, None)
    assert found[other] == ("unknown", 6, None)


def test_store_piece_not_captured_keeps_the_others_and_fails_partially(world, victim, bucket,
                                                                       settings):
    target = world.target(victim["instance_id"], settings)
    prefix = f"{target.incident['incident_id']}/"
    world.fail("ec2", "GetConsoleOutput", calls=(1, 2), code="UnauthorizedOperation")

    with pytest.raises(actions.PartialFailure) as raised:
        StoreEvidence().apply(target)

    stored = _stored(world, bucket, prefix)
    assert sorted(stored) == [p for p in SIGNED if p != "console-output.txt"]
    assert sorted(r["resource"] for r in raised.value.made) == [
        f"s3://{bucket}/{prefix}{name}" for name in sorted(stored)]
    assert isinstance(raised.value.error, EvidenceNotCaptured)
    assert json.loads(stored["manifest.json"][0])["not_captured"] == [
        "console-output.txt: UnauthorizedOperation"]
    changes, errors = actions.run([StoreEvidence()], world.target(victim["instance_id"], settings))
    assert len(changes) == 6 and [(e["action"], e["code"]) for e in errors] == [
        ("evidence-store", "EvidenceNotCaptured")]


# -- ShareSnapshots ---------------------------------------------------------------------------
def _shared_with(world, snapshot_id):
    return [p.get("UserId") for p in world.client("ec2").describe_snapshot_attribute(
        SnapshotId=snapshot_id, Attribute="createVolumePermission")["CreateVolumePermissions"]]


@pytest.fixture
def snapshot_ids(world, victim, settings):
    return [r["after"] for r in Snapshots().apply(world.target(victim["instance_id"], settings))]


def test_share_plan_names_each_snapshot_and_shares_none(world, victim, snapshot_ids, settings):
    target = world.target(victim["instance_id"], settings)

    assert ShareSnapshots(snapshot_ids).plan(target) == [
        actions.change("share-snapshots", s, "createVolumePermission", None, FORENSIC)
        for s in snapshot_ids]
    assert all(_shared_with(world, s) == [] for s in snapshot_ids)


def test_share_apply_shares_each_and_undo_keeps_sharing(world, victim, snapshot_ids, settings):
    target = world.target(victim["instance_id"], settings)

    made = ShareSnapshots(snapshot_ids).apply(target)

    assert made == ShareSnapshots(snapshot_ids).plan(target)
    for record in made:
        ShareSnapshots().undo(target, record)
    assert all(_shared_with(world, s) == [FORENSIC] for s in snapshot_ids)


def test_share_partial_failure_carries_the_first(world, victim, snapshot_ids, settings):
    target = world.target(victim["instance_id"], settings)
    world.fail("ec2", "ModifySnapshotAttribute", calls=(2,))

    with pytest.raises(actions.PartialFailure) as raised:
        ShareSnapshots(snapshot_ids).apply(target)

    assert raised.value.made == ShareSnapshots(snapshot_ids[:1]).plan(target)
    assert [_shared_with(world, s) for s in snapshot_ids] == [[FORENSIC], [], []]


# -- StopInstance -----------------------------------------------------------------------------
def _state(world, instance_id):
    return world.instance(instance_id)["State"]["Name"]


def test_stop_plan_changes_nothing(world, victim, settings):
    target = world.target(victim["instance_id"], settings)

    assert StopInstance().plan(target) == [
        actions.change("stop-instance", victim["instance_id"], "state", "running", "stopped")]
    assert _state(world, victim["instance_id"]) == "running"


def test_stop_apply_stops_and_undo_starts_again(world, victim, settings):
    target = world.target(victim["instance_id"], settings)

    made = StopInstance().apply(target)

    assert made == StopInstance().plan(target)
    assert _state(world, victim["instance_id"]) in ("stopping", "stopped")
    StopInstance().undo(target, made[0])
    assert _state(world, victim["instance_id"]) in ("pending", "running")


def test_stop_failure_leaves_it_running(world, victim, settings):
    target = world.target(victim["instance_id"], settings)
    world.fail("ec2", "StopInstances", code="OperationNotPermitted")

    with pytest.raises(ClientError):
        StopInstance().apply(target)

    assert _state(world, victim["instance_id"]) == "running"


# -- MalwareScan ------------------------------------------------------------------------------
def _scans(world, instance_arn):
    return world.client("guardduty").list_malware_scans(FilterCriteria={
        "ListMalwareScansFilterCriterion": [{"ListMalwareScansCriterionKey": "RESOURCE_ARN",
                                             "FilterCondition": {"EqualsValue": instance_arn}}]
    })["Scans"]


def test_malware_scan_plan_names_the_instance_and_starts_none(world, victim, settings):
    target = world.target(victim["instance_id"], settings)
    arn = MalwareScan.arn(target.incident)

    assert MalwareScan().plan(target) == [
        actions.change("malware-scan", arn, "scan", None, "(new scan)")]
    assert arn.endswith(f":instance/{victim['instance_id']}") and _scans(world, arn) == []


def test_malware_scan_apply_starts_one_scan_of_the_instance_and_a_retry_is_the_same(
        world, victim, settings):
    target = world.target(victim["instance_id"], settings)
    arn = MalwareScan.arn(target.incident)

    made = MalwareScan().apply(target)
    again = MalwareScan().apply(target)  # the step retried: the same request, the same scan

    (scan,) = _scans(world, arn)
    assert made == again == [actions.change("malware-scan", arn, "scan", None, scan["ScanId"])]
    assert scan["ScanType"] == "ON_DEMAND" and scan["ScanStatus"] == "RUNNING"
    assert world.client("guardduty").get_malware_scan(ScanId=scan["ScanId"])[
        "ResourceArn"] == arn


def test_malware_scan_within_the_hour_of_guardduty_s_own_follows_that_one(
        world, victim, settings):
    """GuardDuty-initiated scans fire on the findings that open incidents: GuardDuty refuses a
    second scan within the hour, and the incident follows the one it started."""
    from moto.guardduty.models import guardduty_backends

    target = world.target(victim["instance_id"], settings)
    arn = MalwareScan.arn(target.incident)
    own = guardduty_backends[target.incident["account_id"]][
        target.incident["region"]].start_malware_scan(arn, initiated_by="GUARDDUTY_INITIATED")

    made = MalwareScan().apply(target)

    assert [r["after"] for r in made] == [own]
    assert [(s["ScanId"], s["ScanType"]) for s in _scans(world, arn)] == [
        (own, "GUARDDUTY_INITIATED")]


def test_malware_scan_within_the_hour_of_someone_else_s_follows_none_and_names_it(
        world, victim, settings):
    """A scan someone else asked for (the host's role, stolen credentials) chose when it read
    the volumes: it is not the incident's, and the error names it."""
    target = world.target(victim["instance_id"], settings)
    arn = MalwareScan.arn(target.incident)
    theirs = world.client("guardduty").start_malware_scan(ResourceArn=arn)["ScanId"]

    changes, errors = actions.run([MalwareScan()], target)

    assert changes == [] and [(e["action"], e["code"]) for e in errors] == [
        ("malware-scan", "ScanOfOthers")]
    assert f"ON_DEMAND scan {theirs}" in errors[0]["message"]


def test_malware_scan_refused_for_another_reason_records_nothing(world, settings, victim):
    target = world.target(victim["instance_id"], settings)
    target.incident["instance_id"] = "i-0fedcba9876543210"  # no such instance

    changes, errors = actions.run([MalwareScan()], target)

    assert changes == [] and [(e["action"], e["code"]) for e in errors] == [
        ("malware-scan", "BadRequestException")]
    assert _scans(world, MalwareScan.arn(target.incident)) == []
