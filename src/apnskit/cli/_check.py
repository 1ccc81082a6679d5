"""``apnskit check``: are these credentials usable, and can this machine reach APNs?

Without ``--connect`` it only reads the key or certificate. With ``--connect`` it walks the
steps a client takes (DNS, TCP, TLS with ALPN ``h2``, the server's HTTP/2 SETTINGS) one at a time,
so a failure names the step and the likely cause (DNS, a firewall, a TLS-intercepting proxy,
a missing CA) instead of a bare exception.
"""

from __future__ import annotations

import argparse
import socket
import ssl
import time
from datetime import datetime, timezone
from typing import Any, TextIO

from cryptography import x509

from apnskit._clients.common import CERTIFICATE_REFUSED, build_ssl_context
from apnskit._config import DEFAULT_PORT, Environment
from apnskit._credentials.certificate import CertificateCredentials
from apnskit._credentials.token import TokenCredentials
from apnskit._errors import ConfigurationError, ConnectError
from apnskit._transports.proxy import Proxy, choose_proxy, open_tunnel
from apnskit.cli._options import (
    CHECK_EXIT_CODES,
    EXIT_OK,
    EXIT_TRANSPORT,
    UsageError,
    add_connection_options,
    add_credential_options,
    environment_of,
    in_cli_terms,
    load_credentials,
    option_error,
    positive_seconds,
)

__all__ = ["add_check_parser", "run_check"]

#: A certificate this close to its expiry gets a warning.
EXPIRY_WARNING_DAYS = 30

# RFC 9113 section 3.4: the client connection preface, then a SETTINGS frame (empty here).
_H2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"
_H2_SETTINGS = 0x4
# RFC 9113 section 6.8: GOAWAY with last-stream-id 0 and NO_ERROR, to leave politely.
_H2_GOAWAY = b"\x00\x00\x08\x07\x00\x00\x00\x00\x00" + bytes(8)

CHECK_EXAMPLES = """\
examples:
  apnskit check --key AuthKey_ABC123DEFG.p8 --team-id TEAM123456
  apnskit check --cert push.p12 --connect
  apnskit check --connect --production          (connectivity only, no credentials)

"""


