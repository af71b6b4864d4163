"""The project a command works on and its Chalice config (`.chalice/config.json`).

A rehearsal (AWS_ENDPOINT_URL set) works on a copy under build/rehearsal/<stage>/, so the real
stage's files never see the rehearsal's ARNs; the copy keeps its own wiring from run to run.
"""

import json
import os
import shutil

from deploy import resources
from deploy.session import rehearsal, say

PROJECT_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CHALICE_DIR = os.path.join(PROJECT_DIR, ".chalice")
CONFIG = os.path.join(".chalice", "config.json")
PROJECT_FILES = ("app.py", "chalicelib", "requirements.txt", CONFIG)


def working_copy(stage: str) -> str:
    """The project directory to deploy from: this one, or the rehearsal's copy of it."""
    if not rehearsal():
        return PROJECT_DIR
    copy = os.path.join(PROJECT_DIR, "build", "rehearsal", stage)
    say(f"rehearsal against {os.environ['AWS_ENDPOINT_URL']}: working on a copy in {copy}")
    wired = read_config(copy) if os.path.exists(os.path.join(copy, CONFIG)) else None
    for name in PROJECT_FILES:
        source, target = os.path.join(PROJECT_DIR, name), os.path.join(copy, name)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        if os.path.isdir(source):
            shutil.copytree(source, target, dirs_exist_ok=True,
                            ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy(source, target)
    for name in os.listdir(CHALICE_DIR):
        if name.startswith("policy-"):
            shutil.copy(os.path.join(CHALICE_DIR, name), os.path.join(copy, ".chalice", name))
    if wired:  # keep the rehearsal's own wiring: the project's holds the real stage's
        config = read_config(copy)
        config["stages"] = wired["stages"]
        _write_config(copy, config)
    return copy


def without_bytecode(project_dir: str) -> None:
    """Chalice zips chalicelib/ as it is, `__pycache__` included: leave only the sources."""
    for root, dirs, _ in os.walk(os.path.join(project_dir, "chalicelib")):
        if "__pycache__" in dirs:
            shutil.rmtree(os.path.join(root, "__pycache__"))
            dirs.remove("__pycache__")


def read_config(project_dir: str) -> dict:
    with open(os.path.join(project_dir, CONFIG)) as handle:
        return json.load(handle)


def _write_config(project_dir: str, config: dict) -> None:
    with open(os.path.join(project_dir, CONFIG), "w") as handle:
        json.dump(config, handle, indent=2)
        handle.write("\n")


def wire_settings(project_dir: str, stage: str, outputs: dict[str, str]) -> bool:
    """Write the stack's outputs into the stage's environment; True when something changed."""
    config = read_config(project_dir)
    environment = config["stages"][stage].setdefault("environment_variables", {})
    wanted = {setting: outputs[output]
              for output, setting in resources.SETTINGS_FROM_OUTPUTS.items()}
    if all(environment.get(key) == value for key, value in wanted.items()):
        say(f"stage {stage}'s settings already point at the stack")
        return False
    environment.update(wanted)
    _write_config(project_dir, config)
    say(f"wired {', '.join(sorted(wanted))} into stage {stage} ({CONFIG})")
    return True
