"""`descope-reconcile export`: write the project's keys as a desired file (bootstrap)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from reconcile.cli.command import Invocation, invocation
from reconcile.cli.options import add_command, id_list, remote, remote_options, targets_options
from reconcile.cli.parser import Parser

if TYPE_CHECKING:
    from reconcile.job.export import ExportOptions


def register(subcommands: argparse._SubParsersAction[Parser]) -> None:
    parser = add_command(
        subcommands,
        "export",
        [remote_options(), targets_options()],
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
    parser.set_defaults(invocation=parse)


def parse(args: argparse.Namespace) -> Invocation[ExportOptions]:
    from reconcile.job import export  # noqa: PLC0415 (`export --help` needs no network stack)
    from reconcile.job.export import ExportOptions  # noqa: PLC0415

    options = ExportOptions(
        remote(args),
        args.out,
        ids=id_list(args.ids),
        tenants=tuple(args.tenant or ()),
        overwrite=args.overwrite,
        factor_defaults=args.factor_defaults,
    )
    return invocation(args, options, export.run)
