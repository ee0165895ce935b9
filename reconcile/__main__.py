"""`python -m reconcile` is the `descope-reconcile` command."""

import sys

from reconcile.cli import main

sys.exit(main())
