"""Least privilege, read statically: every policy the app deploys (each function's, the state
machine role's, the member role's) grants no wildcard action, puts `"Resource": "*"` only on
actions IAM cannot scope, names the product's resources by stage, keeps the conditions on
instance mutations, and lets the state machine make exactly the calls its definition makes.
moto checks actions, not resources or conditions: what it cannot check is read here (whether AWS
evaluates each scope as intended is AWS's to say; the rehearsal cannot show it)."""

import json
import os

import pytest

from chalicelib.actions import instance
from deploy import grants, member_role, names, permissions, project, resources, statemachine

CHALICE_DIR = project.CHALICE_DIR


def _function_policies():
    """Each function's policy per stage, as committed and with every option on."""
    for stage in permissions.STAGES:
        for function in permissions.needs():
            with open(os.path.join(CHALICE_DIR, permissions.policy_file(stage, function))) as f:
                yield f"{stage}/{function}", json.load(f)
            yield f"{stage}/{function}/every-option", permissions.policy(
                stage, function, permissions.profiles(stage)["every-option"])


def _state_machine_policy(stage):
    role = resources.template(stage)["Resources"]["StateMachineRole"]["Properties"]
    return role["Policies"][0]["PolicyDocument"]


def _every_policy():
    yield from _function_policies()
    for stage in permissions.STAGES:
        yield f"{stage}/state-machine", _state_machine_policy(stage)
    for stage in permissions.STAGES:
        for profile, current in permissions.profiles(stage).items():
            for role in permissions.member_roles(stage, current):
                yield f"member-role/{stage}-{role.function}/{profile}", role.policy


def _listed(value):
    return value if isinstance(value, list) else [value]


@pytest.mark.parametrize("name,policy", list(_every_policy()), ids=lambda v: v
                         if isinstance(v, str) else "")
def test_no_wildcard_action_and_star_resources_only_where_iam_cannot_scope(name, policy):
    for statement in policy["Statement"]:
        actions = _listed(statement["Action"])
        assert not [a for a in actions if "*" in a], (name, actions)
        if statement["Effect"] == "Deny":  # a guard: it narrows, so any scope is fine
            continue
        assert statement["Effect"] == "Allow", name
        if "*" in _listed(statement["Resource"]):
            assert set(actions) <= set(grants.UNSCOPABLE), (
                name, sorted(set(actions) - set(grants.UNSCOPABLE)))


def test_every_unscopable_entry_says_why_and_is_used():
    used = {a for _, p in _every_policy() for s in p["Statement"] for a in _listed(s["Action"])}
    for action, reason in grants.UNSCOPABLE.items():
        assert reason.strip(), action
        assert action in used, f"{action} is listed as unscopable but no policy needs it"


def test_product_resources_are_named_by_the_stage():
    for name, policy in _function_policies():
        stage = name.split("/")[0]
        for statement in policy["Statement"]:
            for resource in _listed(statement["Resource"]):
                service = resource.split(":")[2] if resource != "*" else ""
                if service in ("dynamodb", "states", "sns", "logs"):
                    assert f"{names.APP_NAME}-{stage}" in resource, (name, resource)


def test_instance_mutations_are_conditioned_where_iam_supports_it():
    contain = permissions.policy("prod", "contain")["Statement"]
    conditioned = {a for s in contain if "Condition" in s for a in s["Action"]}
    assert {"ec2:AuthorizeSecurityGroupEgress", "ec2:RevokeSecurityGroupEgress",
            "ec2:CreateSecurityGroup", "ec2:CreateTags"} <= conditioned
    # rules only ever added to the all-open group, taken from the isolation group
    revoking = next(s for s in contain if "ec2:RevokeSecurityGroupEgress" in s["Action"])
    assert revoking["Condition"] == grants.PRODUCT_GROUP["isolation"]
    authorizing = next(s for s in contain if "ec2:AuthorizeSecurityGroupEgress" in s["Action"])
    assert authorizing["Condition"] == grants.PRODUCT_GROUP["open"]


@pytest.mark.parametrize("name,policy", list(_every_policy()), ids=lambda v: v
                         if isinstance(v, str) else "")
