"""IAM fidelity: what moto's enforcement checks — the request's resource, every action it
implies, and denials in the JSON protocol's own words."""

import contextlib
import fnmatch
import json
import threading
from dataclasses import dataclass

from local.iam import authorizations
from local.patches import guardduty

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


def implied_actions(action: str, data, body, account: str) -> list[str]:
    """The IAM actions AWS authorizes for a request of `action` (its query `data`, JSON `body`)
    in `account`: TransactWriteItems and TransactGetItems are no IAM actions (each item's action
    is checked); tags given on create need ec2:CreateTags; handing an instance a profile needs
    iam:PassRole (RunInstances with a profile too); an account's first malware scan makes
    GuardDuty's service-linked role, which needs iam:CreateServiceLinkedRole."""
    if action in ("dynamodb:TransactWriteItems", "dynamodb:TransactGetItems"):
        items = json.loads(body or b"{}").get("TransactItems", [])
        return sorted({_TRANSACT_ITEM_ACTIONS[kind] for item in items for kind in item})
    implied = [action]
    if action == "guardduty:StartMalwareScan" and not guardduty.has_service_linked_role(account):
        implied.append("iam:CreateServiceLinkedRole")
    keys = list(data or {})
    if action.startswith("ec2:") and any(k.startswith("TagSpecification") for k in keys):
        implied.append("ec2:CreateTags")
    if action in _PASSES_ROLE or (action == "ec2:RunInstances" and any(
            k.startswith("IamInstanceProfile") for k in keys)):
        implied.append("iam:PassRole")
    return implied


def request_resources(action: str, data, body, region: str, account: str) -> list[str]:
    """The resources AWS authorizes a request on, each apart, where moto knows none and a
    product policy scopes it: SendCommand's document (the instances it names are not checked
    here); ModifyNetworkInterfaceAttribute's interface, the instance it is attached to and each
    group it sets (the Service Authorization Reference also lists the subnet: not checked
    here); a group's rules, its group; CreateSecurityGroup's new group and VPC; CreateTags'
    and DeleteTags' resources (or, given on create, the new resource's type). Empty: the
    resource moto knows."""
    if action == "ec2:ModifyNetworkInterfaceAttribute":
        given = _parameters(data)
        interface = given.get("NetworkInterfaceId", "")
        instance = _attached_instance(account, region, interface)
        groups = [value for key, value in given.items() if key.startswith("SecurityGroupId.")]
        return [f"arn:aws:ec2:{region}:{account}:{kind}/{name}" for kind, name in (
            ("network-interface", interface), *([("instance", instance)] if instance else []),
            *(("security-group", group) for group in groups))]
    if action == "ec2:CreateSecurityGroup":  # the new group, and the VPC it is made in
        vpc = _parameters(data).get("VpcId", "")
        return [f"arn:aws:ec2:{region}:{account}:security-group/*",
                f"arn:aws:ec2:{region}:{account}:vpc/{vpc}"]
    if action in _GROUP_RULES:  # the group whose rules change
        group = _parameters(data).get("GroupId", "")
        return [f"arn:aws:ec2:{region}:{account}:security-group/{group}"]
    if action in ("ec2:CreateTags", "ec2:DeleteTags"):
        given = _parameters(data)
        named = [value for key, value in given.items() if key.startswith("ResourceId.")]
        if named:  # tags on resources that exist: each by its type
            return [f"arn:aws:ec2:{region}:{account}:{_EC2_TYPES.get(name.split('-')[0], 'unknown')}"
                    f"/{name}" for name in named]
        created = {value for key, value in given.items()  # tags given on create
                   if key.startswith("TagSpecification.") and key.endswith(".ResourceType")}
        return [f"arn:aws:ec2:{region}:{account}:{kind}/*" for kind in sorted(created)]
    if action == "iam:CreateServiceLinkedRole":  # asked for, or implied by a first malware scan
        named = _parameters(data).get("AWSServiceName")
        return [f"arn:aws:iam::{account}:role/aws-service-role/{named}/*" if named
                else guardduty.role_arn(account)]
    if action == "ssm:SendCommand":
        document = json.loads(body or b"{}").get("DocumentName", "")
        owner = "" if document.startswith("AWS") else account  # AWS owns the AWS* names
        return [f"arn:aws:ssm:{region}:{owner}:document/{document}"]
    return []


