"""`descope-reconcile validate`: check the desired files offline (no credentials, no network)."""

from __future__ import annotations

import argparse
import logging

from reconcile.cli.common import load, print_diagnostics
from reconcile.cli.options import NO_PATHS, PATHS_HELP, Parser, add_command, desired_options, targets_options
from reconcile.errors import ExitCode, UsageError

log = logging.getLogger("reconcile")


def register(subcommands: argparse._SubParsersAction[Parser]) -> None:
    parser = add_command(
        subcommands,
        "validate",
        [desired_options(), targets_options()],
        "check the desired files offline (no credentials, no network)",
        "Check every desired file against schemas/desired.schema.json and report every problem.",
    )
    parser.add_argument("paths", nargs="*", metavar="PATH", help=PATHS_HELP)
    parser.add_argument(
        "--format",
        choices=("text", "github", "json"),
        default="text",
        help="text: path:line:col: error: ...; github: workflow annotations; json: a list",
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    if not args.paths:
        raise UsageError(NO_PATHS)
    loaded = load(args, args.format)
    if args.format == "json":
        print_diagnostics([], args.format)  # `[]`; within a target's run, part of the combined list
    log.info("%d file(s), %d key(s): valid", len(loaded.files), len(loaded.state.keys))
    return ExitCode.OK
