"""`python -m bench.measured ARGS...`: the CLI, then its own peak RSS on the last stderr line.

A parent cannot use its child's ru_maxrss here: Linux carries the parent's high-water mark into
the child across fork (or vfork) and exec, so a bench process holding 100,000 keys would be
charged to the tool. VmHWM belongs to the child's own address space.
"""

from __future__ import annotations

import sys
from pathlib import Path

from reconcile.cli.main import end_process, run_command


def peak_rss_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0


if __name__ == "__main__":  # as the console script ends (reconcile.cli.main.main), the figure printed first
    code = run_command(sys.argv[1:], ending=True)
    print(f"peak-rss-kib {peak_rss_kib()}", file=sys.stderr)
    end_process(code)
