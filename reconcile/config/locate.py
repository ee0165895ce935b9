"""Where the targets' config is: `--config FILE`, else descope-reconcile.yaml in the current folder.
Apart from reading it (`targets.py`) because every command asks, `validate desired/` on every commit too."""

from __future__ import annotations

from pathlib import Path

CONFIG_FILE = "descope-reconcile.yaml"


def find_config(explicit: Path | None) -> Path | None:
    """`--config FILE`, else descope-reconcile.yaml in the current folder (parents are not searched)."""
    if explicit is not None:
        return explicit
    here = Path(CONFIG_FILE)
    return here if here.is_file() else None
