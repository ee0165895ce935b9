"""Whether a command line acts on the targets of descope-reconcile.yaml: with PATHs (or --no-config)
a command runs as given, with the environment naming the project; else once per target
(`targets.py`, imported only then: `validate desired/` runs on every commit and reads no config)."""

from __future__ import annotations

import argparse
import logging
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

from reconcile.config.locate import CONFIG_FILE, find_config
from reconcile.errors import UsageError

log = logging.getLogger("reconcile")


def dispatch(args: argparse.Namespace) -> int | Coroutine[Any, Any, int]:
    """The command as given (PATHs, or no config), or the command once per selected target."""
    as_given: int | Coroutine[Any, Any, int]
    if not hasattr(args, "targets"):  # a command that does not act on targets
        as_given = args.handler(args)
        return as_given
    as_given_only = bool(getattr(args, "paths", None)) or args.no_config
    if as_given_only and (args.config or args.targets):
        raise UsageError("give PATHs (or --no-config) or targets (--config, --target), not both")
    path = None if as_given_only else find_config(args.config)
    if path is None:
        if args.targets:
            raise UsageError(f"--target needs a config: there is no {CONFIG_FILE} here (or give --config FILE)")
        if Path(CONFIG_FILE).is_file():
            log.debug("%s is not used: the environment names the project", CONFIG_FILE)
        as_given = args.handler(args)
        return as_given
    from reconcile.cli.legacy_targets import run_targets  # noqa: PLC0415 (only with a config, as said above)

    return run_targets(args, path)
