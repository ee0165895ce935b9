"""`descope-reconcile export`: write the project's keys as a desired file (bootstrap)."""

from __future__ import annotations

import argparse
import logging
from functools import partial
from pathlib import Path
from typing import Any

from reconcile.apply.limiter import Budget
from reconcile.cli.common import check_outputs, print_diagnostics
from reconcile.cli.options import Parser, add_command, remote_options, targets_options
from reconcile.cli.remote import connect
from reconcile.desired.loader import Diagnostic, ParsedFile, parse_text
from reconcile.desired.validation import build_desired_state
from reconcile.errors import ConfigError, ExitCode
from reconcile.files import write_private_atomically
from reconcile.job.declared import declared_only
from reconcile.job.session import Session, load_keys
from reconcile.output.export import render_export

log = logging.getLogger("reconcile")


def register(subcommands: argparse._SubParsersAction[Parser]) -> None:
    parser = add_command(
        subcommands,
        "export",
        [remote_options(), targets_options()],
        "write every key of the project as a desired file (bootstrap)",
        "Write the project's keys as a valid desired file: sorted, updatable fields only, "
        "server-managed facts as comments. `plan` on the result reports no change.",
    )
    parser.add_argument("--out", type=Path, required=True, metavar="FILE", help="the desired file to write")
    parser.add_argument("--ids", metavar="ID,ID", help="only these key ids (comma-separated)")
    parser.add_argument("--tenant", action="append", metavar="TENANT_ID", help="only keys of this tenant (repeatable)")
    parser.add_argument("--overwrite", action="store_true", help="replace FILE if it exists")
    parser.add_argument(
        "--factor-defaults",
        action="store_true",
        help="write a value shared by most keys (more than half, at least two) once, in `defaults`",
    )
    parser.set_defaults(handler=run)


def _check_export(text: str, path: Path) -> list[Diagnostic]:
    """What the server holds that our own validation would refuse (rare: say so, don't hide it)."""
    parsed = parse_text(str(path), text.encode())
    if not isinstance(parsed, ParsedFile):
        return parsed
    return build_desired_state([parsed])[1]


async def _keys_to_export(session: Session, wanted_ids: list[str], tenants: list[str]) -> list[dict[str, Any]]:
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


async def run(args: argparse.Namespace) -> int:
    if args.out.exists() and not args.overwrite:
        raise ConfigError(f"{args.out} exists: pass --overwrite to replace it")
    check_outputs(args, "--out")
    wanted_ids = list(dict.fromkeys(part.strip() for part in (args.ids or "").split(",") if part.strip()))
    async with connect(args) as (session, target):
        exported = await declared_only(session, await _keys_to_export(session, wanted_ids, args.tenant or []))
    keys = exported.keys
    if exported.unchecked:
        log.warning("warning: custom attributes exported unchecked against the declarations: %s", exported.unchecked)
    if exported.dropped:
        log.warning("warning: not exported, no longer declared in the project: %s", ", ".join(exported.dropped))
    text = render_export(keys, source=f"project {target.project_id}", factor_defaults=args.factor_defaults)
    write_private_atomically(args.out, text, mode=0o644)
    log.info("wrote %d key(s) to %s", len(keys), args.out)
    problems = _check_export(text, args.out)
    if problems:
        print_diagnostics(problems, "text")
        log.error("error: the project holds values the desired format refuses; fix them in %s", args.out)
        return ExitCode.FAILURE
    return ExitCode.OK
