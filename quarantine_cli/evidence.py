"""`ec2-quarantine evidence`: an incident's evidence checked against its signed manifest.

The manifest's signature (chalicelib/manifests.py: ECDSA P-256 over the SHA-256 of the stored
manifest bytes) is checked offline with a public key the operator gives: a PEM file, or the
signing key's ARN, whose public key is fetched once (kms:GetPublicKey). Never with a key the
signature file names: whoever could rewrite the manifest could name a key of their own. Then
each listed object is read at its listed version and hashed, and its current version must be
the listed one (a write to the same key makes a new version in the versioned bucket). Last, any
object under the incident's prefix that the manifest does not list is reported: evidence planted
after the manifest was signed.
"""

import base64
import hashlib
import json

MANIFEST, SIGNATURE = "manifest.json", "manifest.sig.json"  # chalicelib/manifests.py
ALGORITHM = "ECDSA_SHA_256"
OK, CHANGED, MISSING, UNLISTED = "OK", "CHANGED", "MISSING", "UNLISTED"
_ABSENT = ("404", "NoSuchKey", "NoSuchVersion", "InvalidArgument")  # a version id S3 never made


class EvidenceError(Exception):
    """The evidence cannot be checked at all (no manifest, an unreadable key...)."""


def _code(error) -> str | None:
    return getattr(error, "response", {}).get("Error", {}).get("Code")


def public_key_pem(kms, key_id: str) -> bytes:
    """The PEM of a signing key's public key (GetPublicKey), refusing a key of another kind."""
    from cryptography.hazmat.primitives import serialization

    answer = kms.get_public_key(KeyId=key_id)
    if ALGORITHM not in answer.get("SigningAlgorithms", []):
        raise EvidenceError(f"{key_id} is not an {ALGORITHM} signing key")
    return serialization.load_der_public_key(answer["PublicKey"]).public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def load_public_key(pem: bytes):
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    try:
        key = serialization.load_pem_public_key(pem)
    except ValueError:
        raise EvidenceError("the public key is not a PEM public key") from None
    if not isinstance(key, ec.EllipticCurvePublicKey) or key.curve.name != "secp256r1":
        raise EvidenceError("the public key is not an ECC NIST P-256 key")
    return key


def signature_problem(public_key, manifest: bytes, signature: dict) -> str | None:
    """Why `signature` (manifest.sig.json, parsed) is not a signature of `manifest`'s bytes by
    `public_key`; None when it is."""
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.asymmetric.utils import Prehashed

    if not isinstance(signature, dict) or signature.get("signing_algorithm") != ALGORITHM or (
            signature.get("message_type") != "DIGEST"):
        return f"not an {ALGORITHM} signature of a digest"
    try:
        blob = base64.b64decode(str(signature.get("signature", "")).encode(), validate=True)
    except ValueError:
        return "the signature is not base64"
    try:
        public_key.verify(blob, hashlib.sha256(manifest).digest(),
                          ec.ECDSA(Prehashed(hashes.SHA256())))
    except InvalidSignature:
        return "the signature does not match the manifest with this public key"
    return None


def _read(s3, bucket: str, key: str) -> bytes | None:
    try:
        return s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    except Exception as error:
        if _code(error) in _ABSENT:
            return None
        raise


def _sha256(body) -> str:
    digest = hashlib.sha256()
    for chunk in body.iter_chunks(1 << 20):
        digest.update(chunk)
    return digest.hexdigest()


