"""Both clients open several connections at once when the pool asks for them (issue 13).

Far from the server each connect costs several round trips, so once a connection has proved
the server works the pool grants as many as the backlog needs in one go, and the drivers must
really connect them side by side (the sync client in a thread each, the async one in a task
each). Before that proof, and against a server that refuses, connects stay one at a time; and
a workload one connection carries never opens a second one.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import anyio
import pytest
from client_support import Client, echo, notification

import apnskit
from apnskit.testing import FakeTransport, Fault, MockApnsServer, ReceivedRequest, Reply

pytestmark = pytest.mark.anyio

# How long a connect waits for its siblings: generous, it only matters when one is missing.
GATHER_TIMEOUT = 5.0


class _CountingConnects(FakeTransport):
    """A fake whose connects record how many are in progress at once.

    When ``gather`` is set, a connect waits (up to GATHER_TIMEOUT) until that many are in
    progress together, so overlapping connects are seen as overlapping however loaded the
    machine is; connects made one after another each wait out the timeout instead.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.gather = 0
        self.most_at_once = 0
        self._connecting = 0
        self._cond = threading.Condition()
        self._gathered_event: anyio.Event | None = None  # the async clients wait on it

    def _begin(self) -> None:
        with self._cond:
            self._connecting += 1
            self.most_at_once = max(self.most_at_once, self._connecting)
            if self._connecting >= self.gather:
                self.gather = 0  # gathered: release them all, whoever finishes first
                self._cond.notify_all()
                if self._gathered_event is not None:
                    self._gathered_event.set()

    def _gathered(self) -> bool:
        return self.gather == 0

    def _end(self) -> None:
        with self._cond:
            self._connecting -= 1

    def connect(self, host: str, port: int, **kwargs: Any) -> Any:
        self._begin()
        try:
            with self._cond:
                self._cond.wait_for(self._gathered, GATHER_TIMEOUT)
            return super().connect(host, port, **kwargs)
        finally:
            self._end()

    async def connect_async(self, host: str, port: int, **kwargs: Any) -> Any:
        if self._gathered_event is None:
            self._gathered_event = anyio.Event()
        event = self._gathered_event
        self._begin()
        try:
            if not self._gathered():
                with anyio.move_on_after(GATHER_TIMEOUT):
                    await event.wait()
            return await super().connect_async(host, port, **kwargs)
        finally:
            self._end()


async def test_proven_pool_connects_several_at_once(make_client: Callable[..., Client]) -> None:
    answered = [0]

    def handler(request: ReceivedRequest) -> Reply | Fault:
        answered[0] += 1
        if answered[0] == 1:
            return echo(request)  # the first answer proves the server works
        return Fault.delay(0.2, echo(request))  # keep the first connection full meanwhile

    transport = _CountingConnects(handler, max_concurrent_streams=10)
    client = make_client(transport, limits=apnskit.Limits(max_connections=4))
    assert (await client.send(notification())).accepted
    assert transport.most_at_once == 1
    # 10 streams in flight on the first connection and 90 waiting: the backlog needs 9 more
    # connections, Limits allows 3, and the pool asks for all three in one go.
    transport.gather = 3
    results = await client.send_many([notification() for _ in range(100)])
    assert all(r.accepted for r in results)
    assert transport.connections == 4
    assert transport.most_at_once == 3
    assert {r.connection_id for r in transport.requests} == {1, 2, 3, 4}
    await client.close()


async def test_refusing_server_gets_one_connect_at_a_time(
    make_client: Callable[..., Client],
) -> None:
    transport = _CountingConnects(fail_connects=100, max_concurrent_streams=10)
    client = make_client(transport, limits=apnskit.Limits(max_connections=4))
    results = await client.send_many([notification() for _ in range(100)])
    assert all(isinstance(r.error, apnskit.ConnectError) for r in results)
    assert transport.most_at_once == 1
    # One failed connect costs every waiting notification one attempt (max_attempts=3).
    assert transport.connect_attempts == 3
    await client.close()


async def test_workload_one_connection_carries_opens_one_connection(
    make_client: Callable[..., Client],
) -> None:
    opened: list[apnskit.ConnectionOpened] = []

    def hook(event: apnskit.ClientEvent) -> None:
        if isinstance(event, apnskit.ConnectionOpened):
            opened.append(event)

    # Zero latency, default Limits, token auth: the first connection is held at one stream
    # until its first answer (a full connection with a backlog, but no proof yet), then
    # carries 900 streams at once, below the mock server's 1000.
    with MockApnsServer() as server:
        client = make_client(
            credentials=server.apns_token_credentials(),
            host=server.host,
            port=server.port,
            ca_file=server.ca_file,
            event_hook=hook,
        )
        for _ in range(3):
            results = await client.send_many([notification() for _ in range(900)])
            assert all(r.accepted for r in results)
        for _ in range(50):
            assert (await client.send(notification())).accepted
        await client.close()
    assert len(opened) == 1
    assert len(server.received) == 3 * 900 + 50
