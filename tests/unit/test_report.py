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
