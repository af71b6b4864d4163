"""`python -m deploy {deploy,destroy,package,drill} --stage STAGE` (what `make deploy` and co. run)."""

import sys

sys.dont_write_bytecode = True  # Chalice would zip chalicelib's __pycache__ with the sources

from deploy.commands import main  # noqa: E402

sys.exit(main())
