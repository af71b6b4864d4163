"""The member-account roles' CloudFormation (`deploy/member-role-<stage>.yaml`, for StackSets):
one role per function that acts in member accounts, and the deny-all profile
CREDENTIALS_MODE=deny-all swaps in.

Each role holds its function's member-account actions and trusts that function's role in the
central account only, never the account root: a compromised function cannot assume another
function's member role, and no other principal of the central account can assume any. The
external id and the organization are extra conditions (`CONDITION_KEYS`). One template per
stage, not a Stage parameter: the roles, their names and their policies follow the stage's own
settings (MEMBER_ROLE_NAME, and the actions its functions declare).

`trust()` and `conditions()` are the trust policy as the template resolves it: the embedded AWS
provisions member accounts with them (`local.iam.provision_member_account`).

The template also forwards the member's tamper events (`chalicelib.tamper.EVENT_PATTERN`) to the
home account's default bus in the home region, where the app's rule is: CloudTrail puts them on
the member's own bus, in the region of the call (IAM's in us-east-1). So it is deployed in every
region the member is watched in and in us-east-1; its roles and deny-all profile, global, are
made by the stack in `RolesRegion` only, the rule and its role by every stack.
"""

import json
from dataclasses import dataclass

from chalicelib import tamper
from deploy import names, resources

POLICY_NAME = "ec2-quarantine"
# Trust-policy condition keys -> the template parameter giving each (empty: no condition).
CONDITION_KEYS = {"sts:ExternalId": "ExternalId", "aws:PrincipalOrgID": "OrganizationId"}
REGION_PATTERN = "^[a-z]{2}(-[a-z]+)+-[0-9]+$"  # CentralRegion's and RolesRegion's
CENTRAL_BUS = resources.bus_arn("${CentralRegion}", "${CentralAccountId}")  # the app's bus


@dataclass(frozen=True)
class MemberRole:
    function: str  # Chalice's name of the function
    name: str  # the role's name in member accounts
    trusted_role: str  # the name of the one central-account role that may assume it
    policy: dict


def file(stage: str) -> str:
    return f"member-role-{stage}.yaml"


def trust(principal, condition) -> dict:
    """The trust policy: `principal` (the function's role ARN) may assume, under `condition`."""
    statement = {"Effect": "Allow", "Principal": {"AWS": principal}, "Action": "sts:AssumeRole"}
    if condition:
        statement["Condition"] = condition
    return {"Version": "2012-10-17", "Statement": [statement]}


def conditions(parameters: dict) -> dict | None:
    """The trust's condition for the template's `parameters` (None when none is given)."""
    given = {key: parameters[name] for key, name in CONDITION_KEYS.items()
             if parameters.get(name)}
    return {"StringEquals": given} if given else None


def _template_condition() -> dict:
    """`conditions()` in CloudFormation: each key only when its parameter is given."""
    return {"Fn::If": ["Conditioned", {"StringEquals": {
        key: {"Fn::If": [f"Has{name}", {"Ref": name}, {"Ref": "AWS::NoValue"}]}
        for key, name in CONDITION_KEYS.items()}}, {"Ref": "AWS::NoValue"}]}


def forwarding_rule(stage: str) -> str:
    """The member accounts' rule forwarding the tamper events (one per region)."""
    return f"{names.APP_NAME}-{stage}-tamper-forward"


def forwarding(stage: str, role_prefix: str) -> dict:
    """The rule forwarding the region's tamper events to the central bus, and the role it
    forwards with: allowed events:PutEvents on that bus only, assumable by EventBridge for this
    rule only. The role is named `role_prefix` and the region (IAM is global, a stack is per
    region)."""
    rule = forwarding_rule(stage)
    rule_arn = f"arn:${{AWS::Partition}}:events:${{AWS::Region}}:${{AWS::AccountId}}:rule/{rule}"
    trust = {"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Principal": {"Service": "events.amazonaws.com"},
        "Action": "sts:AssumeRole", "Condition": {
            "StringEquals": {"aws:SourceAccount": {"Ref": "AWS::AccountId"}},
            "ArnEquals": {"aws:SourceArn": {"Fn::Sub": rule_arn}}}}]}
    return {
        "TamperForwardingRole": {"Type": "AWS::IAM::Role", "Properties": {
            "RoleName": {"Fn::Sub": role_prefix + "${AWS::Region}"},
            "AssumeRolePolicyDocument": trust,
            "Policies": [{"PolicyName": "put-events-to-central-bus", "PolicyDocument": {
                "Version": "2012-10-17", "Statement": [{
                    "Effect": "Allow", "Action": "events:PutEvents",
                    "Resource": CENTRAL_BUS}]}}]}},
        "ForwardTampering": {"Type": "AWS::Events::Rule", "Properties": {
            "Name": rule,
            "Description": "calls that can undo ec2-quarantine's containment, to the central "
                           "account's default bus",
            "EventPattern": tamper.EVENT_PATTERN, "State": "ENABLED",
            "Targets": [{"Id": "central-bus", "Arn": CENTRAL_BUS,
                         "RoleArn": {"Fn::GetAtt": ["TamperForwardingRole", "Arn"]}}]}},
    }


