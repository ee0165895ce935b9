"""`descope-reconcile validate`: check the desired files offline (no credentials, no network)."""

from __future__ import annotations

import argparse
import logging

from reconcile.cli.common import load, print_diagnostics
from reconcile.cli.options import (
    NO_PATHS,
    PATHS_HELP,
    Parser,
    add_command,
    add_policy_option,
    desired_options,
    policy_wanted,
    targets_options,
)
from reconcile.errors import ExitCode, UsageError

log = logging.getLogger("reconcile")


def register(subcommands: argparse._SubParsersAction[Parser]) -> None:
    parser = add_command(
        subcommands,
        "validate",
        [desired_options(), targets_options()],
        "check the desired files offline (no credentials, no network)",
        "Check every desired file against schemas/desired.schema.json and report every problem; with a policy "
        "(--policy FILE, or the config's `policy:`), every key against its rules too: exit 1 on an error-level "
        "violation no waiver covers (docs/policy.md).",
    )
    parser.add_argument("paths", nargs="*", metavar="PATH", help=PATHS_HELP)
    parser.add_argument(
        "--format",
        choices=("text", "github", "json", "sarif"),
        default="text",
        help="text: path:line:col: error: ...; github: workflow annotations; json: a list; "
        "sarif: SARIF 2.1.0 for GitHub code scanning",
    )
    add_policy_option(parser)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    if not args.paths:
        raise UsageError(NO_PATHS)
    if policy_wanted(args):  # (only then is any of the policy imported: validate runs on every commit)
        from reconcile.cli.policy import check_files, configured  # noqa: PLC0415

        if (policy := configured(args)) is not None:
            return check_files(args, policy, load(args, args.format))
    loaded = load(args, args.format)
    if args.format in ("json", "sarif"):
        print_diagnostics([], args.format)  # nothing found; within a target's run, part of the combined output
    log.info("%d file(s), %d key(s): valid", len(loaded.files), len(loaded.state.keys))
    return ExitCode.OK
