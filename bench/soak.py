"""Soak: many notifications through both clients while the mock server keeps failing.

Every few hundred requests the mock APNs server is told to misbehave at random: GOAWAY
(with and without processing the request), dropped TCP connections with requests in
flight, REFUSED_STREAM, 429/500/503 answers, slow replies and stream-limit changes. The
script then checks the promise apnskit makes: every notification handed to a client ends in
exactly one result, and a notification APNs accepted is not accepted twice unless its
connection broke under it (the one case a resend can duplicate, see README).

    python bench/soak.py [--count 20000] [--seconds 60] [--seed 1]

Not part of CI (it runs for minutes); the figures go in closing notes.
"""

from __future__ import annotations

import argparse
import collections
import random
import time
import uuid
from typing import Any

import anyio

import apnskit
from apnskit.testing import MockApnsServer

TOPIC = "com.example.soak"


def notifications(count: int, ids: list[str]) -> Any:
    for _ in range(count):
        apns_id = str(uuid.uuid4())
        ids.append(apns_id)
        yield apnskit.Notification(
            "ab" * 32, {"aps": {"alert": "soak"}}, topic=TOPIC, apns_id=apns_id
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


def check(
    name: str,
    ids: list[str],
    results: list[apnskit.PushResult],
    server: Any,
    drops: int,
) -> bool:
    by_id = collections.Counter(str(r.apns_id) for r in results)
    accepted_at_server = collections.Counter(
        r.apns_id for r in server.received if r.status is not None and 200 <= r.status < 300
    )
    missing = [i for i in ids if by_id[i] == 0]
    doubled_results = [i for i, n in by_id.items() if n > 1]
    accepted_twice = [i for i, n in accepted_at_server.items() if n > 1]
    outcomes = collections.Counter(
        "accepted"
        if r.accepted
        else (f"{r.status} {r.reason}" if r.status else type(r.error).__name__)
        for r in results
    )
    print(f"  {name}: {len(ids)} handed in, {len(results)} results")
    print(f"    outcomes: {dict(outcomes.most_common())}")
    print(f"    without a result: {len(missing)}, with two results: {len(doubled_results)}")
    print(
        f"    accepted twice by the server: {len(accepted_twice)} "
        f"(allowed only after dropped connections; {drops} drop fault(s) injected)"
    )
    duplicates_ok = not accepted_twice or drops > 0
    return not missing and not doubled_results and len(results) == len(ids) and duplicates_ok


async def run_async(
    credentials: apnskit.TokenCredentials,
    kwargs: dict[str, Any],
    count: int,
    sinks: tuple[list[str], list[apnskit.PushResult], collections.Counter[str]],
    chaos: tuple[MockApnsServer, random.Random],
) -> None:
    ids, results, injected = sinks
    server, rng = chaos
    async with apnskit.AsyncPushClient(credentials, **kwargs) as client:
        n = 0
        async for result in client.send_many(notifications(count, ids)):
            results.append(result)
            if n % 300 == 0:
                injected[misbehave(server, rng)] += 1
            n += 1


def main() -> None:
    parser = argparse.ArgumentParser(description="apnskit soak under injected faults")
    parser.add_argument("--count", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    ok = True
    retry = apnskit.RetryPolicy(max_attempts=5, backoff_base=0.01, backoff_max=0.2)
    timeout = apnskit.Timeout(deadline=30, ping_timeout=1.0)
    for flavour in ("sync", "asyncio", "trio"):
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
            ids: list[str] = []
            results: list[apnskit.PushResult] = []
            injected: collections.Counter[str] = collections.Counter()
            started = time.perf_counter()
            if flavour == "sync":
                with apnskit.PushClient(credentials, **kwargs) as client:
                    for n, result in enumerate(client.send_many(notifications(args.count, ids))):
                        results.append(result)
                        if n % 300 == 0:
                            injected[misbehave(server, rng)] += 1
            else:
                anyio.run(
                    run_async,
                    credentials,
                    kwargs,
                    args.count,
                    (ids, results, injected),
                    (server, rng),
                    backend=flavour,
                )
            elapsed = time.perf_counter() - started
            print(f"{flavour}: {elapsed:.1f} s, faults injected: {dict(injected)}")
            ok = check(flavour, ids, results, server, injected["drop"]) and ok
    print("PASS: every notification ended in exactly one result" if ok else "FAIL")
    raise SystemExit(0 if ok else 1)


if __name__ == "__main__":
    main()
