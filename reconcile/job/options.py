"""What the use cases share in their options: typed, frozen, built once from the command line, and
per target of the config with `dataclasses.replace` (a target's settings win over the command line's).
Light: `validate` imports it on every commit."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, Self, overload

from reconcile.output.recovery import COMMAND_PLACEHOLDER

if TYPE_CHECKING:  # only with a config (not validate with PATHs, on every commit)
    from reconcile.config.targets import TargetConfig
    from reconcile.policy.policy import Policy

PATTERN = "{target}"  # in a file option: one file per target
NO_PATHS = "give the desired PATHs, or a config: descope-reconcile.yaml in the current folder, or --config FILE"


@overload
def per_target(path: Path, name: str) -> Path: ...
@overload
def per_target(path: Path | None, name: str) -> Path | None: ...
def per_target(path: Path | None, name: str) -> Path | None:
    """A file option for one target: `{target}` in its name becomes the target's."""
    return None if path is None else Path(str(path).replace(PATTERN, name))


def json_settings(values: Mapping[str, Any]) -> dict[str, Any]:
    """The run's knobs as the report's `run.settings` says them (JSON-ready)."""
    return {
        name: value if value is None or isinstance(value, int | float | bool) else str(value)
        for name, value in values.items()
    }


class CommandOptions(Protocol):
    """What the command line needs of any command's options: its report and summary, and its options
    for one target of the config."""

    @property
    def outputs(self) -> Outputs | None:
        """Its report and summary (None: the command writes neither)."""
        ...

    @property
    def remote(self) -> Remote | None:
        """How it reaches its project (None: it does not)."""
        ...

    def for_target(self, target: TargetConfig) -> Self: ...

    def files(self) -> Mapping[str, Path | None]:
        """The file options that need one file per target (by argparse's name: `report`, `out`...)."""
        ...


@dataclass(frozen=True)
class Remote:
    """How a run reaches its project: whose credentials (a config target's sources, else the
    environment's) and the request settings."""

    timeout: float
    rate: float
    max_attempts: int
    key_deadline: float
    target: TargetConfig | None = None

    def for_target(self, target: TargetConfig) -> Remote:
        settings = target.settings
        return replace(
            self,
            target=target,
            timeout=settings.get("timeout", self.timeout),
            rate=settings.get("rate", self.rate),
            max_attempts=settings.get("maxAttempts", self.max_attempts),
            key_deadline=settings.get("keyDeadline", self.key_deadline),
        )

    def settings(self) -> dict[str, Any]:
        return {
            "timeout": self.timeout,
            "rate": self.rate,
            "maxAttempts": self.max_attempts,
            "keyDeadline": self.key_deadline,
        }


@dataclass(frozen=True)
class Outputs:
    """The run's report and Markdown summary (default: $GITHUB_STEP_SUMMARY when set)."""

    report: Path | None = None
    summary: Path | None = None

    def for_target(self, name: str) -> Outputs:
        return replace(self, report=per_target(self.report, name))


@dataclass(frozen=True)
class Changes:
    """How a run that changes keys makes them (apply, rotate): how many at once, its journal, its
    progress lines (None: none) and the sinks of the secrets it issues."""

    concurrency: int
    journal: Path | None = None
    progress_every: float | None = 0.0
    secrets_out: Path | None = None
    secrets_command: str | None = None
    secrets_command_env: tuple[str, ...] = ()  # the variables handed to the secrets command

    def for_target(self, target: TargetConfig) -> Changes:
        return replace(
            self,
            concurrency=target.settings.get("concurrency", self.concurrency),
            journal=per_target(self.journal, target.name),
            secrets_out=per_target(self.secrets_out, target.name),
        )

    def settings(self) -> dict[str, Any]:
        # the command may hold a token inline: the report names it only
        command = COMMAND_PLACEHOLDER if self.secrets_command is not None else None
        return {"concurrency": self.concurrency, "secretsOut": self.secrets_out, "secretsCommand": command}


@dataclass(frozen=True)
class PolicyChoice:
    """Which policy a run uses: `--policy FILE` (runs without a config), or its config target's."""

    file: Path | None = None
    target: Policy | None = None  # the config target's `policy:`
    in_target: bool = False  # the run is a config target's: --policy is refused

    @property
    def wanted(self) -> bool:
        """Whether the run may have a policy, without reading it (nothing is imported for none)."""
        return self.file is not None or self.target is not None

    def for_target(self, target: TargetConfig) -> PolicyChoice:
        return replace(self, target=target.policy, in_target=True)
