"""Policy files: one per function and stage, exactly what the code declares, and wired in."""

import json
import os

import app
from deploy import names
from deploy import member_role, permissions
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


def test_each_policy_file_grants_exactly_what_the_functions_code_declares():
    """Derived here, independently: each function's actions and modules, nothing more."""
    from chalicelib import accounts, http, incidents, revocation, workflow
    from chalicelib.steps import contain, evidence, memory, release, report

    def of(classes, undo=False):
        return {p for cls in classes for p in (cls.undo_permissions if undo else cls.permissions)}

    declared = {
        "api_handler": set(workflow.PERMISSIONS) | set(incidents.READ_PERMISSIONS)
        | set(http.PERMISSIONS),
        "on_guardduty_finding": set(workflow.PERMISSIONS),
        "capture_memory": of(memory.ACTION_CLASSES) | set(memory.PERMISSIONS)
        | set(accounts.PERMISSIONS),
        "contain": of(contain.ACTION_CLASSES) | set(contain.PERMISSIONS)
        | set(accounts.PERMISSIONS),
        "collect_evidence": of(evidence.COLLECT_ACTION_CLASSES)
        | set(evidence.COLLECT_PERMISSIONS) | set(accounts.PERMISSIONS),
        "check_snapshots": of(evidence.CHECK_ACTION_CLASSES) | set(evidence.CHECK_PERMISSIONS)
        | set(accounts.PERMISSIONS),
        "release": of(release.ACTION_CLASSES, undo=True) | set(release.PERMISSIONS),
        "report": set(report.PERMISSIONS),
        "revoke_sessions": set(revocation.PERMISSIONS),
    }
    assert set(declared) == set(permissions.needs())
    for stage in permissions.STAGES:
        for function, wanted in declared.items():
            with open(os.path.join(CHALICE_DIR, permissions.policy_file(stage, function))) as f:
                granted = {a for s in json.load(f)["Statement"] for a in s["Action"]}
            assert granted == wanted | set(permissions.LOG_ACTIONS), (stage, function)


def test_only_the_revoking_function_may_write_role_policies_and_only_it_may_be_invoked():
    """IAM has no condition on a policy's content: whoever may write one may write anything.
    Only revoke_sessions may; the steps that revoke may invoke it, and no other function."""
    writes = {"iam:PutRolePolicy", "iam:DeleteRolePolicy", "iam:AttachRolePolicy",
              "iam:CreatePolicyVersion", "iam:UpdateAssumeRolePolicy"}
    for stage in permissions.STAGES:
        for function in permissions.needs():
            allowed = [s for s in permissions.policy(stage, function)["Statement"]
                       if s["Effect"] == "Allow"]
            granted = {a for s in allowed for a in s["Action"]}
            assert bool(granted & writes) == (function == "revoke_sessions"), (stage, function)
            invokes = [s for s in allowed if "lambda:InvokeFunction" in s["Action"]]
            assert [s["Resource"] for s in invokes] == ([[
                f"arn:aws:lambda:*:*:function:{names.function(stage, 'revoke_sessions')}"]]
                if function in ("contain", "release") else []), (stage, function)
        revoker = permissions.policy(stage, "revoke_sessions")["Statement"]
        assert {"Sid": "NeverOnTheProductsRoles", "Effect": "Deny",
                "Action": ["iam:DeleteRolePolicy", "iam:PutRolePolicy"],
                "Resource": [f"arn:aws:iam::*:role/{names.APP_NAME}-*"]} in revoker


def test_member_role_template_is_what_the_code_declares():
    with open(os.path.join(PROJECT_DIR, "deploy", member_role.FILE)) as handle:
        assert handle.read() == permissions.member_role_template(), "run `make policies`"
    actions = permissions.member_role_actions()
    assert "ec2:ModifyNetworkInterfaceAttribute" in actions and "sts:AssumeRole" not in actions
    # CREDENTIALS_MODE=deny-all finds the deny-all profile by name in the instance's own account
    text = permissions.member_role_template()
    assert "Type: AWS::IAM::InstanceProfile" in text
    assert f"Default: {names.deny_all_profile('prod')}" in text


def test_cross_region_forwarder_carries_the_apps_pattern():
    import app
    from chalicelib import findings

    with open(os.path.join(PROJECT_DIR, "deploy", "cross-region-forwarder.yaml")) as handle:
        text = handle.read()
    assert findings.EVENT_PATTERN["detail"] == {"resource": {"resourceType": ["Instance"]}}
    for value in ("aws.guardduty", "GuardDuty Finding", "Instance"):
        assert value in text
    assert any(getattr(s, "event_pattern", None) == findings.EVENT_PATTERN
               for s in app.app.event_sources)