def test_role_policies_are_never_written_on_the_products_own_roles(name, policy):
    writes = {"iam:PutRolePolicy", "iam:DeleteRolePolicy"}
    granted = {a for s in policy["Statement"] if s["Effect"] == "Allow"
               for a in _listed(s["Action"])} & writes
    denied = {a for s in policy["Statement"] if s["Effect"] == "Deny"
              and f"arn:aws:iam::*:role/{names.APP_NAME}-*" in _listed(s["Resource"])
              for a in _listed(s["Action"])}
    assert granted <= denied, name


def test_an_action_without_a_declared_scope_stops_the_build():
    with pytest.raises(ValueError, match="ec2:TerminateInstances"):
        permissions.statements({"ec2:TerminateInstances"}, "dev")


def _tasks(states):
    for state in states.values():
        if state["Type"] == "Task":
            yield state
        for branch in state.get("Branches", []):
            yield from _tasks(branch["States"])


CHATBOT_TOPIC = "arn:aws:sns:eu-west-3:111122223333:team-chat"


@pytest.mark.parametrize("chatbot", ["", CHATBOT_TOPIC])
@pytest.mark.parametrize("stage", permissions.STAGES)
def test_the_state_machine_role_allows_every_integration_of_its_definition(stage, chatbot):
    """Exactly what the definition calls, the Chatbot topic only when there is one."""
    region, account = "eu-west-3", "111122223333"
    function_arns = statemachine.step_function_arns(region, account, stage)
    topic = statemachine.Topics(names.topic_arn(region, account, stage), chatbot)
    table = names.incidents_table(stage)
    definition = statemachine.build(function_arns, topic, table)
    policy = statemachine.role_policy(function_arns, topic,
                                      names.incidents_table_arn(region, account, stage))

    def allowed(action, resource):
        return any(action in _listed(s["Action"]) and resource in _listed(s["Resource"])
                   for s in policy["Statement"])

    calls = set()
    for task in _tasks(definition["States"]):
        if task["Resource"].startswith("arn:aws:lambda:"):
            calls.add(("lambda:InvokeFunction", task["Resource"]))
        elif task["Resource"] == "arn:aws:states:::lambda:invoke.waitForTaskToken":
            calls.add(("lambda:InvokeFunction", task["Parameters"]["FunctionName"]))
        elif task["Resource"] == "arn:aws:states:::sns:publish":
            calls.add(("sns:Publish", task["Parameters"]["TopicArn"]))
        elif task["Resource"] == "arn:aws:states:::dynamodb:updateItem":
            assert task["Parameters"]["TableName"] == table
            calls.add(("dynamodb:UpdateItem", names.incidents_table_arn(region, account, stage)))
        else:
            pytest.fail(f"an integration this test does not know: {task['Resource']}")
    assert calls and all(allowed(*call) for call in calls), calls
    granted = {(a, r) for s in policy["Statement"] for a in _listed(s["Action"])
               for r in _listed(s["Resource"]) if r != "*"}
    assert granted == calls, "the role grants more than the definition calls"
    assert (("sns:Publish", CHATBOT_TOPIC) in calls) == bool(chatbot)


def test_the_functions_that_announce_may_publish_to_the_chatbot_topic_only_when_it_is_set():
    for chatbot in ("", CHATBOT_TOPIC):
        current = permissions.stage_settings("dev", {**permissions.stage_values("dev"),
                                                     "CHATBOT_TOPIC_ARN": chatbot})
        published = [s for s in permissions.statements({"sns:Publish"}, "dev", current)]
        assert published == [{"Sid": "Sns", "Effect": "Allow", "Action": ["sns:Publish"],
                              "Resource": [f"arn:aws:sns:*:*:{names.topic('dev')}",
                                           *([chatbot] if chatbot else [])]}]


