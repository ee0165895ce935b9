"""Targets: which targets of descope-reconcile.yaml a command acts on, and running the command's use
case once per target, concurrently for the commands that call the API.

A target's run is the use case with the target's options (its paths, credential sources, settings,
and its files from the `{target}` patterns: `for_target`, a `dataclasses.replace`). Its Result is
shown with the target's name on each line, and its Markdown and JSON diagnostics are kept for the
combined summaries. What ends one target's run is recorded in its outcome and never stops or hides
the others; the exit code is the most severe of theirs. `dispatch` imports it only when a config is used.
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Awaitable, Iterator, Sequence
from pathlib import Path
from typing import Any, cast

from reconcile.cli.command import Invocation
from reconcile.cli.common import deliver, describe_error, print_diagnostics, write_markdown
from reconcile.client.redact import redactor
from reconcile.config.targets import Config, TargetConfig, load_config
from reconcile.errors import ReconcileError, UsageError, ValidationFailed, most_severe
from reconcile.job.options import PATTERN, CommandOptions
from reconcile.job.result import Result
from reconcile.log import target_lines
from reconcile.output.escape import json_value
from reconcile.output.targets import TargetOutcome, render_targets_markdown, render_targets_text

log = logging.getLogger("reconcile")

Run = tuple[TargetOutcome, CommandOptions]


def run_targets(invocation: Invocation[Any], path: Path) -> int | Awaitable[int]:
    """The command once per selected target of the config at `path`."""
    config = _load(path, invocation)
    _refuse_credentials_to_the_sink(invocation.selection.handed_env, config)
    runs = _runs(invocation.options, _selected(config, invocation.selection.names))
    if invocation.is_async:
        return _run_concurrently(invocation, runs)
    for outcome, options in runs:  # offline (validate): one after the other
        with _running(outcome):
            outcome.code = deliver(cast(Result, invocation.run(options)), options.outputs, invocation.display, outcome)
    return _finish(invocation, [outcome for outcome, _ in runs])


def _load(path: Path, invocation: Invocation[Any]) -> Config:
    config, problems = load_config(path)
    if config is None:
        print_diagnostics(problems, invocation.display.format)
        raise ValidationFailed(len(problems))
    return config


def _refuse_credentials_to_the_sink(handed: Sequence[str], config: Config) -> None:
    """No variable any target reads its management key from is handed to the secrets command, whichever
    targets run (their keys are not all read, so their values could not be recognised)."""
    sources = {target.management_key_env for target in config.targets.values()}
    named = [name for name in handed if name in sources]
    if named:
        raise UsageError(
            f"--secrets-command-env {', '.join(named)}: {config.path} reads a management key from it; a management "
            "key's source is never handed to the secrets command; nothing was sent"
        )


def _selected(config: Config, names: Sequence[str]) -> list[TargetConfig]:
    unknown = [name for name in dict.fromkeys(names) if name not in config.targets]
    if unknown:
        raise UsageError(f"unknown target(s) {', '.join(unknown)}: {config.path} names {', '.join(config.targets)}")
    return [target for name, target in config.targets.items() if not names or name in names]


def _runs(options: CommandOptions, targets: Sequence[TargetConfig]) -> list[Run]:
    if len(targets) > 1:
        for dest, value in options.files().items():
            if value is not None and PATTERN not in str(value):
                raise UsageError(
                    f"--{dest} {value}: {len(targets)} targets need a file each: put {PATTERN} in the name "
                    f"(e.g. reports/{PATTERN}.json)"
                )
    runs = [(TargetOutcome(target.name), options.for_target(target)) for target in targets]
    _refuse_shared_files(options, runs)
    return runs


def _refuse_shared_files(options: CommandOptions, runs: Sequence[Run]) -> None:
    """No two file options name one file, within a target or across targets (a pattern that two
    names fill alike, the combined summary on a target's report): one would overwrite the other."""
    summary = options.outputs.summary if options.outputs else None
    files: list[tuple[str, Path | None]] = [("--summary", summary)] if summary is not None else []
    for outcome, target_options in runs:
        files += [(f"--{dest} of target {outcome.name}", path) for dest, path in target_options.files().items()]
    seen: dict[Path, str] = {}
    for option, path in files:
        if path is None:
            continue
        where = Path(path).resolve()
        if where in seen:
            raise UsageError(f"{option} and {seen[where]} are the same file, {path}: give each its own")
        seen[where] = option


@contextlib.contextmanager
def _running(outcome: TargetOutcome) -> Iterator[None]:
    """One target's run: its log lines named, and what ends the run early logged and kept."""
    with target_lines(outcome.name):
        try:
            yield
        except (ReconcileError, OSError) as error:
            outcome.code, message = describe_error(error)
            outcome.error = redactor.redact(message)
            log.error("error: %s", outcome.error)


async def _run_concurrently(invocation: Invocation[Any], runs: Sequence[Run]) -> int:
    import asyncio  # noqa: PLC0415 (only the network commands pay for it: validate runs on every commit)

    from reconcile.job.connect import credentials_for  # noqa: PLC0415 (the same: it imports the client)

    for _, options in runs:  # every key in the redaction filter before any target starts
        with contextlib.suppress(ReconcileError, OSError):
            credentials_for(options.remote.target if options.remote else None)

    async def run(outcome: TargetOutcome, options: CommandOptions) -> None:
        with _running(outcome):
            result = await cast(Awaitable[Result], invocation.run(options))
            outcome.code = deliver(result, options.outputs, invocation.display, outcome)

    await asyncio.gather(*(run(outcome, options) for outcome, options in runs))
    return _finish(invocation, [outcome for outcome, _ in runs])


def _finish(invocation: Invocation[Any], outcomes: Sequence[TargetOutcome]) -> int:
    """The combined summaries (text on stdout, Markdown where --summary goes) and the exit code."""
    code = most_severe(outcome.code for outcome in outcomes)
    if invocation.display.format == "sarif":  # validate: one SARIF log, a run per target
        from reconcile.output.sarif import combine  # noqa: PLC0415 (only for SARIF)

        print(json_value(combine([(o.name, record["sarif"]) for o in outcomes for record in o.diagnostics]), indent=2))
    elif invocation.display.format == "json":  # validate: stdout is one JSON list, every target's
        records = [{"target": outcome.name, **record} for outcome in outcomes for record in outcome.diagnostics]
        print(json.dumps(records, indent=2))
    elif not invocation.display.quiet:
        print(render_targets_text(invocation.command, outcomes, code), end="", flush=True)
    if (outputs := invocation.options.outputs) is not None:
        write_markdown(outputs.summary, render_targets_markdown(invocation.command, outcomes, code))
    return code
