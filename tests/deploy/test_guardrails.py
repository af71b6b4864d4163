"""The guardrails SCP (deploy/guardrails.py): current, within Organizations' size limit, every
action and condition key real for its action (parliament's IAM data), naming every tag key and
group role the code has, exempting every role the product deploys and no other; the attacker's
moves meet one of its denies, as the embedded AWS evaluates their conditions."""

import copy
import fnmatch
import importlib
import pkgutil
import re
from dataclasses import fields

import pytest

import chalicelib
from chalicelib import settings
from chalicelib.actions import isolation
from deploy import guardrails, names, permissions, policy_lint, resources
from local.patches import iam as embedded_iam

# Keys IAM evaluates on every request: parliament's data lists them for no action.
EVERYWHERE = ("aws:PrincipalArn",)
ACCOUNT = "123456789012"


def _statement(document: dict, sid: str) -> dict:
    return next(s for s in document["Statement"] if s["Sid"] == sid)


def unlisted_condition_keys(document: dict) -> list[str]:
    """`action key` for each condition key not listed for the action on the statement's
    resources. parliament checks service keys (`ec2:...`), not `aws:` ones such as
    `aws:ResourceTag/...` or `aws:TagKeys`, which AWS lists per action and resource type."""
    from parliament import get_resource_type_matches_from_arn
    from parliament.statement import get_privilege_info, is_condition_key_match

    found = []
    for statement in document["Statement"]:
        resources = policy_lint._listed(statement["Resource"])
        types = None if "*" in resources else {
            match["resource"]["resource"] for arn in resources
            for match in get_resource_type_matches_from_arn(arn)}
        keys = [key for block in statement.get("Condition", {}).values() for key in block
                if key not in EVERYWHERE]
        for action in statement["Action"]:
            rows = [row for row in get_privilege_info(*action.split(":"))["resource_types"]
                    if types is None or row["resource_type"].rstrip("*") in {"", *types}]
            found += [f"{action} {key}" for key in keys
                      if not any(is_condition_key_match(listed, key)
                                 for row in rows for listed in row["condition_keys"])]
    return found


def test_the_committed_scp_is_what_the_code_gives(tmp_path):
    assert not guardrails.stale(), "stale guardrails SCP: run `python -m deploy.guardrails`"
    edited = tmp_path / "scp.json"
    edited.write_text(guardrails.render().replace("QuarantineExempt", "QuarantineExemp"))
    assert guardrails.stale(str(edited))


def test_the_scp_fits_organizations_limit_as_the_file_is_given():
    with open(guardrails.FILE) as handle:
        assert len(handle.read()) <= guardrails.SIZE_LIMIT
    with pytest.raises(ValueError):
        guardrails.render(tuple(f"arn:aws:iam::*:role/deployer-{n}" for n in range(20)))


def test_every_action_exists_and_every_condition_key_is_valid_for_it():
    document = guardrails.policy()
    assert not policy_lint.lint({"guardrails-scp": document})
    assert not unlisted_condition_keys(document)
    assert all("*" not in action for s in document["Statement"] for action in s["Action"])
    assert all(s["Effect"] == "Deny" and "NotAction" not in s for s in document["Statement"])


def test_an_unknown_action_or_a_key_its_action_lacks_is_found():
    document = copy.deepcopy(guardrails.policy())
    _statement(document, "ProductTagKeys")["Action"].append("ec2:CreateTag")
    assert [f for f in policy_lint.lint({"g": document}) if f.finding == "UNKNOWN_ACTION"]
    document = copy.deepcopy(guardrails.policy())
    _statement(document, "ProductGroups")["Condition"]["Null"] = {"aws:TagKeys": "false"}
    assert "ec2:DeleteSecurityGroup aws:TagKeys" in unlisted_condition_keys(document)


def _code_tag_keys() -> set[str]:
    """Every tag key the code names, by the convention `TAG_*` / `*_TAG` (AWS's own `aws:` keys
    aside, which nobody can write), and the tag keys settings declare, under every stage."""
    found = set()
    for module in pkgutil.walk_packages(chalicelib.__path__, "chalicelib."):
        for name, value in vars(importlib.import_module(module.name)).items():
            if (re.fullmatch(r"TAG_[A-Z_]+|[A-Z_]+_TAG", name) and isinstance(value, str)
                    and not value.startswith("aws:")):
                found.add(value)
    tag_settings = [f.name for f in fields(settings.Settings)
                    if f.metadata["parse"] is settings.tag_key]
    found.update(getattr(permissions.stage_settings(stage), name)
                 for stage in permissions.STAGES for name in tag_settings)
    return found


