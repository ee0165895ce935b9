"""Where the values of `Secret` objects live: beside them, not in them, so no view of an object (its
repr, its attributes, a debugger's dump of it, gc referents) can carry a value.

`reveal` is for the sinks alone (`sinks.py`): an import contract in pyproject.toml forbids every
module outside `reconcile.secrets` to import this one.

A core dump would write every value to disk: `forbid_core_dumps` turns them off for the rest of the
process before a run may issue a secret (the sinks, when they open) and, at the latest, when the
first value is kept.
"""

from __future__ import annotations

import ctypes
import resource
import sys
from typing import TYPE_CHECKING
from weakref import WeakKeyDictionary

if TYPE_CHECKING:
    from reconcile.secrets.secret import Secret

_VALUES: WeakKeyDictionary[Secret, str] = WeakKeyDictionary()


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


def keep(secret: Secret, value: str) -> None:
    forbid_core_dumps()
    _VALUES[secret] = value


def reveal(secret: Secret) -> str:
    return _VALUES[secret]
