"""CloudTrail on the embedded AWS: each successful mutating EC2 and IAM call becomes the event
CloudTrail delivers to EventBridge ("AWS API Call via CloudTrail").

moto keeps no trail. AWS puts every management call on the default event bus of the caller's
account, in the call's region (IAM's in us-east-1 only: IAM is global), where rules match it like
any other event. A WSGI middleware in front of moto (behind the fault middleware: an injected
failure is a failed call) sees each request with its answer; a successful call that is not a
read (Describe*, Get*, List*) is put on moto's bus once answered, in the background (counted by
the bridge, so `wait_idle()` waits for its delivery), so the caller waits for none of it and no
request fails because its event could not be built.

The detail is CloudTrail's (eventVersion 1.08). `userIdentity` is the access key as moto knows it:
an assumed role with its session issuer (the app's functions run as their own roles, the state
machine as its role), an IAM user, or the account's root (moto's default keys). Parameters and
responses are read with botocore's model of the service and rendered as CloudTrail renders them:
EC2's older APIs in their XML names, lowerCamel, lists as {"items": [...]} (`EC2_RENAMED` where
CloudTrail's name is not the model's); EC2's newer APIs wrapped as {"<Action>Request": {...}} in
the query's own names, a list's members tagged with their position (`EC2_WRAPPED`); IAM's in
lowerCamel member names.
"""

import json
import logging
import re
import threading
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Callable, NamedTuple
from urllib.parse import parse_qs

from local.faults import read_body
from local.patches import wiring

log = logging.getLogger("local.cloudtrail")

DETAIL_TYPE = "AWS API Call via CloudTrail"
SERVICES = ("ec2", "iam")
GLOBAL_REGION = "us-east-1"  # where IAM's events are delivered
READ_ONLY = ("Describe", "Get", "List")
EC2_XMLNS = "http://ec2.amazonaws.com/doc/2016-11-15/"
# EC2 calls CloudTrail records wrapped: {"<Action>Request": {...}} and {"<Action>Response": {...}}.
EC2_WRAPPED = frozenset({
    "AssociateIamInstanceProfile", "ReplaceIamInstanceProfileAssociation",
    "DisassociateIamInstanceProfile", "ModifyInstanceMetadataOptions", "ModifySecurityGroupRules",
    "CreateSnapshots",
})
# Member -> (CloudTrail's name, the key of each scalar item) where CloudTrail's is not the model's.
EC2_RENAMED = {
    "Groups": ("groupSet", "groupId"),
    "InstanceIds": ("instancesSet", "instanceId"),
    "Resources": ("resourcesSet", "resourceId"),
    "Tags": ("tagSet", None),
    "Return": ("_return", None),
}
# What CloudTrail records of a structure even when the request leaves it out.
EC2_DEFAULTS = {
    "IpPermission": {"groups": {}, "ipRanges": {}, "ipv6Ranges": {}, "prefixListIds": {}},
    "StopInstancesRequest": {"force": False},
}
_SIGNATURE = re.compile(r"Credential=([^/]+)/\d{8}/([^/]+)/([^/]+)/aws4_request")
_SCALARS = {"boolean": lambda v: v == "true", "integer": int, "long": int, "float": float,
            "double": float}
_lock = threading.Lock()
_models: dict = {}


@dataclass
class Call:
    """One request to EC2 or IAM, as the middleware saw it."""

    service: str
    action: str
    form: dict  # parameter -> value, as sent
    access_key: str  # the signature's, and its region
    region: str
    source_ip: str
    user_agent: str
    time: datetime
    response: bytes = b""  # the answer: its body and moto's id for the request
    request_id: str = ""


class CloudTrailMiddleware:
    """WSGI middleware in front of moto's app: a successful mutating EC2 or IAM call, once
    answered, is put on the caller's default bus as CloudTrail's event."""

    def __init__(self, app):
        self.app = app

    def __call__(self, environ, start_response):
        call = _mutating_call(environ)
        if call is None:
            return self.app(environ, start_response)
        answered = []

        def capture(status, headers, exc_info=None):
            answered.append((status, {name.lower(): value for name, value in headers}))
            return start_response(status, headers, exc_info)

        answer = self.app(environ, capture)
        try:
            body = b"".join(answer)
        finally:
            getattr(answer, "close", lambda: None)()
        if answered and answered[0][0].startswith("2"):
            call.response = body
            call.request_id = answered[0][1].get("x-amzn-requestid") or str(uuid.uuid4())
            bridge = wiring.bridge
            if bridge is None:
                deliver(call)
            else:
                bridge.submit(deliver, call)
        return [body]


def _mutating_call(environ) -> Call | None:
    """The request as a Call if it is a signed EC2 or IAM call that may change something."""
    signature = _SIGNATURE.search(environ.get("HTTP_AUTHORIZATION", ""))
    if signature is None or signature.group(3) not in SERVICES:
        return None
    raw = parse_qs(read_body(environ) or environ.get("QUERY_STRING", ""), keep_blank_values=True)
    form = {key: values[0] for key, values in raw.items()}
    action = form.get("Action", "")
    if not action or action.startswith(READ_ONLY):
        return None
    return Call(signature.group(3), action, form, signature.group(1), signature.group(2),
                environ.get("REMOTE_ADDR", ""), environ.get("HTTP_USER_AGENT", ""),
                datetime.now(timezone.utc))


