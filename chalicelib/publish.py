"""The incident page written into the evidence, and the manifest signed anew to list it.

`publish_page` is the one function that does it, given only an incident id: the report step
(when the incident settles), the release step and the tamper watch (when they record) ask it
asynchronously (`request`), and nothing they say reaches the page but the id. It reads the
incident itself and verifies its seal, writes `<incident>/report.html`, and lists that exact
version in `manifest.json`, whose other entries it copies from the stored manifest only once
that manifest's signature verifies with the stage's key (never re-signing what it cannot
vouch for: a manifest someone planted stays unsigned). With `collect_evidence` it is the only
holder of `kms:Sign` on the signing key (deploy/signing_key.py). Every publish is a step on
the incident (`page`), its objects recorded as evidence, so the report names the manifest that
is current.

Two publishes may overlap (a tamper entry as the report settles): each lists the page version
current when it writes, and checks after its signature that the page is still that version,
writing again if not; the last writer leaves page, manifest and signature agreeing.
"""

import base64
import hashlib
import json
import logging

from chalicelib import actions, aws, bindings, incidents, manifests, page, settings

log = logging.getLogger(__name__)

FUNCTION = "publish_page"  # its Chalice name
INVOKE_PERMISSIONS = ("lambda:InvokeFunction/publish-page",)  # what a caller needs to ask it
VERIFY_PERMISSIONS = ("kms:Verify",)
PERMISSIONS = (*incidents.GET_PERMISSIONS, *incidents.UPDATE_PERMISSIONS,
               *bindings.VERIFY_PERMISSIONS, *bindings.SEAL_PERMISSIONS,
               "s3:GetObject", "s3:PutObject", *manifests.SIGN_PERMISSIONS, *VERIFY_PERMISSIONS)
ATTEMPTS = 3  # writes of the manifest when another publish overlaps


class NotPublished(Exception):
    """The page cannot be published (yet): why."""


def request(incident_id: str) -> None:
    """Ask for the page of `incident_id` to be written (asynchronously: no caller waits for
    it, and a failure is logged, never the caller's)."""
    try:
        aws.client("lambda").invoke(FunctionName=settings.stage_function(FUNCTION),
                                    InvocationType="Event", Payload=json.dumps({"incident_id": incident_id}).encode())
    except Exception:
        log.exception("could not ask for the page of %s", incident_id)


def run(event) -> dict:
    """Write the page of the incident `event` names and sign the manifest listing it."""
    incident_id = event.get("incident_id") if isinstance(event, dict) else None
    if not isinstance(incident_id, str) or not incidents.INCIDENT_ID.match(incident_id):
        log.warning("page not published: %r is not an incident id", str(incident_id)[:80])
        return {"published": False, "reason": "not an incident id"}
    started = incidents.now()
    try:
        published = _publish(incident_id)
    except (NotPublished, bindings.Refused, manifests.Unsigned) as why:
        log.warning("page of %s not published: %s", incident_id, why)
        return {"published": False, "incident_id": incident_id, "reason": str(why)}
    incidents.record_step(incident_id, "page", started, "published", published["changes"])
    log.info("page of %s published: %s", incident_id, published["version_id"])
    return {"published": True, "incident_id": incident_id,
            "version_id": published["version_id"],
            "manifest_sha256": published["manifest_sha256"]}


def _publish(incident_id: str) -> dict:
    incident = incidents.get(incident_id)
    if incident is None:
        raise NotPublished("no such incident")
    bindings.verified_incident(incident)
    current = settings.get()
    bucket, prefix = current.evidence_bucket, f"{incident_id}/"  # never the record's word
    s3 = aws.client("s3")
    listed = _verified_manifest(s3, bucket, prefix, current.evidence_signing_key_arn,
                                incident_id)
    body = page.render(incident)
    s3.put_object(Bucket=bucket, Key=prefix + page.PAGE, Body=body,
                  ContentType=page.CONTENT_TYPE, ChecksumAlgorithm="SHA256",
                  Metadata={"sha256": hashlib.sha256(body).hexdigest()})
    for _ in range(ATTEMPTS):
        shown = _current(s3, bucket, prefix + page.PAGE)
        objects = [o for o in listed["objects"] if o["key"] != prefix + page.PAGE] + [shown]
        manifest = manifests.encode({**listed, "objects": objects})
        digest = hashlib.sha256(manifest).hexdigest()
        s3.put_object(Bucket=bucket, Key=prefix + manifests.MANIFEST, Body=manifest,
                      ContentType="application/json", ChecksumAlgorithm="SHA256",
                      Metadata={"sha256": digest})
        signature = manifests.sign(current.evidence_signing_key_arn, manifest)
        s3.put_object(Bucket=bucket, Key=prefix + manifests.SIGNATURE,
                      Body=json.dumps(signature, indent=2, sort_keys=True).encode(),
                      ContentType="application/json", ChecksumAlgorithm="SHA256")
        if _current(s3, bucket, prefix + page.PAGE)["version_id"] == shown["version_id"]:
            break
    where = f"s3://{bucket}/{prefix}"
    return {"version_id": shown["version_id"], "manifest_sha256": digest, "changes": [
        actions.change("evidence-store", where + page.PAGE, "sha256", None, shown["sha256"]),
        actions.change("evidence-store", where + manifests.MANIFEST, "sha256", None, digest),
        actions.change("evidence-store", where + manifests.SIGNATURE, "signature", None,
                       f"{manifests.ALGORITHM} {digest}")]}


def _verified_manifest(s3, bucket: str, prefix: str, key: str, incident_id: str) -> dict:
    """The stored manifest, once its stored signature verifies with the stage's key (the key
    the settings name, never the one the signature names) and it is this incident's."""
    try:
        manifest = s3.get_object(Bucket=bucket, Key=prefix + manifests.MANIFEST)["Body"].read()
        signed = json.loads(s3.get_object(Bucket=bucket, Key=prefix + manifests.SIGNATURE)[
            "Body"].read())
    except s3.exceptions.NoSuchKey:
        raise NotPublished("no signed manifest yet (the evidence step writes it)") from None
    digest = hashlib.sha256(manifest).digest()
    try:
        valid = signed.get("manifest_sha256") == digest.hex() and aws.client(
            "kms", aws.region_of(key)).verify(
            KeyId=key, Message=digest, MessageType="DIGEST", SigningAlgorithm=manifests.ALGORITHM,
            Signature=base64.b64decode(signed.get("signature") or ""))["SignatureValid"]
    except Exception as error:  # KMSInvalidSignatureException, a malformed document
        valid = False
        log.warning("manifest of %s does not verify: %s", incident_id, error)
    listed = json.loads(manifest) if valid else {}
    if not valid or listed.get("incident_id") != incident_id:
        raise NotPublished("the stored manifest's signature does not verify: not signed anew")
    return listed


def _current(s3, bucket: str, key: str) -> dict:
    """The current version of `key` as a manifest lists it, hashed from its stored bytes."""
    stored = s3.get_object(Bucket=bucket, Key=key)
    data = stored["Body"].read()
    return {"key": key, "sha256": hashlib.sha256(data).hexdigest(), "size": len(data),
            "version_id": stored.get("VersionId")}
