"""Output files: private (0600) and atomic, so a reader never sees half a report."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def write_private_atomically(path: Path, text: str, *, mode: int = 0o600) -> None:
    """Temporary file beside the target (same filesystem), fsync, rename: readers never see half a file.
    Private (0600) unless said otherwise: reports describe a project's credentials."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        Path(temporary).replace(path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