def deliver(call: Call) -> None:
    """Put the call's event on its account's default bus (never raises: a call whose event
    cannot be built is logged, as the request it follows has already been answered)."""
    try:
        from moto.events.models import events_backends
        from moto.iam.models import get_account_id_from

        account = get_account_id_from(call.access_key)
        region = GLOBAL_REGION if call.service == "iam" else call.region
        events_backends[account][region].put_events([{
            "Source": f"aws.{call.service}", "DetailType": DETAIL_TYPE,
            "Detail": json.dumps(detail(call, account, region), default=str)}])
    except Exception:
        log.exception("no CloudTrail event for %s:%s", call.service, call.action)


def detail(call: Call, account: str, region: str) -> dict:
    """The event's detail, as CloudTrail writes it."""
    operation = _model(call.service).operation_model(call.action)
    return {
        "eventVersion": "1.08",
        "userIdentity": user_identity(call.access_key, account),
        "eventTime": call.time.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "eventSource": f"{call.service}.amazonaws.com",
        "eventName": call.action,
        "awsRegion": region,
        "sourceIPAddress": call.source_ip,
        "userAgent": call.user_agent,
        "requestParameters": request_parameters(call.service, operation, call.form),
        "responseElements": response_elements(call.service, operation, call.response,
                                              call.request_id),
        "requestID": call.request_id,
        "eventID": str(uuid.uuid4()),
        "readOnly": False,
        "eventType": "AwsApiCall",
        "managementEvent": True,
        "recipientAccountId": account,
        "eventCategory": "Management",
    }


def user_identity(access_key: str, account: str) -> dict:
    """Who signed, as CloudTrail names them: from the key as moto issued it."""
    from moto.iam.models import iam_backends
    from moto.sts.models import sts_backends

    assumed = sts_backends[account]["aws"].get_assumed_role_from_access_key(access_key)
    if assumed is not None:
        role_name = assumed.role_arn.rsplit("/", 1)[-1]
        role_id = _role_id(account, assumed.role_arn)
        return {
            "type": "AssumedRole", "principalId": f"{role_id}:{assumed.session_name}",
            "arn": assumed.arn, "accountId": account, "accessKeyId": access_key,
            "sessionContext": {
                "sessionIssuer": {"type": "Role", "principalId": role_id,
                                  "arn": assumed.role_arn, "accountId": account,
                                  "userName": role_name},
                "webIdFederationData": {},
                "attributes": {"creationDate": assumed.access_key.create_date.strftime(
                    "%Y-%m-%dT%H:%M:%SZ"), "mfaAuthenticated": "false"}}}
    for user in list(iam_backends[account]["aws"].users.values()):
        if any(key.access_key_id == access_key for key in user.access_keys):
            return {"type": "IAMUser", "principalId": user.id, "arn": user.arn,
                    "accountId": account, "accessKeyId": access_key, "userName": user.name}
    return {"type": "Root", "principalId": account, "arn": f"arn:aws:iam::{account}:root",
            "accountId": account, "accessKeyId": access_key}


def _role_id(account: str, role_arn: str) -> str:
    """The role's id; one derived from its ARN for a role moto was never told of (moto issues
    credentials for any role, and the functions' roles exist only under `enforce_iam()`)."""
    import hashlib

    from moto.iam.models import iam_backends

    try:
        return iam_backends[account]["aws"].get_role_by_arn(role_arn).id
    except Exception:
        return "AROA" + hashlib.sha1(role_arn.encode()).hexdigest()[:17].upper()


def request_parameters(service: str, operation, form: dict) -> dict | None:
    shape = operation.input_shape
    if shape is None:
        return None
    params = _members(shape, form, "", operation.metadata["protocol"])
    if service == "iam":
        rendered = _render(shape, params, IAM)
    elif operation.name in EC2_WRAPPED:
        rendered = {f"{operation.name}Request": _render(shape, params, WRAPPED)}
    else:
        rendered = _render(shape, _one_rule_as_ip_permissions(shape, params), EC2)
    return rendered or None


def response_elements(service: str, operation, body: bytes, request_id: str) -> dict | None:
    shape = operation.output_shape
    parsed = {}
    if shape is not None:
        from botocore.parsers import create_parser

        parsed = create_parser(operation.metadata["protocol"]).parse(
            {"body": body, "headers": {}, "status_code": 200}, shape)
        parsed.pop("ResponseMetadata", None)
    if service == "iam":
        return _render(shape, parsed, IAM) if shape is not None else None
    rendered = _render(shape, parsed, EC2) if shape is not None else {"_return": True}
    if operation.name in EC2_WRAPPED:
        return {f"{operation.name}Response": {"xmlns": EC2_XMLNS, "requestId": request_id,
                                               **rendered}}
    return {"requestId": request_id, **rendered}


