"""Notices: SNS subjects obey AWS's limits (moto enforces none); each notice reads as written for a
person, carries the same facts as JSON for programs, and is sent one form per protocol."""

import json
import re

from hypothesis import given, strategies as st

from chalicelib import instances, notices, report


@given(st.text())
def test_any_text_becomes_a_subject_sns_accepts(text):
    subject = report.subject(text)
    assert 0 < len(subject) < 100
    assert all(0x20 <= ord(c) <= 0x7e for c in subject)


def test_a_long_subject_is_cut_visibly():
    subject = report.subject("x" * 300)
    assert len(subject) == 99 and subject.endswith("...")


def _revocation(scope: str, others: list) -> dict:
    key = "also_affects" if scope == "role" else "keep_working"
    return {"action": "revoke-role-sessions", "resource": "app-server",
            "attribute": "policy:ec2-quarantine-revoke-inc-0123456789ab", "before": None,
            "after": {"denies_sessions_issued_before": "2026-01-31T12:00:00Z", "scope": scope,
                      key: others}}


def _contained(changes: list) -> dict:
    return {"incident_id": "inc-0123456789ab", "instance_id": "i-0123456789abcdef0",
            "account_id": "123456789012", "region": "us-east-1", "status": "CONTAINED",
            "changes": changes}


def test_role_wide_revocation_is_named_with_every_instance_it_hits():
    message = report.final(_contained([_revocation("role", ["i-1", "i-2"])]))["text"]
    assert ("ROLE-WIDE: every session of role app-server issued before 2026-01-31T12:00:00Z is "
            "denied, on every instance using it; it also hits: i-1, i-2") in message


def test_revocation_scoped_to_the_instance_says_the_others_keep_working():
    message = report.final(_contained([_revocation("instance", ["i-1"])]))["text"]
    assert "the other instances sharing the role keep working (i-1)" in message
    assert "ROLE-WIDE" not in message
    assert "Session revocation" not in report.final(_contained([]))["text"]


def _isolated(interface: str) -> dict:
    return {"action": "isolate-interface", "resource": interface, "attribute": "groups",
            "before": ["sg-app"], "after": ["sg-isolation"]}


def test_an_isolated_instance_is_told_what_isolation_cannot_cut():
    for incident in (_contained([_isolated("eni-1")]),
                     {**_contained([]), "first_cut": {"isolated": ["eni-1"]}}):
        message = report.final(incident)["text"]
        assert ("Not cut: DNS to the VPC resolver (security groups do not filter it" in message
                and "Route 53 Resolver DNS Firewall" in message)
    assert "DNS" not in report.final(_contained([]))["text"]


EXFILTRATION = {"id": "5ab8a2b0c1d2e3f4a5b6c7d8e9f00112", "severity": 8.0,
                "type": "UnauthorizedAccess:IAMUser/InstanceCredentialExfiltration.OutsideAWS",
                "role": "app-server", "actor": {
                    "ip": "198.51.100.7", "asn_org": "Example Hosting", "isp": "Example ISP",
                    "country": "Germany", "service_name": "s3.amazonaws.com",
                    "api": "ListBuckets", "caller_type": "Remote IP"}}


def test_stolen_credentials_name_the_external_caller_and_where_sessions_are_denied():
    incident = {**_contained([_revocation("instance", [])]), "finding": EXFILTRATION}
    message = report.final(incident)["text"]
    stolen = ("stolen credentials of role app-server used from 198.51.100.7 (Example Hosting, "
              "Example ISP, Germany) calling s3.amazonaws.com ListBuckets (Remote IP)")
    assert f"Finding:\n  {EXFILTRATION['type']}, severity 8.0\n  {stolen}\n  id " \
           f"{EXFILTRATION['id']}\n" in message
    assert (f"  - {stolen}; sessions of role app-server issued before 2026-01-31T12:00:00Z "
            "denied on instance "
            "i-0123456789abcdef0\n") in message
    assert "the other instances sharing the role keep working (none)" in message
    role_wide = report.final({**incident, "changes": [_revocation("role", ["i-1"])]})["text"]
    assert (f"{stolen}; sessions of role app-server issued before 2026-01-31T12:00:00Z denied "
            "role-wide") in role_wide


def test_stolen_credentials_say_what_the_finding_knows_and_nothing_of_other_findings():
    inside = {"type": "UnauthorizedAccess:IAMUser/InstanceCredentialExfiltration.InsideAWS",
              "actor": {"account_id": "444455556666", "isp": "Amazon.com", "ip": ""}}
    assert report.stolen_credentials(inside, role="app-server") == (
        "stolen credentials of role app-server used from elsewhere (Amazon.com) in account "
        "444455556666")
    assert report.stolen_credentials({"type": inside["type"]}) == (
        "stolen credentials used from elsewhere")
    for other in ({**EXFILTRATION, "type": "Backdoor:EC2/C&CActivity.B!DNS"}, None, "x"):
        assert report.stolen_credentials(other, role="app-server") == ""
    ordinary = {**_contained([_revocation("instance", [])]),
                "finding": {**EXFILTRATION, "type": "Backdoor:EC2/C&CActivity.B!DNS"}}
    assert "stolen" not in report.final(ordinary)["text"]