def check_object(s3, bucket: str, listed: dict) -> tuple[str, str]:
    """(OK | CHANGED | MISSING, why) for one object of the manifest."""
    key, version = listed.get("key"), listed.get("version_id")
    if not isinstance(key, str) or not isinstance(version, str) or not version:
        return CHANGED, "the manifest lists it without a version id"
    try:
        current = s3.head_object(Bucket=bucket, Key=key).get("VersionId")
    except Exception as error:
        if _code(error) not in _ABSENT:
            raise
        current = None
    try:
        got = s3.get_object(Bucket=bucket, Key=key, VersionId=version)
    except Exception as error:
        if _code(error) not in _ABSENT:
            raise
        return MISSING, f"version {version} is gone"
    if listed.get("sha256") is not None:
        found = _sha256(got["Body"])
        if found != listed["sha256"]:
            return CHANGED, f"sha256 {found}, listed {listed['sha256']}"
    elif (got.get("ContentLength"), got.get("ETag", "").strip('"')) != (
            listed.get("size"), listed.get("etag")):  # too large to hash: S3's own checksum
        return CHANGED, "size or ETag differs from the listed ones"
    if current is None:
        return MISSING, f"deleted (its listed version {version} is still readable)"
    if current != version:
        return CHANGED, f"overwritten: current version {current}, listed {version}"
    return OK, f"version {version}"


def _unlisted(s3, bucket: str, prefix: str, listed: set) -> list[str]:
    """The keys of the current objects under `prefix` that are not in `listed`."""
    return [item["Key"] for page in s3.get_paginator("list_objects_v2").paginate(
        Bucket=bucket, Prefix=prefix) for item in page.get("Contents", [])
        if item["Key"] not in listed]


def verify(s3, bucket: str, incident_id: str, public_key) -> dict:
    """The check of an incident's evidence: the signature, each listed object, then what is
    under the incident's prefix and not listed."""
    prefix = f"{incident_id}/"
    manifest = _read(s3, bucket, prefix + MANIFEST)
    if manifest is None:
        raise EvidenceError(f"no {MANIFEST} for incident {incident_id} in bucket {bucket}")
    signed = _read(s3, bucket, prefix + SIGNATURE)
    try:
        signature = None if signed is None else json.loads(signed)
    except ValueError:
        signature = "unreadable"
    problem = (f"no {SIGNATURE}" if signature is None
               else signature_problem(public_key, manifest, signature))
    report = {"incident_id": incident_id, "bucket": bucket,
              "manifest_sha256": hashlib.sha256(manifest).hexdigest(),
              "signature": "OK" if problem is None else f"FAILED: {problem}", "objects": []}
    try:
        listed = json.loads(manifest)
        objects = listed["objects"]
        if listed.get("incident_id") != incident_id:
            problem = report["signature"] = (
                f"FAILED: the manifest is incident {listed.get('incident_id')}'s")
    except (ValueError, KeyError, TypeError, AttributeError):
        report["signature"] = "FAILED: the manifest is not a manifest"
        objects, problem = [], "not a manifest"
    own = {prefix + MANIFEST, prefix + SIGNATURE}
    for item in objects if isinstance(objects, list) else []:
        item = item if isinstance(item, dict) else {}
        own.add(item.get("key"))
        if not str(item.get("key", "")).startswith(prefix):
            status, why = CHANGED, "listed outside the incident's prefix"
        else:
            status, why = check_object(s3, bucket, item)
        report["objects"].append({"key": item.get("key"), "status": status, "detail": why})
    report["objects"] += [{"key": key, "status": UNLISTED,
                           "detail": "under the incident's prefix, not in the manifest"}
                          for key in _unlisted(s3, bucket, prefix, own)]
    report["verified"] = problem is None and bool(report["objects"]) and all(
        o["status"] == OK for o in report["objects"])
    return report


def render(report: dict) -> str:
    lines = [f"signature: {report['signature']} (manifest sha256 {report['manifest_sha256']})"]
    width = max([len(str(o["key"])) for o in report["objects"]] + [0])
    lines += [f"{o['status']:<8} {str(o['key']):<{width}}  {o['detail']}"
              for o in report["objects"]]
    bad = sum(o["status"] != OK for o in report["objects"])
    lines.append(f"{report['incident_id']}: " + (
        f"evidence verified ({len(report['objects'])} objects)" if report["verified"] else
        f"evidence NOT verified ({bad} of {len(report['objects'])} objects not OK, "
        f"signature {report['signature'].split(':')[0]})"))
    return "\n".join(lines)
