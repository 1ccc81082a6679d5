"""The ``apnskit`` command: ``send``, ``broadcast``, ``channels``, ``check``, ``demo`` and more.

Installed as the ``apnskit`` console script and runnable as ``python -m apnskit``. Every
command returns an exit code instead of calling :func:`sys.exit`, so :func:`main` can be
driven from tests with an argument list.

Exit codes: 0 all accepted (or checked fine), 1 some rejected by APNs, 2 usage or input error,
3 connection or transport error. See ``docs/content/cli.md``.
"""

from __future__ import annotations

import argparse
import sys
from typing import TextIO

from apnskit import __version__
from apnskit._errors import (
    ApnsError,
    ConfigurationError,
    CredentialsError,
    InvalidNotificationError,
)
from apnskit.cli._broadcast import add_broadcast_parser, add_channels_parser
from apnskit.cli._check import add_check_parser
from apnskit.cli._demo import add_demo_parser
from apnskit.cli._options import (
    EXIT_CODES_EPILOG,
    EXIT_TRANSPORT,
    EXIT_USAGE,
    CommandParser,
    UsageError,
    in_cli_terms,
)
from apnskit.cli._send import add_send_parser

__all__ = ["build_parser", "main"]

_MOCK_SERVER = "mock-server"


def build_parser() -> argparse.ArgumentParser:
    """The ``apnskit`` argument parser with all its commands.

    Returns:
        The parser; each command's namespace carries its ``handler``.
    """
    parser = CommandParser(
        prog="apnskit",
        description="Apple Push Notification service (APNs) from the command line.",
        epilog="Start with: apnskit demo\n\n" + EXIT_CODES_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"apnskit {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    add_send_parser(subparsers)
    add_broadcast_parser(subparsers)
    add_channels_parser(subparsers)
    add_check_parser(subparsers)
    add_demo_parser(subparsers)
    # Listed here for the help text; its arguments are parsed by run_mock_server itself.
    subparsers.add_parser(
        _MOCK_SERVER,
        help="run the mock APNs server standalone (see 'apnskit mock-server --help')",
        add_help=False,
    )
    return parser


def main(
    argv: list[str] | None = None,
    *,
    stdout: TextIO | None = None,
    stderr: TextIO | None = None,
    stdin: TextIO | None = None,
) -> int:
    """Run the ``apnskit`` command.

    Args:
        argv: The arguments without the program name (default: ``sys.argv[1:]``).
        stdout: Where results go (default ``sys.stdout``).
        stderr: Where progress and problems go (default ``sys.stderr``).
        stdin: Where ``--payload -`` and ``--from -`` read (default ``sys.stdin``).

    Returns:
        The exit code: 0 all accepted, 1 some rejected by APNs, 2 usage or input error,
        3 connection or transport error.
    """
    args_list = list(sys.argv[1:] if argv is None else argv)
    out = stdout if stdout is not None else sys.stdout
    err = stderr if stderr is not None else sys.stderr
    inp = stdin if stdin is not None else sys.stdin
    if args_list and args_list[0] == _MOCK_SERVER:
        from apnskit.testing._cli import run_mock_server

        try:
            return run_mock_server(args_list[1:], out=out, err=err)
        except SystemExit as exit_:
            return _code(exit_)

    parser = build_parser()
    try:
        args = parser.parse_args(args_list)
    except SystemExit as exit_:
        return _code(exit_)
    command = args.command
    try:
        code: int = args.handler(args, out=out, err=err, stdin=inp)
    except UsageError as error:
        # One line, like argparse's own errors (CommandParser): the option, the rule, where
        # to look.
        print(f"apnskit {command}: {error} (see 'apnskit {command} --help')", file=err)
        return EXIT_USAGE
    except (CredentialsError, ConfigurationError, InvalidNotificationError) as error:
        # All three say what is wrong with the input, and none carries a secret.
        print(f"apnskit {command}: {in_cli_terms(str(error))}", file=err)
        return EXIT_USAGE
    except ApnsError as error:
        print(f"apnskit {command}: {type(error).__name__}: {in_cli_terms(str(error))}", file=err)
        return EXIT_TRANSPORT
    except KeyboardInterrupt:
        print(f"apnskit {command}: interrupted", file=err)
        return 130
    return code


def _code(exit_: SystemExit) -> int:
    if exit_.code is None:
        return 0
    if isinstance(exit_.code, int):
        return exit_.code
    return EXIT_USAGE
