"""`descope-reconcile doctor`: check every assumption about the API against the project, read-only."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from reconcile.cli.command import Invocation, invocation
from reconcile.cli.options import add_command, desired_options, remote, remote_options, targets_options
from reconcile.cli.parser import Parser

if TYPE_CHECKING:
    from reconcile.job.doctor import DoctorCommand


def register(subcommands: argparse._SubParsersAction[Parser]) -> None:
    parser = add_command(
        subcommands,
        "doctor",
        [desired_options(), remote_options(), targets_options()],
        "Base URL and region, TLS, credentials, the rate-limit tier, permission to search keys and the "
        "audit trail, the shape of a recent access-key record, whether the apply event can be written, "
        "the desired files' custom attributes against the project's declarations, clock skew, and what "
        "stays unknown without a write. Changes nothing. Exit 0 when every check a plan or apply needs passes.",
    )
    parser.add_argument("paths", nargs="*", metavar="PATH", help="desired files or folders whose attributes to check")
    parser.add_argument("--format", choices=("text", "json"), default="text", help="output format (default text)")
    parser.add_argument("--audit-tenant", metavar="TENANT", help="the apply event's tenant (config: auditTenant)")
    parser.set_defaults(invocation=parse)


def parse(args: argparse.Namespace) -> Invocation[DoctorCommand]:
    from reconcile.job.doctor import DoctorCommand, doctor  # noqa: PLC0415 (`doctor --help` needs no network stack)

    options = DoctorCommand(tuple(args.paths), remote(args), args.audit_tenant, as_json=args.format == "json")
    return invocation(args, options, doctor, paths=args.paths)
