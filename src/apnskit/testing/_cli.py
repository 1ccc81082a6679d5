"""``python -m apnskit mock-server``: run the mock APNs server standalone.

Prints where it listens, the CA file to trust and a ready token key (a ``.p8`` file with its
key ID and team ID), then serves until interrupted (Ctrl-C) or terminated (SIGTERM); either way
it stops cleanly and removes its temporary directory, which holds private keys.
"""

from __future__ import annotations

import argparse
import errno
import re
import signal
import sys
import threading
from types import FrameType
from typing import Any, TextIO

from apnskit.cli._options import CommandParser, listen_port
from apnskit.testing._application import ReceivedNotification
from apnskit.testing._mock_server import MockApnsServer

__all__ = ["build_parser", "format_log_line", "run_mock_server"]

#: The bundle ID ``--register TOKEN`` uses without ``:TOPIC`` (and the issued client
#: certificate's topic).
DEFAULT_TOPIC = "com.example.app"
EXIT_USAGE = 2

_TOKEN_RE = re.compile(r"[0-9A-Fa-f]+")
_TOPIC_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} must be >= 1")
    return value


def _token(text: str) -> str:
    # Apple: device tokens are hex strings; their length is not fixed, so it is not checked.
    if _TOKEN_RE.fullmatch(text) is None:
        raise argparse.ArgumentTypeError(f"{text!r} is not a hex device token")
    return text