def _attached_instance(account: str, region: str, interface: str) -> str | None:
    """The instance `interface` is attached to on moto (None: none, or no such interface)."""
    from moto.ec2.models import ec2_backends

    eni = ec2_backends[account][region].enis.get(interface)
    return eni.instance.id if eni is not None and eni.instance is not None else None


def resource_tags(arn: str, account: str, region: str) -> dict[str, str]:
    """The tags moto's EC2 holds for the resource `arn` names (none for other services)."""
    from moto.ec2.models import ec2_backends

    if not arn.startswith("arn:aws:ec2:"):
        return {}
    return dict(ec2_backends[account][region].tags.get(arn.rsplit("/", 1)[-1], {}))


def patch_implied_actions():
    """moto authorizes only the action a request names, on one resource; AWS authorizes every
    action the request implies (`implied_actions`), on every resource it names
    (`request_resources`), each apart: each must be allowed, with that resource's tags as
    `aws:ResourceTag/<key>`. Record every decision in `local.iam.authorizations` (what a
    function's role was actually allowed to do)."""
    from moto.core.exceptions import AccessDeniedError
    from moto.iam.access_control import IAMRequestBase

    original = IAMRequestBase.check_action_permitted

    def check_action_permitted(self, resource):
        for action in implied_actions(self._action, self._data, self._body, self.account_id):
            self._action = action
            for arn in request_resources(action, self._data, self._body, self._region,
                                         self.account_id) or [resource]:
                tags = resource_tags(arn, self.account_id, self._region)
                try:
                    with evaluating(action, self._data, self.account_id, arn, tags,
                                    self._body):
                        original(self, arn)
                except Exception as error:
                    authorizations.record(self._access_key.arn, action, arn, allowed=False)
                    if type(error) is AccessDeniedError and arn != "*":  # name the resource
                        raise AccessDeniedError(self._access_key.arn,
                                                f"{action} on resource: {arn}") from error
                    raise
                authorizations.record(self._access_key.arn, action, arn, allowed=True)

    IAMRequestBase.check_action_permitted = check_action_permitted


def patch_bodyless_signatures():
    """moto checks a request's signature over a payload it rebuilds: the body, or else the
    request's parameters, which for a GET with neither body nor query string are its headers,
    so every such request (GuardDuty's GetMalwareScan) fails InvalidSignatureException under
    enforcement. AWS signs a GET's empty payload."""
    from moto.iam.access_control import IAMRequestBase

    original = IAMRequestBase._create_aws_request

    def _create_aws_request(self):
        if self._method in ("GET", "HEAD") and not self._body:
            body, self._data = self._data, {}
            try:
                return original(self)
            finally:
                self._data = body
        return original(self)

    IAMRequestBase._create_aws_request = _create_aws_request


_REST_JSON_DENIED_403 = ("securityhub", "guardduty")  # REST-JSON services the product calls


def patch_json_errors():
    """moto answers an unauthorized request in XML whatever the protocol, so botocore reads the
    code of a JSON-protocol service's denial (DynamoDB, Step Functions, SSM…) as "403"; AWS
    answers `{"__type": "AccessDeniedException"}` there (status 400; 403 from a REST-JSON
    service such as Security Hub)."""
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
            rest_json = self.service_name in _REST_JSON_DENIED_403
            if code is None or not (self.headers.get("X-Amz-Target") or rest_json):
                raise
            denial = JsonRESTError(code, error.message)
            if rest_json:
                denial.code = 403
            raise denial from error

    ActionAuthenticatorMixin._authenticate_and_authorize_normal_action = (
        _authenticate_and_authorize_normal_action)


