"""Desired files → the validated desired state, with every problem found (no network)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from reconcile.desired.loader import DEFAULT_MAX_FILE_BYTES, YAML_SUFFIXES, Diagnostic, ParsedFile, load_files
from reconcile.desired.validation import build_desired_state
from reconcile.errors import ValidationFailed
from reconcile.job.clock import RunClock, bulk, keep
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
    paths: Sequence[str],
    *,
    max_bytes: int = DEFAULT_MAX_FILE_BYTES,
    clock: RunClock | None = None,
    keep_parsed: bool = False,
) -> LoadedDesired:
    """`keep_parsed`: keep the files as read (their text and values), to place a policy's findings in
    them; otherwise they are let go once the model is built (120 MiB of 100,000 keys, for a plan)."""
    clock = clock or RunClock("validate")
    parsed: list[ParsedFile] = []
    diagnostics: list[Diagnostic] = []
    with bulk():  # (validate of 100,000 keys: 8.6 s of CPU with the cyclic collector on, 4.4 s off)
        with clock.phase("load"):
            for item in load_files(paths, max_bytes=max_bytes):
                if isinstance(item, ParsedFile):
                    parsed.append(item)
                else:
                    diagnostics.extend(item)
        with clock.phase("validate"):
            state, problems = build_desired_state(parsed)
            if state.prune:
                state, more = _with_files_beside(paths, parsed, state, max_bytes)
                problems += more
    files = tuple(DesiredFile(p.path, p.sha256) for p in parsed)
    return LoadedDesired(state, files, tuple(sorted([*diagnostics, *problems])), tuple(parsed) if keep_parsed else ())


def load_valid(
    paths: Sequence[str],
    output: Output,
    *,
    max_bytes: int = DEFAULT_MAX_FILE_BYTES,
    clock: RunClock | None = None,
    keep_parsed: bool = False,
) -> LoadedDesired:
    """The desired state, or ValidationFailed with every problem for the output: then nothing is sent."""
    loaded = load_desired(paths, max_bytes=max_bytes, clock=clock, keep_parsed=keep_parsed)
    if loaded.diagnostics:
        output.diagnostics.extend(loaded.diagnostics)
        raise ValidationFailed(len(loaded.diagnostics))
    keep(loaded)
    return loaded


def _with_files_beside(
    paths: Sequence[str], parsed: Sequence[ParsedFile], state: DesiredState, max_bytes: int
) -> tuple[DesiredState, list[Diagnostic]]:
    """A prune scope owns only what the run was given: `apply desired/a.yaml` must not prune what
    `desired/b.yaml` declares. So the desired files beside each named file (same folder) are read too:
    the reading is widened, not refused (a run over one file stays useful), only for the keys they
    declare, which this run never prunes. One that cannot be read fails the run like its own would;
    a YAML file that is no desired file (no `keys`, no `prune`: a workflow) is left alone."""
    given = {Path(p.path).resolve() for p in parsed}
    beside = sorted(
        {
            candidate
            for path in paths
            if Path(path).is_file()
            for candidate in Path(path).parent.iterdir()
            if candidate.suffix.lower() in YAML_SUFFIXES and candidate.is_file() and candidate.resolve() not in given
        }
    )
    others: list[ParsedFile] = []
    problems: list[Diagnostic] = []
    for item in load_files([str(path) for path in beside], max_bytes=max_bytes) if beside else ():
        if not isinstance(item, ParsedFile):
            problems.extend(item)
        elif isinstance(item.data, dict) and ("keys" in item.data or "prune" in item.data):
            others.append(item)
    declared, invalid = build_desired_state(others)
    return replace(state, elsewhere=declared.keys), [*problems, *invalid]
