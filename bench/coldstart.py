"""Cold start: how long importing a handler's module takes in a fresh interpreter, which is what a
Lambda cold start pays before the first event. The app is compared with `import boto3` alone (in
the app's venv) and with Custodian's Lambda entry point `c7n.handler` (in its own venv), each
timed in its own fresh subprocess, interleaved, after one untimed run to compile bytecode.
"""

import os
import statistics
import subprocess
import sys

from bench import custodian

PROJECT_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TIMED_IMPORT = ("import time; started = time.perf_counter(); import {module}; "
                "print(time.perf_counter() - started)")
SUBJECTS = {  # name: (interpreter, module)
    "app": (sys.executable, "app"),
    "boto3": (sys.executable, "boto3"),
    "c7n.handler": (custodian.PYTHON, "c7n.handler"),
}


def import_seconds(python: str, module: str) -> float:
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PYTHONPATH": PROJECT_DIR,
           "AWS_DEFAULT_REGION": "us-east-1"}
    finished = subprocess.run([python, "-c", TIMED_IMPORT.format(module=module)], cwd=PROJECT_DIR,
                              env=env, capture_output=True, text=True, check=True, timeout=60)
    return float(finished.stdout.strip())


def run(repetitions: int = 15) -> dict[str, float]:
    """Median import time of each subject, in seconds."""
    times: dict[str, list[float]] = {name: [] for name in SUBJECTS}
    for name, (python, module) in SUBJECTS.items():
        import_seconds(python, module)  # compiles .pyc files: not what a cold start pays
    for _ in range(repetitions):
        for name, (python, module) in SUBJECTS.items():
            times[name].append(import_seconds(python, module))
    return {name: statistics.median(values) for name, values in times.items()}