def _registration(text: str) -> tuple[str, str]:
    token, sep, topic = text.partition(":")
    if not sep:
        topic = DEFAULT_TOPIC
    if _TOPIC_RE.fullmatch(topic) is None:
        raise argparse.ArgumentTypeError(f"{text!r}: {topic!r} is not a bundle ID (TOKEN[:TOPIC])")
    return _token(token), topic


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``mock-server``."""
    parser = CommandParser(
        prog="apnskit mock-server",
        description="Run a local mock APNs server (HTTP/2 over TLS) for testing APNs clients.",
        epilog="exit codes:\n  0  stopped by Ctrl-C or SIGTERM\n"
        "  2  usage error, or the address cannot be listened on",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument(
        "--port", type=listen_port, default=2197, help="port, 0..65535 (0: any free port)"
    )
    parser.add_argument(
        "--auth", choices=("token", "certificate"), default="token", help="authentication mode"
    )
    parser.add_argument("--environment", choices=("sandbox", "production"), default="sandbox")
    parser.add_argument(
        "--strict", action="store_true", help="answer BadDeviceToken for unregistered tokens"
    )
    parser.add_argument(
        "--max-concurrent-streams",
        type=_positive_int,
        default=1000,
        metavar="N",
        help="SETTINGS_MAX_CONCURRENT_STREAMS announced (with token auth, after the first "
        "successful request; default 1000)",
    )
    parser.add_argument(
        "--strict-stream-limit",
        action="store_true",
        help="end the connection with GOAWAY PROTOCOL_ERROR when a client opens a stream "
        "beyond the limit, instead of refusing that stream with RST_STREAM REFUSED_STREAM",
    )
    parser.add_argument(
        "--register",
        type=_registration,
        action="append",
        default=[],
        metavar="TOKEN[:TOPIC]",
        help=f"register a device token for a bundle ID (default {DEFAULT_TOPIC}); repeatable",
    )
    parser.add_argument(
        "--unregister",
        type=_token,
        action="append",
        default=[],
        metavar="TOKEN",
        help="make a device token answer 410 Unregistered; repeatable",
    )
    parser.add_argument(
        "--log",
        action="store_true",
        help="print one line per request: method, path, status and reason",
    )
    return parser


def format_log_line(record: ReceivedNotification) -> str:
    """One ``--log`` line for a request: ``METHOD PATH STATUS [REASON]``.

    Only the method, path and answer are shown, never a header: the ``authorization`` header
    carries a provider token.

    Args:
        record: The request as the server recorded it.

    Returns:
        E.g. ``POST /3/device/ab12... 410 Unregistered``, or for a request answered without a
        reply (a scripted reset, GOAWAY, drop or silence) ``POST /3/device/ab12... - reset``.
    """
    if record.status is None:
        return f"{record.method} {record.path} - {record.outcome}"
    line = f"{record.method} {record.path} {record.status}"
    if record.reason:
        line += f" {record.reason}"
    if record.outcome == "delayed":
        line += " (delayed)"
    return line


def run_mock_server(
    argv: list[str] | None = None,
    *,
    stop: threading.Event | None = None,
    out: TextIO | None = None,
    err: TextIO | None = None,
) -> int:
    """Start the mock server, print how to reach it, and serve until Ctrl-C, SIGTERM or ``stop``.

    Args:
        argv: Command line arguments (without the program name).
        stop: Serve until this event is set instead of until interrupted (for tests).
        out: Where to print (default: stdout).
        err: Where problems go (default: stderr).

    Returns:
        The exit status: 0 after a clean stop, 2 when the address cannot be listened on.
    """
    args = build_parser().parse_args(argv)
    out = out if out is not None else sys.stdout
    err = err if err is not None else sys.stderr
    lock = threading.Lock()

    def log(record: ReceivedNotification) -> None:
        # Called from the server's thread; the lock keeps lines whole.
        with lock:
            print(format_log_line(record), file=out, flush=True)

    server = MockApnsServer(
        host=args.host,
        port=args.port,
        auth=args.auth,
        environment=args.environment,
        strict=args.strict,
        max_concurrent_streams=args.max_concurrent_streams,
        strict_stream_limit=args.strict_stream_limit,
        on_request=log if args.log else None,
    )
    for token, topic in args.register:
        server.register(token, topic)
    for token in args.unregister:
        server.unregister(token)
    stop = stop if stop is not None else threading.Event()
    previous = _on_sigterm(stop)
    try:
        return _serve(server, args, stop, out, err)
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _on_sigterm(stop: threading.Event) -> Any:
    """Make SIGTERM stop the server like Ctrl-C does; return the handler it replaces.

    Without it the default action kills the process at once and the temporary directory, with
    its private keys, stays behind. Python lets only the main thread set signal handlers.
    """
    if threading.current_thread() is not threading.main_thread():
        return None

    def handle(signum: int, frame: FrameType | None) -> None:
        stop.set()

    return signal.signal(signal.SIGTERM, handle)


def _serve(
    server: MockApnsServer,
    args: argparse.Namespace,
    stop: threading.Event,
    out: TextIO,
    err: TextIO,
) -> int:
    try:
        server.__enter__()
    except OSError as error:
        where = f"{args.host}:{args.port}"
        why = (
            "address already in use (try --port 0)"
            if error.errno == errno.EADDRINUSE
            else (error.strerror or str(error)).lower()
        )
        print(f"mock-server: cannot listen on {where}: {why}", file=err, flush=True)
        return EXIT_USAGE
    try:
        print(f"mock APNs server listening on {server.host}:{server.port}", file=out)
        print(f"  environment: {server.environment.value}, auth: {server.auth}", file=out)
        print(f"  CA file:     {server.ca_file}", file=out)
        if args.auth == "token":
            key = server.new_token_key()
            print(f"  token key:   {key.path}", file=out)
            print(f"  key id:      {key.key_id}", file=out)
            print(f"  team id:     {key.team_id}", file=out)
        else:
            cert, key_path = server.issue_client_certificate([DEFAULT_TOPIC])
            print(f"  client cert: {cert}", file=out)
            print(f"  client key:  {key_path}", file=out)
        if args.register:
            print(f"  registered:  {len(args.register)} device token(s)", file=out)
        if args.unregister:
            print(f"  unregistered: {len(args.unregister)} device token(s)", file=out)
        print("Press Ctrl-C to stop.", file=out, flush=True)
        try:
            while not stop.wait(0.5):
                pass
        except KeyboardInterrupt:
            pass
        print("stopping", file=out, flush=True)
    finally:
        server.__exit__(None, None, None)
    return 0
