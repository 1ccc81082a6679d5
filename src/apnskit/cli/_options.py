"""What the ``send`` and ``check`` commands share: exit codes, credential options, errors.

Exit codes (documented in ``--help`` and ``docs/content/cli.md``):

- 0: everything was accepted (or checked fine);
- 1: APNs rejected at least one notification;
- 2: a usage or input error (bad arguments, an invalid notification, unusable credentials);
- 3: a connection or transport error (at least one notification got no answer).
"""

from __future__ import annotations

import argparse
import getpass
import os
import re
import sys
from typing import Any, NoReturn, Protocol, TextIO

from apnskit._credentials.certificate import CertificateCredentials
from apnskit._credentials.token import TokenCredentials
from apnskit._errors import CredentialsError

__all__ = [
    "CHANNELS_EXIT_CODES",
    "CHECK_EXIT_CODES",
    "EXIT_CODES_EPILOG",
    "EXIT_OK",
    "EXIT_REJECTED",
    "EXIT_TRANSPORT",
    "EXIT_USAGE",
    "PASSWORD_ENV",
    "ArgumentContainer",
    "CommandParser",
    "UsageError",
    "add_connection_options",
    "add_credential_options",
    "add_sending_options",
    "environment_of",
    "in_cli_terms",
    "option_error",
    "load_credentials",
    "port_number",
    "positive_seconds",
]

EXIT_OK = 0
EXIT_REJECTED = 1
EXIT_USAGE = 2
EXIT_TRANSPORT = 3

#: The environment variable read for a certificate's password when --password is not given.
PASSWORD_ENV = "APNSKIT_CERT_PASSWORD"  # noqa: S105 - the variable name, not a password

EXIT_CODES_EPILOG = """\
exit codes:
  0  every notification was accepted (check: everything checked is fine)
  1  APNs rejected at least one notification
  2  usage or input error: bad arguments, an invalid notification or JSON line,
     unusable credentials (nothing is sent when this is found before sending)
  3  connection or transport error: at least one notification got no answer
     (check --connect: the TLS connection failed)
  When several apply, the highest wins: 3, then 2, then 1.
"""

CHECK_EXIT_CODES = """\
exit codes:
  0  everything checked is fine
  2  usage or input error: bad arguments, unusable credentials
  3  --connect: the connection to APNs failed (the message names the step and the likely cause)
"""

CHANNELS_EXIT_CODES = """\
exit codes:
  0  the channel request succeeded
  1  APNs refused it (the reason is printed, e.g. ChannelNotRegistered)
  2  usage or input error: bad arguments, unusable credentials
  3  connection or transport error: the request got no answer
"""

#: What the library's messages call a field, and the option that sets it on the command line.
#: The library speaks Python (``pass ca_file=``); a command-line user needs the flag.
_CLI_NAMES = {
    "key_id": "--key-id",
    "team_id": "--team-id",
    "key_file": "--cert-key",
    "ca_file": "--ca-file",
    "proxy": "--proxy",
    "port": "--port",
    "environment": "--sandbox or --production",
    "Timeout.connect": "--connect-timeout",
    "Timeout.deadline": "--deadline",
    "RetryPolicy.max_attempts": "--attempts",
}
_PASSWORD_HINT = f"give --password-file FILE, --password or ${PASSWORD_ENV}"
# "pass key_id=", "pass its password=", "pass key_file= (or key_pem=)"
_PASS_RE = re.compile(r"(?i:pass) (?:its )?(\w+(?:\.\w+)?)=(?: \(or \w+=\))?")
# The field a message starts with: "Timeout.connect: ...", "ca_file: ..."
_FIELD_RE = re.compile(r"^(\w+(?:\.\w+)?):")


def in_cli_terms(message: str) -> str:
    """A library message with its Python names replaced by the command-line options.

    ``"ca_file: cannot load ...; pass ca_file="`` becomes ``"--ca-file: cannot load ...;
    pass --ca-file"``; a missing password points at ``--password-file`` and the environment
    variable.

    Args:
        message: The text of a :class:`~apnskit.CredentialsError` or ``ConfigurationError``.
    """

    def hint(match: re.Match[str]) -> str:
        name = match.group(1)
        if name == "password":
            return _PASSWORD_HINT
        return f"give {_CLI_NAMES[name]}" if name in _CLI_NAMES else match.group(0)

    message = _PASS_RE.sub(hint, message)
    for name, flag in _CLI_NAMES.items():
        if "." not in name:
            message = message.replace(f"{name}=", flag)
    field = _FIELD_RE.match(message)
    if field is not None and field.group(1) in _CLI_NAMES:
        message = _CLI_NAMES[field.group(1)] + message[field.end(1) :]
    return message


