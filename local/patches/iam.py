"""IAM fidelity: what moto's enforcement checks — the request's resource, every action it
implies, and denials in the JSON protocol's own words."""

import json

from local.iam import authorizations

# EC2 calls that give an instance a role: AWS checks iam:PassRole on the role as well.
_PASSES_ROLE = {"ec2:AssociateIamInstanceProfile", "ec2:ReplaceIamInstanceProfileAssociation"}
# DynamoDB transactions are authorized per item, by the item operation's own action.
_TRANSACT_ITEM_ACTIONS = {"Put": "dynamodb:PutItem", "Update": "dynamodb:UpdateItem",
                          "Delete": "dynamodb:DeleteItem",
                          "ConditionCheck": "dynamodb:ConditionCheckItem",
                          "Get": "dynamodb:GetItem"}
# What a JSON-protocol service calls moto's authorization errors.
_JSON_AUTH_ERRORS = {"AccessDenied": "AccessDeniedException",
                     "InvalidClientTokenId": "UnrecognizedClientException",
                     "SignatureDoesNotMatch": "InvalidSignatureException"}


def patch_resources():
    """moto knows the resource of a request only for S3 (bucket, key), STS AssumeRole and IAM
    role operations; for every other request it matches the statement's Resource against "*",
    so no statement scoped to an ARN ever allows anything. AWS matches the request's own ARN.
    A request whose resource moto does not know matches any Resource (resources stay unchecked
    there, as moto's documentation says; the static policy test checks them)."""
    from moto.iam.access_control import IAMPolicyStatement

    original = IAMPolicyStatement._check_element_matches

    def _check_element_matches(self, statement_element, value):
        if statement_element == "Resource" and value == "*":
            return True
        return original(self, statement_element, value)

    IAMPolicyStatement._check_element_matches = _check_element_matches


def implied_actions(action: str, data, body) -> list[str]:
    """The IAM actions AWS authorizes for a request of `action` (its query `data`, JSON `body`):
    TransactWriteItems and TransactGetItems are no IAM actions (each item's action is checked);
    tags given on create need ec2:CreateTags; handing an instance a profile needs iam:PassRole
    (RunInstances with a profile too)."""
    if action in ("dynamodb:TransactWriteItems", "dynamodb:TransactGetItems"):
        items = json.loads(body or b"{}").get("TransactItems", [])
        return sorted({_TRANSACT_ITEM_ACTIONS[kind] for item in items for kind in item})
    implied = [action]
    keys = list(data or {})
    if action.startswith("ec2:") and any(k.startswith("TagSpecification") for k in keys):
        implied.append("ec2:CreateTags")
    if action in _PASSES_ROLE or (action == "ec2:RunInstances" and any(
            k.startswith("IamInstanceProfile") for k in keys)):
        implied.append("iam:PassRole")
    return implied


def patch_implied_actions():
    """moto authorizes only the action a request names; AWS authorizes every action the request
    implies (`implied_actions`). Check each, and record every decision in
    `local.iam.authorizations` (what a function's role was actually allowed to do)."""
    from moto.iam.access_control import IAMRequestBase

    original = IAMRequestBase.check_action_permitted

    def check_action_permitted(self, resource):
        for action in implied_actions(self._action, self._data, self._body):
            self._action = action
            try:
                original(self, resource)
            except Exception:
                authorizations.record(self._access_key.arn, action, resource, allowed=False)
                raise
            authorizations.record(self._access_key.arn, action, resource, allowed=True)

    IAMRequestBase.check_action_permitted = check_action_permitted


def patch_json_errors():
    """moto answers an unauthorized request in XML whatever the protocol, so botocore reads the
    code of a JSON-protocol service's denial (DynamoDB, Step Functions, SSM…) as "403"; AWS
    answers `{"__type": "AccessDeniedException"}` (status 400) there."""
    from moto.core.authorization import ActionAuthenticatorMixin
    from moto.core.exceptions import JsonRESTError

    original = ActionAuthenticatorMixin._authenticate_and_authorize_normal_action

    def _authenticate_and_authorize_normal_action(self, resource="*"):
        try:
            original(self, resource)
        except JsonRESTError:
            raise
        except Exception as error:
            code = _JSON_AUTH_ERRORS.get(getattr(error, "error_type", None))
            if code is None or not self.headers.get("X-Amz-Target"):
                raise
            raise JsonRESTError(code, error.message) from error

    ActionAuthenticatorMixin._authenticate_and_authorize_normal_action = (
        _authenticate_and_authorize_normal_action)
