"""Soak: many notifications through both clients while the mock server keeps failing.

Every few hundred requests the mock APNs server is told to misbehave at random: GOAWAY
(with and without processing the request), dropped TCP connections with requests in
flight, REFUSED_STREAM, 429/500/503 answers, slow replies and stream-limit changes. The
script then checks the promise apnskit makes: every notification handed to a client ends in
exactly one result. It also counts notifications the server accepted twice (allowed only
after a dropped connection or a 500, whose first send APNs may have processed: see README)
and prints the resident memory at the start, middle and end: it must stay flat, so nothing
here keeps per-notification objects (counts live in bytearrays indexed by notification).

    python bench/soak.py [--notifications 20000] [--clients sync,asyncio,trio] [--seed 1]

Not part of CI (a million notifications take many minutes); the figures go in closing notes.
The default test suite has a shorter soak of its own (tests/clients/test_clients_soak.py).
"""

from __future__ import annotations

import argparse
import collections
import random
import sys
import time
from pathlib import Path
from typing import Any

import anyio

import apnskit
from apnskit.testing import MockApnsServer

sys.path.insert(0, str(Path(__file__).resolve().parent))
from memory import rss_mb  # one RSS reader for the bench scripts

TOPIC = "com.example.soak"


def apns_id(index: int) -> str:
    return f"00000000-0000-4000-8000-{index:012x}"


def index_of(apns_id: object) -> int:
    return int(str(apns_id)[-12:], 16)


def notifications(count: int) -> Any:
    for index in range(count):
        yield apnskit.Notification(
            "ab" * 32, {"aps": {"alert": "soak"}}, topic=TOPIC, apns_id=apns_id(index)
        )


def misbehave(server: MockApnsServer, rng: random.Random) -> str:
    faults = server.faults
    choice = rng.choice(
        ["goaway", "goaway-processed", "drop", "refuse", "429", "500", "503", "slow", "limit"]
    )
    if choice == "goaway":
        faults.goaway_after(rng.randint(0, 50), reason="Shutdown")
    elif choice == "goaway-processed":
        faults.goaway_after(rng.randint(0, 50), reason="IdleTimeout", last_stream_id=None)
    elif choice == "drop":
        faults.drop_after(rng.randint(0, 50))
    elif choice == "refuse":
        faults.refuse_next(rng.randint(1, 20))
    elif choice in {"429", "500", "503"}:
        faults.fail_next(rng.randint(1, 20), status=int(choice))
    elif choice == "slow":
        faults.delay_next(rng.randint(1, 20), rng.uniform(0.01, 0.2))
    else:
        faults.set_max_concurrent_streams(rng.choice([1, 10, 100, 1000]))
    return choice


class Tally:
    """Per-notification counts in bytearrays (one byte each), so memory stays flat."""

    def __init__(self, count: int, server: MockApnsServer, rng: random.Random) -> None:
        self.count = count
        self.results = bytearray(count)
        self.accepted_at_server = bytearray(count)
        self.outcomes: collections.Counter[str] = collections.Counter()
        self.injected: collections.Counter[str] = collections.Counter()
        self.server = server
        self.rng = rng
        self.seen = 0
        self.rss: list[float] = [rss_mb()]

    def add(self, result: apnskit.PushResult) -> None:
        index = index_of(result.notification.apns_id)
        self.results[index] = min(255, self.results[index] + 1)
        if result.accepted:
            self.outcomes["accepted"] += 1
        elif result.status:
            self.outcomes[f"{result.status} {result.reason}"] += 1
        else:
            self.outcomes[type(result.error).__name__] += 1
        self.seen += 1
        if self.seen % 300 == 0:
            self.injected[misbehave(self.server, self.rng)] += 1
        if self.seen % 10_000 == 0:
            self.drain_server()
        if self.seen == self.count // 2:
            self.rss.append(rss_mb())

    def drain_server(self) -> None:
        # The mock server records every request; count and forget them as we go.
        app = self.server.app
        with app.lock:
            batch = list(app.received)
            app.received.clear()
        for request in batch:
            if request.status is not None and 200 <= request.status < 300:
                index = index_of(request.apns_id)
                self.accepted_at_server[index] = min(255, self.accepted_at_server[index] + 1)

    def report(self, name: str, elapsed: float) -> bool:
        self.drain_server()
        self.rss.append(rss_mb())
        missing = self.results.count(0)
        doubled = self.count - missing - self.results.count(1)
        twice = self.count - self.accepted_at_server.count(0) - self.accepted_at_server.count(1)
        unsure = self.injected["drop"] + self.injected["500"]
        print(f"{name}: {self.count} handed in, {self.seen} results in {elapsed:.1f} s")
        print(f"  outcomes: {dict(self.outcomes.most_common())}")
        print(f"  faults injected: {dict(self.injected)}")
        print(f"  without a result: {missing}, with two or more results: {doubled}")
        print(
            f"  accepted twice by the server: {twice} (allowed only after dropped connections "
            f"or 500s, whose fate is unknown; {unsure} such fault(s) injected)"
        )
        start, middle, end = (self.rss + [float("nan")] * 3)[:3]
        print(f"  RSS: start {start:.1f} MB, middle {middle:.1f} MB, end {end:.1f} MB")
        return missing == 0 and doubled == 0 and self.seen == self.count and (not twice or unsure)


async def run_async(
    credentials: apnskit.TokenCredentials, kwargs: dict[str, Any], tally: Tally
) -> None:
    async with apnskit.AsyncPushClient(credentials, **kwargs) as client:
        async for result in client.send_many(notifications(tally.count)):
            tally.add(result)


def main() -> None:
    parser = argparse.ArgumentParser(description="apnskit soak under injected faults")
    parser.add_argument("--notifications", "--count", type=int, default=20_000)
    parser.add_argument("--clients", default="sync,asyncio,trio")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    ok = True
    retry = apnskit.RetryPolicy(max_attempts=5, backoff_base=0.01, backoff_max=0.2)
    timeout = apnskit.Timeout(deadline=30, ping_timeout=1.0)
    for flavour in args.clients.split(","):
        with MockApnsServer() as server:
            credentials = server.apns_token_credentials()
            kwargs: dict[str, Any] = {
                "host": server.host,
                "port": server.port,
                "ca_file": str(server.ca_file),
                "retry": retry,
                "timeout": timeout,
                "limits": apnskit.Limits(max_connections=2, max_in_flight=500),
            }
            tally = Tally(args.notifications, server, rng)
            started = time.perf_counter()
            if flavour == "sync":
                with apnskit.PushClient(credentials, **kwargs) as client:
                    for result in client.send_many(notifications(args.notifications)):
                        tally.add(result)
            else:
                anyio.run(run_async, credentials, kwargs, tally, backend=flavour)
            ok = tally.report(flavour, time.perf_counter() - started) and ok
    print("PASS: every notification ended in exactly one result" if ok else "FAIL")
    raise SystemExit(0 if ok else 1)


if __name__ == "__main__":
    main()