def _logical_id(role: MemberRole) -> str:
    return "MemberRole" + "".join(part.capitalize() for part in role.function.split("_"))


def _json(document: dict, indent: int) -> str:
    return json.dumps(document, indent=2).replace("\n", "\n" + " " * indent)


def template(stage: str, roles: list[MemberRole], deny_all: str, forwarding_role: str) -> str:
    """The stage's template: `roles` (each with its policy and its one trusted role), and the
    deny-all profile named `deny_all` (the name in DENY_ALL_PROFILE_ARN, which the contain
    policy may hand out and no other: a parameter could only make the two disagree), made in
    `RolesRegion` only; the tamper events' forwarding in every region, its role named
    `forwarding_role` and the region."""
    has = "\n".join(f"""  Has{name}: !Not [!Equals [!Ref {name}, ""]]"""
                    for name in CONDITION_KEYS.values())
    conditioned = ", ".join(f"!Condition Has{name}" for name in CONDITION_KEYS.values())
    blocks, outputs = [], []
    for role in roles:
        principal = {"Fn::Sub": f"arn:aws:iam::${{CentralAccountId}}:role/{role.trusted_role}"}
        blocks.append(f"""  {_logical_id(role)}:
    Type: AWS::IAM::Role
    Condition: RolesHere
    Properties:
      RoleName: {role.name}
      AssumeRolePolicyDocument:
        {_json(trust(principal, _template_condition()), 8)}
      Policies:
        - PolicyName: {POLICY_NAME}
          PolicyDocument:
            {_json(role.policy, 12)}""")
        outputs.append(f"""  {_logical_id(role)}Arn:
    Condition: RolesHere
    Value: !GetAtt {_logical_id(role)}.Arn""")
    blocks.extend(f"  {logical}:\n    {_json(resource, 4)}"
                  for logical, resource in forwarding(stage, forwarding_role).items())
    blocks, outputs = "\n".join(blocks), "\n".join(outputs)
    return f"""AWSTemplateFormatVersion: "2010-09-09"
Description: >-
  ec2-quarantine member-account roles of stage {stage}, one per function, each trusting that
  function's role only, and the forwarding of the calls that can undo containment (CloudTrail
  events) to the central account's default bus (generated by `make policies` from the actions
  the app declares, its tamper event pattern and the stage's settings; do not edit). Deploy it
  in every member account after the stage, for example with StackSets: in every region the
  account is watched in (EC2's events stay in their region) and in us-east-1 (IAM's events
  arrive there only). The roles and the deny-all profile are global: only the stack in
  RolesRegion makes them.
Parameters:
  CentralAccountId:
    Type: String
    AllowedPattern: '^[0-9]{{12}}$'
    Description: account where ec2-quarantine runs (the GuardDuty delegated administrator)
  CentralRegion:
    Type: String
    AllowedPattern: '{REGION_PATTERN}'
    Description: region where ec2-quarantine runs (its tamper rule is on the default bus there)
  RolesRegion:
    Type: String
    AllowedPattern: '{REGION_PATTERN}'
    Description: >-
      the one region whose stack makes the roles and the deny-all profile (IAM is global: a
      second stack making them fails); us-east-1 suits, where every member needs this stack for
      IAM's events, unless an earlier stack of this template made them in another region
  ExternalId:
    Type: String
    Default: ""
    Description: >-
      the MEMBER_EXTERNAL_ID setting of the central deployment, if set (an extra condition,
      not a secret)
  OrganizationId:
    Type: String
    Default: ""
    AllowedPattern: '^(o-[a-z0-9]{{10,32}})?$'
    Description: >-
      the organization of the central account, if any: only its principals may assume the roles
      (aws:PrincipalOrgID)
Conditions:
{has}
  Conditioned: !Or [{conditioned}]
  RolesHere: !Equals [!Ref "AWS::Region", !Ref RolesRegion]
Resources:
  DenyAllRole:
    Type: AWS::IAM::Role
    Condition: RolesHere
    Properties:
      RoleName: {deny_all}
      AssumeRolePolicyDocument: {json.dumps(resources.EC2_TRUST)}
      Policies:
        - PolicyName: deny-all
          PolicyDocument: {json.dumps(resources.DENY_ALL)}
  DenyAllProfile:
    Type: AWS::IAM::InstanceProfile
    Condition: RolesHere
    Properties:
      InstanceProfileName: {deny_all}
      Roles:
        - !Ref DenyAllRole
{blocks}
Outputs:
{outputs}
"""
