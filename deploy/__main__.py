"""`python -m deploy {deploy,destroy,package} --stage STAGE` (what `make deploy` and co. run)."""

import sys

from deploy.commands import main

sys.exit(main())
