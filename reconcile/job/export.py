"""`export`: the project's keys written as a desired file (bootstrap)."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
from typing import Any

from reconcile.apply.limiter import Budget
from reconcile.config.targets import TargetConfig
from reconcile.desired.loader import Diagnostic, ParsedFile, parse_text
from reconcile.desired.validation import build_desired_state
from reconcile.errors import ConfigError, ExitCode
from reconcile.files import write_private_atomically
from reconcile.job.connect import connect
from reconcile.job.declared import declared_only
from reconcile.job.fetch import load_keys
from reconcile.job.options import Remote, per_target
from reconcile.job.outputs import check_outputs
from reconcile.job.result import Output, Result, settled_async
from reconcile.job.session import Session
from reconcile.output.export import render_export

log = logging.getLogger("reconcile")


@dataclass(frozen=True)
class ExportOptions:
    remote: Remote
    out: Path
    ids: tuple[str, ...] = ()  # only these keys
    tenants: tuple[str, ...] = ()  # only keys of these tenants
    overwrite: bool = False
    factor_defaults: bool = False  # a value most keys share, once, in `defaults`
    outputs: None = None  # no report, no summary: the file is the product

    def for_target(self, target: TargetConfig) -> ExportOptions:
        return replace(self, remote=self.remote.for_target(target), out=per_target(self.out, target.name))

    def files(self) -> Mapping[str, Path | None]:
        return {"out": self.out}


def _check_export(text: str, path: Path) -> list[Diagnostic]:
    """What the server holds that our own validation would refuse (rare: say so, don't hide it)."""
    parsed = parse_text(str(path), text.encode())
    if not isinstance(parsed, ParsedFile):
        return parsed
    return build_desired_state([parsed])[1]


async def _keys_to_export(session: Session, wanted_ids: tuple[str, ...], tenants: list[str]) -> list[dict[str, Any]]:
    """Named keys one GET each (cheaper than reading the whole project); otherwise one search."""
    unknown: list[str] = []
    if wanted_ids and not tenants:
        loaded = await load_keys(session, wanted_ids)
        keys = [key for key in loaded.values() if key is not None]
        unknown = [key_id for key_id, key in loaded.items() if key is None]
    else:
        search = partial(session.client.search_access_keys, tenant_ids=tenants)
        keys = await session.call(search, budget=Budget.READ, what="search")
        if wanted_ids:
            found = {key["id"] for key in keys}
            unknown = [key_id for key_id in wanted_ids if key_id not in found]
            keys = [key for key in keys if key["id"] in wanted_ids]
    if unknown:
        where = f"in tenant(s) {', '.join(tenants)}" if tenants else "in the project"
        raise ConfigError(f"not {where}: {', '.join(unknown)}")
    return keys


async def _export(options: ExportOptions, output: Output) -> Result:
    if options.out.exists() and not options.overwrite:
        raise ConfigError(f"{options.out} exists: pass --overwrite to replace it")
    check_outputs([("--out", options.out)])
    async with connect(options.remote) as (session, target):
        exported = await declared_only(session, await _keys_to_export(session, options.ids, list(options.tenants)))
    keys = exported.keys
    if exported.unchecked:
        output.say(
            logging.WARNING,
            f"warning: custom attributes exported unchecked against the declarations: {exported.unchecked}",
        )
    if exported.dropped:
        output.say(
            logging.WARNING, f"warning: not exported, no longer declared in the project: {', '.join(exported.dropped)}"
        )
    text = render_export(keys, source=f"project {target.project_id}", factor_defaults=options.factor_defaults)
    write_private_atomically(options.out, text, mode=0o644)
    log.info("wrote %d key(s) to %s", len(keys), options.out)
    output.diagnostics.extend(_check_export(text, options.out))
    if output.diagnostics:
        refused = f"error: the project holds values the desired format refuses; fix them in {options.out}"
        output.say(logging.ERROR, refused)
        return output.result(ExitCode.FAILURE)
    return output.result(ExitCode.OK)


async def run(options: ExportOptions) -> Result:
    return await settled_async(partial(_export, options))