@pytest.mark.parametrize("stage", permissions.STAGES)
def test_macs_are_granted_on_the_stages_records_key_only(stage):
    granted = permissions.statements(set(grants.RECORDS_KEY_ACTIONS), stage)
    assert granted == [{
        "Sid": "RecordsKeyMacs", "Effect": "Allow", "Action": sorted(grants.RECORDS_KEY_ACTIONS),
        "Resource": ["arn:aws:kms:*:*:key/*"],
        "Condition": {"ForAnyValue:StringEquals": {
            "kms:ResourceAliases": [names.records_key_alias(stage)]}}}]


@pytest.mark.parametrize("name,policy", list(_every_policy()), ids=lambda v: v
                         if isinstance(v, str) else "")
def test_kms_actions_appear_only_in_the_records_and_signing_key_statements(name, policy):
    """Whichever function declares a MAC or kms:Sign gets exactly the scoped statement; the
    member role and the state machine get none; only the evidence function and the page
    publisher sign, and only the publisher verifies a signature (the manifest it signs anew)."""
    stage = name.split("/")[0]
    for statement in policy["Statement"]:
        kms = [a for a in _listed(statement["Action"]) if a.startswith("kms:")]
        if kms:
            assert stage in permissions.STAGES, f"{name} may not use the records key"
            signing = {"kms:Sign", "kms:Verify"} & set(kms)
            if signing:
                assert kms == (["kms:Sign"] if name.split("/")[1] == "collect_evidence" else
                               ["kms:Sign", "kms:Verify"]), name
                assert name.split("/")[1] in ("collect_evidence", "publish_page"), name
                assert statement == grants.evidence_signing_grant(stage).statement(set(kms))
                continue
            assert set(kms) <= set(grants.RECORDS_KEY_ACTIONS), (name, kms)
            assert statement == grants.records_key_grant(stage).statement(set(kms)), name


@pytest.mark.parametrize("stage", permissions.STAGES)
def test_signing_is_granted_on_the_stages_signing_key_only(stage):
    assert permissions.statements({"kms:Sign"}, stage) == [{
        "Sid": "EvidenceSigningKeySigns", "Effect": "Allow", "Action": ["kms:Sign"],
        "Resource": ["arn:aws:kms:*:*:key/*"],
        "Condition": {"ForAnyValue:StringEquals": {
            "kms:ResourceAliases": [names.evidence_signing_key_alias(stage)]}}}]


@pytest.mark.parametrize("stage", permissions.STAGES)
def test_the_signing_key_signs_for_the_evidence_and_page_functions_only_and_outlives_the_stack(
        stage):
    template = resources.template(stage)
    key = template["Resources"]["EvidenceSigningKey"]["Properties"]
    assert (key["KeySpec"], key["KeyUsage"]) == ("ECC_NIST_P256", "SIGN_VERIFY")
    statements = {s["Sid"]: s for s in key["KeyPolicy"]["Statement"]}
    administration = statements.pop("AccountAdministersTheKey")
    assert "Condition" not in administration and "kms:GetPublicKey" in administration["Action"]
    assert not {"kms:Sign", "kms:CreateGrant"} & set(administration["Action"])
    role = "arn:aws:iam::${AWS::AccountId}:role/"
    sign, verify = statements.pop("SignByTheProductsFunctions"), statements.pop(
        "VerifyByTheProductsFunctions")
    assert statements == {}
    assert sign["Action"] == ["kms:Sign"] and _role_arns(sign) == [
        role + names.function_role(stage, f) for f in ("collect_evidence", "publish_page")]
    assert verify["Action"] == ["kms:Verify"] and _role_arns(verify) == [
        role + names.function_role(stage, "publish_page")]
    alias = template["Resources"]["EvidenceSigningKeyAlias"]["Properties"]
    assert alias["AliasName"] == names.evidence_signing_key_alias(stage)
    assert {"EvidenceSigningKey", "EvidenceSigningKeyAlias"} <= set(resources.RETAINED)
    assert template["Outputs"]["EvidenceSigningKeyArn"] == {
        "Value": {"Fn::GetAtt": ["EvidenceSigningKey", "Arn"]}}
    assert resources.SETTINGS_FROM_OUTPUTS["EvidenceSigningKeyArn"] == "EVIDENCE_SIGNING_KEY_ARN"


