"""Least privilege, proven on the embedded AWS with moto's IAM enforcement on: each handler and
step runs with the credentials of its own deployed role (the policy `make policies` generates),
the state machine's integrations with its role. The pipelines below use every action every
function declares, and no other: so removing any single action makes them fail (a few removals
are shown directly). The policies' logs:* actions are the Lambda runtime's (it writes the
functions' logs), not the functions' own: `permissions.needs()` leaves them out, so does this."""

import json
from datetime import datetime, timedelta, timezone

import pytest

from chalicelib import incidents, settings, tamper, workflow
from deploy import grants, member_role, names, permissions
from local import iam, provision
from local.victims import make_fleet_member, make_instance_profile
from tests.helpers import (
    api,
    deliver_finding,
    guardduty_event,
    interface_groups,
    make_victim,
    messages,
    principal,
    remove_action,
    product_groups,
    snapshots_of,
    stolen_credentials_event,
    subscribe_queue,
    wait_execution,
)

MEMBER = "111111111111"
WATCH = ("on_tampering", "sweep")  # the tamper watch's functions
FORENSIC = "210987654321"
# Declared, but used only where a run here cannot reach cheaply; each says when it is used.
NOT_EXERCISED = {
    # a capture outliving its timeout (>= 10 s): test_a_memory_capture_outliving_its_timeout…
    "capture_memory": {"ssm:CancelCommand", "s3:AbortMultipartUpload"},
    "report": {"kms:GenerateMac"},  # seals the changes of a Contain that could not record them
    # GuardDuty refusing a scan within the hour of its own: test_malware_scan.py's
    # test_a_scan_guardduty_started_within_the_hour_is_the_one_followed
    "check_snapshots": {"guardduty:ListMalwareScans"},
}


def _give_profile(stack, instance_ids):
    """Fleet members launch without a profile; real ones carry one (credentials to cut)."""
    iam_client, ec2 = stack.client("iam"), stack.client("ec2")
    iam_client.create_role(RoleName="web", AssumeRolePolicyDocument=json.dumps(
        provision.EC2_TRUST))
    iam_client.create_instance_profile(InstanceProfileName="web")
    iam_client.add_role_to_instance_profile(InstanceProfileName="web", RoleName="web")
    for instance_id in instance_ids:
        ec2.associate_iam_instance_profile(IamInstanceProfile={"Name": "web"},
                                           InstanceId=instance_id)


def _host_with_nothing_on_s3(stack) -> tuple[str, str]:
    """An SSM-managed instance whose profile's role is denied every S3 action: its id, and
    that role's name."""
    victim = make_victim(stack, interfaces=1, volumes=1)["instance_id"]
    role = _profiles(stack, victim)[0]  # the role has the profile's name
    stack.client("iam").put_role_policy(RoleName=role, PolicyName="no-s3", PolicyDocument=(
        json.dumps({"Version": "2012-10-17",
                    "Statement": [{"Effect": "Deny", "Action": "s3:*", "Resource": "*"}]})))
    stack.manage_with_ssm(victim)
    return victim, role


def _memory_in_bucket(stack, incident_id):
    s3, bucket = stack.client("s3"), stack.names["EVIDENCE_BUCKET"]
    listed = s3.list_objects_v2(Bucket=bucket, Prefix=f"{incident_id}/memory/")
    uploads = s3.list_multipart_uploads(Bucket=bucket).get("Uploads", [])
    return {o["Key"]: o["Size"] for o in listed.get("Contents", [])}, uploads


def test_the_memory_image_lands_in_the_bucket_with_no_right_of_the_host_on_it(stack):
    """The agent PUTs to presigned part URLs with no credentials at all (the embedded AWS's
    agent), its instance's role may do nothing on S3: the image is there, complete."""
    from local import scenario

    stack.configure(MEMORY_CAPTURE_DOCUMENT="AWSSupport-ExampleMemoryCapture")
    victim, role = _host_with_nothing_on_s3(stack)

    with stack.enforce_iam():
        record = _finish(stack, deliver_finding(stack, guardduty_event(victim)))
        objects, uploads = _memory_in_bucket(stack, record["incident_id"])

    key = f"{record['incident_id']}/memory/{victim}.mem"
    assert record["memory"]["outcome"] == "captured" and record["status"] == "CONTAINED"
    assert objects == {key: len(scenario.MEMORY_IMAGE)} and uploads == []
    [change] = [c for c in record["changes"] if c["action"] == "capture-memory"]
    assert (change["after"]["object"], change["after"]["size"]) == (
        f"s3://{stack.names['EVIDENCE_BUCKET']}/{key}", len(scenario.MEMORY_IMAGE))
    assert change["after"]["version_id"]
    assert not [d for d in iam.authorizations.decisions() if d.principal == role]
    # The parts' PUTs were authorized as the step that signed them (one upload, one object).
    assert {"s3:PutObject", "s3:ListMultipartUploadParts"} <= iam.authorizations.allowed(
        names.function_role(stack.stage, "capture_memory"))


