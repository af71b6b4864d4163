"""The incident page in a real browser: headless Chromium loads it with no console message,
shows its text (a hostile Name tag as text, not markup) and draws its timeline. Required
under CI=1 (`.ci/run` installs Chromium and its driver); skipped with one line elsewhere."""

import os

import pytest

from local import browser
from tests.integration.test_page import HOSTILE_NAME, _contained, _page

REQUIRED = os.environ.get("CI", "").lower() in ("1", "true", "yes")


@pytest.fixture
def chromium():
    found = browser.driver()
    if found is None:
        if REQUIRED:
            pytest.fail("CI=1 and no chromium/chromedriver on the PATH: .ci/run installs them")
        pytest.skip("no chromium and chromedriver on the PATH (apt-get install chromium "
                    "chromium-driver): the page's browser test is skipped")
    yield found
    found.quit()


def test_chromium_renders_the_page_without_a_console_message(stack, chromium, tmp_path):
    from selenium.webdriver.common.by import By

    victim, incident_id = _contained(stack, tags={"Name": HOSTILE_NAME})
    shown, _ = _page(stack, incident_id)
    path = tmp_path / "report.html"
    path.write_text(shown)
    chromium.get(f"file://{path}")

    assert chromium.get_log("browser") == []  # no error, no blocked load, no script
    text = chromium.find_element(By.TAG_NAME, "body").text
    assert f"Incident {incident_id}" in text and "CONTAINED" in text
    assert HOSTILE_NAME[:25] in text  # the forged markup is shown as text
    for heading in ("Summary", "Timeline", "Changes (before → after)", "Evidence",
                    "Tampering since containment", "Release"):
        assert heading in text
    for eni in victim["interfaces"]:
        assert f"{eni} groups" in text
    svg = chromium.find_element(By.TAG_NAME, "svg")
    assert svg.is_displayed() and svg.size["width"] > 600 and svg.size["height"] > 100
    drawn = chromium.find_elements(By.CSS_SELECTOR, "svg rect, svg circle")
    labels = [t.text for t in chromium.find_elements(By.CSS_SELECTOR, "svg text")]
    assert len(drawn) >= 5 and "incident opened" in labels and "Contain" in labels
    assert chromium.execute_script("return document.scripts.length") == 0
