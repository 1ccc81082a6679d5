"""Issue 11: exactly one result and no caller left waiting, through interruption,
cancellation, close(), silent servers, slow connects and connections that live for days."""

from __future__ import annotations

import contextlib
import socket
import ssl
import threading
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import anyio
import pytest
from client_support import (
    FAST_RETRY,
    Client,
    echo,
    notification,
    requests_per_id,
    token_credentials,
)

import apnskit
import apnskit._clients.async_driver as async_driver_module
import apnskit._clients.sync_driver as sync_driver_module
from apnskit._engine.client_events import ConnectionClosed, ConnectionOpened
from apnskit._engine.pool import RETIRE_STREAMS_LEFT
from apnskit.testing import FakeTransport, Fault, MockApnsServer, ReceivedRequest, Reply

pytestmark = pytest.mark.anyio


class InterruptedWaitError(Exception):
    """Stands for a KeyboardInterrupt or a signal handler's exception in a waiting thread."""


# ---------------------------------------------------------------------------- item 1


def test_interrupted_follower_thread_does_not_strand_the_others(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Threads named "interrupted-*" are interrupted as soon as they wait as followers.
    original_sleep = sync_driver_module.SyncWakeup.sleep

    def sleep(self: Any, timeout: float | None) -> bool:
        if threading.current_thread().name.startswith("interrupted"):
            raise InterruptedWaitError
        return original_sleep(self, timeout)

    monkeypatch.setattr(sync_driver_module.SyncWakeup, "sleep", sleep)

    release = threading.Event()
    first = notification()

    def handler(request: ReceivedRequest) -> Reply:
        if request.headers["apns-id"] == first.apns_id:
            release.wait(30)  # the driver thread is busy inside this write
        return echo(request)

    transport = FakeTransport(handler)
    client = apnskit.PushClient(
        token_credentials(),
        environment="sandbox",
        transport=transport,
        retry=FAST_RETRY,
        timeout=apnskit.Timeout(deadline=60),
    )
    results: dict[str, Any] = {}

    def send(name: str, item: apnskit.Notification) -> None:
        try:
            results[name] = client.send(item)
        except InterruptedWaitError:
            results[name] = "interrupted"

    try:
        driver = threading.Thread(target=send, args=("driver", first))
        driver.start()
        while not transport.requests:  # the driver is inside the handler now
            time.sleep(0.01)
        interrupted = [notification() for _ in range(5)]
        for i, item in enumerate(interrupted):
            thread = threading.Thread(target=send, args=(f"interrupted-{i}", item))
            thread.name = f"interrupted-{i}"
            thread.start()
            thread.join(30)
        healthy = threading.Thread(target=send, args=("healthy", notification()))
        healthy.start()
        while len(client._waiters) < 1:
            time.sleep(0.01)
        # Only the healthy thread may still be registered as a waiter: otherwise the
        # driver role can be handed to a thread that left, and nobody drives again.
        assert len(client._waiters) == 1
        release.set()
        driver.join(30)
        healthy.join(30)
        assert not healthy.is_alive(), "the healthy thread was left waiting"
        assert results["driver"].accepted
        assert results["healthy"].accepted
        assert all(results[f"interrupted-{i}"] == "interrupted" for i in range(5))
        # An interrupted send() withdraws its notification: it is not delivered later.
        sent = requests_per_id(transport)
        assert all(item.apns_id not in sent for item in interrupted)
    finally:
        release.set()
        client.close()


# ---------------------------------------------------------------------------- item 3

# Where the pool retires a connection.
_RETIRE_AT: int = RETIRE_STREAMS_LEFT


async def test_connection_is_retired_before_its_stream_ids_run_out(
    make_client: Callable[..., Client],
) -> None:
    client: Client | None = None
    closed: list[str] = []

    def hook(event: Any) -> None:
        assert client is not None
        if isinstance(event, ConnectionOpened) and event.connection_id == 1:
            # Test hook: start connection 1 a few streams short of the retirement point,
            # which itself is far from 2**31-1 (RFC 9113 section 5.1.1).
            conn = next(c for c in client.dispatcher.connections if c.id == 1)
            left = _RETIRE_AT + 5
            conn.core._next_stream_id = 2**31 - 1 - 2 * (left - 1)
            assert conn.core.streams_left == left
        if isinstance(event, ConnectionClosed):
            closed.append(event.reason)

    transport = FakeTransport(echo)
    client = make_client(
        transport,
        limits=apnskit.Limits(max_connections=1),
        timeout=apnskit.Timeout(deadline=5),
        event_hook=hook,
    )
    for _ in range(20):
        result = await client.send(notification())
        assert result.accepted, result
    assert transport.connections == 2
    assert any(reason.startswith("retired") for reason in closed)
    stream_ids = [r.stream_id for r in transport.requests]
    assert max(stream_ids) < 2**31 - 1 - 2 * _RETIRE_AT + 20
    await client.close()


async def test_retiring_connection_that_stops_answering_is_replaced(
    make_client: Callable[..., Client],
) -> None:
    client: Client | None = None
    transport: FakeTransport | None = None

    def hook(event: Any) -> None:
        assert client is not None
        if isinstance(event, ConnectionOpened) and event.connection_id == 1:
            conn = next(c for c in client.dispatcher.connections if c.id == 1)
            left = max(1, _RETIRE_AT)  # one stream, then it retires (or runs out of ids)
            conn.core._next_stream_id = 2**31 - 1 - 2 * (left - 1)

    def handler(request: ReceivedRequest) -> Reply | Fault:
        assert transport is not None
        if request.connection_id == 1:
            transport.blackhole()  # silent from now on, not even PING answered
            return Fault.no_reply()
        return echo(request)

    transport = FakeTransport(handler)
    client = make_client(
        transport,
        limits=apnskit.Limits(max_connections=1),
        timeout=apnskit.Timeout(deadline=30, ping_timeout=0.2),
        event_hook=hook,
    )
    result = await client.send(notification())
    # The silent retiring connection was PINGed, declared lost, and the notification resent
    # on a new one; not left to its 30 s deadline.
    assert result.accepted, result
    assert result.attempts == 2
    assert transport.connections == 2
    await client.close()


# ---------------------------------------------------------------------------- item 4


async def test_token_hold_released_by_any_non_auth_answer(
    make_client: Callable[..., Client],
) -> None:
    def handler(request: ReceivedRequest) -> Fault:
        return Fault.delay(0.005, Reply(410, reason="Unregistered", timestamp_ms=1_700_000_000))

    transport = FakeTransport(handler, max_concurrent_streams=100)
    client = make_client(transport, limits=apnskit.Limits(max_connections=1))
    first = await client.send(notification())
    assert first.status == 410
    (conn,) = client.dispatcher.connections
    # A 410 proves the provider token good: the one-stream hold is lifted.
    assert conn.core.max_concurrent_streams == 100
    results = await client.send_many([notification() for _ in range(50)])
    assert [r.status for r in results] == [410] * 50
    assert transport.connections == 1
    await client.close()


async def test_token_hold_kept_after_an_auth_failure(make_client: Callable[..., Client]) -> None:
    transport = FakeTransport(lambda r: Reply(403, reason="InvalidProviderToken"))
    client = make_client(transport, limits=apnskit.Limits(max_connections=1))
    assert (await client.send(notification())).status == 403
    (conn,) = client.dispatcher.connections
    assert conn.core.max_concurrent_streams == 1
    await client.close()


# ---------------------------------------------------------------------------- item 5


@pytest.mark.parametrize("flavor", ["asyncio", "trio"])
async def test_cancelled_send_is_not_delivered_later(make_client: Callable[..., Client]) -> None:
    transport = FakeTransport(echo)
    client = make_client(transport)
    cancelled = notification()
    with anyio.move_on_after(0):
        await client.send(cancelled)
    later = await client.send(notification())
    assert later.accepted
    assert cancelled.apns_id not in requests_per_id(transport)
    await client.close()


@pytest.mark.parametrize("flavor", ["asyncio", "trio"])
async def test_cancelled_send_in_flight_is_reset(make_client: Callable[..., Client]) -> None:
    transport = FakeTransport(lambda r: Fault.no_reply())
    client = make_client(transport)
    with anyio.move_on_after(0.5):
        await client.send(notification())
    # Its stream was written; cancelling it reset the stream and ended its ticket.
    assert client.dispatcher.outstanding == 0
    await client.close()


# ---------------------------------------------------------------------------- item 6


async def test_send_many_gives_a_result_to_everything_it_took_before_close(
    make_client: Callable[..., Client],
) -> None:
    transport = FakeTransport(lambda r: Fault.delay(0.001, echo(r)))
    client = make_client(transport)
    taken: list[str] = []

    def make(i: int) -> apnskit.Notification:
        item = notification()
        assert item.apns_id is not None
        taken.append(item.apns_id)
        return item

    if client.is_async:

        async def source_async() -> AsyncIterator[apnskit.Notification]:
            for i in range(3000):
                if i == 1500:
                    await client.close()
                yield make(i)

        source: Any = source_async()
    else:

        def source_sync() -> Iterator[apnskit.Notification]:
            for i in range(3000):
                if i == 1500:
                    client.inner.close()
                yield make(i)

        source = source_sync()

    results: list[apnskit.PushResult] = []

    async def collect() -> None:
        if client.is_async:
            async with contextlib.aclosing(source):
                async for result in client.inner.send_many(source):
                    results.append(result)
        else:
            for result in client.inner.send_many(source):
                results.append(result)

    with pytest.raises(apnskit.ClientClosedError, match="not yet taken"):
        await collect()
    per_id = Counter(str(r.apns_id) for r in results)
    assert len(taken) > 1500
    assert sorted(per_id) == sorted(taken)  # everything taken has a result
    assert set(per_id.values()) == {1}  # exactly one
    assert any(isinstance(r.error, apnskit.ClientClosedError) for r in results)


# ---------------------------------------------------------------------------- item 7


class _CountingAnyio:
    """The anyio module, with every Event wait counted (how often waiting tasks wake)."""

    def __init__(self) -> None:
        self.wakeups = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(anyio, name)

    def Event(self) -> Any:
        counter = self
        inner = anyio.Event()

        class Counted:
            def set(self) -> None:
                inner.set()

            def is_set(self) -> bool:
                return inner.is_set()

            async def wait(self) -> None:
                await inner.wait()
                counter.wakeups += 1

        return Counted()


@pytest.mark.parametrize("flavor", ["asyncio", "trio"])
async def test_a_read_wakes_only_the_tasks_it_concerns(
    make_client: Callable[..., Client], monkeypatch: pytest.MonkeyPatch
) -> None:
    counting = _CountingAnyio()
    monkeypatch.setattr(async_driver_module, "anyio", counting)
    # One stream at a time: every answer is a read of its own.
    transport = FakeTransport(echo, max_concurrent_streams=1)
    client = make_client(transport, limits=apnskit.Limits(max_connections=1))
    results: list[apnskit.PushResult] = []

    async def one() -> None:
        results.append(await client.send(notification()))

    count = 60
    async with anyio.create_task_group() as group:
        for _ in range(count):
            group.start_soon(one)
    assert len(results) == count
    assert all(r.accepted for r in results)
    # A shared event woke all waiting tasks on every read: about count**2 / 2 wake-ups.
    assert counting.wakeups < 4 * count, counting.wakeups
    await client.close()


class _StuckWriteTransport(FakeTransport):
    """Streams whose writes can be made to hang (a server that stopped reading)."""

    def __init__(self) -> None:
        # The first answer lifts the token hold; later requests stay unanswered.
        super().__init__(lambda r: echo(r) if len(self.requests) == 1 else Fault.no_reply())
        self.stuck = False
        self.release = threading.Event()
        self.writers = 0
        self.max_writers = 0
        self.closed = 0

    async def connect_async(self, host: str, port: int, **kwargs: Any) -> Any:
        inner = await super().connect_async(host, port, **kwargs)
        transport = self

        class Stream:
            async def write(self, data: bytes) -> None:
                transport.writers += 1
                transport.max_writers = max(transport.max_writers, transport.writers)
                try:
                    if transport.stuck:
                        while not transport.release.is_set():  # noqa: ASYNC110 - set by aclose()
                            await anyio.sleep(0.01)
                        raise apnskit.ConnectionLostError("write ended by close")
                    await inner.write(data)
                finally:
                    transport.writers -= 1

            async def read(self) -> bytes:
                return await inner.read()  # type: ignore[no-any-return]

            async def aclose(self) -> None:
                transport.closed += 1
                transport.release.set()  # a closed socket ends a pending write
                await inner.aclose()

        return Stream()


@pytest.mark.parametrize("flavor", ["asyncio", "trio"])
async def test_close_never_writes_beside_a_stuck_driver(
    make_client: Callable[..., Client], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(async_driver_module, "_STEP_DOWN_WAIT", 0.2)
    transport = _StuckWriteTransport()
    client = make_client(transport, limits=apnskit.Limits(max_connections=1))
    results: list[apnskit.PushResult] = []
    async with anyio.create_task_group() as group:

        async def sender() -> None:
            results.append(await client.send(notification()))

        await sender()  # answered: the connection is up and takes many streams
        transport.stuck = True
        group.start_soon(sender)  # its caller drives, writes it, and the write hangs
        while not transport.writers:  # noqa: ASYNC110 - polls the fake stream's state
            await anyio.sleep(0.01)
        with anyio.fail_after(10):
            await client.close()
    assert transport.max_writers == 1  # never two writers on one stream
    assert transport.closed == 1  # the stream was closed all the same
    assert len(results) == 2
    assert results[0].accepted
    assert isinstance(results[1].error, apnskit.ClientClosedError)


# ---------------------------------------------------------------------------- item 8


class _SlowSecondConnect(FakeTransport):
    """The second connect hangs until released: the first connection must keep flowing."""

    def __init__(self) -> None:
        super().__init__(lambda r: Fault.delay(0.002, echo(r)), max_concurrent_streams=2)
        self.release = threading.Event()
        self.second_returned = False

    def connect(self, host: str, port: int, **kwargs: Any) -> Any:
        if self.connect_attempts == 1:
            self.release.wait(30)
            self.second_returned = True
        return super().connect(host, port, **kwargs)


@pytest.mark.parametrize("flavor", ["sync"])
async def test_other_connections_flow_while_one_connects(
    make_client: Callable[..., Client],
) -> None:
    # The sync driver used to block in connect(). (The async driver reads and writes in
    # tasks while a connect runs in another; the task driving waits for the connect to end
    # before it returns, so as not to abandon handshakes.)
    transport = _SlowSecondConnect()
    client = make_client(transport, limits=apnskit.Limits(max_connections=2))
    try:
        results = await client.send_many([notification() for _ in range(40)])
        assert all(r.accepted for r in results)
        assert len(results) == 40
        # All answered over connection 1 while connection 2 was still connecting.
        assert not transport.second_returned
    finally:
        transport.release.set()
        await client.close()


def test_connect_timeout_bounds_dns_too(monkeypatch: pytest.MonkeyPatch) -> None:
    release = threading.Event()
    real = socket.getaddrinfo

    def slow_getaddrinfo(*args: Any, **kwargs: Any) -> Any:
        release.wait(10)  # a resolver that does not answer
        return real(*args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", slow_getaddrinfo)
    transport = apnskit._transports.socket_transport.SocketTransport()  # type: ignore[attr-defined]
    try:
        with pytest.raises(apnskit.ConnectTimeoutError, match="DNS, TCP and the TLS"):
            transport.connect(
                "apns.invalid",
                443,
                ssl_context=ssl.create_default_context(),
                server_hostname="apns.invalid",
                timeout=0.3,
            )
    finally:
        release.set()


async def test_silent_server_same_error_in_both_clients(
    make_client: Callable[..., Client],
) -> None:
    # Issue 12 item 8: a server that accepts TCP and never answers the TLS handshake.
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        port = listener.getsockname()[1]
        client = make_client(
            host="127.0.0.1",
            port=port,
            timeout=apnskit.Timeout(connect=0.3, deadline=1.0),
            retry=apnskit.RetryPolicy(max_attempts=10, backoff_base=0.01, backoff_max=0.02),
        )
        result = await client.send(notification())
        await client.close()
    assert isinstance(result.error, apnskit.ConnectTimeoutError), result.error
    message = str(result.error)
    assert message.startswith(f"connecting to 127.0.0.1:{port} timed out: no HTTP/2 over TLS")
    assert "deadline after" in message
    # The failed connects count as attempts (it said 0).
    assert result.attempts >= 1
    assert f"after {result.attempts} failed connection attempt" in message


# ---------------------------------------------------------------------------- item 10


async def test_retry_500_can_be_turned_off(make_client: Callable[..., Client]) -> None:
    transport = FakeTransport(lambda r: Reply(500, reason="InternalServerError"))
    client = make_client(
        transport,
        retry=apnskit.RetryPolicy(max_attempts=3, backoff_base=0.001, retry_500=False),
    )
    result = await client.send(notification())
    assert result.status == 500
    assert result.attempts == 1
    assert len(transport.requests) == 1
    await client.close()


async def test_500_is_retried_by_default(make_client: Callable[..., Client]) -> None:
    answers = iter([Reply(500, reason="InternalServerError")])
    transport = FakeTransport(lambda r: next(answers, None) or echo(r))
    client = make_client(transport)
    result = await client.send(notification())
    assert result.accepted
    assert result.attempts == 2
    await client.close()


def test_retry_500_must_be_a_bool() -> None:
    with pytest.raises(apnskit.ConfigurationError, match="retry_500"):
        apnskit.RetryPolicy(retry_500="no")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("first", "deleted"),
    [
        (Fault.reset(), False),  # refused unprocessed: deleted nothing
        (Reply(503, reason="ServiceUnavailable"), False),  # turned away unprocessed
        (Reply(500, reason="InternalServerError"), True),  # may have deleted it
    ],
)
async def test_delete_channel_not_registered_after_a_retry(
    make_client: Callable[..., Client], first: Reply | Fault, deleted: bool
) -> None:
    answers = iter([first])

    def handler(request: ReceivedRequest) -> Reply | Fault:
        return next(answers, None) or Reply(400, reason="ChannelNotRegistered")

    client = make_client(FakeTransport(handler), host="127.0.0.1")
    channel = "dHN0LXNyY2gtY2hubA=="

    async def delete() -> apnskit.Channel:
        answer = client.inner.delete_channel("com.example.app", channel)
        return (await answer) if client.is_async else answer  # type: ignore[no-any-return]

    if deleted:
        assert (await delete()).channel_id == channel
    else:
        with pytest.raises(apnskit.ChannelError, match="ChannelNotRegistered"):
            await delete()
    await client.close()


# ---------------------------------------------------------------------------- item 11


class _SpyContext(ssl.SSLContext):
    calls: list[str]

    def set_alpn_protocols(self, protocols: Any) -> None:
        self.calls.append("set_alpn_protocols")
        super().set_alpn_protocols(protocols)

    def load_cert_chain(self, *args: Any, **kwargs: Any) -> None:
        self.calls.append("load_cert_chain")
        super().load_cert_chain(*args, **kwargs)


def _spy_context(alpn: list[str] | None) -> _SpyContext:
    context = _SpyContext(ssl.PROTOCOL_TLS_CLIENT)
    context.calls = []
    if alpn is not None:
        context.set_alpn_protocols(alpn)
    context.calls.clear()
    return context


@pytest.mark.parametrize("flavor", ["sync", "asyncio"])
async def test_callers_ssl_context_is_used_as_given(make_client: Callable[..., Client]) -> None:
    with MockApnsServer(auth="certificate") as server:
        cert, key = server.issue_client_certificate(["com.example.app"])
        credentials = apnskit.CertificateCredentials.from_file(cert, key_file=key)
        # The caller prepares the context: trust, ALPN and the client certificate.
        context = _spy_context(["h2"])
        context.load_verify_locations(cafile=server.ca_file)
        credentials.configure_ssl_context(context)
        context.calls.clear()
        client = make_client(
            credentials=credentials,
            environment=None,
            host=server.host,
            port=server.port,
            ssl_context=context,
        )
        result = await client.send(notification())
        assert result.accepted, result
        # The channel-management client shares the same context, untouched as well.
        await client.inner.list_channels("com.example.app") if client.is_async else (
            client.inner.list_channels("com.example.app")
        )
        await client.close()
    assert context.calls == []  # no ALPN set, no certificate loaded into it by apnskit


@pytest.mark.parametrize("flavor", ["sync", "asyncio"])
async def test_ssl_context_without_h2_is_refused(make_client: Callable[..., Client]) -> None:
    for alpn in (None, ["http/1.1"]):
        with pytest.raises(apnskit.ConfigurationError, match=r"ssl_context: .*ALPN 'h2'"):
            make_client(host="127.0.0.1", ssl_context=_spy_context(alpn))


def _has_goaway(data: bytes) -> bool:
    at = 0
    while at + 9 <= len(data):  # frame header: length (3), type (1), flags, stream (RFC 9113 4.1)
        if data[at + 3] == 0x7:  # GOAWAY (section 6.8)
            return True
        at += 9 + int.from_bytes(data[at : at + 3], "big")
    return False


class _GoawayWriteHangs(FakeTransport):
    """Streams whose write of a GOAWAY frame hangs (a peer that stopped reading)."""

    def __init__(self) -> None:
        super().__init__(echo)
        self.closed: list[int] = []

    async def connect_async(self, host: str, port: int, **kwargs: Any) -> Any:
        inner = await super().connect_async(host, port, **kwargs)
        number = self.connections
        transport = self

        class Stream:
            async def write(self, data: bytes) -> None:
                if _has_goaway(data):
                    await anyio.sleep_forever()
                await inner.write(data)

            async def read(self) -> bytes:
                return await inner.read()  # type: ignore[no-any-return]

            async def aclose(self) -> None:
                transport.closed.append(number)
                await inner.aclose()

        return Stream()


@pytest.mark.parametrize("flavor", ["asyncio", "trio"])
async def test_release_cancelled_mid_goaway_still_closes_the_socket(
    make_client: Callable[..., Client],
) -> None:
    client: Client | None = None

    def hook(event: Any) -> None:
        assert client is not None
        if isinstance(event, ConnectionOpened) and event.connection_id == 1:
            conn = next(c for c in client.dispatcher.connections if c.id == 1)
            # One stream, then it is retired.
            conn.core._next_stream_id = 2**31 - 1 - 2 * (max(1, _RETIRE_AT) - 1)

    transport = _GoawayWriteHangs()
    client = make_client(transport, limits=apnskit.Limits(max_connections=1), event_hook=hook)
    assert (await client.send(notification())).accepted
    # Connection 1 is retired and released by the next driver, whose GOAWAY write hangs;
    # the caller gives up meanwhile.
    with anyio.move_on_after(0.2):
        await client.send(notification())
    assert 1 in transport.closed  # the socket was closed all the same, not leaked
    await client.close()
