"""`Secret`: the cleartext of a created or rotated access key, opaque to everything but the sinks.

It prints as `Secret(***)` however it is formatted (str, repr, f-strings, %-formatting, logging,
exception messages), cannot be pickled, copied or encoded as JSON, and holds no reference to its
value (see vault.py). The executor, journal, report and logs handle `Secret` objects, never text.
"""

from __future__ import annotations

from typing import Any, NoReturn

from reconcile.secrets.vault import keep

MASK = "Secret(***)"


class Secret:
    __slots__ = ("__weakref__",)

    def __init__(self, value: str) -> None:
        if not isinstance(value, str) or not value:
            raise ValueError("a secret must be a non-empty string")
        keep(self, value)

    def __repr__(self) -> str:
        return MASK

    __str__ = __repr__

    def __format__(self, spec: str) -> str:
        return MASK

    def __reduce_ex__(self, protocol: Any) -> NoReturn:
        raise TypeError("a Secret cannot be pickled")

    def __copy__(self) -> NoReturn:
        raise TypeError("a Secret cannot be copied")

    def __deepcopy__(self, memo: Any) -> NoReturn:
        raise TypeError("a Secret cannot be copied")
