"""The response rules' language: what it accepts and refuses, what it decides (first match, a
TARGET only when named, tags that can only make the response stronger), who may decide on an
approval, and the checks at load and at `make deploy`."""

import json
import os

import pytest
from hypothesis import given, settings as hypothesis_settings, strategies as st

from chalicelib import approvals, rules, settings
from chalicelib.findings import Finding, QuarantineRequest
from deploy import commands
from deploy.session import DeployError

APPROVER = "arn:aws:iam::123456789012:role/responders/approver"
EXAMPLE = [
    {"name": "sandbox", "mode": "contain", "tags": {"env": ["sandbox", "dev"]}},
    {"name": "probes", "mode": "notify", "resource_roles": ["TARGET"]},
    {"name": "prod", "mode": "approve", "accounts": ["111111111111"], "on_timeout": "close",
     "severity_at_least": 5},
    {"name": "high", "mode": "contain", "severity_at_least": 7,
     "type_prefixes": ["Backdoor:", "CryptoCurrency:"]},
    {"name": "pilot", "mode": "notify", "severity_at_least": 4, "severity_below": 7},
]


def _load(rules_json, **more):
    return settings.load({"RESPONSE_RULES": json.dumps(rules_json), "APPROVER_ARNS": APPROVER,
                          **more})


def _request(severity=8.0, kind="Backdoor:EC2/C&CActivity.B", account="222222222222",
             region="us-east-1", role="ACTOR", resource_type="Instance"):
    return QuarantineRequest("i-0123456789abcdef0", account, region, "guardduty", finding=Finding(
        "f" * 32, kind, severity, resource_type=resource_type, resource_role=role))


def test_the_first_rule_that_matches_decides():
    found = _load(EXAMPLE).response_rules
    assert rules.decide(found, _request(account="111111111111"), {}).mode == "approve"
    assert rules.decide(found, _request(), {}).rule == "high"
    assert rules.decide(found, _request(6.0, "Recon:EC2/Portscan"), {}).rule == "pilot"
    assert rules.decide(found, _request(severity=5.0), {}).mode == "notify"
    nothing = rules.decide(found, _request(severity=2.0), {})
    assert nothing.mode == "ignore" and nothing.rule == "" and "no response rule" in \
        nothing.reason


def test_a_target_is_matched_only_by_a_rule_that_names_it():
    found = _load(EXAMPLE).response_rules
    assert rules.decide(found, _request(role="TARGET"), {}).rule == "probes"
    # A credential exfiltration is about the access key: the instance was taken (ACTOR).
    taken = _request(role="TARGET", resource_type="AccessKey")
    assert rules.decide(found, taken, {}).rule == "high"


def test_tags_are_read_only_when_a_rule_needs_them_and_can_only_strengthen():
    found = _load(EXAMPLE).response_rules
    pending = rules.decide(found, _request(severity=5.0))
    assert pending.needs_tags and pending.rule == "sandbox"
    assert rules.decide(found, _request(severity=5.0), {"env": "dev"}).mode == "contain"
    assert rules.decide(found, _request(severity=5.0), {"env": "prod"}).mode == "notify"
    milder = _load([{"name": "quiet", "mode": "ignore", "tags": {"team": "load-test"}},
                    *EXAMPLE[1:]]).response_rules
    decided = rules.decide(milder, _request(), {"team": "load-test"})
    assert (decided.mode, decided.rule) == ("contain", "high")
    assert "tags can only make the response stronger" in decided.reason


@hypothesis_settings(max_examples=200, deadline=None)
@given(tags=st.dictionaries(st.sampled_from(["env", "team", "Name"]),
                            st.sampled_from(["sandbox", "dev", "load-test", "prod", ""])),
       severity=st.floats(0, 10), target=st.booleans())
def test_no_tag_the_host_writes_weakens_the_response(tags, severity, target):
    """Whatever tags the instance carries, the response is at least what the tagless rules
    alone say (the host may write its own tags)."""
    found = _load([{"name": "quiet", "mode": "ignore", "tags": {"team": "load-test"}},
                   *EXAMPLE]).response_rules
    request = _request(severity=severity, role="TARGET" if target else "ACTOR")
    tagless = rules.decide(tuple(r for r in found if not r.tags), request, {})
    decided = rules.decide(found, request, tags)
    assert rules.MODES.index(decided.mode) >= rules.MODES.index(tagless.mode)


