"""``python -m apnskit mock-server``: run the mock APNs server standalone.

Prints where it listens, the CA file to trust and a ready token key (a ``.p8`` file with its
key ID and team ID), then serves until interrupted (Ctrl-C).
"""

from __future__ import annotations

import argparse
import sys
import threading
from typing import TextIO

from apnskit.testing._mock_server import MockApnsServer

__all__ = ["build_parser", "run_mock_server"]


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``mock-server``."""
    parser = argparse.ArgumentParser(
        prog="apnskit mock-server",
        description="Run a local mock APNs server (HTTP/2 over TLS) for testing APNs clients.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", type=int, default=2197, help="port (0: any free port)")
    parser.add_argument(
        "--auth", choices=("token", "certificate"), default="token", help="authentication mode"
    )
    parser.add_argument("--environment", choices=("sandbox", "production"), default="sandbox")
    parser.add_argument(
        "--strict", action="store_true", help="answer BadDeviceToken for unregistered tokens"
    )
    return parser


def run_mock_server(
    argv: list[str] | None = None,
    *,
    stop: threading.Event | None = None,
    out: TextIO | None = None,
) -> int:
    """Start the mock server, print how to reach it, and serve until Ctrl-C (or ``stop``).

    Args:
        argv: Command line arguments (without the program name).
        stop: Serve until this event is set instead of until interrupted (for tests).
        out: Where to print (default: stdout).

    Returns:
        The exit status.
    """
    args = build_parser().parse_args(argv)
    out = out if out is not None else sys.stdout
    server = MockApnsServer(
        host=args.host,
        port=args.port,
        auth=args.auth,
        environment=args.environment,
        strict=args.strict,
    )
    stop = stop if stop is not None else threading.Event()
    with server:
        print(f"mock APNs server listening on {server.host}:{server.port}", file=out)
        print(f"  environment: {server.environment.value}, auth: {server.auth}", file=out)
        print(f"  CA file:     {server.ca_file}", file=out)
        if args.auth == "token":
            key = server.new_token_key()
            print(f"  token key:   {key.path}", file=out)
            print(f"  key id:      {key.key_id}", file=out)
            print(f"  team id:     {key.team_id}", file=out)
        else:
            cert, key_path = server.issue_client_certificate(["com.example.app"])
            print(f"  client cert: {cert}", file=out)
            print(f"  client key:  {key_path}", file=out)
        print("Press Ctrl-C to stop.", file=out, flush=True)
        try:
            while not stop.wait(0.5):
                pass
        except KeyboardInterrupt:
            print("stopping", file=out)
    return 0
