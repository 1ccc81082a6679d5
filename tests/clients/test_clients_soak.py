"""Soak: exactly one result per notification under random faults, cancellations and close().

Each flavour runs rounds for about ``APNSKIT_SOAK_SECONDS`` (default 10; CI runs the
client tests twice, once under coverage, so 20 s each would cost two minutes). A round makes a
client over a FakeTransport whose server misbehaves at random (GOAWAY, dropped connections,
REFUSED_STREAM, 429/500/503, late and missing answers), pipes a ``send_many`` through it
while other threads (sync) or tasks (async) call ``send()`` alongside (async ones cancelled
at random), and sometimes closes the client in the middle of the ``send_many``. Every
notification handed to the client must end in exactly one result: one ``ResultReady``
event, and one result returned to whoever still waits for it.
"""

from __future__ import annotations

import os
import random
import threading
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import anyio
import anyio.lowlevel
import pytest
from client_support import Client, echo, notification, token_credentials

import apnskit
from apnskit._engine.client_events import ResultReady
from apnskit.testing import FakeTransport, Fault, ReceivedRequest, Reply

pytestmark = pytest.mark.anyio

SECONDS = float(os.environ.get("APNSKIT_SOAK_SECONDS", "10"))
# Far beyond any round's length (seconds, with 2 s deadlines): reached only if a round hangs.
ROUND_LIMIT = 120.0