def patch_ec2_denials():
    """moto answers an EC2 request IAM denies with `AccessDenied`; EC2 answers
    `UnauthorizedOperation` (status 403), its message opening "You are not authorized to
    perform this operation."."""
    from moto.core.authorization import ActionAuthenticatorMixin
    from moto.core.exceptions import AccessDeniedError

    class UnauthorizedOperation(AccessDeniedError):
        def __init__(self, message: str):
            super(AccessDeniedError, self).__init__("UnauthorizedOperation", message)

    original = ActionAuthenticatorMixin._authenticate_and_authorize_normal_action

    def _authenticate_and_authorize_normal_action(self, resource="*"):
        try:
            original(self, resource)
        except AccessDeniedError as error:
            if getattr(self, "service_name", None) != "ec2" or isinstance(
                    error, UnauthorizedOperation):
                raise
            raise UnauthorizedOperation("You are not authorized to perform this operation. "
                                        + error.message) from error

    ActionAuthenticatorMixin._authenticate_and_authorize_normal_action = (
        _authenticate_and_authorize_normal_action)


# -- conditions ---------------------------------------------------------------------------------
# moto ignores the Condition of an identity policy's statement (a conditioned Allow allows
# everything). AWS evaluates it against the request's context. The keys below are the ones the
# product's policies condition instance mutations on; the embedded AWS derives them from the
# request (and the resource's tags from moto's EC2) as AWS does. A key not derived here leaves
# its condition unevaluated, as on plain moto.
_RESOURCE_TAG_KEYS = ("aws:ResourceTag/", "ec2:ResourceTag/")
# The resource type of an EC2 id, by its prefix (tags name resources by id alone).
_EC2_TYPES = {"i": "instance", "sg": "security-group", "snap": "snapshot", "vol": "volume",
              "eni": "network-interface", "vpc": "vpc", "subnet": "subnet", "ami": "image"}
_GROUP_RULES = ("ec2:AuthorizeSecurityGroupIngress", "ec2:AuthorizeSecurityGroupEgress",
                "ec2:RevokeSecurityGroupIngress", "ec2:RevokeSecurityGroupEgress")
_DERIVED_KEYS = {
    **{action: _RESOURCE_TAG_KEYS for action in _GROUP_RULES},
    "ec2:CreateSecurityGroup": ("aws:RequestTag/",),
    "ec2:CreateTags": ("ec2:CreateAction", "aws:TagKeys"),
    "ec2:DeleteTags": ("ec2:CreateAction", "aws:TagKeys"),
    "ec2:ModifyInstanceAttribute": ("ec2:Attribute/", "ec2:Attribute"),
    "ec2:ModifyNetworkInterfaceAttribute": ("ec2:Attribute/", *_RESOURCE_TAG_KEYS),
    "ec2:ReplaceIamInstanceProfileAssociation": ("ec2:NewInstanceProfile",),
    "ec2:AssociateIamInstanceProfile": ("ec2:NewInstanceProfile",),
    "ec2:ModifySnapshotAttribute": ("ec2:Add/", "ec2:Remove/"),
    "ec2:ModifyInstanceMetadataOptions": ("ec2:MetadataHttpEndpoint",),
    "iam:PassRole": ("iam:PassedToService",),
    "iam:CreateServiceLinkedRole": ("iam:AWSServiceName",),
    "securityhub:BatchUpdateFindings": ("securityhub:ASFFSyntaxPath/",),
}
# Keys a resource type has no value for (the Service Authorization Reference lists the keys
# each resource type of an action has): a condition on them reads them absent there.
_NOT_ON_RESOURCE = {("ec2:ModifyNetworkInterfaceAttribute", "security-group"): "ec2:Attribute/"}
# Query parameters whose name differs from the attribute IAM names.
_ATTRIBUTE_PARAMETERS = {"BlockDeviceMapping": "BlockDeviceMappings", "GroupId": "Groups",
                         "SecurityGroupId": "Groups", "AssociatedSubnetId": "AssociatedSubnetIds"}
