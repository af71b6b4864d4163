"""The tamper events' way to the app in real AWS, read from the templates (the embedded AWS's
CloudFormation makes no event bus policy, and no bus of another account or region receives
anything there): each member account's rule forwards the app's own pattern to the central bus,
with a role that may put events on that bus only; the home account's bus admits the members
MEMBER_ACCOUNTS names, and none without members; `make deploy` finds the organization `*`
admits."""

import fnmatch
import json
import os

import botocore.session
import pytest

from chalicelib import tamper
from deploy import guardrails, member_role, permissions, project, resources, stack
from deploy.session import DeployError

CENTRAL_BUS = {"Fn::Sub": "arn:${AWS::Partition}:events:${CentralRegion}:${CentralAccountId}"
                          ":event-bus/default"}
HOME_BUS = {"Fn::Sub": "arn:${AWS::Partition}:events:${AWS::Region}:${AWS::AccountId}"
                       ":event-bus/default"}


def _member_template(stage):
    from cfnlint.decode import decode_str

    with open(os.path.join(project.PROJECT_DIR, "deploy", member_role.file(stage))) as handle:
        template, errors = decode_str(handle.read())
    assert not errors, errors
    return template


@pytest.mark.parametrize("stage", permissions.STAGES)
def test_each_member_forwards_the_apps_tamper_pattern_to_the_central_bus(stage):
    found = _member_template(stage)["Resources"]
    rule = found["ForwardTampering"]["Properties"]
    assert rule["EventPattern"] == tamper.EVENT_PATTERN
    assert rule["State"] == "ENABLED" and rule["Name"] == member_role.forwarding_rule(stage)
    (target,) = rule["Targets"]
    assert target["Arn"] == CENTRAL_BUS
    assert target["RoleArn"] == {"Fn::GetAtt": ["TamperForwardingRole", "Arn"]}
    # PutRule takes a pattern of 4,096 characters at most
    max_length = botocore.session.get_session().get_service_model("events").operation_model(
        "PutRule").input_shape.members["EventPattern"].metadata["max"]
    assert len(json.dumps(tamper.EVENT_PATTERN)) <= max_length


@pytest.mark.parametrize("stage", permissions.STAGES)
def test_the_forwarding_role_may_put_events_on_the_central_bus_only_for_this_rule(stage):
    role = _member_template(stage)["Resources"]["TamperForwardingRole"]["Properties"]
    (policy,) = role["Policies"]
    assert policy["PolicyDocument"]["Statement"] == [
        {"Effect": "Allow", "Action": "events:PutEvents", "Resource": CENTRAL_BUS}]
    (trust,) = role["AssumeRolePolicyDocument"]["Statement"]
    assert trust["Principal"] == {"Service": "events.amazonaws.com"}
    assert trust["Condition"]["ArnEquals"]["aws:SourceArn"] == {"Fn::Sub": (
        "arn:${AWS::Partition}:events:${AWS::Region}:${AWS::AccountId}:rule/"
        + member_role.forwarding_rule(stage))}
    assert trust["Condition"]["StringEquals"] == {"aws:SourceAccount": {"Ref": "AWS::AccountId"}}
    # one role per region (IAM is global), under the names the guardrails SCP protects
    name = role["RoleName"]["Fn::Sub"]
    assert name.endswith("-${AWS::Region}")
    for region in ("us-east-1", permissions.LONGEST_REGION):
        arn = "arn:aws:iam::111122223333:role/" + name.replace("${AWS::Region}", region)
        assert len(arn.rsplit("/", 1)[1]) <= 64
        assert any(fnmatch.fnmatchcase(arn, pattern) for pattern in guardrails.product_roles())


@pytest.mark.parametrize("stage", permissions.STAGES)
def test_only_the_roles_region_makes_the_global_resources_and_every_region_forwards(stage):
    template = _member_template(stage)
    assert template["Conditions"]["RolesHere"] == {
        "Fn::Equals": [{"Ref": "AWS::Region"}, {"Ref": "RolesRegion"}]}
    forwarding = {"TamperForwardingRole", "ForwardTampering"}
    for logical, resource in template["Resources"].items():
        assert resource.get("Condition") == (None if logical in forwarding else "RolesHere")
    assert {output.get("Condition") for output in template["Outputs"].values()} == {"RolesHere"}
    assert not {"Default"} & set(template["Parameters"]["CentralRegion"])  # no silent guess
    assert not {"Default"} & set(template["Parameters"]["RolesRegion"])


def _settings(stage, members):
    return permissions.stage_settings(
        stage, {**permissions.stage_values(stage), "MEMBER_ACCOUNTS": members})


def _bus_policies(template):
    return {logical: resource["Properties"] for logical, resource
            in template["Resources"].items() if resource["Type"] == "AWS::Events::EventBusPolicy"}


@pytest.mark.parametrize("stage", permissions.STAGES)
def test_the_home_bus_admits_no_account_without_members(stage):
    assert not _bus_policies(resources.template(stage, _settings(stage, "")))
    assert resources.ORGANIZATION_PARAMETER not in resources.template(
        stage, _settings(stage, ""))["Parameters"]
    assert not permissions.stage_settings(stage).member_accounts  # as the stages are committed
    assert not _bus_policies(resources.template(stage))


@pytest.mark.parametrize("stage", permissions.STAGES)
def test_the_home_bus_admits_the_listed_members_and_with_a_star_the_organization(stage):
    listed = resources.template(stage, _settings(stage, "111111111111,222222222222"))
    assert _bus_policies(listed) == {"TamperFromMembers": {
        "EventBusName": "default", "StatementId": f"ec2-quarantine-{stage}-tamper-members",
        "Statement": {"Effect": "Allow", "Action": "events:PutEvents", "Resource": HOME_BUS,
                      "Principal": {"AWS": ["arn:aws:iam::111111111111:root",
                                            "arn:aws:iam::222222222222:root"]}}}}
    assert resources.ORGANIZATION_PARAMETER not in listed["Parameters"]

    both = resources.template(stage, _settings(stage, "111111111111,*"))
    policies = _bus_policies(both)
    assert policies["TamperFromMembers"]["Statement"]["Principal"] == {
        "AWS": ["arn:aws:iam::111111111111:root"]}
    organization = policies["TamperFromOrganization"]
    assert organization["Statement"] == {
        "Effect": "Allow", "Action": "events:PutEvents", "Resource": HOME_BUS, "Principal": "*",
        "Condition": {"StringEquals": {"aws:PrincipalOrgID": {"Ref": "OrganizationId"}}}}
    assert organization["StatementId"] != policies["TamperFromMembers"]["StatementId"]
    parameter = both["Parameters"][resources.ORGANIZATION_PARAMETER]
    assert "Default" not in parameter and parameter["AllowedPattern"] == "^o-[a-z0-9]{10,32}$"


def test_make_deploy_finds_the_organization_a_star_admits(aws):
    with pytest.raises(DeployError, match="belongs to none"):
        stack.organization_id()
    created = aws.client("organizations").create_organization(FeatureSet="ALL")
    assert stack.organization_id() == created["Organization"]["Id"]
