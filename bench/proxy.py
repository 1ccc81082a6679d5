"""What a proxy costs: send_many through tinyproxy, dante and pproxy versus a direct connection.

Starts the mock APNs server (in this process) and the proxies the test suite uses (see
tests/proxy/proxy_servers.py; tinyproxy and danted from Debian, pproxy from PyPI), then sends
N notifications with PushClient and AsyncPushClient (asyncio) for each route and prints
notifications per second (wall clock, median of several runs). The mock server shares this
process, so the figures compare routes; they are not the clients' top speed (see
throughput.py for that).

    python bench/proxy.py [--count 5000] [--runs 3]
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
import tempfile
import time
from pathlib import Path

import anyio

import apnskit
from apnskit.testing import MockApnsServer

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "proxy"))
from proxy_servers import PASSWORD, USER, danted, free_port, pproxy, tinyproxy


def note() -> apnskit.Notification:
    return apnskit.Notification("ab" * 32, {"aps": {"alert": "hi"}}, topic="com.example.app")


def run_sync(server: MockApnsServer, proxy: str | None, count: int) -> float:
    options = {"host": server.host, "port": server.port, "ca_file": server.ca_file}
    with apnskit.PushClient(
        server.apns_token_credentials(), proxy=proxy, trust_env=False, **options
    ) as client:
        assert client.send(note()).accepted
        started = time.perf_counter()
        results = list(client.send_many(note() for _ in range(count)))
        elapsed = time.perf_counter() - started
    assert all(r.accepted for r in results)
    return count / elapsed


def run_async(server: MockApnsServer, proxy: str | None, count: int) -> float:
    async def main() -> float:
        async with apnskit.AsyncPushClient(
            server.apns_token_credentials(),
            host=server.host,
            port=server.port,
            ca_file=server.ca_file,
            proxy=proxy,
            trust_env=False,
        ) as client:
            assert (await client.send(note())).accepted
            started = time.perf_counter()
            results = [r async for r in client.send_many(note() for _ in range(count))]
            elapsed = time.perf_counter() - started
        assert all(r.accepted for r in results)
        return count / elapsed

    return anyio.run(main)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=5000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    with (
        tempfile.TemporaryDirectory() as tmp,
        MockApnsServer() as server,
        contextlib.ExitStack() as stack,
    ):
        work = Path(tmp)
        tp = stack.enter_context(tinyproxy(work, [server.port], (USER, PASSWORD)))
        dante = stack.enter_context(danted(work, free_port()))
        pp = stack.enter_context(pproxy(work, "socks5", (USER, PASSWORD)))
        routes = {
            "direct": None,
            "tinyproxy (HTTP CONNECT, Basic auth)": tp.url(USER, PASSWORD),
            "dante (SOCKS5)": dante.url(),
            "pproxy (SOCKS5, user/password)": pp.url(USER, PASSWORD),
        }
        print(f"{args.count} notifications, median of {args.runs} runs, notifications/s")
        print(f"{'route':40} {'PushClient':>12} {'AsyncPushClient':>16}")
        for name, url in routes.items():
            sync = statistics.median(run_sync(server, url, args.count) for _ in range(args.runs))
            asyn = statistics.median(run_async(server, url, args.count) for _ in range(args.runs))
            print(f"{name:40} {sync:12,.0f} {asyn:16,.0f}")


if __name__ == "__main__":
    main()