_request = threading.local()


@dataclass(frozen=True)
class RequestContext:
    """The condition keys derived for one authorization: which keys it knows, and their values
    (a known key with no value is absent from the request)."""

    known: tuple[str, ...]
    values: dict
    strict: bool = False  # a trust policy's: every key known, an operator not evaluated denies

    def knows(self, key: str) -> bool:
        return self.strict or any(key == k or (k.endswith("/") and key.startswith(k))
                                  for k in self.known)


def _parameters(data) -> dict[str, str]:
    return {key: value[0] if isinstance(value, list) else value
            for key, value in (data or {}).items()}


def _asff_paths(body) -> dict[str, list[str]]:
    """`securityhub:ASFFSyntaxPath/<field>` of each field a BatchUpdateFindings request writes
    (nested objects by dotted path; a list's values, or its objects' fields, under its name), as
    IAM derives them; the identifiers are not fields it writes."""
    try:
        given = json.loads(body.decode() if isinstance(body, bytes) else body or "{}")
    except ValueError:
        return {}
    paths: dict[str, list[str]] = {}

    def walk(path: str, value) -> None:
        if isinstance(value, dict):
            for key, inner in value.items():
                walk(f"{path}.{key}" if path else key, inner)
        elif isinstance(value, list):
            for inner in value:
                walk(path, inner)
        else:
            paths.setdefault(f"securityhub:ASFFSyntaxPath/{path}", []).append(str(value))

    for name, value in (given if isinstance(given, dict) else {}).items():
        if name != "FindingIdentifiers":
            walk(name, value)
    return paths