class CommandParser(argparse.ArgumentParser):
    """An argument parser whose usage errors are one line: the option, the rule, where to look.

    argparse's default prints the whole usage block first; for a command with thirty options
    that buries the one line that matters.
    """

    def error(self, message: str) -> NoReturn:
        """Print ``<prog>: <message> (see '<prog> --help')`` and exit with status 2.

        Args:
            message: What argparse found wrong.
        """
        message = message.removeprefix("argument ")
        self.exit(EXIT_USAGE, f"{self.prog}: {message} (see '{self.prog} --help')\n")


def port_number(text: str) -> int:
    """``--port``: a TCP port number, 1..65535.

    Args:
        text: The option's value.

    Raises:
        argparse.ArgumentTypeError: It is not one.
    """
    return _port(text, lowest=1)


def listen_port(text: str) -> int:
    """``mock-server --port``: 0..65535, where 0 asks for any free port.

    Args:
        text: The option's value.

    Raises:
        argparse.ArgumentTypeError: It is not one.
    """
    return _port(text, lowest=0)


def _port(text: str, *, lowest: int) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number") from None
    if not lowest <= value <= 65535:
        free = "; 0: any free port" if lowest == 0 else ""
        raise argparse.ArgumentTypeError(
            f"{value} is not a TCP port number ({lowest}..65535{free})"
        )
    return value


def positive_seconds(text: str) -> float:
    """A number of seconds greater than 0 (``--connect-timeout``, ``--deadline``, ``--timeout``).

    Args:
        text: The option's value.

    Raises:
        argparse.ArgumentTypeError: It is not one.
    """
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"{text} must be a positive number of seconds")
    return value


def attempts_count(text: str) -> int:
    """``--attempts``: sends per notification, retries included; at least 1.

    Args:
        text: The option's value.

    Raises:
        argparse.ArgumentTypeError: It is not one.
    """
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} must be at least 1 (1: send once, no retry)")
    return value


class ArgumentContainer(Protocol):
    """A parser or an argument group: what ``add_argument`` can be called on.

    (argparse's own name for the group's class, ``_ArgumentGroup``, is private.)
    """

    def add_argument(self, *name_or_flags: str, **kwargs: Any) -> argparse.Action:
        """Add an option, as :meth:`argparse.ArgumentParser.add_argument` does."""


def add_sending_options(parser: ArgumentContainer, *, what: str, note: str = "") -> None:
    """Add ``--attempts``, ``--connect-timeout`` and ``--deadline`` to ``parser``.

    Args:
        parser: The parser (or argument group) of ``send``, ``broadcast`` or ``channels``.
        what: What one attempt sends: ``"notification"`` or ``"request"``.
        note: Extra text for ``--attempts``' help.
    """
    parser.add_argument(
        "--attempts",
        type=attempts_count,
        default=3,
        metavar="N",
        help=f"sends per {what}, retries included (default 3{note})",
    )
    parser.add_argument(
        "--connect-timeout",
        type=positive_seconds,
        default=10.0,
        metavar="SECONDS",
        help="for TCP and TLS set-up of each connection (default 10)",
    )
    parser.add_argument(
        "--deadline",
        type=positive_seconds,
        default=30.0,
        metavar="SECONDS",
        help=f"per {what}, retries included (default 30)",
    )


class UsageError(Exception):
    """A command line that cannot work; the message says which option and why."""


def add_credential_options(parser: argparse.ArgumentParser) -> None:
    """Add the token/certificate authentication options to ``parser``.

    Args:
        parser: The parser of ``send`` or ``check``.
    """
    token = parser.add_argument_group("token authentication (a .p8 signing key)")
    token.add_argument("--key", metavar="FILE", help="the AuthKey_<KEYID>.p8 signing key")
    token.add_argument(
        "--key-id",
        metavar="ID",
        help="the 10-character key ID (default: taken from the file name AuthKey_<KEYID>.p8)",
    )
    token.add_argument("--team-id", metavar="ID", help="the 10-character team ID")
    cert = parser.add_argument_group("certificate authentication (a client certificate)")
    cert.add_argument(
        "--cert", metavar="FILE", help="PEM certificate (optionally with its key) or PKCS#12 file"
    )
    cert.add_argument(
        "--cert-key", metavar="FILE", help="PEM private key, when it is not in --cert"
    )
    secret = cert.add_mutually_exclusive_group()
    secret.add_argument(
        "--password-file",
        metavar="FILE",
        help=(
            "read the password of the PKCS#12 file or encrypted key from the first line of "
            f"FILE. Without it: ${PASSWORD_ENV}, else a prompt when a terminal is attached"
        ),
    )
    secret.add_argument(
        "--password",
        metavar="TEXT",
        help=(
            "the password itself; avoid it on shared machines: every user can read a command "
            f"line in the process list (use --password-file or ${PASSWORD_ENV})"
        ),
    )


