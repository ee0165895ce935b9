"""Whether a command line acts on the targets of descope-reconcile.yaml: with PATHs (or --no-config)
a command runs as given, with the environment naming the project; else once per target
(`targets.py`, imported only then: `validate desired/` runs on every commit and reads no config)."""

from __future__ import annotations

import logging
from collections.abc import Awaitable
from pathlib import Path
from typing import Any, cast

from reconcile.cli.command import Invocation
from reconcile.cli.common import deliver
from reconcile.config.locate import CONFIG_FILE, find_config
from reconcile.errors import UsageError
from reconcile.job.result import Result

log = logging.getLogger("reconcile")


def dispatch(invocation: Invocation[Any]) -> int | Awaitable[int]:
    """The command as given (PATHs, or no config), or the command once per selected target."""
    selection = invocation.selection
    as_given_only = selection.paths or selection.no_config
    if as_given_only and (selection.config or selection.names):
        raise UsageError("give PATHs (or --no-config) or targets (--config, --target), not both")
    path = None if as_given_only else find_config(selection.config)
    if path is None:
        if selection.names:
            raise UsageError(f"--target needs a config: there is no {CONFIG_FILE} here (or give --config FILE)")
        if Path(CONFIG_FILE).is_file():
            log.debug("%s is not used: the environment names the project", CONFIG_FILE)
        return _as_given(invocation)
    from reconcile.cli.targets import run_targets  # noqa: PLC0415 (only with a config, as said above)

    return run_targets(invocation, path)


def _as_given(invocation: Invocation[Any]) -> int | Awaitable[int]:
    options, display = invocation.options, invocation.display
    if not invocation.is_async:
        return deliver(cast(Result, invocation.run(options)), options.outputs, display)

    async def run() -> int:
        return deliver(await cast(Awaitable[Result], invocation.run(options)), options.outputs, display)

    return run()