def request_context(action: str, data, account: str, resource: str = "*",
                    tags: dict | None = None, body=None) -> RequestContext:
    """The keys of `_DERIVED_KEYS` for a request of `action` with query `data` (and `body`),
    as evaluated on `resource` (an ARN), whose tags are `tags`."""
    known = _DERIVED_KEYS.get(action, ())
    given = _parameters(data)
    values: dict[str, list[str]] = {}
    if action in ("ec2:ModifyInstanceAttribute", "ec2:ModifyNetworkInterfaceAttribute"):
        for key in given:
            name = key.split(".")[0]
            if name == "Attribute":
                values["ec2:Attribute"] = [given[key]]
                name = given[key][:1].upper() + given[key][1:]
            elif name in ("Action", "Version", "InstanceId", "NetworkInterfaceId", "DryRun",
                          "Value"):
                continue
            name = _ATTRIBUTE_PARAMETERS.get(name, name)
            values.setdefault(f"ec2:Attribute/{name}", []).append(
                given.get(f"{key}" if "." in key else "Value", "true"))
    elif action in ("ec2:ReplaceIamInstanceProfileAssociation",
                    "ec2:AssociateIamInstanceProfile"):
        arn = given.get("IamInstanceProfile.Arn") or (
            f"arn:aws:iam::{account}:instance-profile/{given['IamInstanceProfile.Name']}"
            if "IamInstanceProfile.Name" in given else None)
        if arn:
            values["ec2:NewInstanceProfile"] = [arn]
    elif action == "ec2:ModifySnapshotAttribute":
        operation = given.get("OperationType", "").capitalize()
        for key, value in given.items():
            parts = key.split(".")  # CreateVolumePermission.Add.1.UserId | UserId.1 | UserGroup.1
            if parts[0] == "CreateVolumePermission" and len(parts) == 4:
                kind, field = parts[1], parts[3]
            elif parts[0] in ("UserId", "UserGroup") and operation:
                kind, field = operation, parts[0]
            else:
                continue
            key_name = "userId" if field == "UserId" else "group"
            values.setdefault(f"ec2:{kind}/{key_name}", []).append(value)
    elif action == "ec2:ModifyInstanceMetadataOptions":  # the endpoint state it asks for
        if "HttpEndpoint" in given:
            values["ec2:MetadataHttpEndpoint"] = [given["HttpEndpoint"]]
    elif action == "ec2:CreateSecurityGroup":  # the tags it is created with
        for key, value in given.items():
            if key.startswith("TagSpecification.") and key.endswith(".Key"):
                values[f"aws:RequestTag/{value}"] = [given.get(key[:-4] + ".Value", "")]
    elif action in ("ec2:CreateTags", "ec2:DeleteTags"):
        if given.get("Action") not in ("CreateTags", "DeleteTags"):  # tags given on create
            values["ec2:CreateAction"] = [given["Action"]]
        keys = [value for key, value in given.items()
                if key.endswith(".Key") and (key.startswith("Tag.") or ".Tag." in key)]
        if keys:
            values["aws:TagKeys"] = keys
    elif action == "iam:PassRole":  # implied by the EC2 calls that hand an instance a profile
        values["iam:PassedToService"] = ["ec2.amazonaws.com"]
    elif action == "iam:CreateServiceLinkedRole":  # asked for, or implied by a malware scan
        values["iam:AWSServiceName"] = [given.get("AWSServiceName") or guardduty.SERVICE]
    elif action == "securityhub:BatchUpdateFindings":
        values.update(_asff_paths(body))
    absent = _NOT_ON_RESOURCE.get((action, resource.split(":", 5)[-1].split("/")[0]))
    if absent:
        values = {key: value for key, value in values.items() if not key.startswith(absent)}
    if any(prefix in known for prefix in _RESOURCE_TAG_KEYS):
        values.update({f"{prefix}{key}": [value] for key, value in (tags or {}).items()
                       for prefix in _RESOURCE_TAG_KEYS})
    return RequestContext(known, values)


def _matches(operator: str, expected: str, actual: str) -> bool:
    if operator in ("StringLike", "ArnLike", "ArnEquals"):
        return fnmatch.fnmatchcase(actual, expected)
    if operator == "StringEqualsIgnoreCase":
        return actual.lower() == expected.lower()
    return actual == expected  # StringEquals


def _met(operator: str, key: str, expected, context: RequestContext) -> bool:
    """One key of one condition operator, evaluated as IAM does."""
    expected = expected if isinstance(expected, list) else [expected]
    actual = context.values.get(key)
    if operator == "Null":
        return (actual is None) == (str(expected[0]).lower() == "true")
    qualifier, _, base = operator.rpartition(":")
    if_exists = base.endswith("IfExists")
    base = base.removesuffix("IfExists")
    if base not in ("StringEquals", "StringEqualsIgnoreCase", "StringLike", "ArnLike",
                    "ArnEquals"):
        return not context.strict  # an operator the embedded AWS does not evaluate
    if actual is None:
        return qualifier == "ForAllValues" or if_exists
    matches = [any(_matches(base, str(e), a) for e in expected) for a in actual]
    return all(matches) if qualifier == "ForAllValues" else any(matches)


def conditions_met(condition: dict, context: RequestContext) -> bool:
    """Every operator and every key in it (keys this request's context does not know pass)."""
    return all(_met(operator, key, expected, context)
               for operator, keys in condition.items() for key, expected in keys.items()
               if context.knows(key))


