"""The incidents table, the evidence bucket, its access logs bucket, the records key and the
evidence signing key, which outlive the stack (evidence is never lost by accident, nor the record
of who touched it; sealed records and signed manifests stay verifiable): found by their
deterministic names (the keys by their aliases), refused in the way of a new stack, purged only
when asked, and checked for incidents that still hold an instance."""

import os

from chalicelib import aws, incidents
from deploy import names, permissions, records_key
from deploy.session import DeployError, client, rehearsal, say


def _kept(stage: str) -> dict[str, str]:
    """The table, bucket and key that outlive the stack, by their deterministic names."""
    account = client("sts").get_caller_identity()["Account"]
    region = client("cloudformation").meta.region_name
    return {"table": names.incidents_table(stage),
            "bucket": names.evidence_bucket(region, account, stage),
            "logs bucket": names.access_logs_bucket(region, account, stage),
            "key": names.records_key_alias(stage),
            "signing key": names.evidence_signing_key_alias(stage)}


def _existing(kept: dict[str, str]) -> dict[str, str]:
    """Which of the kept resources exist now."""
    from botocore.exceptions import ClientError

    checks = {"table": lambda name: client("dynamodb").describe_table(TableName=name),
              "bucket": lambda name: client("s3").head_bucket(Bucket=name),
              "logs bucket": lambda name: client("s3").head_bucket(Bucket=name),
              "key": lambda name: client("kms").describe_key(KeyId=name),
              "signing key": lambda name: client("kms").describe_key(KeyId=name)}
    found = {}
    for kind, name in kept.items():
        try:
            checks[kind](name)
            found[kind] = name
        except ClientError:
            pass
    return found


def _listed(found: dict[str, str]) -> str:
    return " and ".join(f"{kind} {name}" for kind, name in found.items())


def refuse_the_local_stage(stage: str) -> None:
    """On `make local`'s embedded AWS the stage it serves was provisioned by it, not deployed:
    a rehearsal of that stage there would take its table and bucket for a destroyed stage's
    (and a purge would wipe its evidence). Refuse before anything changes."""
    from botocore.exceptions import ClientError

    if not rehearsal():
        return
    dynamodb = client("dynamodb")
    try:
        table = dynamodb.describe_table(TableName=names.incidents_table(stage))["Table"]
        tags = dynamodb.list_tags_of_resource(ResourceArn=table["TableArn"])["Tags"]
    except ClientError:
        return
    if any(tag["Key"] == names.PROVISIONED_LOCALLY_TAG for tag in tags):
        other = next(s for s in permissions.STAGES if s != stage)
        raise DeployError(
            f"stage {stage} on {os.environ['AWS_ENDPOINT_URL']} is the one `make local` serves: "
            "its table, bucket and keys were provisioned by it, not deployed, so there is "
            f"nothing to deploy over or destroy. Nothing was changed. Rehearse another stage "
            f"beside it: `make deploy STAGE={other}`")


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
        FilterExpression="record_type = :incident AND #status IN (:o, :c, :p, :a)",
        ExpressionAttributeNames={"#status": "status"},
        ExpressionAttributeValues={":incident": {"S": "incident"}, ":o": {"S": "OPEN"},
                                   ":c": {"S": "CONTAINED"}, ":p": {"S": "PARTIAL"},
                                   ":a": {"S": incidents.AWAITING}})
    return sum(page["Count"] for page in pages)


def active_incidents(stage: str) -> int:
    """Incidents still holding an instance (OPEN, CONTAINED, PARTIAL, AWAITING_APPROVAL):
    their records are what releases (or decides on) those instances. 0 when there is no
    table."""
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


def _lock_mode(bucket: str) -> str | None:
    """The bucket's default object lock mode (None: no lock)."""
    configuration = aws.tolerate("ObjectLockConfigurationNotFoundError",
                                 client("s3").get_object_lock_configuration, Bucket=bucket)
    rule = ((configuration or {}).get("ObjectLockConfiguration") or {}).get("Rule") or {}
    return rule.get("DefaultRetention", {}).get("Mode")


def _purge_bucket(bucket: str) -> None:
    """Every version and delete marker, governance retention bypassed (the caller needs
    s3:BypassGovernanceRetention); what compliance mode keeps cannot be deleted by anyone
    until its retention ends: the bucket stays, and so does what names it."""
    from botocore.exceptions import ClientError

    s3, kept = client("s3"), []
    say(f"purging bucket {bucket} (every version; governance retention bypassed)")
    for page in s3.get_paginator("list_object_versions").paginate(Bucket=bucket):
        doomed = [{"Key": v["Key"], "VersionId": v["VersionId"]}
                  for v in page.get("Versions", []) + page.get("DeleteMarkers", [])]
        if doomed:
            answer = s3.delete_objects(Bucket=bucket, BypassGovernanceRetention=True,
                                       Delete={"Objects": doomed, "Quiet": True})
            kept += [e["Key"] for e in answer.get("Errors", [])]
    try:
        if kept:
            raise DeployError(f"{len(kept)} object version(s) were not deleted")
        s3.delete_bucket(Bucket=bucket)
    except (ClientError, DeployError) as error:
        why = ("its objects are in COMPLIANCE mode: nobody, the account root included, can "
               "delete them before their retention ends; purge again after that"
               if _lock_mode(bucket) == "COMPLIANCE" else
               "object lock keeps evidence until its retention ends unless the caller may "
               "s3:BypassGovernanceRetention")
        raise DeployError(f"bucket {bucket} was not deleted ({error}; {why}); the access logs, "
                          "the incidents table and the records key are kept with it") from None


def _purge(found: dict[str, str]) -> None:
    """The evidence first, then its access logs, the records last, their key after them: if
    object lock keeps evidence, the logs of who touched it stay, and the incidents that name it,
    and the key that verifies them."""
    for kind in ("bucket", "logs bucket"):
        if kind in found:
            _purge_bucket(found[kind])
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