def test_a_memory_capture_outliving_its_timeout_is_cancelled_and_leaves_no_upload(stack):
    stack.configure(MEMORY_CAPTURE_DOCUMENT="AWSSupport-ExampleMemoryCapture",
                    MEMORY_CAPTURE_TIMEOUT_SECONDS="10")
    victim, _ = _host_with_nothing_on_s3(stack)
    stack.hang_ssm_commands()

    with stack.enforce_iam():
        record = _finish(stack, deliver_finding(stack, guardduty_event(victim)))
        objects, uploads = _memory_in_bucket(stack, record["incident_id"])

    assert record["memory"]["outcome"] == "failed" and record["status"] == "CONTAINED"
    assert "TimedOut" in str(record["errors"])
    assert objects == {} and uploads == []
    role = names.function_role(stack.stage, "capture_memory")
    assert {"ssm:CancelCommand", "s3:AbortMultipartUpload"} <= iam.authorizations.allowed(role)


def _tampered_isolation_group(stack, vpc_id):
    """The VPC's isolation group, as someone left it: with a rule (containment removes it)."""
    ec2 = stack.client("ec2")
    group = ec2.create_security_group(
        GroupName="ec2-quarantine-isolation", Description="isolation", VpcId=vpc_id,
        TagSpecifications=[{"ResourceType": "security-group", "Tags": [
            {"Key": "ec2-quarantine", "Value": "isolation"}]}])["GroupId"]
    ec2.authorize_security_group_ingress(GroupId=group, IpPermissions=[{
        "IpProtocol": "tcp", "FromPort": 22, "ToPort": 22, "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}])
    return group


def _finish(stack, started):
    """The incident once its execution ended, read over the API (as the API's role)."""
    wait_execution(stack, started["execution_arn"], timeout=90)
    stack.bridge.wait_idle()
    status, record = api(stack, "GET", f"/incidents/{started['incident_id']}")
    assert status == 200, record
    return record


def _release(stack, instance_id, account=None, reregister=True):
    body = {"instance_id": instance_id, "reason": "cleared", "reregister": reregister}
    if account:
        body["account_id"] = account
    status, answer = api(stack, "POST", "/release", body)
    assert status == 202, answer
    return answer


def _profiles(stack, instance_id):
    associations = stack.client("ec2").describe_iam_instance_profile_associations(Filters=[
        {"Name": "instance-id", "Values": [instance_id]},
        {"Name": "state", "Values": ["associated"]}])["IamInstanceProfileAssociations"]
    return [a["IamInstanceProfile"]["Arn"].rsplit("/", 1)[-1] for a in associations]


def test_every_function_uses_exactly_the_actions_its_role_grants(stack, monkeypatch):
    queue = subscribe_queue(stack)
    stack.configure(MEMBER_ACCOUNTS=MEMBER, CREDENTIALS_MODE="deny-all",
                    REVOKE_ROLE_SESSIONS="true", STOP_AFTER_EVIDENCE="true",
                    FORENSIC_ACCOUNT_ID=FORENSIC, DISASSOCIATE_ELASTIC_IP="true",
                    MEMORY_CAPTURE_DOCUMENT="AWSSupport-ExampleMemoryCapture",
                    MALWARE_SCAN="true")
    ran_under = [settings.get()]  # the functions' policies follow the settings in force
    fleet = make_fleet_member(stack)
    victim, sibling = fleet["instance_id"], fleet["members"][1]
    _give_profile(stack, [victim, sibling])
    stack.client("ec2").create_tags(Resources=[sibling], Tags=[  # from an earlier incident
        {"Key": "QuarantineStatus", "Value": "RELEASED"}])
    stack.manage_with_ssm(victim)
    tampered = _tampered_isolation_group(stack, fleet["vpc_id"])
    iam.provision_member_account(stack, MEMBER)
    remote = make_victim(stack, interfaces=1, volumes=1, account=MEMBER)  # revoked there
    (eni,) = fleet["interfaces"]

    with stack.enforce_iam():
        # A finding for the fleet member (every option on) and one in a member account.
        started = [deliver_finding(stack, guardduty_event(victim)),
                   deliver_finding(stack, guardduty_event(remote["instance_id"], account=MEMBER))]
        assert [s["decision"] for s in started] == ["acted", "acted"], started
        record, remote_record = [_finish(stack, s) for s in started]
        assert record["status"] == "CONTAINED", record["errors"]
        assert remote_record["status"] == "CONTAINED", remote_record["errors"]
        isolation = product_groups(stack, fleet["vpc_id"])["isolation"]
        assert isolation["GroupId"] == tampered and not isolation["IpPermissions"]
        assert not isolation["IpPermissionsEgress"]
        assert interface_groups(stack, eni) == [tampered]
        assert _profiles(stack, victim) == [names.deny_all_profile(stack.stage)]
        assert snapshots_of(stack, record["incident_id"])
        # Further findings on both: recorded on the incidents and announced.
        # The victim's is a credential exfiltration: its sessions are denied from here too.
        again = [deliver_finding(stack, stolen_credentials_event(victim)),
                 deliver_finding(stack, guardduty_event(remote["instance_id"], account=MEMBER,
                                                        finding_id="f2"))]
        assert [a["decision"] for a in again] == ["recorded", "recorded"], again

        # Over HTTP: the sibling (Standby, profile cut, stop protection), the member's active
        # incident found again, both contained ones released meanwhile.
        stack.configure(CREDENTIALS_MODE="disassociate", AUTOSCALING_MODE="standby",
                        DISABLE_API_STOP="true", STOP_AFTER_EVIDENCE="false")
        ran_under.append(settings.get())
        # Contain is retried a while (throttled): the sibling's claim has no mark of a started
        # execution yet, and with no grace left further requests check it with Step Functions.
        monkeypatch.setattr(workflow, "START_GRACE_SECONDS", 0)
        stack.faults.arm("lambda", "Invoke", "TooManyRequestsException", count=2,
                         resource=names.function(stack.stage, "contain"))
        status, opened = api(stack, "POST", "/quarantine", {"instance_id": sibling,
                                                            "reason": "beaconing"})
        assert status == 202, opened
        assert deliver_finding(stack, guardduty_event(sibling, finding_id="f3"))[
            "decision"] == "recorded"
        status, same = api(stack, "POST", "/quarantine", {"instance_id": sibling})
        assert status == 200 and same["incident_id"] == opened["incident_id"], same
        status, found = api(stack, "POST", "/quarantine", {
            "instance_id": remote["instance_id"], "account_id": MEMBER,
            "finding": stolen_credentials_event(remote["instance_id"], account=MEMBER)})
        assert status == 200 and found["incident_id"] == remote_record["incident_id"], found
        releases = [_release(stack, victim), _release(stack, remote["instance_id"], MEMBER)]
        sibling_record = _finish(stack, opened)
        assert sibling_record["status"] == "CONTAINED", sibling_record["errors"]
        status, listed = api(stack, "GET", f"/incidents?instance_id={sibling}")
        assert status == 200 and [i["incident_id"] for i in listed["incidents"]] == [
            opened["incident_id"]]
        status, further = api(stack, "GET", f"/incidents/{opened['incident_id']}/findings")
        assert status == 200 and further["findings_count"] == 2 and [
            f["sequence"] for f in further["findings"]] == [2, 1], further
        status, page = api(stack, "GET", "/incidents?limit=1")  # a sealed page token
        assert status == 200 and page["next_token"], page
        status, rest = api(stack, "GET", f"/incidents?limit=1&next_token={page['next_token']}")
        assert status == 200 and rest["incidents"], rest
        # An exemption granted, listed and revoked: its tag mirrored, then taken away.
        spare = make_victim(stack, interfaces=1, volumes=1)["instance_id"]
        until = (datetime.now(timezone.utc) + timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
        status, granted = api(stack, "POST", "/exemptions", {"instance_id": spare,
                                                             "reason": "test", "expires": until})
        assert status == 201 and "tag_error" not in granted, granted
        status, exempted = api(stack, "GET", "/exemptions")
        assert status == 200 and exempted["exemptions"][0]["standing"] is True, exempted
        status, revoked = api(stack, "DELETE", f"/exemptions/{spare}", {"reason": "over"})
        assert status == 200 and "tag_error" not in revoked, revoked
        releases.append(_release(stack, sibling))
        for release in releases:
            assert wait_execution(stack, release["release_execution_arn"])["status"] == "SUCCEEDED"
        stack.bridge.wait_idle()
        for incident_id in (record["incident_id"], remote_record["incident_id"],
                            opened["incident_id"]):
            status, released = api(stack, "GET", f"/incidents/{incident_id}")
            assert status == 200 and released["status"] == "RELEASED", released
        assert interface_groups(stack, eni) == fleet["interfaces"][eni]
        assert _profiles(stack, victim) == _profiles(stack, sibling) == ["web"]

    reports = [m["Subject"] for m in messages(stack, queue)]
    assert sum(s.endswith(": contained") for s in reports) == 3, reports

    _assert_none_denied()
    # on_tampering and sweep: test_the_tamper_watch_uses_exactly_the_actions_its_roles_grant
    assert not _unlike_declared(stack, permissions.needs().keys() - set(WATCH), ran_under)
    # The state machine's dynamodb:UpdateItem settles an incident whose report step failed:
    # exercised (and shown necessary) by the lambda:InvokeFunction case below.
    assert iam.authorizations.allowed(names.state_machine_role(stack.stage)) == {
        "lambda:InvokeFunction", "sns:Publish"}


def _assert_none_denied():
    decisions = iam.authorizations.decisions()
    assert not [d for d in decisions if not d.allowed], [d for d in decisions if not d.allowed]


def _unlike_declared(stack, functions, ran_under) -> dict:
    """For each of `functions` whose used actions differ from those its policy granted under
    the settings `ran_under` (but NOT_EXERCISED): what was unused, what undeclared."""
    mismatches = {}
    for function in functions:
        used = iam.authorizations.allowed(names.function_role(stack.stage, function))
        declared = {grants.iam_action(a) for current in ran_under
                    for a in permissions.needs(current)[function]}
        expected = declared - NOT_EXERCISED.get(function, set())
        if used != expected:
            mismatches[function] = {"unused": sorted(expected - used),
                                    "undeclared": sorted(used - expected)}
    return mismatches


EVERYTHING = [{"IpProtocol": "-1", "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}]
INSIDER_RIGHTS = ["ec2:ModifyNetworkInterfaceAttribute", "ec2:AuthorizeSecurityGroupIngress",
                  "ec2:AuthorizeSecurityGroupEgress", "ec2:RevokeSecurityGroupIngress",
                  "ec2:RevokeSecurityGroupEgress", "ec2:DeleteTags",
                  "ec2:AssociateIamInstanceProfile", "ec2:ReplaceIamInstanceProfileAssociation",
                  "iam:PassRole", "ec2:ModifyInstanceMetadataOptions",
                  "ec2:ModifyInstanceAttribute", "ec2:StartInstances", "iam:DeleteRolePolicy"]


def _all_traffic(rules) -> set[str]:
    return {r.get("CidrIp") or r.get("CidrIpv6") for rule in rules if rule["IpProtocol"] == "-1"
            for r in rule.get("IpRanges", []) + rule.get("Ipv6Ranges", [])}


class _Contained:
    """A contained instance, the administrator's and an insider's clients where it is, and its
    containment as read once contained (`contained`): whole again is reading the same."""

    def __init__(self, stack, victim, record, account, insider):
        self.victim, self.record, self.insider = victim, record, insider
        self.instance_id, self.eni = victim["instance_id"], next(iter(victim["interfaces"]))
        self.ec2, self.iam = stack.client("ec2", account=account), stack.client(
            "iam", account=account)
        (revoked,) = [c for c in record["changes"] if c["action"] == "revoke-role-sessions"]
        self.revoked = revoked["resource"], revoked["attribute"].split(":", 1)[1]
        self.contained = self.state()
        assert all(self.contained["interfaces"].values()) and self.contained["stopped"]
        assert self.contained["metadata"] == "disabled" and self.contained["protection"]

    def group(self, role: str) -> dict:
        """The product's `role` group in the instance's VPC, as described now."""
        (group,) = [g for g in self.ec2.describe_security_groups(Filters=[
            {"Name": "vpc-id", "Values": [self.victim["vpc_id"]]},
            {"Name": "tag:ec2-quarantine", "Values": [role]}])["SecurityGroups"]]
        return group

    def state(self) -> dict:
        instance = self.ec2.describe_instances(InstanceIds=[self.instance_id])[
            "Reservations"][0]["Instances"][0]
        isolation, open_group = self.group("isolation"), self.group("open")
        role, policy = self.revoked
        tags = {t["Key"]: t["Value"] for t in instance.get("Tags", [])}
        return {
            "interfaces": {n["NetworkInterfaceId"]: [g["GroupId"] for g in n["Groups"]] == [
                isolation["GroupId"]] for n in instance["NetworkInterfaces"]},
            "isolation rules": isolation["IpPermissions"] + isolation["IpPermissionsEgress"],
            "open rules": [_all_traffic(open_group["IpPermissions"]),
                           _all_traffic(open_group["IpPermissionsEgress"])],
            "profiles": [a["IamInstanceProfile"]["Arn"].rsplit("/", 1)[-1]
                         for a in self.ec2.describe_iam_instance_profile_associations(Filters=[
                             {"Name": "instance-id", "Values": [self.instance_id]},
                             {"Name": "state", "Values": ["associated"]}])[
                             "IamInstanceProfileAssociations"]],
            "metadata": instance["MetadataOptions"]["HttpEndpoint"],
            "protection": self.ec2.describe_instance_attribute(
                InstanceId=self.instance_id, Attribute="disableApiTermination")[
                "DisableApiTermination"]["Value"],
            "tags": {key: tags.get(key) for key in ("QuarantineIncident", "QuarantineStatus")},
            "stopped": instance["State"]["Name"] in ("stopping", "stopped"),
            "revocation": self.iam.get_role_policy(RoleName=role, PolicyName=policy)[
                "PolicyDocument"],
        }


def _on_group(operation: str, role: str):
    def undo(scene):
        getattr(scene.insider("ec2"), operation)(GroupId=scene.group(role)["GroupId"],
                                                 IpPermissions=EVERYTHING)
    return undo


def _interface_back(scene):
    scene.insider("ec2").modify_network_interface_attribute(
        NetworkInterfaceId=scene.eni, Groups=scene.victim["interfaces"][scene.eni])


def _untagged(scene):
    scene.insider("ec2").delete_tags(Resources=[scene.group("isolation")["GroupId"]],
                                     Tags=[{"Key": "ec2-quarantine"}])


def _profile_associated(scene):
    scene.insider("ec2").associate_iam_instance_profile(
        InstanceId=scene.instance_id, IamInstanceProfile={"Name": make_instance_profile(scene.iam)})


def _profile_replaced(scene):
    (association,) = scene.ec2.describe_iam_instance_profile_associations(Filters=[
        {"Name": "instance-id", "Values": [scene.instance_id]},
        {"Name": "state", "Values": ["associated"]}])["IamInstanceProfileAssociations"]
    scene.insider("ec2").replace_iam_instance_profile_association(
        AssociationId=association["AssociationId"],
        IamInstanceProfile={"Name": make_instance_profile(scene.iam)})


def _metadata_on(scene):
    scene.insider("ec2").modify_instance_metadata_options(InstanceId=scene.instance_id,
                                                          HttpEndpoint="enabled")


def _protection_off(scene):
    scene.insider("ec2").modify_instance_attribute(InstanceId=scene.instance_id,
                                                   DisableApiTermination={"Value": False})


def _tags_deleted(scene):
    scene.insider("ec2").delete_tags(Resources=[scene.instance_id], Tags=[
        {"Key": "QuarantineIncident"}, {"Key": "QuarantineStatus"}])


def _revocation_deleted(scene):
    role, policy = scene.revoked
    scene.insider("iam").delete_role_policy(RoleName=role, PolicyName=policy)


def _restarted(scene):
    scene.insider("ec2").start_instances(InstanceIds=[scene.instance_id])


# How containment is undone, each on one scene's instance. The interface's call makes the event
# path find its instance (DescribeNetworkInterfaces), a group's call every incident in its VPC
# (watched(): Query); the untagged group is made again (CreateSecurityGroup, its tags).
UNDOINGS = {
    "interface given its groups back": ("deny-all", _interface_back),
    "ingress on the isolation group": ("deny-all", _on_group(
        "authorize_security_group_ingress", "isolation")),
    "egress on the isolation group": ("deny-all", _on_group(
        "authorize_security_group_egress", "isolation")),
    "ingress taken from the open group": ("deny-all", _on_group(
        "revoke_security_group_ingress", "open")),
    "egress taken from the open group": ("deny-all", _on_group(
        "revoke_security_group_egress", "open")),
    "isolation group untagged": ("disassociate", _untagged),
    "profile replaced": ("deny-all", _profile_replaced),
    "profile associated": ("disassociate", _profile_associated),
    "metadata on": ("deny-all", _metadata_on),
    "metadata on in the member account": ("member", _metadata_on),
    "protection off": ("deny-all", _protection_off),
    "tags deleted": ("deny-all", _tags_deleted),
    "revocation deleted": ("deny-all", _revocation_deleted),
    "restarted": ("deny-all", _restarted),
}


def _forward_tampering(stack, account: str) -> None:
    """The member's rule forwarding the tamper events to the home account's bus, as the member
    template makes it (deploy/member_role.py `forwarding`)."""
    events = stack.client("events", account=account)
    rule = member_role.forwarding_rule(stack.stage)
    events.put_rule(Name=rule, EventPattern=json.dumps(tamper.EVENT_PATTERN))
    events.put_targets(Rule=rule, Targets=[{"Id": "central", "Arn": (
        f"arn:aws:events:{stack.region}:{stack.account}:event-bus/default")}])


def _left_open(stack) -> str:
    """A contained incident left OPEN after its execution ended, as a failed report and its
    failed fallback leave it (test_tamper_sweep.py
    test_an_incident_left_open_after_its_execution_ended_is_settled); written before IAM is
    enforced (the test's own credentials may not write the table)."""
    victim = make_victim(stack, interfaces=1, volumes=1)
    started = deliver_finding(stack, guardduty_event(victim["instance_id"]))
    assert _finish(stack, started)["status"] == "CONTAINED"
    incidents.record_step(started["incident_id"], "report", incidents.now(), "failed",
                          fields={"status": "OPEN"})
    return started["incident_id"]


def _contained(stack, victim, account, insider) -> _Contained:
    started = deliver_finding(stack, guardduty_event(victim["instance_id"], account=account))
    record = _finish(stack, started)
    assert record["status"] == "CONTAINED", record["errors"]
    return _Contained(stack, victim, record, account, insider)


def test_the_tamper_watch_uses_exactly_the_actions_its_roles_grant(stack):
    """Containment undone every way the watch puts back, in the home and a member account,
    under every setting the watch's policy depends on: by an insider's calls, whose CloudTrail
    events bring `on_tampering`; then again with its rule disabled, for the sweep to find (and
    an incident left OPEN for it to settle). Both ways of cutting credentials are contained:
    the watch holds either, whatever the settings."""
    stack.configure(MEMBER_ACCOUNTS=MEMBER, STOP_AFTER_EVIDENCE="true",
                    REVOKE_ROLE_SESSIONS="true", CREDENTIALS_MODE="deny-all",
                    MALWARE_SCAN="true")  # the sweep follows the scans
    ran_under = [settings.get()]
    iam.provision_member_account(stack, MEMBER)
    _forward_tampering(stack, MEMBER)
    left_open = _left_open(stack)
    victims = {"deny-all": make_victim(stack, interfaces=2, volumes=1),
               "member": make_victim(stack, interfaces=1, volumes=1, account=MEMBER),
               "disassociate": make_victim(stack, interfaces=2, volumes=1)}
    insiders = {stack.account: principal(stack, "insider", INSIDER_RIGHTS),
                MEMBER: principal(stack, "insider", INSIDER_RIGHTS, account=MEMBER)}

    with stack.enforce_iam():
        scenes = {key: _contained(stack, victims[key], account, insiders[account])
                  for key, account in (("deny-all", stack.account), ("member", MEMBER))}
        stack.configure(CREDENTIALS_MODE="disassociate")
        ran_under.append(settings.get())
        scenes["disassociate"] = _contained(stack, victims["disassociate"], stack.account,
                                            insiders[stack.account])
        assert scenes["deny-all"].contained["profiles"] == [names.deny_all_profile(stack.stage)]
        assert scenes["disassociate"].contained["profiles"] == []

        for what, (key, undo) in UNDOINGS.items():
            undo(scenes[key])
            stack.bridge.wait_idle()  # CloudTrail's delivery, and the watch's repair
            assert scenes[key].state() == scenes[key].contained, f"{what} was not put back"

        stack.client("events").disable_rule(Name=names.rule(stack.stage, "on_tampering"))
        for key, undo in UNDOINGS.values():
            undo(scenes[key])
        stack.bridge.wait_idle()
        swept = stack.tick("sweep")["sweep"]
        assert sorted(swept["repaired"]) == sorted(s.record["incident_id"]
                                                   for s in scenes.values()), swept
        assert swept["settled"] == [{"incident_id": left_open, "status": "CONTAINED",
                                     "execution": "SUCCEEDED"}]
        for key, scene in scenes.items():
            assert scene.state() == scene.contained, f"{key}: not put back by the sweep"

    _assert_none_denied()
    assert not _unlike_declared(stack, WATCH, ran_under)


def test_the_exclusions_are_declared():
    declared = permissions.needs(permissions.profiles("dev")["every-option"])
    for function, actions in NOT_EXERCISED.items():
        assert actions <= declared[function]


ENTRY = names.function_role("dev", "on_guardduty_finding")
CONTAIN = names.function_role("dev", "contain")
MACHINE = names.state_machine_role("dev")
SWAP = "ec2:ModifyNetworkInterfaceAttribute"


@pytest.mark.parametrize("removed, decision, reports, isolated, status", [
    # neither the entry function's cut nor Contain can swap: the credentials are cut all the same
    ({ENTRY: SWAP, CONTAIN: SWAP}, "acted", ["incident opened", "partially contained"], False,
     "PARTIAL"),
    # the cut cannot swap: Contain isolates
    ({ENTRY: SWAP}, "acted", ["incident opened", "contained"], True, "CONTAINED"),
    # the execution cannot start: the cut isolated the instance; the claim waits for the next
    # request for it, which starts the execution
    ({ENTRY: "states:StartExecution"}, "refused", [], True, "OPEN"),
    # no step runs: the cut isolated it (and recorded that), Step Functions settles what it earned
    ({MACHINE: "lambda:InvokeFunction"}, "acted", ["incident opened", "report step failed"], True,
     "PARTIAL"),
], ids=["no-swap-anywhere", "no-swap-in-the-cut", "no-start", "no-invoke"])
def test_without_one_action_containment_is_what_is_left(stack, removed, decision, reports,
                                                        isolated, status):
    queue = subscribe_queue(stack)
    victim = make_victim(stack, interfaces=1, volumes=1)
    with stack.enforce_iam():
        for role, action in removed.items():
            remove_action(stack, role, action)
        started = deliver_finding(stack, guardduty_event(victim["instance_id"]))
        assert started["decision"] == decision, started
        if decision == "acted":
            _finish(stack, started)
        isolation = product_groups(stack, victim["vpc_id"])["isolation"]["GroupId"]
        for eni, groups in victim["interfaces"].items():
            assert interface_groups(stack, eni) == ([isolation] if isolated else groups)
    for role, action in removed.items():
        assert iam.authorizations.denied(role) == {action}
    assert [m["Subject"].split(": ", 1)[1] for m in messages(stack, queue)] == reports
    incident_id = started.get("incident_id") or incidents.active_for(
        stack.account, "us-east-1", victim["instance_id"])
    assert incidents.get(incident_id)["status"] == status
    if MACHINE in removed:  # no step ran: Step Functions settled it, from the cut's record
        assert "dynamodb:UpdateItem" in iam.authorizations.allowed(MACHINE)
        record = incidents.get(incident_id)
        assert {c["action"] for c in record["changes"]} >= {"isolate-interface",
                                                            "termination-protection"}
