"""`python -m reconcile` and the console script: the `descope-reconcile` command. The command line's
modules are imported here, where a Ctrl-C as they load ends the process as an interrupted run does
("interrupted", exit 1), never with a traceback."""

import sys


def main() -> None:
    try:
        from reconcile.cli.main import main as command_line  # noqa: PLC0415 (inside the Ctrl-C handling)
    except KeyboardInterrupt:
        sys.stderr.write("interrupted\n")
        sys.exit(1)  # ExitCode.FAILURE, as every interrupted run (reconcile.errors: not loaded yet)
    command_line()


if __name__ == "__main__":
    main()
