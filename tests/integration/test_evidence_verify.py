"""`ec2-quarantine evidence verify` against the embedded AWS: an incident's evidence verifies,
and each tampering is caught (an object overwritten, an object deleted, an object planted, the
manifest edited, a manifest signed by another key), with exit 1 and no stack trace."""

import json
import os
import subprocess
import sys

from tests.helpers import deliver_finding, finish, guardduty_event, make_victim

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _cli(stack, *args):
    """This checkout's CLI (`-m` from the project root), on the embedded AWS."""
    env = {**os.environ, "AWS_ENDPOINT_URL": stack.endpoint, "AWS_ACCESS_KEY_ID": "testing",
           "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": stack.region}
    env.pop("AWS_SESSION_TOKEN", None)
    env.pop("EC2_QUARANTINE_API_URL", None)
    return subprocess.run([sys.executable, "-m", "quarantine_cli", *args], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=120)


def _incident(stack) -> str:
    victim = make_victim(stack, interfaces=1, volumes=1)
    record, _ = finish(stack, deliver_finding(stack, guardduty_event(victim["instance_id"])))
    return record["incident_id"]


def _verify(stack, incident_id, *args):
    return _cli(stack, "evidence", "verify", incident_id,
                "--bucket", stack.names["EVIDENCE_BUCKET"], *args)


def _statuses(done) -> dict[str, str]:
    """{object name: status} from the verify output's object lines."""
    found = {}
    for line in done.stdout.splitlines():
        status, _, rest = line.partition(" ")
        if status in ("OK", "CHANGED", "MISSING", "UNLISTED"):
            found[rest.split()[0].split("/", 1)[1]] = status
    return found


def _no_trace(done):
    assert "Traceback" not in done.stdout + done.stderr, done.stderr


def test_untouched_evidence_verifies_with_the_key_or_its_pem(stack, tmp_path):
    incident_id = _incident(stack)
    key = stack.names["EVIDENCE_SIGNING_KEY_ARN"]

    done = _verify(stack, incident_id, "--key-id", key)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "signature: OK" in done.stdout and "evidence verified (6 objects)" in done.stdout
    assert set(_statuses(done).values()) == {"OK"} and len(_statuses(done)) == 6
    assert "report.html" in _statuses(done)  # the incident page, listed in the signed manifest

    pem = _cli(stack, "evidence", "public-key", "--key-id", key)
    assert pem.returncode == 0 and pem.stdout.startswith("-----BEGIN PUBLIC KEY-----")
    (tmp_path / "key.pem").write_text(pem.stdout)
    offline = _cli(stack, "--json", "evidence", "verify", incident_id, "--bucket",
                   stack.names["EVIDENCE_BUCKET"], "--public-key", str(tmp_path / "key.pem"))
    assert offline.returncode == 0, offline.stdout + offline.stderr
    assert json.loads(offline.stdout)["verified"] is True

    asked = _cli(stack, "--api-url", stack.api_url, "evidence", "verify", incident_id,
                 "--key-id", key)  # the API's incident says where its evidence is
    assert asked.returncode == 0 and asked.stdout == done.stdout, asked.stdout + asked.stderr


def test_an_object_overwritten_or_deleted_is_caught(stack):
    incident_id = _incident(stack)
    s3, bucket = stack.client("s3"), stack.names["EVIDENCE_BUCKET"]
    key = stack.names["EVIDENCE_SIGNING_KEY_ARN"]

    s3.put_object(Bucket=bucket, Key=f"{incident_id}/console-output.txt", Body=b"nothing here")
    overwritten = _verify(stack, incident_id, "--key-id", key)
    assert overwritten.returncode == 1 and "signature: OK" in overwritten.stdout
    assert _statuses(overwritten)["console-output.txt"] == "CHANGED"
    assert "overwritten: current version" in overwritten.stdout
    assert _statuses(overwritten)["instance.json"] == "OK"

    s3.delete_object(Bucket=bucket, Key=f"{incident_id}/network.json")  # a delete marker
    versions = s3.list_object_versions(Bucket=bucket, Prefix=f"{incident_id}/instance.json")
    for version in versions["Versions"]:  # and a version destroyed for good
        s3.delete_object(Bucket=bucket, Key=version["Key"], VersionId=version["VersionId"])
    deleted = _verify(stack, incident_id, "--key-id", key)
    assert deleted.returncode == 1
    assert {name: _statuses(deleted)[name] for name in (
        "network.json", "instance.json", "console-output.txt", "interfaces.json")} == {
        "network.json": "MISSING", "instance.json": "MISSING",
        "console-output.txt": "CHANGED", "interfaces.json": "OK"}
    assert "NOT verified (3 of 6 objects not OK, signature OK)" in deleted.stdout
    _no_trace(deleted)


