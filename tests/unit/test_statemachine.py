"""The ASL definition is valid under statelint and wired to the app's functions and topic."""

import json
import subprocess
import sys

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
