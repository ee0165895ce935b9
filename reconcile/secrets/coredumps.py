"""No core dump once the process holds a secret: the management key (when the client reads it) or a
created or rotated key's cleartext (the sinks, the vault). Its own module so that the client may
call it without seeing the vault."""

from __future__ import annotations

import ctypes
import resource
import sys

_PR_SET_DUMPABLE = 4  # prctl(2)
_forbidden = False


def forbid_core_dumps() -> None:
    """No core file (RLIMIT_CORE 0: the soft limit, the one the kernel applies; the hard one is left to
    whoever set it) and, on Linux, not dumpable at all (PR_SET_DUMPABLE 0: no core through a pipe
    handler either, and no same-user ptrace or /proc/PID/mem). For good: a value may outlive the
    run's use of it in freed memory."""
    global _forbidden  # noqa: PLW0603 (once per process)
    if _forbidden:
        return
    resource.setrlimit(resource.RLIMIT_CORE, (0, resource.getrlimit(resource.RLIMIT_CORE)[1]))
    if sys.platform == "linux":
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_DUMPABLE, 0, 0, 0, 0)
    _forbidden = True
