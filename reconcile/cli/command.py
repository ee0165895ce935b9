"""A command line once parsed: the command's typed options and use case, how people see the run, and
which targets it acts on. Each command's `invocation` (its parse step) is the only reader of the
argparse Namespace; nothing past it sees one."""

from __future__ import annotations

import argparse
import inspect
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Generic, TypeVar

from reconcile.job.options import CommandOptions
from reconcile.job.result import Result

Opts = TypeVar("Opts", bound=CommandOptions)
UseCase = Callable[[Opts], Result] | Callable[[Opts], Awaitable[Result]]


@dataclass(frozen=True)
class Display:
    """How people see the run: -v, -q, and the diagnostics' format (validate --format)."""

    verbose: int
    quiet: bool
    format: str = "text"


@dataclass(frozen=True)
class Selection:
    """Which targets of descope-reconcile.yaml the command acts on (none when PATHs are given)."""

    config: Path | None
    no_config: bool
    names: tuple[str, ...]
    paths: bool  # PATHs were given: the command runs as given
    handed_env: tuple[str, ...] = ()  # --secrets-command-env: never a target's management key source


@dataclass(frozen=True)
class Invocation(Generic[Opts]):
    command: str
    options: Opts
    run: UseCase[Opts]
    display: Display
    selection: Selection

    @property
    def is_async(self) -> bool:
        """A use case that calls the API (the targets run concurrently); validate is not."""
        return inspect.iscoroutinefunction(self.run)


def invocation(  # noqa: PLR0913 (the per-command values beside the Namespace are keyword-only)
    args: argparse.Namespace,
    options: Opts,
    run: UseCase[Opts],
    *,
    paths: Sequence[str] = (),
    output_format: str = "text",
    handed_env: Sequence[str] = (),
) -> Invocation[Opts]:
    """The parsed command line as typed values (the options shared by every command read here)."""
    return Invocation(
        args.command,
        options,
        run,
        Display(args.verbose, args.quiet, output_format),
        Selection(args.config, args.no_config, tuple(args.targets or ()), bool(paths), tuple(handed_env)),
    )
