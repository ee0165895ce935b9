"""Targets: which targets of descope-reconcile.yaml a command acts on, and running the command once
per target, concurrently for the commands that call the API.

A target's run is the command's own handler, called with a per-target copy of the arguments (its
paths, credential sources, settings, and its files from the `{target}` patterns) while its outcome
is current (see `context`: its output is prefixed or kept for the combined summaries). What ends
one target's run is recorded in its outcome and never stops or hides the others; the exit code is
the most severe of theirs. `dispatch` imports it only when a config is used.
"""

from __future__ import annotations

import argparse
import contextlib
import inspect
import json
import logging
from collections.abc import Coroutine, Iterator, Sequence
from pathlib import Path
from typing import Any

from reconcile.cli.common import describe_error, print_diagnostics, show, write_markdown
from reconcile.cli.context import CURRENT
from reconcile.cli.options import SETTING_NAMES
from reconcile.client.redact import redactor
from reconcile.config.targets import Config, TargetConfig, load_config
from reconcile.errors import ReconcileError, UsageError, ValidationFailed, most_severe
from reconcile.output.targets import TargetOutcome, render_targets_markdown, render_targets_text

log = logging.getLogger("reconcile")
PATTERN = "{target}"
# Options naming a file: one per target, from a pattern (required with several targets).
PER_TARGET_FILES = ("report", "out", "journal", "plan", "secrets_out")
_SETTING_DESTS = {camel: dest for dest, camel in SETTING_NAMES.items()}

Run = tuple[TargetOutcome, argparse.Namespace]


def run_targets(args: argparse.Namespace, path: Path) -> int | Coroutine[Any, Any, int]:
    """The command once per selected target of the config at `path`."""
    runs = _runs(args, _selected(_load(path, args), args.targets or []))
    if inspect.iscoroutinefunction(args.handler):
        return _run_concurrently(args, runs)
    for outcome, target_args in runs:  # offline (validate): one after the other
        with _running(outcome):
            outcome.code = args.handler(target_args)
    return _finish(args, [outcome for outcome, _ in runs])


def _load(path: Path, args: argparse.Namespace) -> Config:
    config, problems = load_config(path)
    if config is None:
        print_diagnostics(problems, getattr(args, "format", "text"))
        raise ValidationFailed(len(problems))
    return config


def _selected(config: Config, names: Sequence[str]) -> list[TargetConfig]:
    unknown = [name for name in dict.fromkeys(names) if name not in config.targets]
    if unknown:
        raise UsageError(f"unknown target(s) {', '.join(unknown)}: {config.path} names {', '.join(config.targets)}")
    return [target for name, target in config.targets.items() if not names or name in names]


def _runs(args: argparse.Namespace, targets: Sequence[TargetConfig]) -> list[Run]:
    if len(targets) > 1:
        for dest in PER_TARGET_FILES:
            value = getattr(args, dest, None)
            if value is not None and PATTERN not in str(value):
                raise UsageError(
                    f"--{dest} {value}: {len(targets)} targets need a file each: put {PATTERN} in the name "
                    f"(e.g. reports/{PATTERN}.json)"
                )
    runs = [(TargetOutcome(target.name), _target_args(args, target)) for target in targets]
    _refuse_shared_files(args, runs)
    return runs


def _refuse_shared_files(args: argparse.Namespace, runs: Sequence[Run]) -> None:
    """No two file options name one file, within a target or across targets (a pattern that two
    names fill alike, the combined summary on a target's report): one would overwrite the other."""
    files = [("--summary", args.summary)] if getattr(args, "summary", None) is not None else []
    for outcome, target_args in runs:
        files += [(f"--{dest} of target {outcome.name}", getattr(target_args, dest, None)) for dest in PER_TARGET_FILES]
    seen: dict[Path, str] = {}
    for option, path in files:
        if path is None:
            continue
        where = Path(path).resolve()
        if where in seen:
            raise UsageError(f"{option} and {seen[where]} are the same file, {path}: give each its own")
        seen[where] = option


def _target_args(args: argparse.Namespace, target: TargetConfig) -> argparse.Namespace:
    """The command's arguments for one target: its paths and credential sources, its files, and its
    settings (which win over the command line's: the config can say them per target)."""
    values = {**vars(args), "paths": list(target.paths), "target_config": target}
    for dest in PER_TARGET_FILES:
        if values.get(dest) is not None:
            values[dest] = Path(str(values[dest]).replace(PATTERN, target.name))
    for setting, value in target.settings.items():
        if _SETTING_DESTS[setting] in values:  # a setting the command has
            values[_SETTING_DESTS[setting]] = value
    return argparse.Namespace(**values)


@contextlib.contextmanager
def _running(outcome: TargetOutcome) -> Iterator[None]:
    """One target's run: its outcome current, and what ends the run early logged and kept."""
    token = CURRENT.set(outcome)
    try:
        yield
    except (ReconcileError, OSError) as error:
        outcome.code, message = describe_error(error)
        outcome.error = redactor.redact(message)
        log.error("error: %s", outcome.error)
    finally:
        CURRENT.reset(token)


async def _run_concurrently(args: argparse.Namespace, runs: Sequence[Run]) -> int:
    import asyncio  # noqa: PLC0415 (only the network commands pay for it: validate runs on every commit)

    from reconcile.cli.remote import credentials_for  # noqa: PLC0415 (the same: it imports the client)

    for _, target_args in runs:  # every key in the redaction filter before any target starts
        with contextlib.suppress(ReconcileError, OSError):
            credentials_for(target_args)

    async def run(outcome: TargetOutcome, target_args: argparse.Namespace) -> None:
        with _running(outcome):
            outcome.code = await args.handler(target_args)

    await asyncio.gather(*(run(outcome, target_args) for outcome, target_args in runs))
    return _finish(args, [outcome for outcome, _ in runs])


def _finish(args: argparse.Namespace, outcomes: Sequence[TargetOutcome]) -> int:
    """The combined summaries (text on stdout, Markdown where --summary goes) and the exit code."""
    code = most_severe(outcome.code for outcome in outcomes)
    if getattr(args, "format", "text") == "json":  # validate: stdout is one JSON list, every target's
        records = [{"target": outcome.name, **record} for outcome in outcomes for record in outcome.diagnostics]
        print(json.dumps(records, indent=2))
    else:
        show(args, render_targets_text(args.command, outcomes, code))
    if hasattr(args, "summary"):
        write_markdown(args.summary, render_targets_markdown(args.command, outcomes, code))
    return code
