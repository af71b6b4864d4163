import sys

from quarantine_cli import main

sys.exit(main())
