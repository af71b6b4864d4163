"""Policy files: one per function and stage, exactly what the code declares, and wired in."""

import json
import os

import app
from chalicelib import exemptions, settings
from deploy import grants, member_role, names, permissions
from local.stack import PROJECT_DIR

CHALICE_DIR = os.path.join(PROJECT_DIR, ".chalice")


def test_committed_policy_files_are_what_the_code_declares():
    assert not permissions.stale(CHALICE_DIR), "stale policy files: run `make policies`"


def test_every_function_has_its_policy_file_in_every_stage():
    with open(os.path.join(CHALICE_DIR, "config.json")) as handle:
        config = json.load(handle)
    functions = {name for name in app.app.handler_map
                 if name not in {v.view_name for r in app.app.routes.values() for v in r.values()}}
    assert set(permissions.needs()) == functions | {"api_handler"}
    for stage in permissions.STAGES:
        assert config["stages"][stage]["autogen_policy"] is False
        declared = config["stages"][stage]["lambda_functions"]
        assert {f: d["iam_policy_file"] for f, d in declared.items()} == {
            f: permissions.policy_file(stage, f) for f in permissions.needs()}


def test_no_wildcard_actions():
    for stage in permissions.STAGES:
        for function in permissions.needs():
            for statement in permissions.policy(stage, function)["Statement"]:
                assert all("*" not in action for action in statement["Action"])


def test_contain_may_isolate_but_not_terminate():
    actions = {a for s in permissions.policy("prod", "contain")["Statement"] for a in s["Action"]}
    assert "ec2:ModifyNetworkInterfaceAttribute" in actions
    assert not any("Terminate" in a or "Delete" in a for a in actions)


# Every option that brings actions, switched on, and what it alone may do (IAM's names).
FEATURES = {
    # Nothing of its own: a credential exfiltration revokes whatever it says (see below).
    "REVOKE_ROLE_SESSIONS": ("true", {}),
    "MEMORY_CAPTURE_DOCUMENT": ("AWSSupport-ExampleMemoryCapture",
                                {"capture_memory": {"ssm:SendCommand", "dynamodb:UpdateItem"}}),
    "FORENSIC_ACCOUNT_ID": ("210987654321", {"check_snapshots": {
        "ec2:ModifySnapshotAttribute"}}),
    "STOP_AFTER_EVIDENCE": ("true", {"check_snapshots": {"ec2:StopInstances"}}),
    "MALWARE_SCAN": ("true", {"check_snapshots": {"guardduty:StartMalwareScan",
                                                  "guardduty:ListMalwareScans",
                                                  "iam:CreateServiceLinkedRole"}}),
    "DISASSOCIATE_ELASTIC_IP": ("true", {"contain": {"ec2:DisassociateAddress"}}),
    "CREDENTIALS_MODE": ("deny-all", {"contain": {"iam:PassRole",
                                                  "ec2:ReplaceIamInstanceProfileAssociation"}}),
    "DISABLE_API_STOP": ("true", {"contain": {"ec2:Attribute/DisableApiStop"}}),
    "MEMBER_ACCOUNTS": ("111111111111", {"contain": {"sts:AssumeRole"},
                                         "api_handler": {"sts:AssumeRole"}}),
    # A rule that asks for approval: the wait's step, and the entry functions wake it.
    "RESPONSE_RULES": (permissions.EVERY_OPTION["RESPONSE_RULES"], {
        "approval": {"dynamodb:GetItem", "dynamodb:UpdateItem", "kms:VerifyMac",
                     "kms:GenerateMac"},
        "api_handler": {"states:SendTaskSuccess"},
        "on_guardduty_finding": {"states:SendTaskSuccess", "dynamodb:GetItem"}}),
    "SECURITY_HUB": ("true", {
        "sync_findings": {"securityhub:BatchUpdateFindings", "dynamodb:GetItem", "sns:Publish"},
        "on_security_hub_action": {"ec2:ModifyNetworkInterfaceAttribute",
                                   "states:StartExecution"}}),
}
COMPANIONS = {"RESPONSE_RULES": {"APPROVER_ARNS": permissions.EVERY_OPTION["APPROVER_ARNS"]}}