def _one_rule_as_ip_permissions(shape, params: dict) -> dict:
    """The security group calls also take a single rule flat (IpProtocol, FromPort, ToPort,
    CidrIp); EC2 reads it as one IpPermission, and CloudTrail records it so."""
    if "IpPermissions" not in shape.members or "IpPermissions" in params:
        return params
    flat = ("IpProtocol", "FromPort", "ToPort", "CidrIp")
    rule = {key: params[key] for key in flat[:3] if key in params}
    if "CidrIp" in params:
        rule["IpRanges"] = [{"CidrIp": params["CidrIp"]}]
    if not rule:
        return params
    return {**{k: v for k, v in params.items() if k not in flat}, "IpPermissions": [rule]}


# -- reading a query-protocol form with the service's model ----------------------------------
def _model(service: str):
    with _lock:
        if service not in _models:
            import botocore.session

            _models[service] = botocore.session.get_session().get_service_model(service)
        return _models[service]


def _query_name(member, name: str, protocol: str) -> str:
    """The member's name on the wire, as botocore serializes it for `protocol`."""
    if protocol != "ec2":
        return member.serialization.get("name", name)
    if "queryName" in member.serialization:
        return member.serialization["queryName"]
    located = member.serialization.get("name")
    return located[0].upper() + located[1:] if located else name


def _members(shape, form: dict, prefix: str, protocol: str) -> dict:
    values = {}
    for name, member in shape.members.items():
        value = _value(member, form, prefix + _query_name(member, name, protocol), protocol)
        if value is not None:
            values[name] = value
    return values


def _value(shape, form: dict, key: str, protocol: str):
    """The value sent at `key`, typed as the model says (None: not sent)."""
    if shape.type_name not in ("structure", "list"):
        if key not in form:
            return None
        if shape.type_name == "timestamp":
            from botocore.utils import parse_timestamp

            return parse_timestamp(form[key])
        return _SCALARS.get(shape.type_name, str)(form[key])
    if not any(sent.startswith(key + ".") for sent in form):
        return [] if shape.type_name == "list" and form.get(key) == "" else None
    if shape.type_name == "structure":
        return _members(shape, form, key + ".", protocol)
    if protocol != "ec2":  # the query protocol names each member: Key.member.N
        key = f"{key}.{shape.member.serialization.get('name', 'member')}"
    items = []
    while (item := _value(shape.member, form, f"{key}.{len(items) + 1}", protocol)) is not None:
        items.append(item)
    return items


# -- rendering as CloudTrail does --------------------------------------------------------------
class Style(NamedTuple):
    key: Callable  # (member name, member shape) -> the key CloudTrail records
    sequence: Callable  # (member name, rendered items) -> what CloudTrail records for a list
    stamp: Callable  # datetime -> what CloudTrail records for a timestamp
    defaults: dict  # structure shape name -> what is recorded even when not sent


def _camel(name: str) -> str:
    return name[0].lower() + name[1:]


def _ec2_key(name, member) -> str:
    return EC2_RENAMED[name][0] if name in EC2_RENAMED else _camel(
        member.serialization.get("name", name))


def _ec2_items(name, items) -> dict:
    item_key = EC2_RENAMED.get(name, (None, None))[1]
    items = [{item_key: item} if item_key and not isinstance(item, dict) else item
             for item in items]
    return {"items": items} if items else {}


def _tagged(_name, items):
    tagged = [{**item, "tag": n} if isinstance(item, dict) else {"content": item, "tag": n}
              for n, item in enumerate(items, 1)]
    return tagged[0] if len(tagged) == 1 else tagged


def _iam_stamp(moment: datetime) -> str:
    return (f"{moment:%b} {moment.day}, {moment.year}, {moment.hour % 12 or 12}:{moment:%M:%S} "
            f"{moment:%p}")


EC2 = Style(_ec2_key, _ec2_items, lambda moment: int(moment.timestamp() * 1000), EC2_DEFAULTS)
WRAPPED = Style(lambda name, member: _query_name(member, name, "ec2"), _tagged,
                lambda moment: moment.strftime("%Y-%m-%dT%H:%M:%SZ"), {})
IAM = Style(lambda name, _member: _camel(name), lambda _name, items: items, _iam_stamp, {})


def _render(shape, value, style: Style, name: str = ""):
    if shape.type_name == "structure":
        rendered = dict(style.defaults.get(shape.name, {}))
        for member_name, member in shape.members.items():
            if member_name in value:
                rendered[style.key(member_name, member)] = _render(
                    member, value[member_name], style, member_name)
        return rendered
    if shape.type_name == "list":
        return style.sequence(name, [_render(shape.member, item, style) for item in value])
    if shape.type_name == "map":
        return {key: _render(shape.value, item, style) for key, item in value.items()}
    if shape.type_name == "timestamp":
        return style.stamp(value)
    return value
