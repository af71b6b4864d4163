"""SNS subjects obey AWS's limits, which moto does not enforce."""

from hypothesis import given, strategies as st

from chalicelib import report


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
    message = report.final(_contained([_revocation("role", ["i-1", "i-2"])]))["message"]
    assert ("ROLE-WIDE: every session of role app-server issued before 2026-01-31T12:00:00Z is "
            "denied, on every instance using it; it also hits: i-1, i-2") in message


def test_revocation_scoped_to_the_instance_says_the_others_keep_working():
    message = report.final(_contained([_revocation("instance", ["i-1"])]))["message"]
    assert "the other instances sharing the role keep working (i-1)" in message
    assert "ROLE-WIDE" not in message
    assert "Session revocation" not in report.final(_contained([]))["message"]


def _isolated(interface: str) -> dict:
    return {"action": "isolate-interface", "resource": interface, "attribute": "groups",
            "before": ["sg-app"], "after": ["sg-isolation"]}


def test_an_isolated_instance_is_told_what_isolation_cannot_cut():
    for incident in (_contained([_isolated("eni-1")]),
                     {**_contained([]), "first_cut": {"isolated": ["eni-1"]}}):
        message = report.final(incident)["message"]
        assert ("Not cut: DNS to the VPC resolver (security groups do not filter it" in message
                and "Route 53 Resolver DNS Firewall" in message)
    assert "DNS" not in report.final(_contained([]))["message"]


EXFILTRATION = {"id": "5ab8a2b0c1d2e3f4a5b6c7d8e9f00112", "severity": 8.0,
                "type": "UnauthorizedAccess:IAMUser/InstanceCredentialExfiltration.OutsideAWS",
                "role": "app-server", "actor": {
                    "ip": "198.51.100.7", "asn_org": "Example Hosting", "isp": "Example ISP",
                    "country": "Germany", "service_name": "s3.amazonaws.com",
                    "api": "ListBuckets", "caller_type": "Remote IP"}}


def test_stolen_credentials_name_the_external_caller_and_where_sessions_are_denied():
    incident = {**_contained([_revocation("instance", [])]), "finding": EXFILTRATION}
    message = report.final(incident)["message"]
    stolen = ("stolen credentials of role app-server used from 198.51.100.7 (Example Hosting, "
              "Example ISP, Germany) calling s3.amazonaws.com ListBuckets (Remote IP)")
    assert f"Trigger: GuardDuty finding {EXFILTRATION['type']} (severity 8.0, id " \
           f"{EXFILTRATION['id']})\n  {stolen}\n" in message
    assert (f"  - {stolen}; sessions of role app-server issued before 2026-01-31T12:00:00Z "
            "denied on instance "
            "i-0123456789abcdef0\n") in message
    assert "the other instances sharing the role keep working (none)" in message
    role_wide = report.final({**incident, "changes": [_revocation("role", ["i-1"])]})["message"]
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
    assert "stolen" not in report.final(ordinary)["message"]