def _granted(current) -> dict[str, set[str]]:
    """Per function, the actions its policy allows and the attribute keys it is conditioned
    on (`ec2:Attribute/...`)."""
    found = {}
    for function in permissions.needs(current):
        statements = permissions.policy("prod", function, current)["Statement"]
        found[function] = {a for s in statements if s["Effect"] == "Allow" for a in s["Action"]}
        found[function] |= {key for s in statements if s["Effect"] == "Allow"
                            for key, value in s.get("Condition", {}).get("Null", {}).items()
                            if key.startswith("ec2:Attribute/") and value == "false"}
        found[function] |= {key for s in statements if s["Effect"] == "Allow"  # to one value
                            for key in s.get("Condition", {}).get("StringEquals", {})
                            if key.startswith("ec2:Attribute/")}
    return found


def test_an_option_that_is_off_grants_nothing_and_on_grants_its_actions():
    assert set(permissions.EVERY_OPTION) == set(FEATURES) - {"DISABLE_API_STOP"} | {
        name for companions in COMPANIONS.values() for name in companions}
    defaults = _granted(permissions.stage_settings("prod", {**settings.DEFAULTS}))
    for name, (value, brings) in FEATURES.items():
        switched = _granted(permissions.stage_settings("prod", {
            **settings.DEFAULTS, name: value, **COMPANIONS.get(name, {})}))
        for function, actions in brings.items():
            assert actions <= switched[function], (name, function)
            assert not actions & defaults[function], (name, function)
    assert defaults["capture_memory"] == set(permissions.LOG_ACTIONS)


def test_revocation_is_granted_by_default_for_a_credential_exfiltration():
    """Any incident may be one (the automatic path's, or a finding a responder pasted), and it
    revokes with REVOKE_ROLE_SESSIONS off: the revoker may write the Deny, contain may ask it."""
    defaults = _granted(permissions.stage_settings("prod", {**settings.DEFAULTS}))
    assert "iam:PutRolePolicy" in defaults["revoke_sessions"]
    assert {"lambda:InvokeFunction", "iam:ListInstanceProfilesForRole"} <= defaults["contain"]


def test_release_may_undo_every_option_whatever_the_settings_are_now():
    """An option switched off with incidents open must not strand them."""
    members = {**settings.DEFAULTS, "MEMBER_ACCOUNTS": permissions.EVERY_OPTION[
        "MEMBER_ACCOUNTS"],  # who may be assumed is not an option
               "SECURITY_HUB": "true"}  # nor whether Security Hub hears of the release
    undo = permissions.policy("prod", "release", permissions.stage_settings("prod", members))
    assert undo == permissions.policy("prod", "release", permissions.profiles("prod")[
        "every-option"])
    assert {"ec2:StartInstances", "ec2:AssociateAddress"} <= {
        a for s in undo["Statement"] for a in s["Action"]}


def test_each_policy_grants_exactly_what_its_functions_code_declares():
    """With every option on: the IAM actions of each function's declarations, nothing more."""
    everything = permissions.profiles("prod")["every-option"]
    for function, wanted in permissions.needs(everything).items():
        granted = {a for s in permissions.policy("prod", function, everything)["Statement"]
                   if s["Effect"] == "Allow" for a in s["Action"]}
        assert granted == {grants.iam_action(a) for a in wanted} | set(permissions.LOG_ACTIONS)


def test_the_stages_policies_follow_their_settings():
    for stage in permissions.STAGES:
        current = permissions.stage_settings(stage)
        for function in permissions.needs(current):
            with open(os.path.join(CHALICE_DIR, permissions.policy_file(stage, function))) as f:
                assert json.load(f) == permissions.policy(stage, function, current)


def test_only_the_revoking_function_may_write_role_policies_and_only_it_may_be_invoked():
    """IAM has no condition on a policy's content: whoever may write one may write anything.
    Only revoke_sessions may; the steps that revoke may invoke it, the entry functions (a
    credential exfiltration landing on an incident another finding opened) and the tamper
    watch (a deleted revocation policy written again), no other; those that settle, release or
    record tampering may invoke the page publisher, and the sweep (to close what was left
    undecided, when a rule asks for approval) the approval function, no other function."""
    writes = {"iam:PutRolePolicy", "iam:DeleteRolePolicy", "iam:AttachRolePolicy",
              "iam:CreatePolicyVersion", "iam:UpdateAssumeRolePolicy"}
    for stage in permissions.STAGES:
        for current in permissions.profiles(stage).values():
            for function in permissions.needs(current):
                allowed = [s for s in permissions.policy(stage, function, current)["Statement"]
                           if s["Effect"] == "Allow"]
                granted = {a for s in allowed for a in s["Action"]}
                assert bool(granted & writes) == (function == "revoke_sessions"), function
                invokes = [s for s in allowed if "lambda:InvokeFunction" in s["Action"]]
                revoking = function in ("release", "contain", "api_handler",
                                        "on_guardduty_finding", "on_tampering", "sweep")
                publishing = function in ("report", "release", "on_tampering", "sweep")
                closing = function == "sweep" and bool(current.response_rules)
                following = current.security_hub and function in (
                    "api_handler", "on_guardduty_finding", "on_security_hub_action", "report",
                    "approval", "release", "sweep")
                assert [s["Resource"] for s in invokes] == [[
                    f"arn:aws:lambda:*:*:function:{names.function(stage, f)}"]
                    for f, asks in (("revoke_sessions", revoking), ("publish_page", publishing),
                                    ("approval", closing), ("sync_findings", following))
                    if asks], (stage, function)
            revoker = permissions.policy(stage, "revoke_sessions", current)["Statement"]
            assert {"Sid": "NeverOnTheProductsRoles", "Effect": "Deny",
                    "Action": sorted({"iam:DeleteRolePolicy", "iam:PutRolePolicy"} & {
                        a for s in revoker for a in s["Action"]}),
                    "Resource": list(grants.product_roles(current))} in revoker
            assert f"arn:aws:iam::*:role/{names.APP_NAME}-*" in grants.product_roles(current)