def patch_conditions():
    """Evaluate identity policies' conditions on the keys `request_context` derives: an Allow
    whose condition is not met does not apply (moto would allow), a Deny whose condition is
    not met does not apply either."""
    from moto.iam.access_control import IAMPolicyStatement, PermissionResult

    original = IAMPolicyStatement.is_action_permitted

    def is_action_permitted(self, action, resource="*", principal=None,
                            incoming_condition_values=None):
        context = getattr(_request, "context", None)
        condition = self._statement.get("Condition")
        if (context is not None and condition and principal is None
                and incoming_condition_values is None
                and not conditions_met(condition, context)):
            return PermissionResult.NEUTRAL
        return original(self, action, resource, principal, incoming_condition_values)

    IAMPolicyStatement.is_action_permitted = is_action_permitted


@contextlib.contextmanager
def evaluating(action: str, data, account: str, resource: str = "*", tags: dict | None = None,
               body=None):
    """The request context of `action` on `resource` for the statements evaluated inside this
    block."""
    _request.context = request_context(action, data, account, resource, tags, body)
    try:
        yield
    finally:
        _request.context = None


def _org_of(account: str, partition: str) -> str | None:
    """The organization `account` belongs to on moto (None: none)."""
    from moto.organizations.exceptions import AWSOrganizationsNotInUseException
    from moto.organizations.models import organizations_backends

    try:
        return organizations_backends[account][partition].describe_organization()[
            "Organization"]["Id"]
    except AWSOrganizationsNotInUseException:
        return None


def _principal_matches(principal, caller: str) -> bool:
    """AWS's reading of a trust's `Principal` for `caller` (a user ARN, or a role session
    `arn:aws:sts::<account>:assumed-role/<role>/<session>`): an account (its id or root ARN)
    means any principal of that account, a role ARN that role's sessions."""
    if principal == "*":
        return True
    listed = principal.get("AWS", []) if isinstance(principal, dict) else []
    account, resource = caller.split(":")[4], caller.split(":", 5)[5]
    for expected in [listed] if isinstance(listed, str) else listed:
        if expected in ("*", caller, account, f"arn:aws:iam::{account}:root"):
            return True
        kind, _, name = resource.partition("/")
        if kind == "assumed-role" and expected == (
                f"arn:aws:iam::{account}:role/{name.split('/')[0]}"):
            return True
    return False


def trusts(document: dict, caller: str, context: dict) -> bool:
    """Whether a role's trust policy lets `caller` assume it, with the request's `context`."""
    evaluated = RequestContext((), {key: [value] for key, value in context.items()},
                               strict=True)
    allowed = False
    for statement in document["Statement"]:
        actions = statement.get("Action", [])
        if not any(fnmatch.fnmatchcase("sts:AssumeRole", a)
                   for a in ([actions] if isinstance(actions, str) else actions)):
            continue
        if not (_principal_matches(statement.get("Principal", {}), caller)
                and conditions_met(statement.get("Condition") or {}, evaluated)):
            continue
        if statement["Effect"] == "Deny":
            return False
        allowed = True
    return allowed


def patch_trust():
    """moto reads a role's trust policy only when the role is in the caller's own account (so
    no cross-account AssumeRole is ever checked), compares the caller's session ARN with the
    trust's principal as a string (no role ARN or account principal ever matches), and passes
    a condition on any key but sts:ExternalId, or on a key the request lacks. AWS checks the
    trust of the role in its own account (`trusts`), with aws:PrincipalOrgID the caller's
    organization."""
    from moto.iam.access_control import IAMRequestBase
    from moto.iam.exceptions import NotFoundException
    from moto.iam.models import iam_backends
    from moto.iam.utils import format_incoming_conditional_values
    from moto.utilities.utils import get_partition

    def _role(self, arn):
        try:
            return iam_backends[arn.split(":")[4]][get_partition(self._region)].get_role_by_arn(
                arn)
        except (NotFoundException, IndexError):
            return None

    def _is_assuming_role_operation(self, resource_arn):
        return self._action == "sts:AssumeRole" and _role(self, resource_arn) is not None

    def _check_role_trust_relationship(self, role_arn):
        document = _role(self, role_arn).assume_role_policy_document
        caller = self._access_key.arn
        context = format_incoming_conditional_values(self._data)
        organization = _org_of(caller.split(":")[4], get_partition(self._region))
        if organization:
            context["aws:PrincipalOrgID"] = organization
        return trusts(json.loads(document) if isinstance(document, str) else document,
                      caller, context)

    IAMRequestBase._is_assuming_role_operation = _is_assuming_role_operation
    IAMRequestBase._check_role_trust_relationship = _check_role_trust_relationship


