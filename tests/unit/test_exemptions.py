"""Exemptions at the edge: an expiry in the future and bounded, a plain tag honoured only where
the site says its key is protected."""

from datetime import datetime, timedelta, timezone

import pytest

from chalicelib import exemptions
from chalicelib.settings import load

AT = datetime(2026, 12, 2, 12, 0, tzinfo=timezone.utc)


@pytest.mark.parametrize("value,why", [
    ("2026-12-02T11:59:59Z", "not in the future"),
    ("2026-12-02T12:00:00Z", "not in the future"),
    ("2027-03-03T12:00:01Z", f"more than {exemptions.MAX_DAYS} days"),
    ("2026-12-31", "not a UTC time"),
    ("2026-12-31T00:00:00Z\n", "not a UTC time"),
    ("2026-02-30T00:00:00Z", "not a real time"),
    (None, "not a UTC time"),
])
def test_an_expiry_is_a_future_utc_time_within_the_bound(value, why):
    with pytest.raises(ValueError, match=why):
        exemptions.expiry(value, AT)


def test_an_expiry_inside_the_bound_is_taken_as_given():
    latest = (AT + timedelta(days=exemptions.MAX_DAYS)).strftime(exemptions.TIME_FORMAT)
    assert exemptions.expiry(latest, AT) == latest


def test_a_plain_tag_exempts_only_where_the_site_trusts_it():
    trusting, default = load({"TRUST_EXEMPT_TAG": "true"}), load({})
    assert exemptions.trusted_tag(" TRUE ", trusting)
    assert not exemptions.trusted_tag("true", default)
    assert not exemptions.trusted_tag("no", trusting)
    assert not exemptions.trusted_tag(None, trusting)
