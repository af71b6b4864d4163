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
