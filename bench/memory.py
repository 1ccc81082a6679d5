"""Resident memory of a 1,000,000-notification generator through ``send_many``.

Both clients stream a generator of notifications through ``send_many`` to nginx (or the mock
server) and print this process's RSS (``VmRSS``) before the run and at 10 %, 50 % and 100 % of
the results. Target: at most 150 MB and flat (input is pulled as results come back, so memory
is bounded by ``Limits.max_in_flight``, not by the length of the input).

    python bench/memory.py [--server nginx|mock] [--count 1000000] [--clients sync,asyncio]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import anyio

import apnskit

sys.path.insert(0, str(Path(__file__).resolve().parent))
from throughput import MockServer, NginxServer, Server, client_kwargs, notifications


def rss_mb() -> float:
    """This process's resident set size in MB, from /proc/self/status."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def _marks(count: int) -> dict[int, str]:
    return {count // 10: "10%", count // 2: "50%", count: "100%"}


def run_sync(server: Server, count: int, kwargs: dict[str, object]) -> None:
    marks = _marks(count)
    print(f"  PushClient      start RSS {rss_mb():6.1f} MB", flush=True)
    with apnskit.PushClient(server.credentials, **kwargs) as client:  # type: ignore[arg-type]
        accepted = 0
        for done, result in enumerate(client.send_many(notifications(count)), start=1):
            accepted += result.accepted
            if done in marks:
                print(f"  PushClient      {marks[done]:>4s} RSS {rss_mb():6.1f} MB", flush=True)
    if accepted != count:
        print(f"  warning: {count - accepted} not accepted")


def run_async(server: Server, count: int, kwargs: dict[str, object]) -> None:
    marks = _marks(count)

    async def main() -> None:
        print(f"  AsyncPushClient start RSS {rss_mb():6.1f} MB", flush=True)
        async with apnskit.AsyncPushClient(server.credentials, **kwargs) as client:  # type: ignore[arg-type]
            done = accepted = 0
            async for result in client.send_many(notifications(count)):
                done += 1
                accepted += result.accepted
                if done in marks:
                    print(f"  AsyncPushClient {marks[done]:>4s} RSS {rss_mb():6.1f} MB", flush=True)
        if accepted != count:
            print(f"  warning: {count - accepted} not accepted")

    anyio.run(main, backend="asyncio")


def main() -> None:
    parser = argparse.ArgumentParser(description="RSS of send_many over a long generator")
    parser.add_argument("--server", choices=["mock", "nginx"], default="nginx")
    parser.add_argument("--count", type=int, default=1_000_000)
    parser.add_argument("--clients", default="sync,asyncio")
    parser.add_argument(
        "--default-limits",
        action="store_true",
        help="apnskit.DEFAULT_LIMITS (up to 24 connections, 15,000 in flight) instead of one "
        "connection with 2,000 in flight",
    )
    args = parser.parse_args()
    server: Server = NginxServer() if args.server == "nginx" else MockServer()
    if args.default_limits:
        kwargs = client_kwargs(server, limits=apnskit.DEFAULT_LIMITS)
        shape = f"default {apnskit.DEFAULT_LIMITS}"
    else:
        kwargs, shape = client_kwargs(server), "one connection"
    print(f"{args.count} notifications through send_many, {shape}, target <= 150 MB")
    try:
        for name in args.clients.split(","):
            (run_sync if name == "sync" else run_async)(server, args.count, kwargs)
    finally:
        server.stop()


if __name__ == "__main__":
    main()
