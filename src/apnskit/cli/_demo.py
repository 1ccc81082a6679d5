"""``apnskit demo``: both clients against the embedded mock server, in a few seconds.

It is the README's first command, so it shows the whole trip with nothing to set up: a local
APNs server, a signing key it trusts, device tokens (one unregistered, one unknown), a local
rejection of a malformed token, then the same batch through :class:`~apnskit.PushClient` and
:class:`~apnskit.AsyncPushClient` with a results table and the throughput of each.
"""

from __future__ import annotations

import argparse
import contextlib
import secrets
import signal
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from types import FrameType
from typing import TYPE_CHECKING, Any, TextIO

import anyio

from apnskit._clients.async_client import AsyncPushClient
from apnskit._clients.sync_client import PushClient
from apnskit._credentials.token import TokenCredentials
from apnskit._errors import InvalidNotificationError
from apnskit._model.notification import Notification
from apnskit._model.results import PushResult
from apnskit.cli._options import EXIT_OK, EXIT_REJECTED, UsageError

if TYPE_CHECKING:
    from apnskit.testing import MockApnsServer

__all__ = ["add_demo_parser", "run_demo"]

DEMO_TOPIC = "com.example.demo"
#: How many distinct registered device tokens the batch cycles through.
REGISTERED_DEVICES = 100
MALFORMED_TOKEN = "not-a-device-token"  # noqa: S105 - a device token, not a secret


def add_demo_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``demo`` command to ``subparsers``.

    Args:
        subparsers: What ``ArgumentParser.add_subparsers`` returned.

    Returns:
        The ``demo`` parser.
    """
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "demo",
        help="send a batch through PushClient and AsyncPushClient to an embedded mock server",
        description=(
            "Start a mock APNs server in this process, then send the same batch through "
            "PushClient and AsyncPushClient (1% to an unregistered token and 1% to an unknown "
            "one) and print a results table and the throughput of each. Nothing leaves this "
            "machine."
        ),
        epilog="exit codes:\n  0  every result was as expected\n"
        "  1  a result was not what the mock server should have answered (a bug)\n"
        "  2  usage error",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--count",
        type=int,
        default=2000,
        metavar="N",
        help="notifications per client (default 2000; at least 10)",
    )
    parser.set_defaults(handler=run_demo)
    return parser


@dataclass
class ClientRun:
    """What one client's batch came back with."""

    name: str
    elapsed: float = 0.0
    accepted: int = 0
    rejected: Counter[str] = field(default_factory=Counter)
    failed: Counter[str] = field(default_factory=Counter)

    def add(self, result: PushResult) -> None:
        """Count one result.

        Args:
            result: A result of the batch.
        """
        if result.accepted:
            self.accepted += 1
        elif result.failed:
            self.failed[type(result.error).__name__] += 1
        else:
            self.rejected[f"{result.status} {result.reason}"] += 1

    @property
    def total(self) -> int:
        """Results counted."""
        return self.accepted + sum(self.rejected.values()) + sum(self.failed.values())


