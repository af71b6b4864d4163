"""Create a virtual environment and install pinned requirements into it, one line per phase.

Run by make with the machine's own Python (standard library only) before any venv exists.
pip's own output, a few hundred lines, goes to `<venv>/pip-install.log`; the screen gets the
phases, a line every ten packages collected and the time taken, and on failure the end of the log
and pip's exit status.

    python tools/install.py VENV REQUIREMENTS [--editable DIR] --marker FILE
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import time
import venv
from pathlib import Path

MINIMUM_PYTHON = (3, 11)
EVERY = 10  # packages collected between two progress lines
FAILURE_TAIL = 15
# pip's line for each package it takes, from an index or a wheel on disk: its name
COLLECTED = re.compile(r"Collecting ([^\s=<>~!\[(;]+)|Processing \S*/([^/-]+)-")  # lines of pip's log shown when it fails


def say(line: str) -> None:
    print(f"[setup] {line}", flush=True)


def pinned(requirements: Path) -> int:
    """How many packages the requirements file pins (each of its requirement lines)."""
    return sum(1 for line in requirements.read_text().splitlines()
               if line.strip() and not line.lstrip().startswith(("#", "-")))


def pip(python: Path, args: list[str], log_path: Path, total: int) -> int:
    """Run pip with `args`, its output appended to `log_path`; a progress line every EVERY
    packages it collects. Returns pip's exit status."""
    collected = 0
    with log_path.open("a") as log:
        log.write(f"$ pip {' '.join(args)}\n")
        process = subprocess.Popen(
            [str(python), "-m", "pip", *args, "--disable-pip-version-check", "--progress-bar",
             "off"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for line in process.stdout:
            log.write(line)
            found = COLLECTED.match(line)
            if found:
                collected += 1
                if collected % EVERY == 0 or collected == total:
                    say(f"  {collected}/{total} collected ({found.group(1) or found.group(2)})")
            elif line.startswith("Installing collected packages") and collected:
                say("  installing them")
        return process.wait()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("venv", type=Path)
    parser.add_argument("requirements", type=Path)
    parser.add_argument("--editable", type=Path, help="a project installed in place, no deps")
    parser.add_argument("--marker", type=Path, required=True,
                        help="touched once everything is installed (make's target)")
    args = parser.parse_args(argv)
    if sys.version_info < MINIMUM_PYTHON:
        say(f"Python {'.'.join(map(str, MINIMUM_PYTHON))}+ is required; this is "
            f"{sys.version.split()[0]} (set PYTHON=, e.g. make test PYTHON=python3.12)")
        return 2
    started = time.monotonic()
    total = pinned(args.requirements)
    phases = 3 if args.editable else 2
    say(f"1/{phases} virtual environment {args.venv} (Python {sys.version.split()[0]})")
    # as `python -m venv` makes it (symlinks where the system has them: copying the interpreter
    # onto an existing venv's link to it fails); an existing one is kept, pip installs what changed
    try:
        venv.create(args.venv, with_pip=True, symlinks=os.name != "nt")
    except (OSError, subprocess.CalledProcessError) as error:
        say(f"cannot create the virtual environment {args.venv}: {error} (`make clean` removes "
            "it)")
        return 1
    log_path = args.venv / "pip-install.log"
    python = args.venv / "bin" / "python"
    say(f"2/{phases} {total} pinned packages from {args.requirements} (a minute or two the first "
        f"time; pip's output: {log_path})")
    status = pip(python, ["install", "-r", str(args.requirements)], log_path, total)
    if status == 0 and args.editable:
        say(f"3/3 the project in {args.editable} (pip install -e: the CLI, changes seen at once)")
        status = pip(python, ["install", "--no-deps", "-e", str(args.editable)], log_path, 1)
    if status != 0:
        tail = log_path.read_text().splitlines()[-FAILURE_TAIL:]
        print("\n".join(tail), file=sys.stderr)
        say(f"pip failed (exit {status}); its whole output: {log_path}")
        return status
    for stale in args.marker.parent.glob(".installed-*"):  # markers of earlier requirements
        stale.unlink()
    args.marker.touch()
    say(f"done in {time.monotonic() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
