"""Where the values of `Secret` objects live: beside them, not in them, so no view of an object (its
repr, its attributes, a debugger's dump of it, gc referents) can carry a value.

`reveal` is for the sinks alone (`sinks.py`): an import contract in pyproject.toml forbids every
module outside `reconcile.secrets` to import this one.

A core dump would write every value to disk: `forbid_core_dumps` (reconcile/secrets/coredumps.py)
turns them off for the rest of the process once a management key is read, before a run may issue a
secret (the sinks, when they open) and, at the latest, when the first value is kept.
"""

from __future__ import annotations

from typing import TYPE_CHECKING
from weakref import WeakKeyDictionary

from reconcile.secrets.coredumps import forbid_core_dumps

if TYPE_CHECKING:
    from reconcile.secrets.secret import Secret

_VALUES: WeakKeyDictionary[Secret, str] = WeakKeyDictionary()


def keep(secret: Secret, value: str) -> None:
    forbid_core_dumps()
    _VALUES[secret] = value


def reveal(secret: Secret) -> str:
    return _VALUES[secret]
