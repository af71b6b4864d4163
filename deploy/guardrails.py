"""The service control policy that keeps the product's marks and means out of everyone's reach
but the product's own roles (build time only: not packaged): `deploy/guardrails-scp.json`.

A site applying it may trust a plain exempt tag (`TRUST_EXEMPT_TAG=true`), since nobody else can
then write it. Each statement is a Deny unless `aws:PrincipalArn` is one of the product's roles
(any account: an SCP spans them), drawn from the code and each stage's settings:

- **Tags**: creating or deleting the product's tag keys on any resource (instances' incident and
  exempt tags, snapshots', the groups' role tag), on create as well (`RunInstances`,
  `CreateSecurityGroup` with tags are authorized as `ec2:CreateTags`). `DeleteTags` naming no
  key deletes every tag, and then `aws:TagKeys` is absent and no key condition applies: so a
  keyless `DeleteTags` is denied on a resource carrying any of the product's keys, one statement
  per key (conditions on two keys in one statement must both hold; the marked resource carries
  one or some). A keyless delete elsewhere stays allowed: the SCP touches nothing of the site's.
- **Groups**: changing the rules of the product's groups (`aws:ResourceTag` role "open" or
  "isolation"), their rule descriptions, or deleting them.
- **Records**: writing items of the product's incidents table (claims, incidents, exemptions):
  its seals refuse a forged record, but an old sealed one put back (a revoked exemption) or a
  claim item that blocks an instance are moves only keeping writers out can stop.
- **Roles**: writing, attaching, deleting, retagging, passing or creating the product's roles,
  and the deny-all instance profile: a role created under the product's names would be exempt
  itself, a function's role passed to someone's own code would run it as the product, and a role
  put into the deny-all profile would be handed to every contained instance.

The revocation policies the product writes on instances' roles
(`ec2-quarantine-revoke-<incident>`) are not protected: IAM has no condition on a policy's name,
so deleting one is left for the tamper watch (a later issue) to see, not blocked here. Whoever
deploys the product (Chalice, its stacks, the member roles' StackSet) writes the product's roles
too: deploy from the management account (SCPs never apply there) or exempt that principal as
well (`--also`).

    python -m deploy.guardrails                           # rewrite deploy/guardrails-scp.json
    python -m deploy.guardrails --also ARN_PATTERN [...]  # print one also exempting those
"""

import fnmatch
import json
import os
import sys

from chalicelib.actions import evidence, instance, isolation
from deploy import grants, names, permissions

FILE = os.path.join(os.path.dirname(__file__), "guardrails-scp.json")
SIZE_LIMIT = 5120  # characters, whitespace included when created through the API or CLI
TAG_ACTIONS = ("ec2:CreateTags", "ec2:DeleteTags")
GROUP_ACTIONS = ("ec2:AuthorizeSecurityGroupEgress", "ec2:AuthorizeSecurityGroupIngress",
                 "ec2:RevokeSecurityGroupEgress", "ec2:RevokeSecurityGroupIngress",
                 "ec2:ModifySecurityGroupRules", "ec2:UpdateSecurityGroupRuleDescriptionsEgress",
                 "ec2:UpdateSecurityGroupRuleDescriptionsIngress", "ec2:DeleteSecurityGroup")
ROLE_ACTIONS = ("iam:AttachRolePolicy", "iam:CreateRole", "iam:DeleteRole",
                "iam:DeleteRolePermissionsBoundary", "iam:DeleteRolePolicy",
                "iam:DetachRolePolicy", "iam:PassRole", "iam:PutRolePermissionsBoundary",
                "iam:PutRolePolicy", "iam:TagRole", "iam:UntagRole", "iam:UpdateAssumeRolePolicy",
                "iam:UpdateRole", "iam:UpdateRoleDescription")
PROFILE_ACTIONS = ("iam:AddRoleToInstanceProfile", "iam:CreateInstanceProfile",
                   "iam:DeleteInstanceProfile", "iam:RemoveRoleFromInstanceProfile")
# The incidents table's items (claims, incidents, exemptions): only the product writes them. Its
# seals stop forged records, not old ones put back, nor a claim item that blocks an instance.
RECORD_ACTIONS = ("dynamodb:BatchWriteItem", "dynamodb:DeleteItem", "dynamodb:PartiQLDelete",
                  "dynamodb:PartiQLInsert", "dynamodb:PartiQLUpdate", "dynamodb:PutItem",
                  "dynamodb:UpdateItem")


def _stages():
    return [permissions.stage_settings(stage) for stage in permissions.STAGES]


def tag_keys() -> list[str]:
    """Every tag key the product writes or reads as its own, under every stage's settings."""
    return sorted({*instance.TAGS, evidence.TAG_INSTANCE, isolation.ROLE_TAG,
                   *(current.exempt_tag for current in _stages())})


def _widest(patterns) -> list[str]:
    """The patterns no other one already matches (`role/ec2-quarantine-*` holds the rest)."""
    patterns = sorted(set(patterns))
    return [p for p in patterns if not any(q != p and fnmatch.fnmatchcase(p, q) for q in patterns)]


def product_roles() -> list[str]:
    return _widest(role for current in _stages() for role in grants.product_roles(current))


def deny_all_profiles() -> list[str]:
    return sorted({f"arn:aws:iam::*:instance-profile/{grants.deny_all_profile(current)}"
                   for current in _stages()})


def policy(also: tuple[str, ...] = ()) -> dict:
    """The SCP, exempting the product's roles and the principals `also`."""
    exempt = {"ArnNotLike": {"aws:PrincipalArn": [*product_roles(), *also]}}

    def deny(sid, actions, resources, condition=None):
        return {"Sid": sid, "Effect": "Deny", "Action": list(actions), "Resource": resources,
                "Condition": {**exempt, **(condition or {})}}

    keys = tag_keys()
    keyless = [deny(f"KeylessDeleteTags{n}", TAG_ACTIONS[1:], "*",
                    {"Null": {"aws:TagKeys": "true", f"aws:ResourceTag/{key}": "false"}})
               for n, key in enumerate(keys, 1)]
    return {"Version": "2012-10-17", "Statement": [
        deny("ProductTagKeys", TAG_ACTIONS, "*",
             {"ForAnyValue:StringEquals": {"aws:TagKeys": keys}}),
        *keyless,
        deny("ProductGroups", GROUP_ACTIONS, "arn:aws:ec2:*:*:security-group/*",
             grants.PRODUCT_GROUPS),
        deny("ProductRoles", ROLE_ACTIONS, product_roles()),
        deny("DenyAllProfile", PROFILE_ACTIONS, deny_all_profiles()),
        deny("ProductRecords", RECORD_ACTIONS, sorted(
            f"arn:aws:dynamodb:*:*:table/{names.incidents_table(stage)}"
            for stage in permissions.STAGES)),
    ]}


def render(also: tuple[str, ...] = ()) -> str:
    """The SCP as Organizations is given it: no whitespace, which would count against the
    limit; ValueError if Organizations would refuse its size."""
    text = json.dumps(policy(also), separators=(",", ":")) + "\n"
    if len(text) > SIZE_LIMIT:
        raise ValueError(f"the SCP has {len(text)} characters, over Organizations' {SIZE_LIMIT}")
    return text


def stale(path: str = FILE) -> bool:
    with open(path) as handle:
        return handle.read() != render()


def main(argv: list[str]) -> None:
    if argv[:1] == ["--also"]:
        sys.stdout.write(render(tuple(argv[1:])))
        return
    with open(FILE, "w") as handle:
        handle.write(render())
    print(FILE)


if __name__ == "__main__":
    main(sys.argv[1:])
