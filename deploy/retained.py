"""The incidents table, the evidence bucket, the records key and the evidence signing key,
which outlive the stack (evidence is never lost by accident, sealed records and signed
manifests stay verifiable): found by their deterministic names (the keys by their aliases),
refused in the way of a new stack, purged only when asked, and checked for incidents that
still hold an instance."""

from chalicelib import aws
from deploy import names, records_key
from deploy.session import DeployError, client, say


def _kept(stage: str) -> dict[str, str]:
    """The table, bucket and key that outlive the stack, by their deterministic names."""
    account = client("sts").get_caller_identity()["Account"]
    region = client("cloudformation").meta.region_name
    return {"table": names.incidents_table(stage),
            "bucket": names.evidence_bucket(region, account, stage),
            "key": names.records_key_alias(stage),
            "signing key": names.evidence_signing_key_alias(stage)}


def _existing(kept: dict[str, str]) -> dict[str, str]:
    """Which of the kept resources exist now."""
    from botocore.exceptions import ClientError

    found = {}
    for kind, check in (("table", lambda: client("dynamodb").describe_table(
                             TableName=kept["table"])),
                        ("bucket", lambda: client("s3").head_bucket(Bucket=kept["bucket"])),
                        ("key", lambda: client("kms").describe_key(KeyId=kept["key"])),
                        ("signing key", lambda: client("kms").describe_key(
                            KeyId=kept["signing key"]))):
        try:
            check()
            found[kind] = kept[kind]
        except ClientError:
            pass
    return found


def _listed(found: dict[str, str]) -> str:
    return " and ".join(f"{kind} {name}" for kind, name in found.items())


def refuse_orphans(stage: str) -> None:
    """A table, bucket or key alias kept by an earlier `make destroy` cannot be created again:
    say so before CloudFormation fails half-way."""
    found = _existing(_kept(stage))
    if found:
        raise DeployError(
            f"{_listed(found)} exist from an earlier deployment (kept by `make destroy`). "
            "Nothing was created. Either import them into a new stack with CloudFormation's "
            "resource import (template: build/<stage>/resources.json), or copy the evidence "
            f"elsewhere and run `make destroy STAGE={stage} PURGE=1`, then deploy again (the "
            "purged key's seals can no longer be verified)")


def _count_active(table: str) -> int:
    pages = client("dynamodb").get_paginator("scan").paginate(
        TableName=table, Select="COUNT",
        FilterExpression="record_type = :incident AND #status IN (:o, :c, :p)",
        ExpressionAttributeNames={"#status": "status"},
        ExpressionAttributeValues={":incident": {"S": "incident"}, ":o": {"S": "OPEN"},
                                   ":c": {"S": "CONTAINED"}, ":p": {"S": "PARTIAL"}})
    return sum(page["Count"] for page in pages)


def active_incidents(stage: str) -> int:
    """Incidents still holding an instance (OPEN, CONTAINED, PARTIAL): their records are what
    releases those instances. 0 when there is no table."""
    return aws.tolerate("ResourceNotFoundException", _count_active,
                        table=names.incidents_table(stage)) or 0


def keep_or_purge(stage: str, purge: bool) -> None:
    """After the stack is gone: say what is kept, or (`purge`) delete it."""
    found = _existing(_kept(stage))
    if not found:
        return
    if not purge:
        say(f"kept (evidence is never deleted by default): {_listed(found)}; "
            f"`make destroy STAGE={stage} PURGE=1` removes them")
        return
    _purge(found)


def _purge(found: dict[str, str]) -> None:
    """The evidence first, the records last, the keys after them: if object lock keeps
    evidence, the incidents that name it stay too, and so do the keys that verify them."""
    from botocore.exceptions import ClientError

    if "bucket" in found:
        s3, bucket = client("s3"), found["bucket"]
        say(f"purging bucket {bucket} (every version)")
        kept = []
        for page in s3.get_paginator("list_object_versions").paginate(Bucket=bucket):
            doomed = [{"Key": v["Key"], "VersionId": v["VersionId"]}
                      for v in page.get("Versions", []) + page.get("DeleteMarkers", [])]
            if doomed:
                answer = s3.delete_objects(Bucket=bucket, Delete={"Objects": doomed,
                                                                  "Quiet": True})
                kept += [e["Key"] for e in answer.get("Errors", [])]
        try:
            if kept:
                raise DeployError(f"{len(kept)} object version(s) were not deleted")
            s3.delete_bucket(Bucket=bucket)
        except (ClientError, DeployError) as error:
            raise DeployError(f"bucket {bucket} was not deleted ({error}; object lock keeps "
                              "evidence until its retention ends); the incidents table is "
                              "kept with it") from None
    if "table" in found:
        say(f"purging table {found['table']}")
        client("dynamodb").delete_table(TableName=found["table"])
    for kind in ("key", "signing key"):
        if kind in found:
            _purge_key(found[kind])


def _purge_key(alias: str) -> None:
    """KMS deletes a key only after a waiting period: the key is scheduled for deletion (and
    may be recovered until then), then its alias goes (a new deployment makes it again)."""
    kms = client("kms")
    key = kms.describe_key(KeyId=alias)["KeyMetadata"]["Arn"]
    say(f"purging key {alias}: deleted in {records_key.PURGE_WINDOW_DAYS} days "
        f"(`aws kms cancel-key-deletion --key-id {key}` keeps it)")
    aws.tolerate("KMSInvalidStateException", kms.schedule_key_deletion, KeyId=key,
                 PendingWindowInDays=records_key.PURGE_WINDOW_DAYS)  # already scheduled
    kms.delete_alias(AliasName=alias)