def patch_presigned_s3():
    """moto reads a request's keys from its Authorization header only, so under enforcement a
    presigned S3 request (SigV4 in the query string, no header) fails (a KeyError, 500). AWS
    authorizes it as its signer, for that one request (method, bucket, key, query) until it
    expires: check its signature and expiry, then the signer's policies, as for any request."""
    import datetime
    from urllib.parse import parse_qs, urlencode, urlparse, urlunparse

    from botocore.auth import S3SigV4QueryAuth
    from botocore.awsrequest import AWSRequest
    from moto.core.authorization import ActionAuthenticatorMixin
    from moto.iam.access_control import S3IAMRequest

    from local.iam import enforcing

    class PresignedS3IAMRequest(S3IAMRequest):
        query: dict = {}  # the request's, set on a subclass made per request (threads)
        url = ""

        def check_signature(self):
            query = self.query
            signed = datetime.datetime.strptime(query["X-Amz-Date"], "%Y%m%dT%H%M%SZ")
            expires = signed + datetime.timedelta(seconds=int(query["X-Amz-Expires"]))
            if datetime.datetime.utcnow() > expires:
                self._raise_access_denied()  # "Request has expired", in AWS's words
            auth = S3SigV4QueryAuth(self._access_key.create_credentials(), "s3", self._region,
                                    expires=int(query["X-Amz-Expires"]))
            parts = urlparse(self.url)
            unsigned = urlencode([(k, v) for k, v in parse_qs(parts.query,
                                                               keep_blank_values=True).items()
                                  if not k.startswith("X-Amz-")], doseq=True)
            request = AWSRequest(self._method, urlunparse(parts._replace(query=unsigned)),
                                 headers={"Host": self._headers.get("Host", parts.netloc)})
            request.context["timestamp"] = query["X-Amz-Date"]
            auth._modify_request_before_signing(request)
            canonical = auth.canonical_request(request)
            if auth.signature(auth.string_to_sign(request, canonical),
                              request) != query["X-Amz-Signature"]:
                self._raise_signature_does_not_match()

    original = ActionAuthenticatorMixin._authenticate_and_authorize_s3_action

    def _authenticate_and_authorize_s3_action(self, bucket_name=None, key_name=None):
        query = {k: v[0] for k, v in parse_qs(urlparse(self.uri).query).items()}
        if (not enforcing() or "Authorization" in self.headers
                or "X-Amz-Credential" not in query):
            return original(self, bucket_name, key_name)
        headers = self.headers
        self.headers = {**dict(headers), "Authorization": (
            f"AWS4-HMAC-SHA256 Credential={query['X-Amz-Credential']}, "
            f"SignedHeaders={query.get('X-Amz-SignedHeaders', '')}, "
            f"Signature={query.get('X-Amz-Signature', '')}")}
        if "X-Amz-Security-Token" in query:
            self.headers["X-Amz-Security-Token"] = query["X-Amz-Security-Token"]
        presigned = type("Presigned", (PresignedS3IAMRequest,), {"query": query, "url": self.uri})
        arn = f"{bucket_name or '*'}/{key_name}" if key_name else (bucket_name or "*")
        try:
            self._authenticate_and_authorize_action(presigned, f"arn:aws:s3:::{arn}")
        finally:
            self.headers = headers

    ActionAuthenticatorMixin._authenticate_and_authorize_s3_action = (
        _authenticate_and_authorize_s3_action)