def add_connection_options(parser: argparse.ArgumentParser) -> None:
    """Add the environment and host options to ``parser``.

    Args:
        parser: The parser of ``send`` or ``check``.
    """
    group = parser.add_argument_group("where to connect")
    env = group.add_mutually_exclusive_group()
    env.add_argument(
        "--sandbox",
        dest="environment",
        action="store_const",
        const="sandbox",
        help="the development environment (api.sandbox.push.apple.com)",
    )
    env.add_argument(
        "--production",
        dest="environment",
        action="store_const",
        const="production",
        help="the production environment (api.push.apple.com)",
    )
    group.add_argument(
        "--host", metavar="HOST", help="connect here instead (the mock server; proxies: --proxy)"
    )
    group.add_argument(
        "--port",
        metavar="PORT",
        type=port_number,
        help="port (default 443; APNs also listens on 2197)",
    )
    group.add_argument(
        "--ca-file", metavar="FILE", help="extra trusted CA certificates (PEM), e.g. the mock's"
    )
    group.add_argument(
        "--proxy",
        metavar="URL",
        help=(
            "connect through this proxy: http://[user:password@]host:port (HTTP CONNECT) or "
            "socks5://[user:password@]host:port (default: $HTTPS_PROXY or $ALL_PROXY unless "
            "$NO_PROXY lists the host; NO_PROXY='*' ignores them)"
        ),
    )


def option_error(error: Exception) -> UsageError:
    """A client's ConfigurationError as a UsageError naming the command-line option.

    Args:
        error: The error raised while building the client.
    """
    # The client names its arguments (proxy=, ca_file=); here they are options (--proxy...).
    return UsageError(in_cli_terms(str(error)))


def environment_of(args: argparse.Namespace) -> str | None:
    """The environment chosen on the command line, or None.

    Args:
        args: Parsed arguments with ``environment``.
    """
    value = getattr(args, "environment", None)
    return value if isinstance(value, str) else None


def load_credentials(
    args: argparse.Namespace,
    *,
    stdin: TextIO | None = None,
    err: TextIO | None = None,
) -> TokenCredentials | CertificateCredentials:
    """Build credentials from ``--key``/``--cert`` and friends.

    A certificate's password comes from ``--password-file``, else ``--password``, else
    ``$APNSKIT_CERT_PASSWORD``, else (when the file turns out to need one and standard input
    is a terminal) a ``getpass`` prompt. Messages name the options, not the library's
    arguments.

    Args:
        args: Parsed arguments of ``send`` or ``check``.
        stdin: Standard input, to tell whether a prompt is possible (default ``sys.stdin``).
        err: Where the prompt is written (default ``sys.stderr``).

    Raises:
        UsageError: Neither or both of --key and --cert, or a needed option is missing.
        CredentialsError: The key or certificate cannot be used.
    """
    try:
        return _load_credentials(args, stdin if stdin is not None else sys.stdin, err)
    except CredentialsError as error:
        raise CredentialsError(in_cli_terms(str(error))) from None


def _load_credentials(
    args: argparse.Namespace, stdin: TextIO, err: TextIO | None
) -> TokenCredentials | CertificateCredentials:
    password_file = getattr(args, "password_file", None)
    if args.key and args.cert:
        raise UsageError("--key and --cert: give one, not both (token or certificate auth)")
    if args.key:
        if args.cert_key or args.password or password_file:
            raise UsageError(
                "--cert-key/--password/--password-file: only for certificate auth (--cert)"
            )
        if not args.team_id:
            raise UsageError("--team-id: required with --key (the 10-character team ID)")
        return TokenCredentials.from_file(args.key, team_id=args.team_id, key_id=args.key_id)
    if args.cert:
        if args.key_id or args.team_id:
            raise UsageError("--key-id/--team-id: only for token auth (--key)")
        password = args.password
        if password_file is not None:
            password = _read_password_file(password_file)
        elif password is None:
            password = os.environ.get(PASSWORD_ENV) or None
        try:
            return CertificateCredentials.from_file(
                args.cert, key_file=args.cert_key, password=password
            )
        except CredentialsError as error:
            # Prompt only when a password is what is missing and a person can answer.
            if password is not None or not str(error).startswith("password:"):
                raise
            if not _is_tty(stdin):
                raise
            prompted = getpass.getpass(
                f"password for {os.path.basename(args.cert)}: ",
                stream=err if err is not None else sys.stderr,
            )
            return CertificateCredentials.from_file(
                args.cert, key_file=args.cert_key, password=prompted
            )
    raise UsageError(
        "credentials: give --key AuthKey_<KEYID>.p8 --team-id ID (token auth) "
        "or --cert FILE (certificate auth)"
    )


def _read_password_file(path: str) -> str:
    """The first line of ``path``, without its line ending (as ``openssl -passin file:``)."""
    try:
        with open(path, encoding="utf-8") as file:
            line = file.readline()
    except (OSError, UnicodeDecodeError) as error:
        why = (
            error.strerror.lower() if isinstance(error, OSError) and error.strerror else "not text"
        )
        raise UsageError(f"--password-file: cannot read {path}: {why}") from None
    password = line.rstrip("\r\n")
    if not password:
        raise UsageError(f"--password-file: the first line of {path} is empty")
    return password


def _is_tty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False
