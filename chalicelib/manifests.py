"""Evidence manifests, signed: what an analyst shows to defend the evidence.

`manifest.json` lists every object under an incident's prefix with its SHA-256, size and S3
version id (the bucket is versioned: a later write makes a new version, never changes a listed
one). Its bytes are canonical JSON (sorted keys, no spaces, ASCII), and `manifest.sig.json`
beside it holds a KMS asymmetric signature (ECDSA P-256, `MessageType=DIGEST`) over their
SHA-256. The signature covers exactly the stored bytes, so a verifier hashes what it downloads
and never re-encodes JSON; it checks the signature offline with the key's public key
(`ec2-quarantine evidence verify`), which no one can forge without `kms:Sign` on the key, and
only the evidence function's role has that (deploy/signing_key.py).
"""

import base64
import hashlib
import json

from chalicelib import aws

MANIFEST = "manifest.json"
SIGNATURE = "manifest.sig.json"
ALGORITHM = "ECDSA_SHA_256"  # the one algorithm of an ECC_NIST_P256 key
SIGN_PERMISSIONS = ("kms:Sign",)


def encode(manifest: dict) -> bytes:
    """The manifest's one encoding: sorted keys, no spaces, ASCII."""
    return json.dumps(manifest, sort_keys=True, separators=(",", ":"), ensure_ascii=True,
                      allow_nan=False, default=str).encode()


class Unsigned(Exception):
    """No key to sign with (EVIDENCE_SIGNING_KEY_ARN is not set)."""


def sign(key: str, data: bytes) -> dict:
    """The signature document of `data` (a manifest's bytes) by KMS key `key` (its ARN)."""
    if not key.startswith("arn:"):
        raise Unsigned(f"EVIDENCE_SIGNING_KEY_ARN={key!r} is not a key ARN")
    digest = hashlib.sha256(data).digest()
    kms = aws.client("kms", aws.region_of(key))
    signed = kms.sign(KeyId=key, Message=digest, MessageType="DIGEST", SigningAlgorithm=ALGORITHM)
    return {"manifest_sha256": digest.hex(), "key_id": signed["KeyId"],
            "signing_algorithm": signed["SigningAlgorithm"], "message_type": "DIGEST",
            "signature": base64.b64encode(signed["Signature"]).decode()}