def _key_policy(stage):
    return resources.template(stage)["Resources"]["RecordsKey"]["Properties"]["KeyPolicy"]


def _role_arns(statement):
    return [arn["Fn::Sub"] for arn in statement["Condition"]["ArnEquals"]["aws:PrincipalArn"]]


@pytest.mark.parametrize("stage", permissions.STAGES)
def test_the_key_policy_lets_the_account_administer_and_only_declaring_roles_mac(
        stage, monkeypatch):
    declared = {"contain": {"kms:GenerateMac", "ec2:DescribeInstances"},
                "release": {"kms:GenerateMac", "kms:VerifyMac"}, "report": {"sns:Publish"}}
    monkeypatch.setattr(permissions, "needs", lambda current=None: declared)
    statements = {s["Sid"]: s for s in _key_policy(stage)["Statement"]}
    root = {"AWS": {"Fn::Sub": "arn:aws:iam::${AWS::AccountId}:root"}}
    assert all(s["Principal"] == root and s["Effect"] == "Allow" for s in statements.values())
    assert not [a for s in statements.values() for a in s["Action"] if "*" in a]
    administration = statements.pop("AccountAdministersTheKey")
    assert "Condition" not in administration
    assert not set(administration["Action"]) & {*grants.RECORDS_KEY_ACTIONS, "kms:CreateGrant"}
    role = "arn:aws:iam::${AWS::AccountId}:role/" + names.function_role(stage, "")
    assert {s["Action"][0]: _role_arns(s) for s in statements.values()} == {
        "kms:GenerateMac": [role + "contain", role + "release"],
        "kms:VerifyMac": [role + "release"]}


@pytest.mark.parametrize("stage", permissions.STAGES)
def test_the_key_policy_names_the_roles_of_the_functions_that_declare_each_mac(stage):
    """As declared today (no statement for a MAC nobody declares)."""
    for statement in _key_policy(stage)["Statement"][1:]:
        (action,) = statement["Action"]
        assert sorted(arn.rsplit("/", 1)[1] for arn in _role_arns(statement)) == sorted(
            names.function_role(stage, f) for f, wanted in permissions.needs(
                permissions.stage_settings(stage)).items() if action in wanted)


@pytest.mark.parametrize("stage", permissions.STAGES)
def test_what_the_records_need_outlives_the_stack(stage):
    template = resources.template(stage)["Resources"]
    for logical in resources.RETAINED:
        assert template[logical]["DeletionPolicy"] in ("Retain", "RetainExceptOnCreate")
        assert template[logical]["UpdateReplacePolicy"] == "Retain"
    assert {"IncidentsTable", "EvidenceBucket", "RecordsKey", "RecordsKeyAlias"} <= set(
        resources.RETAINED)


def _allows(policy, action):
    return [s for s in policy["Statement"] if s["Effect"] == "Allow"
            and action in _listed(s["Action"])]


@pytest.mark.parametrize("name,policy", list(_every_policy()), ids=lambda v: v
                         if isinstance(v, str) else "")
def test_instance_attributes_are_granted_one_attribute_at_a_time(name, policy):
    """Never UserData, the kernel or the instance type: each statement names the attribute it
    sets (`ec2:Attribute/<Name>`), or the one value containment gives it, or, for block
    devices (no key), forbids all the others."""
    for statement in _allows(policy, "ec2:ModifyInstanceAttribute"):
        if "StringEquals" in statement["Condition"]:  # containment's: to the value that protects
            (key, value), = statement["Condition"]["StringEquals"].items()
            name = key.removeprefix("ec2:Attribute/")
            assert value == instance.iam_value(grants.PROTECTING[name]), (name, statement)
            continue
        nulls = statement["Condition"]["Null"]
        assert all(k.startswith("ec2:Attribute/") for k in nulls), (name, statement)
        named = [k for k, v in nulls.items() if v == "false"]
        if named:
            assert len(nulls) == 1 and named[0].split("/")[1] in grants.SET_ATTRIBUTES, name
        else:
            assert {f"ec2:Attribute/{a}" for a in ("UserData", "Kernel", "Ramdisk",
                                                    "InstanceType")} <= set(nulls), name


