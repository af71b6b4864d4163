"""The KMS asymmetric key that signs evidence manifests (chalicelib/manifests.py), and who may
use it.

Its policy is made as the records key's is (deploy/records_key.py): the account administers
it, and `kms:Sign` is allowed only to the roles of the functions that declare it (the evidence
function's), whose IAM policy must allow it too (deploy/grants.py). The account may also read
the public key (`kms:GetPublicKey`: public by nature, IAM then says who), so that an analyst
verifies manifests offline.

The public key is not a stack output (CloudFormation has no attribute for it): the output is
the key's ARN, and `ec2-quarantine evidence public-key` fetches the PEM once. The key is
retained with the stack: evidence outlives the stack, and its signatures name this key.
"""

from chalicelib import manifests, publish
from deploy import names, records_key

PUBLIC = ("kms:GetPublicKey",)


def resources(stage: str, account: str) -> dict:
    """The signing key and its alias."""
    return records_key.retained_key(
        "EvidenceSigningKey", f"{names.APP_NAME} ({stage}): signs evidence manifests",
        "ECC_NIST_P256", "SIGN_VERIFY",
        records_key.policy(stage, account, (*manifests.SIGN_PERMISSIONS,
                                            *publish.VERIFY_PERMISSIONS), PUBLIC),
        names.evidence_signing_key_alias(stage))