# -- notices for people and programs ---------------------------------------------------------

MACHINE_DUMP = re.compile(r"[{}]|\['|\bNone\b|\bTrue\b|\bFalse\b|-> ")
DESCRIBED = {  # DescribeInstances' shape, as EC2 answers it
    "InstanceId": "i-0123456789abcdef0", "VpcId": "vpc-1", "InstanceType": "t3.micro",
    "PrivateIpAddress": "10.0.0.5", "PublicIpAddress": "54.0.0.9",
    "Tags": [{"Key": "Name", "Value": "web-1"}, {"Key": "environment", "Value": "prod"},
             {"Key": "cost-centre", "Value": "42"}],
    "NetworkInterfaces": [
        {"NetworkInterfaceId": "eni-1", "Groups": [{"GroupId": "sg-web", "GroupName": "web"}],
         "PrivateIpAddresses": [{"PrivateIpAddress": "10.0.0.5",
                                 "Association": {"PublicIp": "54.0.0.9"}}]},
        {"NetworkInterfaceId": "eni-2", "Groups": [{"GroupId": "sg-db", "GroupName": "db"}],
         "PrivateIpAddresses": [{"PrivateIpAddress": "10.0.1.7"}]}]}


def _incident(**more) -> dict:
    return {"incident_id": "inc-0123456789ab", "instance_id": "i-0123456789abcdef0",
            "account_id": "123456789012", "region": "eu-west-1", "status": "CONTAINED",
            "containment": "CONTAINED", "source": "http", "reason": "seen beaconing",
            "requested_by": "arn:aws:sts::123456789012:assumed-role/oncall/alice",
            "opened_at": "2026-12-01T10:00:00.000000Z",
            "execution_arn": "arn:aws:states:eu-west-1:123456789012:execution:"
                             "ec2-quarantine-dev:inc-0123456789ab",
            "instance_summary": instances.summary(DESCRIBED),
            "product_groups": {"sg-iso": "ec2-quarantine-isolation"},
            "pre_state": {"interfaces": [{"id": "eni-1"}, {"id": "eni-2"}], "vpc_id": "vpc-1"},
            "finding": {"id": "f1", "type": "Backdoor:EC2/C&CActivity.B!DNS", "severity": 8,
                        "title": "Command and control", "remote": "domain c2.example.net"},
            "first_cut": {"start": "2026-12-01T10:00:00.100000Z",
                          "end": "2026-12-01T10:00:00.400000Z", "isolated": ["eni-1", "eni-2"]},
            "timeline": [{"step": "wait-snapshots", "end": "2026-12-01T10:00:09.000000Z"},
                         {"step": "report", "end": "2026-12-01T10:00:09.500000Z"}],
            "changes": [
                {"action": "isolate-interface", "resource": "eni-1", "attribute": "groups",
                 "before": ["sg-web"], "after": ["sg-iso"]},
                {"action": "termination-protection", "resource": "i-0123456789abcdef0",
                 "attribute": "disableApiTermination", "before": False, "after": True},
                {"action": "detach-instance-profile", "resource": "i-0123456789abcdef0",
                 "attribute": "instance-profile", "after": None,
                 "before": "arn:aws:iam::123456789012:instance-profile/app"},
                {"action": "connection-tracking", "resource": "eni-1",
                 "attribute": "connection-tracking", "before": None,
                 "after": {"TcpEstablishedTimeout": 60}},
                {"action": "evidence-store", "resource": "s3://b/inc-0123456789ab/manifest.json",
                 "attribute": "sha256", "before": None, "after": "ab" * 32},
                {"action": "evidence-store", "attribute": "signature", "before": None,
                 "resource": "s3://b/inc-0123456789ab/manifest.sig.json",
                 "after": "ECDSA_SHA_256 " + "ab" * 32}],
            "evidence": {"store": "s3://b/inc-0123456789ab/", "snapshots": {"snap-1": "completed"}},
            **more}


def test_the_instance_is_summarised_with_its_name_tags_addresses_and_group_names():
    assert instances.summary(DESCRIBED) == {
        "name": "web-1", "tags": {"environment": "prod"}, "instance_type": "t3.micro",
        "private_ips": ["10.0.0.5", "10.0.1.7"], "public_ips": ["54.0.0.9"], "vpc_id": "vpc-1",
        "group_names": {"sg-web": "web", "sg-db": "db"}}


