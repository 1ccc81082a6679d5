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
import sys
from typing import TextIO

from apnskit._credentials import CertificateCredentials, TokenCredentials
from apnskit._errors import CredentialsError

__all__ = [
    "EXIT_CODES_EPILOG",
    "EXIT_OK",
    "EXIT_REJECTED",
    "EXIT_TRANSPORT",
    "EXIT_USAGE",
    "PASSWORD_ENV",
    "UsageError",
    "add_connection_options",
    "add_credential_options",
    "environment_of",
    "option_error",
    "load_credentials",
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
    cert.add_argument(
        "--password",
        metavar="TEXT",
        help=(
            f"password of the PKCS#12 file or encrypted key (default: ${PASSWORD_ENV}, or a "
            "prompt when a terminal is attached and a password is needed)"
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
        "--port", metavar="PORT", type=int, help="port (default 443; APNs also listens on 2197)"
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
    message = str(error)
    # The client names its argument (proxy=); here it is the option --proxy.
    return UsageError(f"--{message}" if message.startswith("proxy:") else message)


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

    A certificate's password comes from ``--password``, else ``$APNSKIT_CERT_PASSWORD``, else
    (when the file turns out to need one and standard input is a terminal) a ``getpass``
    prompt.

    Args:
        args: Parsed arguments of ``send`` or ``check``.
        stdin: Standard input, to tell whether a prompt is possible (default ``sys.stdin``).
        err: Where the prompt is written (default ``sys.stderr``).

    Raises:
        UsageError: Neither or both of --key and --cert, or a needed option is missing.
        CredentialsError: The key or certificate cannot be used.
    """
    stdin = stdin if stdin is not None else sys.stdin
    if args.key and args.cert:
        raise UsageError("--key and --cert: give one, not both (token or certificate auth)")
    if args.key:
        if args.cert_key or args.password:
            raise UsageError("--cert-key/--password: only for certificate auth (--cert)")
        if not args.team_id:
            raise UsageError("--team-id: required with --key (the 10-character team ID)")
        return TokenCredentials.from_file(args.key, team_id=args.team_id, key_id=args.key_id)
    if args.cert:
        if args.key_id or args.team_id:
            raise UsageError("--key-id/--team-id: only for token auth (--key)")
        password = args.password
        if password is None:
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
                raise CredentialsError(f"{error}; pass --password or set ${PASSWORD_ENV}") from None
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


def _is_tty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False
