"""Where the values of `Secret` objects live: beside them, not in them, so no view of an object (its
repr, its attributes, a debugger's dump of it, gc referents) can carry a value.

`reveal` is for the sinks alone (`sinks.py`): an import contract in pyproject.toml forbids every
module outside `reconcile.secrets` to import this one.
"""

from __future__ import annotations

from typing import TYPE_CHECKING
from weakref import WeakKeyDictionary

if TYPE_CHECKING:
    from reconcile.secrets.secret import Secret

_VALUES: WeakKeyDictionary[Secret, str] = WeakKeyDictionary()


def keep(secret: Secret, value: str) -> None:
    _VALUES[secret] = value


def reveal(secret: Secret) -> str:
    return _VALUES[secret]