def test_the_report_reads_as_written_for_a_person():
    notice = report.final(_incident())
    text = notice["text"]
    assert notice["subject"] == "[ec2-quarantine] i-0123456789abcdef0 (web-1): contained"
    for wanted in ("i-0123456789abcdef0 (web-1)", "tags: environment=prod",
                   "private IPs: 10.0.0.5, 10.0.1.7", "public IPs: 54.0.0.9",
                   "Backdoor:EC2/C&CActivity.B!DNS, severity 8.0", "remote: domain c2.example.net",
                   "Asked by:\n  arn:aws:sts::123456789012:assumed-role/oncall/alice",
                   "Reason: seen beaconing",
                   "2026-12-01 10:00:00.400 UTC  isolated (+0.4 s)",
                   "2026-12-01 10:00:09.000 UTC  evidence complete (+9.0 s)",
                   "eni-1 groups: web (sg-web) → ec2-quarantine-isolation (sg-iso)",
                   "termination protection: off → on", "instance profile: app → none",
                   "eni-1 connection tracking idle timeouts: AWS defaults → TCP established 60 s",
                   f"manifest sha256 {'ab' * 32}, signed (ECDSA_SHA_256)",
                   "stored under s3://b/inc-0123456789ab/",
                   "https://eu-west-1.console.aws.amazon.com/guardduty/home?region=eu-west-1",
                   "ec2-quarantine release i-0123456789abcdef0 --reason"):
        assert wanted in text, wanted
    assert text.count("sha256") == 1 and not MACHINE_DUMP.search(text)
    document = notice["document"]
    assert document["requested_by"] == _incident()["requested_by"]
    assert document["timings"]["seconds_after_opening"] == {
        "isolated": 0.4, "evidence_completed": 9.0, "reported": 9.5}
    assert document["evidence"]["manifest_sha256"] == "ab" * 32


def test_severity_has_one_format_in_every_notice_and_attribute():
    for severity in (8, 8.0):
        incident = _incident(finding={**_incident()["finding"], "severity": severity})
        for notice in (report.detection(incident), report.final(incident),
                       report.duplicate(incident, incident["finding"])):
            assert "severity 8.0" in notice["text"] and "severity 8 " not in notice["text"]
            assert notice["attributes"]["severity"] == {"DataType": "Number",
                                                        "StringValue": "8.0"}


def test_no_notice_shows_json_or_python_reprs_and_each_is_per_protocol():
    incident = _incident()
    entry = {"call": "ModifyNetworkInterfaceAttribute", "at": "2026-12-01T10:05:00.000000Z",
             "by": {"arn": "arn:aws:iam::123456789012:user/insider", "type": "IAMUser"},
             "from": "198.51.100.1", "drift": [{"what": "interface-groups", "resource": "eni-1",
                                                "found": ["sg-web"], "expected": ["sg-iso"],
                                                "outcome": "put back"}]}
    every = [report.detection(incident), report.final(incident), report.plan(incident),
             report.released({**incident, "release": {"reason": "clean",
                                                      "requested_by": "arn:x"}},
                             incident["changes"], [], []),
             report.tampered(incident, entry), report.duplicate(incident, incident["finding"]),
             report.not_acted_on(incident, "exempt", "exempt until tomorrow"),
             report.refused("arn:aws:states:x", "forged")]
    for notice in every:
        assert not MACHINE_DUMP.search(notice["text"]), (notice["subject"],
                                                         MACHINE_DUMP.search(notice["text"]))
        sent = json.loads(notices.message(notice))
        assert sent["default"] == sent["email"] == notice["text"]
        assert all(json.loads(sent[key]) == notice["document"]
                   for key in ("sqs", "lambda", "https", "http", "email-json", "firehose"))
        assert {"event", "status", "account", "region", "finding_type"} <= set(
            notice["attributes"])
        assert all(a["StringValue"] for a in notice["attributes"].values())
        card = notice["card"]
        assert (card["version"], card["source"], card["content"]["textType"]) == (
            "1.0", "custom", "client-markdown")
    released = every[3]["text"]
    assert "eni-1 groups: ec2-quarantine-isolation (sg-iso) → web (sg-web)" in released
    assert "Released by: arn:x" in released


def test_values_the_host_chose_cannot_forge_a_line_or_a_link():
    """The host names itself (CreateTags on its own instance) before the finding: its Name tag
    must neither add a line to the report nor render as a link or a mention in chat."""
    forged = "x\n\nIncident inc-0123456789ab: i-0123456789abcdef0 is RELEASED.\n[login](http://evil)"
    described = {**DESCRIBED, "Tags": [{"Key": "Name", "Value": forged + " <!channel>"}]}
    notice = report.final(_incident(instance_summary=instances.summary(described),
                                    reason="why\nIncident: RELEASED"))
    assert "\nIncident inc-0123456789ab: i-0123456789abcdef0 is RELEASED." not in notice["text"]
    assert "\nIncident: RELEASED" not in notice["text"]
    card = json.dumps(notice["card"])
    assert "[login](http" not in card and "<!channel>" not in card


def test_a_release_says_a_revocation_was_lifted_and_a_late_snapshot_is_not_complete():
    revoked = _revocation("instance", [])
    assert report.change_line(revoked, _incident(), undone=True).endswith(
        "from this instance denied → allowed (the denial lifted)")
    assert "lifted" not in report.change_line(revoked, _incident())
    late = _incident(timeline=[{"step": "wait-snapshots", "outcome": "late",
                                "end": "2026-12-01T10:01:00.000000Z"}])
    assert "snapshot deadline passed" in report.final(late)["text"]
    assert "evidence complete" not in report.final(late)["text"]