def test_member_role_templates_are_what_the_code_declares():
    for stage in permissions.STAGES:
        with open(os.path.join(PROJECT_DIR, "deploy", member_role.file(stage))) as handle:
            assert handle.read() == permissions.member_role_template(stage), "run `make policies`"
        # CREDENTIALS_MODE=deny-all finds the deny-all profile by name in the instance's account
        text = permissions.member_role_template(stage)
        assert "Type: AWS::IAM::InstanceProfile" in text
        assert f"InstanceProfileName: {names.deny_all_profile(stage)}" in text
    current = permissions.profiles("prod")["every-option"]
    actions = {grants.iam_action(a) for a in permissions.member_role_actions("contain", current)}
    assert "ec2:ModifyNetworkInterfaceAttribute" in actions and "sts:AssumeRole" not in actions
    # with memory captured first the entry functions make no cut: they only describe (and the
    # API's mirrors the exemptions it issues, on that one tag key)
    assert permissions.member_role_actions("api_handler", current) == [
        exemptions.MIRROR_TAGGING, exemptions.MIRROR_UNTAGGING,
        "ec2:DescribeInstanceAttribute", "ec2:DescribeInstances"]
    cutting = {grants.iam_action(a) for a in permissions.member_role_actions(
        "on_guardduty_finding", permissions.profiles("prod")["settings"])}
    assert {"ec2:ModifyNetworkInterfaceAttribute", "ec2:CreateSecurityGroup",
            "ec2:ModifyInstanceAttribute"} <= cutting
    assert not {"ec2:DisassociateIamInstanceProfile", "iam:PassRole"} & cutting


def _forwarded_pattern(rule: str) -> dict:
    """The event pattern of the cross-region forwarder's rule `rule`."""
    import yaml

    class Template(yaml.SafeLoader):
        """CloudFormation's short forms (!Sub, !GetAtt) read as nothing: only the pattern counts."""

    Template.add_multi_constructor("!", lambda loader, suffix, node: None)
    with open(os.path.join(PROJECT_DIR, "deploy", "cross-region-forwarder.yaml")) as handle:
        template = yaml.load(handle, Template)  # noqa: S506 (a SafeLoader)
    return template["Resources"][rule]["Properties"]["EventPattern"]


def test_cross_region_forwarder_carries_the_apps_pattern():
    import app
    from chalicelib import findings

    forwarded = _forwarded_pattern("ForwardFindings")
    assert forwarded == findings.EVENT_PATTERN
    assert findings.EVENT_PATTERN["detail"] == {"$or": [
        {"resource": {"resourceType": ["Instance", "AttackSequence"]}},
        {"resource": {"resourceType": ["AccessKey"]},
         "type": [{"prefix": "UnauthorizedAccess:IAMUser/InstanceCredentialExfiltration"}]}]}
    assert any(getattr(s, "event_pattern", None) == findings.EVENT_PATTERN
               for s in app.app.event_sources)


def test_cross_region_forwarder_carries_the_tamper_pattern():
    """The static template's copy of the calls is the app's (edit both, or this fails)."""
    from chalicelib import tamper

    assert _forwarded_pattern("ForwardTampering") == tamper.EVENT_PATTERN
    assert {"aws.ec2", "aws.iam"} == set(tamper.EVENT_PATTERN["source"])  # IAM's in us-east-1
    assert any(getattr(s, "event_pattern", None) == tamper.EVENT_PATTERN
               for s in app.app.event_sources)
