"""`python -m reconcile` is the `descope-reconcile` command."""

import sys

from reconcile.cli.main import main

sys.exit(main())
