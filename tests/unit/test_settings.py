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


@pytest.mark.parametrize("environ,message", [
    ({"CREDENTIALS_MODE": "deny-all"},
     "CREDENTIALS_MODE=deny-all needs DENY_ALL_PROFILE_ARN (an instance profile ARN), not ''"),
    ({"DISABLE_API_STOP": "true", "STOP_AFTER_EVIDENCE": "yes"},
     "DISABLE_API_STOP=true and STOP_AFTER_EVIDENCE=true contradict each other: the product "
     "could not stop the instance it protected"),
    ({"FORENSIC_ACCOUNT_ID": " 1234 "}, "FORENSIC_ACCOUNT_ID='1234' is not a 12-digit account id"),
    ({"AUTOSCALING_MODE": "Stop"}, "AUTOSCALING_MODE='Stop' is not one of detach, standby"),
])
def test_settings_that_contradict_or_are_malformed_are_refused_in_words(environ, message):
    with pytest.raises(SettingsError) as raised:
        load(environ)
    assert str(raised.value) == message


def test_every_declared_default_loads_and_each_setting_says_what_it_means():
    from dataclasses import fields

    from chalicelib.settings import DEFAULTS, Settings

    assert load(DEFAULTS) == load({})
    assert all(f.metadata["meaning"] for f in fields(Settings))
