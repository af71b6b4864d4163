"""`tools/install.py`, how make creates its virtual environments: a line per phase on the
screen, pip's own output in the venv's log, the marker make waits for only once everything is
installed, and on failure the end of pip's log with pip's exit status."""

import subprocess
import sys
from pathlib import Path

INSTALL = Path(__file__).parents[2] / "tools" / "install.py"


def _install(tmp_path, requirements: str):
    (tmp_path / "requirements.txt").write_text(requirements)
    venv = tmp_path / "venv"
    venv.mkdir(exist_ok=True)
    (venv / ".installed-earlier").touch()  # an earlier requirements file's marker
    run = subprocess.run([sys.executable, str(INSTALL), str(venv), str(tmp_path / "requirements.txt"),
                          "--marker", str(venv / ".installed-now")],
                         capture_output=True, text=True, timeout=300)
    return venv, run


def test_each_phase_is_a_line_and_the_marker_comes_last(tmp_path):
    venv, run = _install(tmp_path, "# nothing pinned\n")
    assert run.returncode == 0, run.stdout + run.stderr
    lines = run.stdout.splitlines()
    assert lines[0].startswith(f"[setup] 1/2 virtual environment {venv} (Python ")
    assert lines[1].startswith("[setup] 2/2 0 pinned packages from ")
    assert lines[-1].startswith("[setup] done in ")
    assert (venv / "bin" / "python").exists() and (venv / "pip-install.log").exists()
    assert sorted(p.name for p in venv.glob(".installed-*")) == [".installed-now"]


def test_changed_requirements_install_into_the_existing_environment(tmp_path):
    """make reruns it when requirements-dev.txt changes, over the venv an earlier make made
    (`python -m venv`, the interpreter linked): it is kept, not made anew, and no traceback."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(tmp_path / "venv")],
                   check=True, timeout=120)
    (tmp_path / "venv" / "kept").touch()
    venv, again = _install(tmp_path, "# nothing pinned\n")
    assert again.returncode == 0, again.stdout + again.stderr
    assert (venv / "kept").exists() and "Traceback" not in again.stdout + again.stderr


def test_a_failing_pip_shows_its_error_keeps_its_status_and_leaves_no_marker(tmp_path):
    venv, run = _install(tmp_path, "not a requirement!!\n")
    assert run.returncode != 0
    assert "Invalid requirement" in run.stderr and "Traceback" not in run.stdout + run.stderr
    assert run.stdout.splitlines()[-1] == (f"[setup] pip failed (exit {run.returncode}); its "
                                           f"whole output: {venv}/pip-install.log")
    assert not (venv / ".installed-now").exists()