@pytest.mark.parametrize("given_rules, message", [
    ("not json", "is not JSON"),
    ("{}", "must be a non-empty JSON list"),
    (json.dumps([{"mode": "quarantine"}]), "mode must be one of"),
    (json.dumps([{"mode": "approve"}]), "needs on_timeout"),
    (json.dumps([{"mode": "contain", "on_timeout": "close"}]), "for approve rules only"),
    (json.dumps([{"mode": "contain", "severity": 7}]), "unknown fields ['severity']"),
    (json.dumps([{"mode": "contain", "severity_at_least": 8, "severity_below": 7}]),
     "would match nothing"),
    (json.dumps([{"mode": "contain", "severity_at_least": "7"}]), "must be a number"),
    (json.dumps([{"mode": "contain", "severity_at_least": True}]), "must be a number"),
    (json.dumps([{"mode": "contain", "accounts": ["1234"]}]), "12-digit account ids"),
    (json.dumps([{"mode": "contain", "regions": ["moon-1"]}]), "region names"),
    (json.dumps([{"mode": "contain", "resource_roles": ["VICTIM"]}]), "resource_roles"),
    (json.dumps([{"mode": "contain", "tags": {"env": []}}]), "must name a value"),
    (json.dumps([{"mode": "contain", "type_prefixes": "Backdoor:"}]), "must be a list"),
    (json.dumps([{"name": "a", "mode": "contain"}, {"name": "a", "mode": "notify"}]),
     "more than once"),
    (json.dumps([{"mode": "contain"}] * 51), "more than 50"),
    ('[{"mode": "contain", "severity_at_least": NaN}]', "is not JSON"),
])
def test_bad_rules_are_refused_at_load_naming_what_is_wrong(given_rules, message):
    with pytest.raises(settings.SettingsError) as refused:
        settings.load({"RESPONSE_RULES": given_rules, "APPROVER_ARNS": APPROVER})
    assert "RESPONSE_RULES" in str(refused.value) and message in str(refused.value)


def test_an_approve_rule_needs_someone_who_may_approve():
    with pytest.raises(settings.SettingsError, match="APPROVER_ARNS names nobody"):
        settings.load({"RESPONSE_RULES": json.dumps(EXAMPLE)})
    with pytest.raises(settings.SettingsError, match="not an IAM user or role ARN"):
        _load(EXAMPLE, APPROVER_ARNS="arn:aws:iam::123456789012:group/admins")


def test_rules_larger_than_lambdas_environment_are_refused():
    huge = [{"name": f"rule-{n}", "mode": "notify", "type_prefixes": ["x" * 120] * 3}
            for n in range(12)]
    with pytest.raises(settings.SettingsError, match="Lambda's environment holds 4096 bytes"):
        _load(huge)


def test_without_rules_the_threshold_decides_as_before():
    assert settings.load({}).response_rules == ()


@pytest.mark.parametrize("caller, allowed", [
    (APPROVER, True),
    ("arn:aws:sts::123456789012:assumed-role/approver/alice", True),  # a session of the role
    ("arn:aws:sts::123456789012:assumed-role/approver-not/alice", False),
    ("arn:aws:sts::999999999999:assumed-role/approver/alice", False),  # another account
    ("arn:aws:iam::123456789012:user/approver", False),
    ("", False),
    ("arn:aws:sts::123456789012:assumed-role/approver", False),  # no session: not a caller
])
def test_who_may_decide(caller, allowed):
    assert approvals.may_decide(caller, (APPROVER,)) is allowed


def _project(tmp_path, environment: dict) -> str:
    os.makedirs(tmp_path / ".chalice")
    (tmp_path / ".chalice" / "config.json").write_text(json.dumps({
        "environment_variables": {}, "stages": {"dev": {"environment_variables": environment}}}))
    return str(tmp_path)


def test_make_deploy_refuses_rules_it_cannot_act_on(tmp_path):
    with pytest.raises(DeployError, match="stage dev's settings: RESPONSE_RULES .*Nothing was "
                                          "deployed"):
        commands.check_settings(_project(tmp_path, {"RESPONSE_RULES": "[{}]"}), "dev")


def test_make_deploy_refuses_an_environment_over_lambdas_limit(tmp_path):
    rules_json = json.dumps([{"name": "r", "mode": "notify", "type_prefixes": ["x" * 100] * 30}])
    environment = {"RESPONSE_RULES": rules_json, "MEMBER_EXTERNAL_ID": "y" * 1500}
    with pytest.raises(DeployError, match="over Lambda's 4096: shorten RESPONSE_RULES"):
        commands.check_settings(_project(tmp_path, environment), "dev")
    commands.check_settings(_project(tmp_path / "fits", {"RESPONSE_RULES": rules_json}), "dev")


def test_an_ignore_rule_on_tags_waits_for_the_tags_and_a_tag_cannot_soften_the_timeout():
    from chalicelib import findings

    found = _load([{"name": "quiet", "mode": "ignore", "tags": {"team": "load-test"}},
                   *EXAMPLE[2:]]).response_rules
    pending = rules.decide(found, _request())
    assert pending.needs_tags and findings.qualifies(_request().finding, None, pending) is None
    softer = _load([{"name": "dev", "mode": "approve", "on_timeout": "close",
                     "tags": {"env": "dev"}},
                    {"name": "all", "mode": "approve", "on_timeout": "contain"}]).response_rules
    decided = rules.decide(softer, _request(), {"env": "dev"})
    assert (decided.rule, decided.on_timeout) == ("all", "contain")