def run_demo(args: argparse.Namespace, *, out: TextIO, err: TextIO, stdin: TextIO) -> int:
    """Run ``apnskit demo``.

    Args:
        args: Parsed arguments.
        out: Standard output.
        err: Standard error.
        stdin: Unused.

    Returns:
        The exit code: 0 when every result was the one expected.

    Raises:
        UsageError: ``--count`` is too small.
    """
    del stdin
    # Here, not at the top: `import apnskit.cli` (every command) must not load the mock server.
    from apnskit.testing import MockApnsServer

    count = args.count
    if count < 10:
        raise UsageError(f"--count: {count} is too few; give at least 10")
    bad = max(1, count // 100)

    def say(line: str = "") -> None:
        print(line, file=out, flush=True)

    say("apnskit demo: PushClient and AsyncPushClient against an embedded mock APNs server")
    say()
    with _sigterm_unwinds(), MockApnsServer(strict=True) as server:
        credentials, devices, gone, unknown = _set_up(server, say)
        if not _show_local_check(say):  # pragma: no cover - the model would be broken
            return EXIT_REJECTED
        batch = _batch(count, bad, devices, gone, unknown)
        good = count - 2 * bad
        say(f"Sending {count:,} notifications through each client:")
        say(
            f"  {good:,} to registered devices, {bad:,} to the unregistered token, "
            f"{bad:,} to a token the server does not know"
        )
        say()
        connection: dict[str, Any] = {
            "host": server.host,
            "port": server.port,
            "ca_file": server.ca_file,
            "environment": "sandbox",
        }
        runs = [
            _run_sync(credentials, connection, batch),
            _run_async(credentials, connection, batch),
        ]

    for line in _table(runs):
        say(line)
    say()
    return _verdict(runs, count, bad, err, say)


def _set_up(
    server: MockApnsServer, say: Callable[..., None]
) -> tuple[TokenCredentials, list[str], str, str]:
    """Make a signing key and the device tokens on ``server``, and say so.

    Returns the credentials, the registered tokens, an unregistered one and an unknown one.
    """
    key = server.new_token_key()
    credentials = TokenCredentials.from_file(key.path, team_id=key.team_id)
    devices = [secrets.token_hex(32) for _ in range(REGISTERED_DEVICES)]
    for token in devices:
        server.register(token, DEMO_TOPIC)
    gone = secrets.token_hex(32)
    server.register(gone, DEMO_TOPIC)
    server.unregister(gone)
    unknown = secrets.token_hex(32)

    say(f"  mock APNs server  {server.host}:{server.port}  (sandbox, token auth, strict)")
    say(f"  signing key       {key.path.name}  key id {key.key_id}, team id {key.team_id}")
    say(
        f"  device tokens     {REGISTERED_DEVICES + 1} registered for {DEMO_TOPIC}, "
        "1 of them then unregistered"
    )
    say()
    return credentials, devices, gone, unknown


def _show_local_check(say: Callable[..., None]) -> bool:
    """Show a malformed token refused before anything is sent; False if it was not."""
    say("Checked locally, before anything is sent:")
    try:
        Notification(MALFORMED_TOKEN, {"aps": {"alert": "Hi"}}, topic=DEMO_TOPIC)
    except InvalidNotificationError as error:
        say(f'  token "{MALFORMED_TOKEN}"  ->  InvalidNotificationError: {error}')
    else:  # pragma: no cover - the model would be broken
        say(f'  token "{MALFORMED_TOKEN}"  ->  accepted locally (unexpected)')
        return False
    say()
    return True


def _run_sync(
    credentials: TokenCredentials, connection: dict[str, Any], batch: list[Notification]
) -> ClientRun:
    run = ClientRun("PushClient")
    start = time.perf_counter()
    with PushClient(credentials, **connection) as client:
        for result in client.send_many(batch):
            run.add(result)
    run.elapsed = time.perf_counter() - start
    return run


def _run_async(
    credentials: TokenCredentials, connection: dict[str, Any], batch: list[Notification]
) -> ClientRun:
    run = ClientRun("AsyncPushClient")

    async def send_async() -> None:
        start = time.perf_counter()
        async with AsyncPushClient(credentials, **connection) as client:
            async for result in client.send_many(batch):
                run.add(result)
        run.elapsed = time.perf_counter() - start

    anyio.run(send_async)
    return run


def _verdict(
    runs: list[ClientRun], count: int, bad: int, err: TextIO, say: Callable[..., None]
) -> int:
    """The exit code: whether each client got exactly the answers the server should give."""
    good = count - 2 * bad
    expected = Counter({"410 Unregistered": bad, "400 BadDeviceToken": bad})
    wrong = [
        r.name
        for r in runs
        if r.accepted != good or r.rejected != expected or r.failed or r.total != count
    ]
    if wrong:
        print(
            f"apnskit demo: unexpected results from {' and '.join(wrong)}: expected {good:,} "
            f"accepted, {bad:,} Unregistered and {bad:,} BadDeviceToken, nothing failed",
            file=err,
            flush=True,
        )
        return EXIT_REJECTED
    say("Every notification got the answer it should. Next: apnskit send --help")
    return EXIT_OK


def _batch(count: int, bad: int, devices: list[str], gone: str, unknown: str) -> list[Notification]:
    """``count`` notifications; the ``bad`` ones of each kind spread evenly through it."""
    step = count // bad
    # Odd positions of every step-th slot go to the unregistered token, the next to the
    # unknown one, so both kinds are mixed in with the good ones rather than bunched.
    special = {}
    for i in range(bad):
        special[i * step] = gone
        special[i * step + 1] = unknown
    batch = []
    for i in range(count):
        token = special.get(i, devices[i % len(devices)])
        batch.append(
            Notification(
                token,
                {"aps": {"alert": {"title": "apnskit demo", "body": f"notification {i + 1}"}}},
                topic=DEMO_TOPIC,
            )
        )
    return batch


def _table(runs: list[ClientRun]) -> list[str]:
    """The results table: one row per outcome or reason, one column per client."""
    reasons = sorted({r for run in runs for r in run.rejected})
    errors = sorted({e for run in runs for e in run.failed})
    rows: list[tuple[str, Callable[[ClientRun], str]]] = [
        ("accepted", lambda run: f"{run.accepted:,}"),
        ("rejected", lambda run: f"{sum(run.rejected.values()):,}"),
    ]
    rows += [(f"  {reason}", _counter_cell("rejected", reason)) for reason in reasons]
    rows.append(("failed", lambda run: f"{sum(run.failed.values()):,}"))
    rows += [(f"  {error}", _counter_cell("failed", error)) for error in errors]
    rows.append(("elapsed", lambda run: f"{run.elapsed:.2f} s"))
    rows.append(("throughput", lambda run: f"{run.total / max(run.elapsed, 1e-9):,.0f} /s"))

    label_width = max(24, *(len(label) + 2 for label, _ in rows))
    widths = [max(len(run.name), 12) for run in runs]
    header = " " * label_width + "   ".join(
        run.name.rjust(w) for run, w in zip(runs, widths, strict=True)
    )
    rule = " " * 2 + "-" * (len(header) - 2)
    lines = [header, rule]
    for label, cell in rows:
        values = "   ".join(cell(run).rjust(w) for run, w in zip(runs, widths, strict=True))
        lines.append(f"  {label}".ljust(label_width) + values)
    return lines


def _counter_cell(attribute: str, key: str) -> Callable[[ClientRun], str]:
    def cell(run: ClientRun) -> str:
        counter: Counter[str] = getattr(run, attribute)
        return f"{counter[key]:,}"

    return cell


@contextlib.contextmanager
def _sigterm_unwinds() -> Iterator[None]:
    """Make SIGTERM unwind the stack, so the mock server removes its temporary folder.

    That folder holds private keys; by default SIGTERM kills the process at once and leaves it
    in place. Exits with 143 (128 + SIGTERM), as a shell reports a process killed by SIGTERM.
    Python lets only the main thread set signal handlers; elsewhere nothing changes.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handle(signum: int, frame: FrameType | None) -> None:
        raise SystemExit(128 + signum)

    previous = signal.signal(signal.SIGTERM, handle)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