@pytest.mark.parametrize("stage", permissions.STAGES)
def test_containment_puts_only_the_products_groups_and_profile_on_an_instance(stage):
    for entry in ("on_guardduty_finding", "api_handler"):  # the first cut: isolate only
        policy = permissions.policy(stage, entry)
        on_groups = [s for s in _allows(policy, "ec2:ModifyNetworkInterfaceAttribute")
                     if any(":security-group/" in r for r in s["Resource"])]
        assert on_groups and all(s["Condition"] == grants.PRODUCT_GROUPS for s in on_groups)
    contain = permissions.policy(stage, "contain", permissions.profiles(stage)["every-option"])
    (swap,) = _allows(contain, "ec2:ReplaceIamInstanceProfileAssociation")
    assert swap["Condition"] == {"ArnLike": {"ec2:NewInstanceProfile": (
        f"arn:aws:iam::*:instance-profile/{names.deny_all_profile(stage)}")}}
    (passing,) = _allows(contain, "iam:PassRole")
    assert passing["Resource"] == [f"arn:aws:iam::*:role/{names.deny_all_profile(stage)}"]
    assert passing["Condition"] == grants.EC2_ONLY
    assert not _allows(contain, "ec2:AssociateIamInstanceProfile")


def _member_template(stage):
    from cfnlint.decode import decode_str

    with open(os.path.join(project.PROJECT_DIR, "deploy", member_role.file(stage))) as handle:
        template, errors = decode_str(handle.read())
    assert not errors, errors
    return template


def _resolved(value, parameters, template):
    """`value` as CloudFormation resolves it with `parameters` (the intrinsics used here)."""
    def holds(name):
        condition = template["Conditions"][name]
        if "Fn::Or" in condition:
            return any(holds(c["Condition"]) for c in condition["Fn::Or"])
        (ref, empty), = [condition["Fn::Not"][0]["Fn::Equals"]]
        return parameters[ref["Ref"]] != empty

    if isinstance(value, list):
        return [_resolved(v, parameters, template) for v in value]
    if not isinstance(value, dict):
        return value
    if "Fn::If" in value:
        name, yes, no = value["Fn::If"]
        return _resolved(yes if holds(name) else no, parameters, template)
    if value == {"Ref": "AWS::NoValue"}:
        return None
    if "Ref" in value:
        return parameters[value["Ref"]]
    if "Fn::Sub" in value:
        return value["Fn::Sub"].replace("${CentralAccountId}", parameters["CentralAccountId"])
    found = {k: _resolved(v, parameters, template) for k, v in value.items()}
    return {k: v for k, v in found.items() if v is not None}


@pytest.mark.parametrize("stage", permissions.STAGES)
def test_each_member_role_trusts_its_own_functions_role_and_never_an_account_root(stage):
    template = _member_template(stage)
    roles = {r["Properties"]["RoleName"]: r["Properties"]
             for name, r in template["Resources"].items() if name.startswith("MemberRole")}
    declared = permissions.member_roles(stage)
    assert sorted(roles) == sorted(r.name for r in declared)
    current = permissions.stage_settings(stage)
    assert {r.function for r in declared} == {
        f for f in permissions.needs(current) if permissions.member_role_actions(f, current)}
    for role in declared:
        properties = roles[role.name]
        assert properties["Policies"][0]["PolicyDocument"] == role.policy
        (statement,) = properties["AssumeRolePolicyDocument"]["Statement"]
        principal = statement["Principal"]["AWS"]["Fn::Sub"]
        assert principal == (f"arn:aws:iam::${{CentralAccountId}}:role/"
                             f"{names.function_role(stage, role.function)}")
        assert ":root" not in json.dumps(properties) and statement["Principal"] != "*"
    # Why one role per function, not a session policy (README): beyond its 2,048 characters.
    contain = next(r for r in declared if r.function == "contain")
    assert len(json.dumps(contain.policy, separators=(",", ":"))) > 2048


