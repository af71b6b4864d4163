"""Seals: what the product writes and later acts on, authenticated with a KMS HMAC key.

The incidents table and the execution input can be written by others (anyone with PutItem on
the table, or StartExecution on the state machine). So what release restores and what a step
acts on is sealed when the product makes it — the incident's binding (instance, account,
execution, pre-incident state), each change record, each release request, each list page token —
and verified before use. A seal is KMS `GenerateMac` (HMAC-SHA-256) over the SHA-256 of the
document's canonical JSON together with its purpose, so a seal made for one purpose never
passes for another. KMS takes at most 4,096 bytes of message; a digest is 32.
"""

import base64
import hashlib
import json
import logging

from chalicelib import aws, settings

log = logging.getLogger(__name__)

ALGORITHM = "HMAC_SHA_256"
SEAL_PERMISSIONS = ("kms:GenerateMac",)
VERIFY_PERMISSIONS = ("kms:VerifyMac",)


class Unverified(Exception):
    """A document's seal is missing or does not match it: it was not made by the product."""


def _normal(value):
    """JSON values as they read back from DynamoDB: integral floats become ints."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {str(k): _normal(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_normal(v) for v in value]
    return value


def canonical(purpose: str, document) -> bytes:
    """One encoding for one document: sorted keys, no spaces, ASCII, integral floats as ints."""
    return json.dumps({"purpose": purpose, "document": _normal(document)}, sort_keys=True,
                      separators=(",", ":"), ensure_ascii=True, allow_nan=False,
                      default=str).encode()


def digest(purpose: str, document) -> bytes:
    return hashlib.sha256(canonical(purpose, document)).digest()


def _kms():
    key = settings.get().records_key_arn
    return aws.client("kms", aws.region_of(key)), key


def seal(purpose: str, document) -> str:
    """The seal of `document` for `purpose` (base64)."""
    kms, key = _kms()
    mac = kms.generate_mac(KeyId=key, MacAlgorithm=ALGORITHM,
                           Message=digest(purpose, document))["Mac"]
    return base64.b64encode(mac).decode()


def verify(purpose: str, document, sealed) -> None:
    """Raise Unverified unless `sealed` is `document`'s seal for `purpose`."""
    if not isinstance(sealed, str) or not sealed:
        raise Unverified(f"{purpose} carries no seal")
    try:
        mac = base64.b64decode(sealed.encode(), validate=True)
    except ValueError:
        raise Unverified(f"{purpose} carries a malformed seal") from None
    kms, key = _kms()
    try:
        valid = kms.verify_mac(KeyId=key, MacAlgorithm=ALGORITHM, Mac=mac,
                               Message=digest(purpose, document))["MacValid"]
    except Exception as error:
        if aws.error_code(error) not in ("KMSInvalidMacException", "ValidationException"):
            raise
        valid = False
    if not valid:
        raise Unverified(f"{purpose}'s seal does not match it")
