"""`descope-reconcile rotate`: a new secret for exactly the named keys, delivered to the sinks."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from reconcile.cli.command import Invocation, invocation
from reconcile.cli.options import (
    add_command,
    add_policy_option,
    audit_event_options,
    changes,
    execution_options,
    id_list,
    non_negative_float,
    outputs,
    policy_choice,
    positive_int,
    remote,
    remote_options,
    report_options,
    secrets_options,
    targets_options,
    trail,
    trail_options,
)
from reconcile.cli.parser import Parser

if TYPE_CHECKING:
    from reconcile.job.rotate import RotateOptions


def register(subcommands: argparse._SubParsersAction[Parser]) -> None:
    parser = add_command(
        subcommands,
        "rotate",
        [
            remote_options(),
            report_options(),
            targets_options(),
            execution_options(),
            secrets_options(),
            trail_options(),
            audit_event_options(),
        ],
        "Rotate exactly the keys given: each gets a new secret, delivered to --secrets-out and/or "
        "--secrets-command, and its old secret stops working at once. A rotation whose answer was lost is "
        "never sent again blindly: the key is reloaded and the report says what is known. With "
        "descope-reconcile.yaml, name the key's project with --target NAME. With --due (the scheduled job), the "
        "keys past the policy's max-key-age instead; keep --journal FILE between runs, or the keys rotated are "
        "due again (Descope keeps createdTime on a rotation).",
    )
    parser.add_argument("--ids", metavar="ID,ID", help="the keys to rotate (comma-separated)")
    parser.add_argument(
        "--due",
        action="store_true",
        help="instead of --ids: every active key whose secret is older than the policy's `max-key-age` "
        "(since its creation, or its last rotation in the journal), oldest first, under the project's lock",
    )
    parser.add_argument(
        "--max-keys",
        type=positive_int,
        default=10,
        metavar="N",
        help="with --due: rotate at most N keys in this run, the oldest (default 10); the rest are left for the next",
    )
    add_policy_option(parser)
    parser.add_argument(
        "paths",
        nargs="*",
        metavar="PATH",
        help="the desired files or folders (optional): read only to say which keys no file manages",
    )
    parser.add_argument("--dry-run", action="store_true", help="list what would rotate; send nothing")
    parser.add_argument(
        "--wait-lock",
        type=non_negative_float,
        default=0.0,
        metavar="SECONDS",
        help="wait this long for another apply or rotate on this machine to the same project (default 0: refuse)",
    )
    parser.set_defaults(invocation=parse)


def parse(args: argparse.Namespace) -> Invocation[RotateOptions]:
    from reconcile.job import rotate  # noqa: PLC0415 (`rotate --help` needs no network stack)
    from reconcile.job.rotate import RotateOptions  # noqa: PLC0415

    options = RotateOptions(
        remote(args),
        outputs(args),
        changes(args),
        id_list(args.ids) if args.ids else None,
        dry_run=args.dry_run,
        due=args.due,
        max_keys=args.max_keys,
        policy=policy_choice(args),
        paths=tuple(args.paths),
        trail=trail(args, event=args.audit_event),
        wait_lock=args.wait_lock,
    )
    handed = args.secrets_command_env or ()
    return invocation(args, options, rotate.run, paths=args.paths, handed_env=handed)