@pytest.mark.parametrize("external_id", ["", "shared"])
@pytest.mark.parametrize("organization_id", ["", "o-abcdefghij"])
def test_the_embedded_aws_provisions_the_trust_the_template_resolves_to(external_id,
                                                                        organization_id):
    """local.iam.provision_member_account builds each trust with member_role.trust() and
    .conditions(): what CloudFormation makes of the template, for every parameter choice."""
    template = _member_template("dev")
    parameters = {"CentralAccountId": "123456789012", "ExternalId": external_id,
                  "OrganizationId": organization_id}
    for role in permissions.member_roles("dev"):
        (declared,) = [r["Properties"] for r in template["Resources"].values()
                       if r["Properties"].get("RoleName") == role.name]
        expected = member_role.trust(
            f"arn:aws:iam::123456789012:role/{role.trusted_role}",
            member_role.conditions(parameters))
        assert _resolved(declared["AssumeRolePolicyDocument"], parameters, template) == expected


@pytest.mark.parametrize("stage", permissions.STAGES)
def test_the_generic_attribute_form_is_denied_for_everything_the_product_never_sets(stage):
    import botocore.session

    model = botocore.session.get_session().get_service_model("ec2")
    every = set(model.operation_model("ModifyInstanceAttribute").input_shape.members[
        "Attribute"].enum)
    contain = permissions.policy(stage, "contain", permissions.profiles(stage)["every-option"])
    (deny,) = [s for s in contain["Statement"] if s["Effect"] == "Deny"
               and "ec2:ModifyInstanceAttribute" in s["Action"]]
    denied = set(deny["Condition"]["StringEqualsIgnoreCase"]["ec2:Attribute"])
    assert {"userData", "kernel", "ramdisk", "instanceType", "groupSet"} <= denied
    assert every - denied == {"disableApiTermination", "instanceInitiatedShutdownBehavior",
                              "disableApiStop", "blockDeviceMapping"}


@pytest.mark.parametrize("stage", permissions.STAGES)
def test_interfaces_are_granted_their_groups_and_no_other_attribute(stage):
    for function in ("contain", "release", "on_guardduty_finding"):
        policy = permissions.policy(stage, function, permissions.profiles(stage)["settings"])
        kinds = set()
        for statement in _allows(policy, "ec2:ModifyNetworkInterfaceAttribute"):
            if "arn:aws:ec2:*:*:network-interface/*" in statement["Resource"]:
                assert statement["Resource"] == ["arn:aws:ec2:*:*:network-interface/*"]
                nulls = statement["Condition"]["Null"]
                assert {"ec2:Attribute/SourceDestCheck", "ec2:Attribute/AssociatePublicIpAddress",
                        "ec2:Attribute/Attachment"} <= set(nulls)
                set_here = {key for key, null in nulls.items() if null == "false"}
                assert set_here in (set(), {"ec2:Attribute/ConnectionTrackingSpecification"})
                if set_here:  # the tracking timeouts, and never the groups with them
                    assert nulls["ec2:Attribute/Groups"] == "true"
                else:
                    assert "ec2:Attribute/Groups" not in nulls
                kinds.add("tracking" if set_here else "groups")
        assert kinds == {"groups", "tracking"}, function


@pytest.mark.parametrize("member_role_name", ["ec2-quarantine-member", "IRMember"])
def test_no_product_role_may_have_its_policies_written(member_role_name):
    """Whatever MEMBER_ROLE_NAME is, the explicit Deny covers the member roles and deny-all."""
    from chalicelib import settings

    current = permissions.stage_settings("prod", {**settings.DEFAULTS, **permissions.EVERY_OPTION,
                                                  "MEMBER_ROLE_NAME": member_role_name})
    revoker = permissions.policy("prod", "revoke_sessions", current)
    (deny,) = [s for s in revoker["Statement"] if s["Sid"] == "NeverOnTheProductsRoles"]
    assert deny["Resource"] == list(grants.product_roles(current))
    assert f"arn:aws:iam::*:role/{member_role_name}*" in deny["Resource"]
    assert f"arn:aws:iam::*:role/{names.deny_all_profile('prod')}" in deny["Resource"]
