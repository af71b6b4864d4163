"""The IAM linters (deploy/policy_lint.py) on every generated policy: parliament with its
community auditors and cloudsplaining flagging ARN-scoped statements find nothing that
deploy/policy-lint-suppressions.json does not accept with a reason, and that file accepts nothing
that is not found. The attack: a forbidden grant added to the contain policy is reported,
unsuppressed, by each linter on its own, so a linter that silently stops finding fails here."""

import json

import pytest

from deploy import names, permissions, policy_lint, statemachine

FORBIDDEN = {"Sid": "Forbidden", "Effect": "Allow", "Resource": "*",
             "Action": ["iam:PutRolePolicy", "iam:PassRole", "iam:CreateAccessKey", "s3:*"]}


@pytest.fixture(scope="module")
def suppressions():
    return policy_lint.load_suppressions()


@pytest.fixture(scope="module")
def verdict(suppressions):
    return policy_lint.judge(policy_lint.lint(), suppressions)


def test_every_generated_policy_has_no_finding_but_the_accepted_ones(verdict):
    assert not verdict.unsuppressed, "\n".join(map(str, verdict.unsuppressed))


def test_every_suppression_matches_a_finding_and_says_why(verdict, suppressions):
    assert not verdict.stale, "\n".join(verdict.stale)
    assert all(s.reason.strip() for s in suppressions)
    assert {s for _, s in verdict.suppressed} == set(suppressions)


@pytest.mark.parametrize("stage", permissions.STAGES)
def test_the_state_machine_policy_is_linted_with_its_arns_resolved(stage):
    region = policy_lint.PSEUDO_PARAMETERS["AWS::Region"]
    account = policy_lint.PSEUDO_PARAMETERS["AWS::AccountId"]
    assert policy_lint.state_machine_policy(stage) == statemachine.role_policy(
        statemachine.step_function_arns(region, account, stage),
        names.topic_arn(region, account, stage),
        names.incidents_table_arn(region, account, stage))


@pytest.fixture
def forbidden_contain():
    """The prod contain policy with the forbidden grant: by its real name, so the suppressions
    accepted for contain apply as they would."""
    document = permissions.policy("prod", "contain")
    document["Statement"].append(FORBIDDEN)
    return {"prod/contain": document}


@pytest.mark.parametrize("linter", policy_lint.LINTERS)
def test_a_forbidden_grant_fails_each_linter(linter, forbidden_contain, suppressions):
    def unsuppressed(documents):
        findings = [f for f in policy_lint.lint(documents) if f.linter == linter]
        return policy_lint.judge(findings, suppressions).unsuppressed

    assert not unsuppressed({"prod/contain": permissions.policy("prod", "contain")})
    reported = {a.lower() for f in unsuppressed(forbidden_contain) for a in f.actions}
    for action in FORBIDDEN["Action"]:
        service, name = action.lower().split(":")
        assert (action.lower() in reported if name != "*"
                else any(a.startswith(service + ":") for a in reported)), (linter, action)


def test_a_grant_widened_past_its_suppression_is_a_new_finding(suppressions):
    """Suppressions name resources: contain's accepted PutRolePolicy on role/* does not cover
    the same action on every resource, for either linter."""
    document = permissions.policy("prod", "contain")
    document["Statement"].append({"Effect": "Allow", "Action": ["iam:PutRolePolicy"],
                                  "Resource": "*"})
    verdict = policy_lint.judge(policy_lint.lint({"prod/contain": document}), suppressions)
    widened = {f.linter for f in verdict.unsuppressed if "iam:PutRolePolicy" in f.actions}
    assert widened == set(policy_lint.LINTERS)


def _finding(**fields):
    return policy_lint.Finding(**{"linter": "parliament", "policy": "prod/contain",
                                  "finding": "RESOURCE_STAR", "actions": ("ec2:StopInstances",),
                                  "resources": ("*",), **fields})


def _suppression(**fields):
    return policy_lint.Suppression(**{
        "linter": "parliament", "finding": "RESOURCE_STAR", "policies": ("*/contain",),
        "actions": ("ec2:StopInstances",), "resources": ("*",), "reason": "a test", **fields})


def test_a_suppression_that_matches_nothing_or_lists_too_much_is_stale():
    finding = _finding()
    assert policy_lint.judge([finding], [_suppression()]).clean
    assert policy_lint.judge([], [_suppression()]).stale
    extra_action = policy_lint.judge([finding], [_suppression(
        actions=("ec2:StopInstances", "ec2:StartInstances"))])
    assert [s for s in extra_action.stale if "ec2:StartInstances" in s]
    extra_pattern = policy_lint.judge([finding], [_suppression(policies=("*/contain", "*/gone"))])
    assert [s for s in extra_pattern.stale if "*/gone" in s]
    extra_resource = policy_lint.judge([finding], [_suppression(resources=("*", "arn:aws:x"))])
    assert [s for s in extra_resource.stale if "arn:aws:x" in s]
    duplicate = policy_lint.judge([finding], [_suppression(), _suppression(reason="again")])
    assert duplicate.stale and not duplicate.unsuppressed


def test_a_finding_naming_no_action_cannot_be_suppressed():
    verdict = policy_lint.judge([_finding(finding="MALFORMED", actions=())],
                                [_suppression(finding="MALFORMED")])
    assert verdict.unsuppressed and verdict.stale


@pytest.mark.parametrize("change", [{"reason": " "}, {"actions": []}, {"linter": "other"},
                                    {"resources": "*"}, {"extra": "field"}])
def test_an_incomplete_suppression_is_refused(tmp_path, change):
    entry = {"linter": "parliament", "finding": "RESOURCE_STAR", "policies": ["*/contain"],
             "actions": ["ec2:StopInstances"], "resources": ["*"], "reason": "a test", **change}
    path = tmp_path / "suppressions.json"
    path.write_text(json.dumps({"about": "a test", "suppressions": [entry]}))
    with pytest.raises(ValueError):
        policy_lint.load_suppressions(str(path))


def test_only_real_operations_parliament_does_not_know_are_kept_from_it():
    """Each action kept from parliament is an operation of its service in botocore's model, and
    parliament still does not know it (once it learns one, it reads it again); the rest of a
    policy holding one is linted all the same: its community auditors still find iam:PassRole."""
    import botocore.session
    from parliament import iam_definition

    session = botocore.session.get_session()
    for action in policy_lint.NEWER_THAN_PARLIAMENT:
        service, name = action.split(":")
        assert name in session.get_service_model(service).operation_names, action
        known = {p["privilege"] for s in iam_definition if s["prefix"] == service
                 for p in s["privileges"]}
        assert name not in known, f"parliament knows {action} now: lint it again"
    document = {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": list(policy_lint.NEWER_THAN_PARLIAMENT), "Resource": "*"},
        {"Effect": "Allow", "Action": ["iam:PassRole"], "Resource": "*"}]}
    found = {f.finding for f in policy_lint.parliament_findings("a/test", document)}
    assert "PERMISSIONS_MANAGEMENT_ACTIONS" in found and "UNKNOWN_ACTION" not in found
