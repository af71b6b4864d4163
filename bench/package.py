"""Package size: the deployment zip `make package` ships (deploy.package.build: Chalice's
package of app.py and chalicelib/, bytecode left out), beside Custodian's Lambda archive (what
`custodian` uploads for a policy in Lambda mode: c7n and its policy runner)."""

import os
import subprocess
import tempfile
import zipfile

from bench import custodian

CUSTODIAN_ARCHIVE = ("from c7n.mu import custodian_archive; archive = custodian_archive(); "
                     "archive.close(); print(archive.size)")


def app_zip() -> tuple[int, list[str]]:
    """(size in bytes, top-level entries) of the deployment.zip `make package` writes."""
    from deploy import package

    with tempfile.TemporaryDirectory(prefix="bench-package-") as out:
        package.build("dev", out)
        path = os.path.join(out, "deployment.zip")
        with zipfile.ZipFile(path) as archive:
            entries = sorted({name.split("/")[0] for name in archive.namelist()})
        return os.path.getsize(path), entries


def custodian_zip() -> int:
    finished = subprocess.run([custodian.PYTHON, "-c", CUSTODIAN_ARCHIVE], check=True,
                              capture_output=True, text=True, timeout=300)
    return int(finished.stdout.strip())