def test_the_scp_names_every_tag_key_and_group_role_of_the_code():
    document = guardrails.policy()
    keys = _code_tag_keys()
    assert {"QuarantineExempt", isolation.ROLE_TAG} <= keys  # the scan sees what it must
    condition = _statement(document, "ProductTagKeys")["Condition"]
    assert keys <= set(condition["ForAnyValue:StringEquals"]["aws:TagKeys"])
    keyless = {key for s in document["Statement"] if s["Sid"].startswith("KeylessDeleteTags")
               for key in s["Condition"]["Null"] if key.startswith("aws:ResourceTag/")}
    assert {f"aws:ResourceTag/{key}" for key in keys} <= keyless
    groups = _statement(document, "ProductGroups")["Condition"]["StringEquals"]
    assert set(groups[f"aws:ResourceTag/{isolation.ROLE_TAG}"]) == set(isolation.GROUP_NAMES)


def _deployed_roles() -> set[str]:
    """Every role the product deploys, in any stage and under every option: the functions'
    (Chalice), the resources stack's (by their RoleName, or the name CloudFormation generates
    from the stack's), the member roles, the member accounts' tamper forwarding role (one per
    region) and the deny-all role."""
    roles = set()
    for stage in permissions.STAGES:
        for current in permissions.profiles(stage).values():
            roles.update(names.function_role(stage, f) for f in permissions.needs(current))
            roles.update(r.name for r in permissions.member_roles(stage, current))
            roles.add(permissions.tamper_forwarding_role(stage, current) + "us-east-1")
            roles.add(current.deny_all_profile_arn.rsplit("/", 1)[-1])
        roles.update(resource["Properties"].get(
            "RoleName", f"{resources.stack_name(stage)}-{logical}-1A2B3C4D5E6F")
            for logical, resource in resources.template(stage)["Resources"].items()
            if resource["Type"] == "AWS::IAM::Role")
    return {f"arn:aws:iam::{ACCOUNT}:role/{role}" for role in roles}


def _arn_like(arn: str, patterns) -> bool:
    return any(fnmatch.fnmatchcase(arn, pattern) for pattern in patterns)


def test_every_role_the_product_deploys_is_exempt_and_protected_and_no_other():
    document = guardrails.policy()
    protected = _statement(document, "ProductRoles")["Resource"]
    for statement in document["Statement"]:
        exempt = statement["Condition"]["ArnNotLike"]["aws:PrincipalArn"]
        assert all(_arn_like(role, exempt) for role in _deployed_roles()), statement["Sid"]
        assert not _arn_like(f"arn:aws:iam::{ACCOUNT}:role/app-server", exempt)
    assert all(_arn_like(role, protected) for role in _deployed_roles())


def _denied(action: str, data: dict, resource: str, tags: dict | None = None) -> list[str]:
    """The SCP's statements for `action` whose conditions the embedded AWS finds met by this
    request (the principal aside: the attacker's role is never the product's)."""
    context = embedded_iam.request_context(action, data, ACCOUNT, resource, tags)
    return [s["Sid"] for s in guardrails.policy()["Statement"] if action in s["Action"]
            and _arn_like(resource, policy_lint._listed(s["Resource"]))
            and embedded_iam.conditions_met(
                {op: keys for op, keys in s["Condition"].items() if op != "ArnNotLike"},
                context)]


def test_the_hosts_own_moves_meet_a_deny_and_its_ordinary_tags_do_not():
    instance = f"arn:aws:ec2:us-east-1:{ACCOUNT}:instance/i-0123456789abcdef0"
    exempt = {"Action": "CreateTags", "ResourceId.1": "i-0123456789abcdef0",
              "Tag.1.Key": "QuarantineExempt", "Tag.1.Value": "true"}
    assert _denied("ec2:CreateTags", exempt, instance) == ["ProductTagKeys"]
    untag = {"Action": "DeleteTags", "ResourceId.1": "i-0123456789abcdef0",
             "Tag.1.Key": "QuarantineIncident"}
    assert _denied("ec2:DeleteTags", untag, instance) == ["ProductTagKeys"]
    every_tag = {"Action": "DeleteTags", "ResourceId.1": "i-0123456789abcdef0"}
    assert "ProductTagKeys" not in _denied("ec2:DeleteTags", every_tag, instance)
    assert [s for s in _denied("ec2:DeleteTags", every_tag, instance)
            if s.startswith("KeylessDeleteTags")]
    ordinary = {"Action": "CreateTags", "ResourceId.1": "i-0123456789abcdef0",
                "Tag.1.Key": "Name", "Tag.1.Value": "web"}
    assert _denied("ec2:CreateTags", ordinary, instance) == []
    group = f"arn:aws:ec2:us-east-1:{ACCOUNT}:security-group/sg-0123456789abcdef0"
    open_up = {"Action": "AuthorizeSecurityGroupEgress", "GroupId": "sg-0123456789abcdef0"}
    assert _denied("ec2:AuthorizeSecurityGroupEgress", open_up, group,
                   {isolation.ROLE_TAG: "isolation"}) == ["ProductGroups"]
    assert _denied("ec2:AuthorizeSecurityGroupEgress", open_up, group, {"team": "web"}) == []
