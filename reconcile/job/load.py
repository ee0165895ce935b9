"""Desired files → the validated desired state, with every problem found (no network)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from reconcile.desired.loader import DEFAULT_MAX_FILE_BYTES, Diagnostic, ParsedFile, load_files
from reconcile.desired.validation import build_desired_state
from reconcile.errors import ValidationFailed
from reconcile.job.clock import RunClock
from reconcile.job.result import Output
from reconcile.model import DesiredFile, DesiredState


@dataclass(frozen=True)
class LoadedDesired:
    """The desired state, the files it came from (with their checksums), and every problem found."""

    state: DesiredState
    files: tuple[DesiredFile, ...]
    diagnostics: tuple[Diagnostic, ...]
    parsed: tuple[ParsedFile, ...] = field(default=(), repr=False)  # to place a policy's findings


def load_desired(
    paths: Sequence[str], *, max_bytes: int = DEFAULT_MAX_FILE_BYTES, clock: RunClock | None = None
) -> LoadedDesired:
    clock = clock or RunClock("validate")
    parsed: list[ParsedFile] = []
    diagnostics: list[Diagnostic] = []
    with clock.phase("load"):
        for item in load_files(paths, max_bytes=max_bytes):
            if isinstance(item, ParsedFile):
                parsed.append(item)
            else:
                diagnostics.extend(item)
    with clock.phase("validate"):
        state, problems = build_desired_state(parsed)
    files = tuple(DesiredFile(p.path, p.sha256) for p in parsed)
    return LoadedDesired(state, files, tuple(sorted([*diagnostics, *problems])), tuple(parsed))


def load_valid(
    paths: Sequence[str], output: Output, *, max_bytes: int = DEFAULT_MAX_FILE_BYTES, clock: RunClock | None = None
) -> LoadedDesired:
    """The desired state, or ValidationFailed with every problem for the output: then nothing is sent."""
    loaded = load_desired(paths, max_bytes=max_bytes, clock=clock)
    if loaded.diagnostics:
        output.diagnostics.extend(loaded.diagnostics)
        raise ValidationFailed(len(loaded.diagnostics))
    return loaded
