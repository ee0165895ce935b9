"""The command line: one module per command (its arguments beside its handler); `main` assembles them."""

from reconcile.cli.main import build_parser, main

__all__ = ["build_parser", "main"]
