"""Files derived from the settings' declarations (`chalicelib/settings.py`), written by
`make settings` and checked by a test, as the policy files are: the README's settings table and
the app-wide `environment_variables` of `.chalice/config.json` (every default there; a stage's own
values and the stack's outputs go in the stage's block).

    python -m deploy.settings_files    # rewrite both
"""

import json
import os
from dataclasses import fields

from chalicelib import settings

PROJECT_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
README = "README.md"
CONFIG = os.path.join(".chalice", "config.json")
BEGIN = "<!-- settings: generated from chalicelib/settings.py by `make settings` -->"
END = "<!-- end of settings -->"
OPTIONS_LEAD = ("**Options**, what to do: read when an incident opens and carried by its "
                "execution, so a change applies to the next incident, never to one in flight.")
OTHERS_LEAD = ("**Scope and resources**: whether to act and where the app's resources are, read "
               "by each function from its own environment.")


def _default(declared) -> str:
    if declared.metadata["deployed"]:
        return "per stage"
    return f"`{declared.metadata['default']}`" if declared.metadata["default"] else "empty"


def _table(declared_fields) -> list[str]:
    rows = ["| Variable | Default | Meaning |", "|---|---|---|"]
    rows += [f"| `{settings.variable(f)}` | {_default(f)} | {f.metadata['meaning']} |"
             for f in declared_fields]
    return rows


def table() -> str:
    """The README's settings section between its markers, markers included."""
    options = fields(settings.Options)
    others = [f for f in fields(settings.Settings) if f.name not in settings.OPTIONS]
    lines = [BEGIN, OPTIONS_LEAD, "", *_table(options), "", OTHERS_LEAD, "", *_table(others), END]
    return "\n".join(lines)


def app_environment() -> dict[str, str]:
    """The app-wide environment in config.json: every default a deployment does not fill."""
    return {settings.variable(f): f.metadata["default"]
            for f in fields(settings.Settings) if not f.metadata["deployed"]}


def readme(text: str) -> str:
    """`text` (the README) with its settings section regenerated."""
    start, end = text.index(BEGIN), text.index(END) + len(END)
    return text[:start] + table() + text[end:]


def config(text: str) -> str:
    """`text` (config.json) with its app-wide environment regenerated."""
    parsed = json.loads(text)
    parsed["environment_variables"] = app_environment()
    return json.dumps(parsed, indent=2) + "\n"


RENDER = {README: readme, CONFIG: config}


def stale(project_dir: str = PROJECT_DIR) -> list[str]:
    """Files that differ from what the declarations give (`make settings`)."""
    found = []
    for name, render in RENDER.items():
        with open(os.path.join(project_dir, name)) as handle:
            current = handle.read()
        if render(current) != current:
            found.append(name)
    return found


def write(project_dir: str = PROJECT_DIR) -> list[str]:
    for name, render in RENDER.items():
        path = os.path.join(project_dir, name)
        with open(path) as handle:
            current = handle.read()
        with open(path, "w") as handle:
            handle.write(render(current))
    return list(RENDER)


if __name__ == "__main__":
    for written in write():
        print(written)
