"""Package size: the deployment zip `chalice package` builds, beside Custodian's Lambda archive
(what `custodian` uploads for a policy in Lambda mode: c7n and its policy runner).

Chalice packages every file under chalicelib/, the interpreter's __pycache__ included (chalice
issue #1065), so the app is packaged twice: from a clean copy of its sources (what a fresh clone
ships) and from this working tree as it is.
"""

import os
import shutil
import subprocess
import sys
import tempfile
import zipfile

from bench import custodian
from bench.coldstart import PROJECT_DIR

CUSTODIAN_ARCHIVE = ("from c7n.mu import custodian_archive; archive = custodian_archive(); "
                     "archive.close(); print(archive.size)")


def app_zip(clean: bool) -> tuple[int, list[str]]:
    """(size in bytes, top-level entries) of the app's deployment.zip, from a copy of the
    sources without caches (`clean`) or from the working tree as it is."""
    chalice = os.path.join(os.path.dirname(sys.executable), "chalice")
    with tempfile.TemporaryDirectory(prefix="bench-package-") as work:
        project = os.path.join(work, "project") if clean else PROJECT_DIR
        if clean:
            skip = shutil.ignore_patterns("__pycache__", "*.pyc", "deployments", "deployed")
            for name in ("app.py", "requirements.txt"):
                os.makedirs(project, exist_ok=True)
                shutil.copy(os.path.join(PROJECT_DIR, name), project)
            for name in (".chalice", "chalicelib"):
                shutil.copytree(os.path.join(PROJECT_DIR, name), os.path.join(project, name),
                                ignore=skip)
        out = os.path.join(work, "out")
        subprocess.run([chalice, "package", "--stage", "dev", out], cwd=project, check=True,
                       capture_output=True, timeout=300,
                       env={**os.environ, "AWS_DEFAULT_REGION": "us-east-1"})
        path = os.path.join(out, "deployment.zip")
        with zipfile.ZipFile(path) as archive:
            entries = sorted({name.split("/")[0] for name in archive.namelist()})
        return os.path.getsize(path), entries


def custodian_zip() -> int:
    finished = subprocess.run([custodian.PYTHON, "-c", CUSTODIAN_ARCHIVE], check=True,
                              capture_output=True, text=True, timeout=300)
    return int(finished.stdout.strip())
