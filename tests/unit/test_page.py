"""The incident page rendered from a record alone: every value someone chose is text, the page
loads and runs nothing, each event is one row of the timeline, durations read as people say
them."""

from html.parser import HTMLParser

from chalicelib import page

TEMPLATE_TAGS = {"html", "head", "meta", "title", "style", "body", "h1", "h2", "h3", "p",
                 "span", "dl", "dt", "dd", "table", "tr", "th", "td", "svg", "line", "text",
                 "rect", "circle", "ul", "li", "a"}
FORGED = '<img src=x onerror=alert(1)>"><script>alert(2)</script>'


class _Tags(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags, self.attributes = set(), set()

    def handle_starttag(self, tag, attrs):
        self.tags.add(tag)
        self.attributes.update(name for name, _ in attrs)


def _incident(**fields) -> dict:
    return {"incident_id": "inc-0123456789ab", "instance_id": "i-0123456789abcdef0",
            "account_id": "123456789012", "region": "us-east-1", "status": "CONTAINED",
            "source": "guardduty", "opened_at": "2026-12-01T10:00:00.000000Z",
            "pre_state": {"interfaces": [{"id": "eni-1"}]},
            "instance_summary": {"name": FORGED, "tags": {"Environment": FORGED}},
            "finding": {"id": "f" * 32, "type": "Backdoor:EC2/C&CActivity.B!DNS", "severity": 8,
                        "title": FORGED, "updated_at": "2026-12-01T09:59:58.000Z"},
            "first_cut": {"start": "2026-12-01T10:00:00.100000Z",
                          "end": "2026-12-01T10:00:00.300000Z", "isolated": ["eni-1"]},
            "timeline": [{"step": "cut", "start": "2026-12-01T10:00:00.100000Z",
                          "end": "2026-12-01T10:00:00.300000Z", "outcome": "isolated"},
                         {"step": "contain", "start": "2026-12-01T10:00:00.400000Z",
                          "end": "2026-12-01T10:00:01.000000Z", "outcome": "contained"}],
            "changes": [{"action": "isolate-interface", "resource": "eni-1",
                         "attribute": "groups", "before": ["sg-1"], "after": ["sg-2"]}],
            "tamper": [{"at": "2026-12-02T10:00:00Z", "call": "ModifyNetworkInterfaceAttribute",
                        "by": {"arn": f"arn:aws:iam::123456789012:user/{FORGED}"},
                        "drift": [{"what": "groups", "resource": "eni-1", "found": ["sg-1"],
                                   "expected": ["sg-2"], "outcome": "put back"}]}],
            **fields}


def test_values_someone_chose_are_text_and_the_page_loads_nothing():
    rendered = page.render(_incident()).decode()
    parsed = _Tags()
    parsed.feed(rendered)
    assert parsed.tags <= TEMPLATE_TAGS, parsed.tags - TEMPLATE_TAGS
    assert not parsed.attributes & {"src", "onerror", "srcset"}
    assert FORGED not in rendered and "&lt;script&gt;alert(2)&lt;/script&gt;" in rendered
    assert "default-src 'none'" in rendered  # the Content-Security-Policy


def test_each_event_is_one_row_in_order():
    """The first cut once (its record, not its timeline step beside it), then each step."""
    happened = page.events(_incident())
    assert [e["label"] for e in happened] == [
        "finding last updated by GuardDuty", "incident opened", "first cut (entry function)",
        "isolated", "Contain", "tampering: ModifyNetworkInterfaceAttribute"]
    assert happened[0]["start"] == -2.0 and happened[-1]["start"] == 86400.0
    svg = page.timeline_svg(happened)
    assert svg.count("<rect") + svg.count("<circle") == len(happened)


def test_durations_read_as_people_say_them():
    assert [page.span(s) for s in (0.142, 242, 11400, 400000, -2)] == [
        "0.14 s", "4 min 2 s", "3 h 10 min", "4.6 d", "2.00 s before"]
