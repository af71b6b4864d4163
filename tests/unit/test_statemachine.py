"""The ASL definition is valid under statelint and wired to the app's functions and topic."""

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

import app
from deploy import names, statemachine

ARNS = statemachine.step_function_arns("us-east-1", "123456789012", "dev")
TOPIC = names.topic_arn("us-east-1", "123456789012", "dev")
TABLE = names.incidents_table("dev")


@pytest.mark.parametrize("topics", [TOPIC, statemachine.Topics(
    TOPIC, "arn:aws:sns:us-east-1:123456789012:chat")], ids=["report topic", "with Chatbot"])
def test_definition_passes_statelint(tmp_path, topics):
    path = tmp_path / "definition.json"
    path.write_text(json.dumps(statemachine.build(ARNS, topics, TABLE)))
    result = subprocess.run([sys.executable, "-m", "statelint", str(path)],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_task_function_is_a_function_of_the_app():
    definition = json.dumps(statemachine.build(ARNS, TOPIC, TABLE))
    for name in statemachine.STEP_FUNCTIONS:
        assert name in app.app.handler_map
        assert ARNS[name] in definition


def _states(states: dict) -> dict:
    found = {}
    for name, state in states.items():
        found[name] = state
        for branch in state.get("Branches", []):
            found.update(_states(branch["States"]))
    return found


def test_every_state_that_does_work_belongs_to_a_step_the_readme_names():
    """`make demo` tells an execution in the README's steps: every Task and Wait of the
    definition is in one, every state a step lists exists, every step is a row of the README's
    table of steps."""
    states = _states(statemachine.build(ARNS, statemachine.Topics(
        TOPIC, "arn:aws:sns:us-east-1:123456789012:chat"), TABLE)["States"])
    working = {name for name, state in states.items() if state["Type"] in ("Task", "Wait")}
    assert working - set(statemachine.STEP_OF_STATE) == set()
    assert set(statemachine.STEP_OF_STATE) - set(states) == set()
    readme = (Path(__file__).parents[2] / "README.md").read_text()
    table = readme[readme.index("| Step | What it does |"):]
    rows = {cell for line in table[:table.index("\n\n")].splitlines()
            for cell in re.findall(r"`(\w+)`", line.split("|")[1])}
    assert set(statemachine.README_STEPS) - rows == set()


# History events Step Functions writes per state entered: a Lambda Task (entered, scheduled,
# started, succeeded or failed, exited), a callback Task (and "submitted"), anything else
# (entered, exited). 25,000 events end an execution.
EVENTS = {"Task": 5, "callback": 6, "other": 2}
HISTORY_LIMIT = 25_000


def test_wakes_without_a_decision_cannot_run_out_the_history_before_the_longest_deadline():
    """Whoever holds the task token may end the wait as often as they like; each such wake
    goes round the loop AwaitApproval → Decide → … → AwaitApproval once. With the pause
    Decide takes growing with each wake, the longest approval (APPROVAL_TIMEOUT_SECONDS'
    maximum) ends in fewer wakes than the history holds. (A fixed pause would not: 30 s
    for 7 days is 20,160 loops.)"""
    from chalicelib import settings
    from chalicelib.steps import approval

    states = statemachine.build(ARNS, TOPIC, TABLE)["States"]
    loop, name = [], "AwaitApproval"
    while not loop or name != "AwaitApproval":
        loop.append(name)
        state = states[name]
        name = state.get("Next") or next(c["Next"] for c in state["Choices"]
                                          if c["StringEquals"] == "wait")
    per_loop = sum(EVENTS["callback"] if ".waitForTaskToken" in s.get("Resource", "") else
                   EVENTS["Task"] if s["Type"] == "Task" else EVENTS["other"]
                   for s in map(states.get, loop))
    assert {"Decide", "PauseBeforeWaiting"} <= set(loop), loop

    remaining, wakes = settings.APPROVAL_TIMEOUT_MAX, 0
    while remaining > 0:
        wakes += 1
        remaining -= max(approval.pause_seconds(wakes, remaining), 1)  # a wake takes 1 s
    assert wakes * per_loop < HISTORY_LIMIT // 2, (wakes, per_loop)
