"""Reading CloudTrail's events: which call, who made it, which ids it names (wherever its
request or response puts them)."""

import pytest

from chalicelib import tamper

HOME, MEMBER = "123456789012", "111111111111"


def event(name: str, request=None, response=None, issuer: str | None = None, **more) -> dict:
    identity = {"type": "IAMUser", "arn": f"arn:aws:iam::{MEMBER}:user/mallory",
                "accountId": MEMBER, "principalId": "AIDAEXAMPLE", "accessKeyId": "AKIAEXAMPLE"}
    if issuer:
        identity = {"type": "AssumedRole", "arn": "arn:aws:sts::x:assumed-role/r/s",
                    "accountId": MEMBER, "sessionContext": {"sessionIssuer": {
                        "type": "Role", "arn": issuer}}}
    return {"eventVersion": "1.08", "userIdentity": identity, "eventTime": "2026-12-02T10:00:00Z",
            "eventSource": "ec2.amazonaws.com", "eventName": name, "awsRegion": "eu-west-1",
            "sourceIPAddress": "203.0.113.7", "userAgent": "aws-cli/2", "requestParameters":
            request, "responseElements": response, "eventID": "e-1", "readOnly": False,
            "eventType": "AwsApiCall", "recipientAccountId": MEMBER, **more}


def test_ids_are_found_wherever_the_call_puts_them():
    call = tamper.parse(event(
        "ReplaceIamInstanceProfileAssociation",
        {"ReplaceIamInstanceProfileAssociationRequest": {
            "AssociationId": "iip-assoc-060bae234aac2e7fa",
            "IamInstanceProfile": {"Name": "AdminRole"}}},
        {"ReplaceIamInstanceProfileAssociationResponse": {"iamInstanceProfileAssociation": {
            "instanceId": "i-087711ddaf98f9489", "associationId": "iip-assoc-0b215292fab192820"}}}))
    assert call.ids["instance"] == ["i-087711ddaf98f9489"]
    assert call.ids["association"] == ["iip-assoc-060bae234aac2e7fa",
                                       "iip-assoc-0b215292fab192820"]
    assert (call.account, call.region, call.source_ip) == (MEMBER, "eu-west-1", "203.0.113.7")
    assert call.who == {"type": "IAMUser", "arn": f"arn:aws:iam::{MEMBER}:user/mallory",
                        "accountId": MEMBER, "principalId": "AIDAEXAMPLE",
                        "accessKeyId": "AKIAEXAMPLE"}


def test_tag_keys_are_read_and_a_delete_without_keys_deletes_every_tag():
    named = tamper.parse(event("DeleteTags", {
        "resourcesSet": {"items": [{"resourceId": "i-0123456789abcdef0"}]},
        "tagSet": {"items": [{"key": "QuarantineStatus"}]}}))
    assert named.tag_keys == ("QuarantineStatus",)
    assert tamper.parse(event("DeleteTags", {"resourcesSet": {"items": [
        {"resourceId": "i-0123456789abcdef0"}]}})).tag_keys is None


@pytest.mark.parametrize("detail", [
    None, "text", {}, event("RunInstances"),  # not followed
    event("ModifyInstanceAttribute", errorCode="UnauthorizedOperation"),  # it failed
    event("ModifyInstanceAttribute", recipientAccountId="12345678901\n"),
    event("ModifyInstanceAttribute", awsRegion="../../etc"),
])
def test_what_is_no_followed_call_is_refused(detail):
    with pytest.raises(tamper.NotACall):
        tamper.parse(detail)


def test_an_enormous_request_is_searched_only_so_far():
    flood = {"items": [{"resourceId": f"i-{n:017x}"} for n in range(20000)]}
    call = tamper.parse(event("DeleteTags", {"resourcesSet": flood}))
    assert 0 < len(call.ids["instance"]) < 20000
    assert all(len(value) <= tamper.TEXT for value in call.who.values())


def test_a_group_named_by_a_call_that_changes_no_group_is_only_a_value():
    """A description or an interface's new groups name groups: that changes no group, and
    must not send the watch to every incident of the group's VPC."""
    call = tamper.parse(event("ModifyNetworkInterfaceAttribute", {
        "networkInterfaceId": "eni-0123456789abcdef0",
        "groupSet": {"items": [{"groupId": "sg-0123456789abcdef0"}]}}))
    assert call.ids["group"] == [] and call.ids["interface"] == ["eni-0123456789abcdef0"]
    rule = tamper.parse(event("AuthorizeSecurityGroupEgress", {
        "groupId": "sg-0123456789abcdef0", "ipPermissions": {"items": []}}))
    assert rule.ids["group"] == ["sg-0123456789abcdef0"]


@pytest.mark.parametrize("issuer, own", [
    ("arn:aws:iam::123456789012:role/ec2-quarantine-dev-on_tampering", True),
    ("arn:aws:iam::123456789012:role/ec2-quarantine-dev-sweep", True),
    (f"arn:aws:iam::{MEMBER}:role/ec2-quarantine-member-dev-on_tampering", True),
    # the product's other roles, another stage's, a look-alike, another account's: checked
    ("arn:aws:iam::123456789012:role/ec2-quarantine-dev-contain", False),
    ("arn:aws:iam::123456789012:role/ec2-quarantine-prod-sweep", False),
    ("arn:aws:iam::123456789012:role/ec2-quarantine-dev-sweep2", False),
    (f"arn:aws:iam::{MEMBER}:role/ec2-quarantine-dev-sweep", False),
    ("arn:aws:iam::123456789012:role/path/ec2-quarantine-dev-sweep", False),
    (None, False),
])
def test_only_the_watchs_own_repairs_are_left_alone(issuer, own):
    from chalicelib import settings

    current = settings.load({
        "STATE_MACHINE_ARN": f"arn:aws:states:us-east-1:{HOME}:stateMachine:ec2-quarantine-dev",
        "TOPIC_ARN": f"arn:aws:sns:us-east-1:{HOME}:t", "INCIDENTS_TABLE": "t",
        "EVIDENCE_BUCKET": "b", "MEMBER_ACCOUNTS": MEMBER})
    call = tamper.parse(event("ModifyInstanceAttribute", {"instanceId": "i-0123456789abcdef0"},
                              issuer=issuer))
    assert tamper.by_the_watch(call, HOME, current) is own
