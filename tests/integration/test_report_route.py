"""GET /incidents/{incident_id}/report: the report of an incident as it stands (what email
subscribers get), or its page rendered from the record; bad input is a 400 naming it."""

import pytest

from tests.helpers import api, deliver_finding, finish, guardduty_event, make_victim


@pytest.fixture
def contained(stack):
    victim = make_victim(stack, interfaces=1, volumes=1)
    record, _ = finish(stack, deliver_finding(stack, guardduty_event(victim["instance_id"])))
    assert record["status"] == "CONTAINED", record["errors"]
    return record


def test_the_report_as_text_and_as_the_page(stack, contained):
    incident_id = contained["incident_id"]
    status, text = api(stack, "GET", f"/incidents/{incident_id}/report")
    assert status == 200 and (text["event"], text["status"]) == ("report", "CONTAINED")
    assert text["subject"].endswith(": contained") and "Changes made:" in text["text"]
    assert contained["instance_id"] in text["text"]
    status, page = api(stack, "GET", f"/incidents/{incident_id}/report?format=html")
    assert status == 200 and page["html"].startswith("<!doctype html>")
    assert incident_id in page["html"] and "<svg" in page["html"]


@pytest.mark.parametrize("query,code", [
    ("format=pdf", "InvalidFormat"), ("format=text&format=html", "DuplicateParameter"),
    ("style=text", "UnknownParameter")])
def test_a_bad_report_query_is_a_400_naming_it(stack, contained, query, code):
    status, answer = api(stack, "GET", f"/incidents/{contained['incident_id']}/report?{query}")
    assert (status, answer["error"]) == (400, code), answer


@pytest.mark.parametrize("incident_id,status,code", [
    ("inc-XYZ", 400, "InvalidIncidentId"), ("inc-0123456789ab", 404, "IncidentNotFound")])
def test_the_report_of_a_bad_or_unknown_incident(stack, incident_id, status, code):
    got, answer = api(stack, "GET", f"/incidents/{incident_id}/report")
    assert (got, answer["error"]) == (status, code)
