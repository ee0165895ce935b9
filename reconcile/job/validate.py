"""`validate`: the desired files checked offline (no credentials, no network). Light: the pre-commit
hook runs it on every commit."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

from reconcile.desired.loader import DEFAULT_MAX_FILE_BYTES
from reconcile.errors import ExitCode, UsageError
from reconcile.job.load import load_valid
from reconcile.job.options import NO_PATHS, PolicyChoice
from reconcile.job.result import Output, Result, settled

if TYPE_CHECKING:
    from reconcile.config.targets import TargetConfig
    from reconcile.policy.policy import Policy


@dataclass(frozen=True)
class ValidateOptions:
    paths: tuple[str, ...]
    max_file_size: int = DEFAULT_MAX_FILE_BYTES
    policy: PolicyChoice = field(default_factory=PolicyChoice)
    outputs: None = None  # validate writes nothing
    remote: None = None  # and reads nothing but the files

    def for_target(self, target: TargetConfig) -> ValidateOptions:
        return replace(self, paths=target.paths, policy=self.policy.for_target(target))

    def files(self) -> Mapping[str, Path | None]:
        return {}


def _validate(options: ValidateOptions, output: Output) -> Result:
    if not options.paths:
        raise UsageError(NO_PATHS)
    if options.policy.wanted:  # (only then is any of the policy imported: validate runs on every commit)
        from reconcile.job.policing import configured  # noqa: PLC0415

        if (policy := configured(options.policy, output)) is not None:
            return _check_policy(options, policy, output)
    loaded = load_valid(options.paths, output, max_bytes=options.max_file_size)
    output.say(logging.INFO, f"{len(loaded.files)} file(s), {len(loaded.state.keys)} key(s): valid")
    return output.result(ExitCode.OK)


def _check_policy(options: ValidateOptions, policy: Policy, output: Output) -> Result:
    """Every desired key against the policy; exit 1 on an error no waiver covers."""
    from reconcile.job.policy import check_desired  # noqa: PLC0415
    from reconcile.output.policy import summary  # noqa: PLC0415

    loaded = load_valid(options.paths, output, max_bytes=options.max_file_size, keep_parsed=True)
    findings = check_desired(policy, loaded, datetime.now(UTC))
    output.say(logging.INFO, f"{len(loaded.files)} file(s), {len(loaded.state.keys)} key(s): {summary(findings)}")
    code = ExitCode.FAILURE if any(item.failing for item in findings) else ExitCode.OK
    return output.result(code, findings=tuple(findings), policy=policy)


def run(options: ValidateOptions) -> Result:
    return settled(partial(_validate, options))
