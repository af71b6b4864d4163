"""chalicelib.settings: defaults, parsing and errors that name the variable and value."""

import pytest

from chalicelib.settings import SettingsError, load


def test_defaults_match_the_design():
    settings = load({})
    assert settings.severity_threshold == 7.0
    assert settings.finding_type_prefixes == ()
    assert settings.exempt_tag == "QuarantineExempt"
    assert settings.dry_run is False
    assert settings.member_accounts == ()
    assert settings.member_role_name == "ec2-quarantine-member"


def test_values_are_parsed():
    settings = load({"SEVERITY_THRESHOLD": "5.5", "FINDING_TYPE_PREFIXES": " Backdoor:EC2 , Trojan:EC2,",
                     "MEMBER_ACCOUNTS": "111111111111,*", "DRY_RUN": "TRUE"})
    assert settings.severity_threshold == 5.5
    assert settings.finding_type_prefixes == ("Backdoor:EC2", "Trojan:EC2")
    assert settings.member_accounts == ("111111111111", "*")
    assert settings.dry_run is True


@pytest.mark.parametrize("name,value", [
    ("SEVERITY_THRESHOLD", "high"), ("SEVERITY_THRESHOLD", "11"), ("DRY_RUN", "maybe"),
    ("MEMBER_ACCOUNTS", "12345"), ("SNAPSHOT_POLL_SECONDS", "0"), ("EXEMPT_TAG", " "),
])
def test_bad_values_are_refused_naming_the_variable(name, value):
    with pytest.raises(SettingsError) as raised:
        load({name: value})
    assert name in str(raised.value)