class Ledger:
    """What was handed to the client, and every result seen (thread-safe)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.handed: Counter[str] = Counter()
        self.events: Counter[str] = Counter()  # ResultReady per apns-id
        self.returned: Counter[str] = Counter()  # results given back to a caller
        self.cancelled: set[str] = set()  # async send() cancelled: nothing is returned

    def hand(self, item: apnskit.Notification) -> None:
        with self.lock:
            self.handed[str(item.apns_id)] += 1

    def hook(self, event: Any) -> None:
        if isinstance(event, ResultReady):
            with self.lock:
                self.events[str(event.result.apns_id)] += 1

    def got(self, result: apnskit.PushResult) -> None:
        with self.lock:
            self.returned[str(result.apns_id)] += 1

    def check(self, seed: int) -> None:
        where = f"(seed {seed})"
        assert set(self.handed.values()) <= {1}, where
        missing = [i for i in self.handed if self.events[i] == 0]
        doubled = [i for i, n in self.events.items() if n > 1]
        strays = [i for i in self.events if i not in self.handed]
        assert not missing, f"{len(missing)} notifications without a result {where}"
        assert not doubled, f"{len(doubled)} notifications with two results {where}"
        assert not strays, f"results for notifications never handed in {where}"
        unreturned = [i for i in self.handed if not self.returned[i] and i not in self.cancelled]
        assert not unreturned, f"{len(unreturned)} results never returned {where}"
        assert max(self.returned.values(), default=1) == 1, where


def faulty_handler(rng: random.Random, lock: threading.Lock) -> Callable[..., Reply | Fault]:
    def handler(request: ReceivedRequest) -> Reply | Fault:
        with lock:
            roll = rng.random()
            pause = rng.uniform(0.005, 0.1)
        if roll < 0.004:
            return Fault.goaway(reason="Shutdown")  # this request and later: unprocessed
        if roll < 0.006:
            return Fault.drop()
        if roll < 0.02:
            return Fault.reset()  # REFUSED_STREAM
        if roll < 0.03:
            return Reply(429, reason="TooManyRequests")
        if roll < 0.035:
            return Reply(500, reason="InternalServerError")
        if roll < 0.04:
            return Reply(503, reason="ServiceUnavailable")
        if roll < 0.05:
            return Fault.delay(pause, echo(request))
        if roll < 0.051:
            return Fault.no_reply()  # only the deadline ends it
        return echo(request)

    return handler


def _new_client(flavor: str, rng: random.Random, lock: threading.Lock, ledger: Ledger) -> Client:
    cls = apnskit.AsyncPushClient if flavor != "sync" else apnskit.PushClient
    transport = FakeTransport(
        faulty_handler(rng, lock), max_concurrent_streams=rng.choice([1, 10, 100, 1000])
    )
    inner = cls(
        token_credentials(),
        environment="sandbox",
        transport=transport,
        timeout=apnskit.Timeout(deadline=2.0, ping_timeout=0.5),
        limits=apnskit.Limits(
            max_connections=rng.choice([1, 2, 4]), max_in_flight=rng.choice([50, 500, 5000])
        ),
        retry=apnskit.RetryPolicy(max_attempts=3, backoff_base=0.001, backoff_max=0.01),
        event_hook=ledger.hook,
    )
    return Client(flavor, inner)


async def test_soak_exactly_one_result(flavor: str) -> None:
    seed = int(os.environ.get("APNSKIT_SOAK_SEED", random.randrange(2**32)))
    rng = random.Random(seed)
    lock = threading.Lock()
    end = time.monotonic() + SECONDS
    rounds = closes = handed = 0
    # At least two rounds whatever the time: a round's length depends on the machine's load
    # (a round with one stream and a few unanswered requests waits out their deadlines), so
    # the duration is a budget, not something to assert on.
    while rounds < 2 or time.monotonic() < end:
        ledger = Ledger()
        client = _new_client(flavor, rng, lock, ledger)
        count = rng.randint(100, 2000)
        close_at = rng.randint(1, count - 1) if rng.random() < 0.3 else None
        closes += close_at is not None
        if flavor == "sync":
            await _sync_round(client, rng, ledger, count, close_at)
        else:
            # A round that never ends is a lost result (a send() nobody drives): fail with
            # the seed instead of hanging the run.
            try:
                with anyio.fail_after(ROUND_LIMIT):
                    await _async_round(client, rng, ledger, count, close_at)
            except TimeoutError:
                raise AssertionError(
                    f"a round still ran after {ROUND_LIMIT} s (seed {seed})"
                ) from None
        await client.close()
        ledger.check(seed)
        rounds += 1
        handed += len(ledger.handed)
    assert handed > 1000
    print(f"soak {flavor}: seed {seed}, {rounds} rounds, {closes} closed mid-way, {handed} sent")


async def _sync_round(
    client: Client, rng: random.Random, ledger: Ledger, count: int, close_at: int | None
) -> None:
    stop = threading.Event()
    inner: apnskit.PushClient = client.inner

    def alongside() -> None:
        while not stop.is_set():
            item = notification()
            try:
                result = inner.send(item)
            except apnskit.ClientClosedError:
                return  # refused before it was taken: not handed in
            ledger.hand(item)
            ledger.got(result)

    def source() -> Iterator[apnskit.Notification]:
        for i in range(count):
            if i == close_at:
                inner.close()
            item = notification()
            ledger.hand(item)
            yield item

    threads = [threading.Thread(target=alongside) for _ in range(rng.randint(1, 4))]
    for thread in threads:
        thread.start()
    try:
        for result in inner.send_many(source()):
            ledger.got(result)
    except apnskit.ClientClosedError:
        assert close_at is not None
    finally:
        stop.set()
        for thread in threads:
            thread.join(30)
    assert not any(thread.is_alive() for thread in threads), "a send() never returned"


async def _async_round(
    client: Client, rng: random.Random, ledger: Ledger, count: int, close_at: int | None
) -> None:
    inner: apnskit.AsyncPushClient = client.inner
    done = anyio.Event()

    async def alongside() -> None:
        while not done.is_set():
            item = notification()
            wait = rng.choice([None, None, None, 0.0, 0.001, 0.01, 0.05])
            result: apnskit.PushResult | None = None
            with anyio.move_on_after(wait):
                try:
                    result = await inner.send(item)
                except apnskit.ClientClosedError:
                    return  # refused before it was taken: not handed in
            ledger.hand(item)  # send() takes it before its first await
            if result is None:
                ledger.cancelled.add(str(item.apns_id))  # its caller left: nothing returned
            else:
                ledger.got(result)
            await anyio.lowlevel.checkpoint()

    async def source() -> AsyncIterator[apnskit.Notification]:
        for i in range(count):
            if i == close_at:
                await inner.close()
            item = notification()
            ledger.hand(item)
            yield item

    async with anyio.create_task_group() as group:
        for _ in range(rng.randint(1, 8)):
            group.start_soon(alongside)
        items = source()
        try:
            async for result in inner.send_many(items):
                ledger.got(result)
        except apnskit.ClientClosedError:
            assert close_at is not None
        finally:
            await items.aclose()
            done.set()
