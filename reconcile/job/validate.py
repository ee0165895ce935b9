"""`validate`: the desired files checked offline (no credentials, no network). Light: the pre-commit
hook runs it on every commit."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

from reconcile.desired.loader import DEFAULT_MAX_FILE_BYTES
from reconcile.errors import ExitCode, UsageError
from reconcile.job.load import load_valid
from reconcile.job.options import NO_PATHS
from reconcile.job.result import Output, Result, settled

if TYPE_CHECKING:
    from reconcile.config.targets import TargetConfig


@dataclass(frozen=True)
class ValidateOptions:
    paths: tuple[str, ...]
    max_file_size: int = DEFAULT_MAX_FILE_BYTES
    outputs: None = None  # validate writes nothing
    remote: None = None  # and reads nothing but the files

    def for_target(self, target: TargetConfig) -> ValidateOptions:
        return replace(self, paths=target.paths)

    def files(self) -> Mapping[str, Path | None]:
        return {}


def _validate(options: ValidateOptions, output: Output) -> Result:
    if not options.paths:
        raise UsageError(NO_PATHS)
    loaded = load_valid(options.paths, output, max_bytes=options.max_file_size)
    output.say(logging.INFO, f"{len(loaded.files)} file(s), {len(loaded.state.keys)} key(s): valid")
    return output.result(ExitCode.OK)


def run(options: ValidateOptions) -> Result:
    return settled(partial(_validate, options))
