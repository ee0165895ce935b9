"""`descope-reconcile validate`: check the desired files offline (no credentials, no network)."""

from __future__ import annotations

import argparse

from reconcile.cli.command import Invocation, invocation
from reconcile.cli.options import (
    PATHS_HELP,
    add_command,
    add_policy_option,
    desired_options,
    policy_choice,
    targets_options,
)
from reconcile.cli.parser import Parser
from reconcile.job import validate
from reconcile.job.validate import ValidateOptions


def register(subcommands: argparse._SubParsersAction[Parser]) -> None:
    parser = add_command(
        subcommands,
        "validate",
        [desired_options(), targets_options()],
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
    parser.set_defaults(invocation=parse)


def parse(args: argparse.Namespace) -> Invocation[ValidateOptions]:
    options = ValidateOptions(tuple(args.paths), args.max_file_size, policy_choice(args))
    return invocation(args, options, validate.run, paths=args.paths, output_format=args.format)