def add_check_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``check`` command to ``subparsers``.

    Args:
        subparsers: What ``ArgumentParser.add_subparsers`` returned.

    Returns:
        The ``check`` parser.
    """
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "check",
        help="check credentials and (with --connect) the TLS connection to APNs",
        description=(
            "Check that a signing key or certificate is usable (key ID, team ID; certificate "
            "UID, environments, topics, expiry) and, with --connect, that this machine can open "
            "a TLS connection to APNs: DNS, TCP, certificate chain, TLS version and ALPN."
        ),
        epilog=CHECK_EXAMPLES + CHECK_EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_credential_options(parser)
    add_connection_options(parser)
    parser.add_argument(
        "--connect", action="store_true", help="also open a TLS connection and report on it"
    )
    parser.add_argument(
        "--timeout",
        type=positive_seconds,
        default=10.0,
        metavar="SECONDS",
        help="for each step of --connect (default 10)",
    )
    parser.set_defaults(handler=run_check)
    return parser


def run_check(args: argparse.Namespace, *, out: TextIO, err: TextIO, stdin: TextIO) -> int:
    """Run ``apnskit check``.

    Args:
        args: Parsed arguments.
        out: Standard output (the report).
        err: Standard error (problems).
        stdin: Standard input (the password prompt).

    Returns:
        The exit code.

    Raises:
        UsageError: The command line cannot work.
        CredentialsError: The credentials cannot be used.
    """
    credentials: TokenCredentials | CertificateCredentials | None = None
    if args.key or args.cert or not args.connect:
        credentials = load_credentials(args, stdin=stdin, err=err)
    environment: Environment | None = None
    if isinstance(credentials, TokenCredentials):
        _report_token(args, credentials, out)
        if environment_of(args) is not None:
            environment = Environment.parse(environment_of(args) or "")
    elif isinstance(credentials, CertificateCredentials):
        environment = credentials.resolve_environment(environment_of(args))
        _report_certificate(args, credentials, environment, out)
    elif environment_of(args) is not None:
        environment = Environment.parse(environment_of(args) or "")
    if not args.connect:
        return EXIT_OK

    host = args.host
    if host is None:
        if environment is None:
            raise UsageError(
                "--sandbox or --production: required to pick the APNs host (or give --host)"
            )
        host = environment.host
    port = args.port if args.port is not None else DEFAULT_PORT
    if not 0 < port < 65536:
        raise UsageError(f"--port: {port} is not a TCP port number (1..65535)")
    context = _ssl_context(args.ca_file, credentials)
    client_cert = isinstance(credentials, CertificateCredentials)
    try:
        # As the clients choose: --proxy, else $HTTPS_PROXY/$ALL_PROXY unless $NO_PROXY.
        proxy = choose_proxy(args.proxy, True, host, port)
    except ConfigurationError as error:
        raise option_error(error) from None
    return _connect(
        host, port, context, args.timeout, environment, client_cert, args.ca_file, out, err, proxy
    )


# -------------------------------------------------------------------------------- credentials


def _report_token(args: argparse.Namespace, credentials: TokenCredentials, out: TextIO) -> None:
    # Signing one token proves the key works, not only that it parses.
    credentials.authorization()
    print(f"token key      {args.key}", file=out)
    print(f"  key id       {credentials.key_id}", file=out)
    print(f"  team id      {credentials.team_id}", file=out)
    print("  key          EC P-256 private key; signs ES256 provider tokens: ok", file=out)


def _report_certificate(
    args: argparse.Namespace,
    credentials: CertificateCredentials,
    environment: Environment,
    out: TextIO,
) -> None:
    info = credentials.info
    now = datetime.now(timezone.utc)
    days_left = (info.not_valid_after - now).days
    print(f"certificate    {args.cert}", file=out)
    print(f"  subject UID  {info.subject_uid or '(none)'}", file=out)
    marked = ", ".join(sorted(e.value for e in info.environments))
    print(f"  environments {marked or '(not marked: not an Apple push certificate?)'}", file=out)
    if info.topics:
        for i, topic in enumerate(info.topics):
            label = "  topics       " if i == 0 else "               "
            print(f"{label}{topic.name} ({', '.join(topic.kinds) or 'no kinds'})", file=out)
    else:
        print("  topics       (no topics extension)", file=out)
    print(f"  valid from   {_when(info.not_valid_before)}", file=out)
    print(f"  expires      {_when(info.not_valid_after)} ({days_left} days left)", file=out)
    chosen = "given" if environment_of(args) else "picked from the certificate"
    print(f"  environment  {environment.value} ({chosen})", file=out)
    if days_left < EXPIRY_WARNING_DAYS:
        print(
            f"  warning      expires in {days_left} days: renew it in the Apple Developer account",
            file=out,
        )


def _when(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC")


# -------------------------------------------------------------------------------- connecting


def _ssl_context(
    ca_file: str | None, credentials: TokenCredentials | CertificateCredentials | None
) -> ssl.SSLContext:
    # The very context the clients build: system trust store (+ --ca-file), TLS 1.2+, ALPN h2.
    try:
        return build_ssl_context(credentials, ca_file, None)
    except ConfigurationError as error:
        raise UsageError(in_cli_terms(str(error))) from None


def _connect(
    host: str,
    port: int,
    context: ssl.SSLContext,
    timeout: float,
    environment: Environment | None,
    client_cert: bool,
    ca_file: str | None,
    out: TextIO,
    err: TextIO,
    proxy: Proxy | None = None,
) -> int:
    where = (
        f" ({environment.value})" if environment is not None and host == environment.host else ""
    )
    print(f"connecting to {host}:{port}{where}", file=out, flush=True)
    if proxy is None:
        raw = _direct(host, port, timeout, out, err)
    else:
        raw = _tunnel(host, port, proxy, timeout, out, err)
    if isinstance(raw, int):
        return raw
    return _tls(raw, host, port, context, timeout, client_cert, ca_file, out, err)


def _tunnel(
    host: str, port: int, proxy: Proxy, timeout: float, out: TextIO, err: TextIO
) -> socket.socket | int:
    # 1-2. The proxy resolves the APNs host and opens the TCP connection.
    started = time.monotonic()
    try:
        raw = open_tunnel(proxy, host, port, timeout)
    except ConnectError as error:
        return _fail(err, f"proxy: {error}")
    print(
        f"  proxy        {proxy.display}: tunnel open in "
        f"{(time.monotonic() - started) * 1000:.0f} ms (DNS and TCP done by the proxy)",
        file=out,
    )
    return raw


def _direct(host: str, port: int, timeout: float, out: TextIO, err: TextIO) -> socket.socket | int:
    # 1. DNS
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as error:
        return _fail(
            err,
            f"DNS: cannot resolve {host} ({error.strerror}). Check the host name and this "
            "machine's DNS settings; a network that reaches the internet only through a proxy "
            "cannot resolve APNs hosts directly: pass --proxy URL (or set HTTPS_PROXY).",
        )
    addresses = sorted({str(info[4][0]) for info in infos})
    print(f"  DNS          {host} -> {', '.join(addresses)}", file=out)

    # 2. TCP
    started = time.monotonic()
    try:
        raw = socket.create_connection((host, port), timeout=timeout)
    except ConnectionRefusedError:
        return _fail(
            err,
            f"TCP: connection to {host}:{port} refused: nothing listens there. APNs listens on "
            "ports 443 and 2197; check --host/--port, or a firewall or proxy in between.",
        )
    except TimeoutError:
        return _fail(
            err,
            f"TCP: no answer from {host}:{port} within {timeout:g} s: a firewall probably drops "
            "outgoing traffic to this port. Try --port 2197 (APNs' alternative port) or ask for "
            "the APNs hosts to be allowed; behind a proxy, pass --proxy URL.",
        )
    except OSError as error:
        return _fail(
            err,
            f"TCP: cannot connect to {host}:{port}: {error.strerror or error}. Check the "
            "network route and any firewall or proxy.",
        )
    print(f"  TCP          connected in {(time.monotonic() - started) * 1000:.0f} ms", file=out)
    return raw


def _tls(
    raw: socket.socket,
    host: str,
    port: int,
    context: ssl.SSLContext,
    timeout: float,
    client_cert: bool,
    ca_file: str | None,
    out: TextIO,
    err: TextIO,
) -> int:
    # 3. TLS
    try:
        tls = context.wrap_socket(raw, server_hostname=host)
    except ssl.SSLCertVerificationError as error:
        raw.close()
        return _fail(
            err,
            f"TLS: the server's certificate could not be verified ({error.verify_message}). "
            + _untrusted_hint(ca_file),
        )
    except ssl.SSLError as error:
        raw.close()
        return _fail(
            err,
            f"TLS: handshake with {host}:{port} failed ({error.reason or error}). The server "
            "may not speak TLS on this port, may refuse the client certificate, or a proxy may "
            "be in the way.",
        )
    except TimeoutError:
        raw.close()
        return _fail(err, f"TLS: the handshake with {host}:{port} timed out after {timeout:g} s.")
    except OSError as error:
        raw.close()
        return _fail(err, f"TLS: the connection broke during the handshake ({error}).")

    with tls:
        alpn = tls.selected_alpn_protocol()
        cipher = tls.cipher()
        print(
            f"  TLS          {tls.version()}, ALPN {alpn or '(none)'}"
            + (f", cipher {cipher[0]}" if cipher else ""),
            file=out,
        )
        print("  server certificate chain:", file=out)
        for i, cert in enumerate(_server_chain(tls)):
            days = (cert.not_valid_after_utc - datetime.now(timezone.utc)).days
            print(f"    {i} subject  {cert.subject.rfc4514_string()}", file=out)
            print(f"      issuer   {cert.issuer.rfc4514_string()}", file=out)
            print(f"      expires  {_when(cert.not_valid_after_utc)} ({days} days left)", file=out)
        if alpn != "h2":
            return _fail(
                err,
                "TLS: the server did not agree to HTTP/2 (ALPN h2), which APNs requires; "
                "something that terminates TLS (a proxy, a load balancer) is in the way.",
            )
        # 4. HTTP/2: the server's first frame must be SETTINGS (RFC 9113 section 3.4). With
        # TLS 1.3 a refused client certificate only shows up here, on the first read.
        try:
            tls.settimeout(timeout)
            tls.sendall(_H2_PREFACE)
            header = _read_exactly(tls, 9)
        except (OSError, EOFError) as error:
            # ssl.SSLError is an OSError: a TLS alert here, after the handshake, is the same
            # refusal as a plain close. The clients say the same words (CERTIFICATE_REFUSED).
            if client_cert:
                return _fail(err, f"TLS: {CERTIFICATE_REFUSED}.")
            reason = getattr(error, "reason", None) or error or "EOF"
            return _fail(err, f"HTTP/2: no SETTINGS frame from the server ({reason}).")
        if header[3] != _H2_SETTINGS:
            return _fail(
                err, f"HTTP/2: the server's first frame has type {header[3]}, not SETTINGS."
            )
        print("  HTTP/2       the server sent its SETTINGS: ready for notifications", file=out)
        _close_politely(tls, min(timeout, 1.0))
    print("ok", file=out)
    return EXIT_OK


def _untrusted_hint(ca_file: str | None) -> str:
    if ca_file is not None:
        return (
            f"It is not signed by the CA in --ca-file {ca_file} (nor by one in the system "
            "trust store): give the CA that signed this server's certificate (for the mock "
            "server, the CA file it printed)."
        )
    return (
        "It does not chain to a CA in the trust store: APNs' certificates chain to "
        "'USERTrust RSA Certification Authority', which an up-to-date system trust store "
        "has (update the ca-certificates package). A TLS-intercepting proxy presents its "
        "own CA: trust it with --ca-file; for the mock server pass --ca-file with its CA."
    )


def _close_politely(tls: ssl.SSLSocket, timeout: float) -> None:
    """Say GOAWAY and read until the server closes.

    Closing with unread data in the receive buffer makes the kernel send a TCP reset instead
    of a FIN, which a server may log (or, in the mock server's case, trip over) as an error.
    """
    try:
        tls.settimeout(timeout)
        tls.sendall(_H2_GOAWAY)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and tls.recv(65536):
            pass
    except (OSError, ssl.SSLError):
        pass


def _read_exactly(sock: ssl.SSLSocket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise EOFError("the server closed the connection")
        data += chunk
    return data


def _server_chain(tls: ssl.SSLSocket) -> list[x509.Certificate]:
    """The verified chain the server presented, leaf first (just the leaf before 3.13)."""
    # SSLSocket.get_verified_chain() is public from Python 3.13 (DER bytes); 3.10-3.12 have
    # it on the private _sslobj (certificate objects).
    getter = getattr(tls, "get_verified_chain", None)
    if getter is None:
        getter = getattr(getattr(tls, "_sslobj", None), "get_verified_chain", None)
    chain: list[x509.Certificate] = []
    if getter is not None:
        try:
            for item in getter() or ():
                if isinstance(item, bytes):
                    chain.append(x509.load_der_x509_certificate(item))
                else:
                    chain.append(x509.load_pem_x509_certificate(item.public_bytes().encode()))
        except (ValueError, TypeError, AttributeError, ssl.SSLError):
            chain = []
    if not chain:
        der = tls.getpeercert(binary_form=True)
        if der:
            chain.append(x509.load_der_x509_certificate(der))
    return chain


def _fail(err: TextIO, message: str) -> int:
    print(f"apnskit check: {message}", file=err, flush=True)
    return EXIT_TRANSPORT
