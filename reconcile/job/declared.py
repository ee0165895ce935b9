"""The project's declared access-key custom attributes, read for the names a run needs: the desired
files' (plan and apply refuse an undeclared name or a value its declaration does not take, before any
write) or the exported keys' (export writes only declared ones). Prints nothing.

The lookup (GET /v1/mgmt/accesskey/attribute?name=) is the Terraform provider's; which name it takes
and its answer's shape are not published. When it cannot be trusted (refused, failing, or saying a
name some key holds is not declared: a key can hold only declared attributes) nothing is refused on
its word: `unchecked` says why, and `doctor` says more.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Collection, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from reconcile.apply.limiter import Budget
from reconcile.desired.declared import Declaration, attribute_names, problems
from reconcile.desired.loader import Diagnostic
from reconcile.errors import ReconcileError, ValidationFailed
from reconcile.job.result import Output
from reconcile.job.session import Session
from reconcile.model import DesiredState


@dataclass(frozen=True)
class Declarations:
    found: Mapping[str, Declaration | None] = field(default_factory=dict)  # None: not declared
    unchecked: str | None = None  # why the names were not checked


def held_names(observed: Sequence[Mapping[str, Any]]) -> set[str]:
    names: set[str] = set()
    for key in observed:
        values = key.get("customAttributes")
        if type(values) is dict or isinstance(values, Mapping):  # (a dict: no ABC check)
            names.update(values)
    return names


Answers = Mapping[str, "Declaration | BaseException | None"]


async def _look_up(session: Session, names: Sequence[str]) -> dict[str, Declaration | BaseException | None]:
    """Each name's declaration (None: not declared), or what its lookup raised."""

    async def look_up(name: str) -> Declaration | None:
        lookup = partial(session.client.load_attribute, name)
        return await session.call(lookup, budget=Budget.READ, what=f"attribute {name}")

    # At once, not one after another: each is a round trip before the first write.
    return dict(zip(names, await asyncio.gather(*map(look_up, names), return_exceptions=True), strict=True))


def _probe(names: Collection[str], held: set[str]) -> list[str]:
    """A lookup that finds nothing proves nothing (the endpoint may not be there): one name a key
    holds is looked up too, and a 404 counts only once some name was found."""
    return sorted(held - set(names))[:1]


def _judged(names: Collection[str], answers: Answers, held: set[str]) -> Declarations:
    found: dict[str, Declaration | None] = {}
    for name, answer in answers.items():
        if isinstance(answer, ReconcileError):
            return Declarations({}, f"the project's declared attributes could not be read: {answer}")
        if isinstance(answer, BaseException):
            raise answer
        found[name] = answer
    contradicted = sorted(name for name, declaration in found.items() if declaration is None and name in held)
    if contradicted:
        return Declarations(
            {},
            f"the attribute lookup says `{contradicted[0]}` is not declared, yet a key holds it: the lookup "
            "does not work as this tool assumes (`descope-reconcile doctor` says more)",
        )
    if not any(found.values()):
        return Declarations(
            {},
            "the attribute lookup found none of the names used, and no key holds a declared one that would "
            "prove the lookup works (`descope-reconcile doctor` says more)",
        )
    return Declarations({name: found[name] for name in names})


async def read_declarations(
    session: Session, names: Collection[str], observed: Sequence[Mapping[str, Any]]
) -> Declarations:
    """Each name's declaration, judged against the names the keys hold (see `_probe`)."""
    held = held_names(observed)
    return _judged(names, await _look_up(session, [*sorted(names), *_probe(names, held)]), held)


@dataclass(frozen=True)
class DeclaredCheck:
    diagnostics: tuple[Diagnostic, ...]
    unchecked: str | None


class DesiredDeclarations:
    """The desired keys' attribute names, looked up from `checking_desired` on: beside the search,
    not after it (each is a round trip before the first write)."""

    def __init__(self, session: Session, state: DesiredState | None) -> None:
        self._session = session
        self._state = state
        self._names = attribute_names(state.keys) if state is not None else set()
        lookups = _look_up(session, sorted(self._names)) if self._names else None  # no request when none is used
        self._lookups = asyncio.ensure_future(lookups) if lookups is not None else None

    async def check(self, observed: Sequence[Mapping[str, Any]]) -> DeclaredCheck:
        """The desired keys' attributes against the project's declarations, once the keys are read."""
        if self._lookups is None or self._state is None:
            return DeclaredCheck((), None)
        held = held_names(observed)
        answers = {**await self._lookups, **await _look_up(self._session, _probe(self._names, held))}
        declarations = _judged(self._names, answers, held)
        return DeclaredCheck(tuple(problems(self._state.keys, declarations.found)), declarations.unchecked)

    async def close(self) -> None:
        """Lookups not waited for (the search failed or was interrupted) are cancelled."""
        if self._lookups is not None and not self._lookups.done():
            self._lookups.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._lookups


@asynccontextmanager
async def checking_desired(session: Session, state: DesiredState | None) -> AsyncIterator[DesiredDeclarations]:
    """`state`'s attribute names looked up from now on (None: nothing to check)."""
    declarations = DesiredDeclarations(session, state)
    try:
        yield declarations
    finally:
        await declarations.close()


def refuse_undeclared(check: DeclaredCheck, output: Output) -> None:
    """Custom attributes the project does not declare, or values it will not take: located errors,
    before any write (a warning when the declarations could not be trusted)."""
    if check.unchecked:
        output.say(
            logging.WARNING,
            f"warning: custom attributes not checked against the project's declarations: {check.unchecked}",
        )
    if check.diagnostics:
        output.diagnostics.extend(check.diagnostics)
        raise ValidationFailed(len(check.diagnostics))


@dataclass(frozen=True)
class Exported:
    keys: list[dict[str, Any]]
    dropped: tuple[str, ...]  # attribute names no longer declared, left out of the export
    unchecked: str | None


async def declared_only(session: Session, keys: Sequence[Mapping[str, Any]]) -> Exported:
    """The keys with only the custom attributes the project declares (a key may still hold one whose
    declaration was deleted: written out, it would make the next apply fail)."""
    names = held_names(keys)
    declarations = await read_declarations(session, names, []) if names else Declarations()
    if declarations.unchecked or not names:
        return Exported([dict(key) for key in keys], (), declarations.unchecked)
    dropped = tuple(sorted(name for name, found in declarations.found.items() if found is None))
    kept = []
    for key in keys:
        values = key.get("customAttributes")
        if isinstance(values, Mapping) and dropped:
            kept.append({**key, "customAttributes": {k: v for k, v in values.items() if k not in dropped}})
        else:
            kept.append(dict(key))
    return Exported(kept, dropped, None)
