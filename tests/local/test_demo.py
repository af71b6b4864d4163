"""`make demo` as the README shows it: it exits 0 only when the instance ended contained, and
tells the run in the README's own names: the entry function's first cut with its duration, then
the execution's steps (the README's table of steps) each with when it started and how long it
took, then points at the report and writes the incident page (and a screenshot where Chromium
is)."""

import re
import subprocess
import sys

from deploy import statemachine
from local import browser


def test_the_demo_tells_its_run_in_the_readme_s_steps_and_writes_the_page(tmp_path):
    run = subprocess.run([sys.executable, "-m", "local.demo", str(tmp_path)],
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    out = run.stdout
    assert re.search(r"first cut\s+took \d+\.\d\d s: 2 interface\(s\) isolated", out)
    told = re.findall(r"^   \+\s*\d+\.\d\d s  (\w+)\s+took \d+\.\d\d s", out, re.MULTILINE)
    assert told == ["NotifyDetected", "Contain", "CollectEvidence", "WaitForSnapshots", "Report",
                    "NotifyReport"] or told == ["Contain", "NotifyDetected", "CollectEvidence",
                                                "WaitForSnapshots", "Report", "NotifyReport"]
    assert set(told) <= set(statemachine.README_STEPS)
    assert re.search(r"WaitForSnapshots\s+took .* \(\d+ checks?\)", out)
    assert "Mode" not in told and "SnapshotsDone" not in out and "DetectionSent" not in out
    incident_id = re.search(r"incident (inc-[0-9a-f]{12})", out).group(1)
    assert f"ec2-quarantine report {incident_id}" in out
    assert f"GET /incidents/{incident_id}/report" in out
    page = (tmp_path / "report.html").read_text()
    assert incident_id in page and "<svg" in page and "tampering: ModifyNetworkInterfaceAttribute" in page
    assert (tmp_path / "report.png").exists() == bool(browser.chromium())
    assert out.rstrip().endswith("Demo succeeded.")