def test_an_object_planted_under_the_incidents_prefix_is_caught(stack):
    """Evidence added after the manifest was signed (a second memory image, say) is not the
    incident's evidence: reported, and the incident does not verify."""
    incident_id = _incident(stack)
    s3, bucket = stack.client("s3"), stack.names["EVIDENCE_BUCKET"]
    s3.put_object(Bucket=bucket, Key=f"{incident_id}/memory/i-0planted.mem", Body=b"\0" * 64)
    s3.put_object(Bucket=bucket, Key=f"{incident_id}x/beside.txt", Body=b"another prefix")

    planted = _verify(stack, incident_id, "--key-id", stack.names["EVIDENCE_SIGNING_KEY_ARN"])
    assert planted.returncode == 1 and "signature: OK" in planted.stdout
    statuses = _statuses(planted)
    assert statuses.pop("memory/i-0planted.mem") == "UNLISTED"
    assert set(statuses.values()) == {"OK"} and len(statuses) == 6  # beside.txt is not its
    assert "NOT verified (1 of 7 objects not OK, signature OK)" in planted.stdout
    _no_trace(planted)


def test_an_edited_manifest_or_another_keys_signature_fails(stack):
    incident_id = _incident(stack)
    s3, bucket = stack.client("s3"), stack.names["EVIDENCE_BUCKET"]
    key = stack.names["EVIDENCE_SIGNING_KEY_ARN"]
    manifest_key = f"{incident_id}/manifest.json"
    original = s3.get_object(Bucket=bucket, Key=manifest_key)["Body"].read()
    listed = json.loads(original)
    # The attacker overwrites an object and lists its new hash and version in the manifest.
    written = s3.put_object(Bucket=bucket, Key=f"{incident_id}/console-output.txt", Body=b"x")
    for item in listed["objects"]:
        if item["key"].endswith("console-output.txt"):
            item.update(sha256="2d711642b726b04401627ca9fbac32f5c8530fb1903cc4db02258717921a4881",
                        size=1, version_id=written["VersionId"])
    s3.put_object(Bucket=bucket, Key=manifest_key, Body=json.dumps(listed).encode())

    edited = _verify(stack, incident_id, "--key-id", key)
    assert edited.returncode == 1
    assert "signature: FAILED: the signature does not match the manifest" in edited.stdout
    assert set(_statuses(edited).values()) == {"OK"}  # the objects alone cannot tell
    assert "evidence NOT verified" in edited.stdout

    # Signed anew with a key of the attacker's own, which the signature names: refused, since
    # the verifier uses the key it is given.
    from chalicelib import manifests

    kms = stack.client("kms")
    own = kms.create_key(KeySpec="ECC_NIST_P256", KeyUsage="SIGN_VERIFY")["KeyMetadata"]["Arn"]
    data = manifests.encode(listed)
    s3.put_object(Bucket=bucket, Key=manifest_key, Body=data)
    s3.put_object(Bucket=bucket, Key=f"{incident_id}/manifest.sig.json",
                  Body=json.dumps(manifests.sign(own, data)).encode())
    resigned = _verify(stack, incident_id, "--key-id", key)
    assert resigned.returncode == 1 and "signature: FAILED" in resigned.stdout
    assert _verify(stack, incident_id, "--key-id", own).returncode == 0  # it is a signature


def test_bad_input_is_an_error_message_never_a_trace(stack, tmp_path):
    (tmp_path / "bad.pem").write_text("not a key")
    key = stack.names["EVIDENCE_SIGNING_KEY_ARN"]
    for args, message in (
            (("inc-000000000000", "--key-id", key), "no manifest.json for incident"),
            (("inc-000000000000", "--public-key", str(tmp_path / "bad.pem")), "not a PEM"),
            (("inc-000000000000", "--public-key", str(tmp_path / "absent.pem")), "cannot read"),
            (("inc-000000000000",), "give --public-key PEM or --key-id"),
            (("inc-000000000000", "--key-id", stack.names["RECORDS_KEY_ARN"]), "error:"),
            (("../x", "--key-id", key), "is not an incident id")):
        done = _verify(stack, *args)
        assert done.returncode == 1 and message in done.stderr, (args, done.stderr)
        _no_trace(done)
