"""Both clients over FakeTransport under every fault: nothing lost, nothing doubled."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import anyio
import pytest
from client_support import KEY_PEM, Client, echo, notification, requests_per_id

import apnskit
from apnskit._core.connection import ApnsConnection
from apnskit.testing import FakeTransport, Fault, ReceivedRequest, Reply

pytestmark = pytest.mark.anyio

# Marked apns-ids the handlers single out (random ones never collide with these).
NEVER = "00000000-0000-4000-8000-000000000000"
ONCE = "11111111-0000-4000-8000-000000000000"


async def _sleep(client: Client, seconds: float) -> None:
    if client.is_async:
        await anyio.sleep(seconds)
    else:
        time.sleep(seconds)  # noqa: ASYNC251 - the sync client is meant to block here


class Peak:
    """Tracks how many requests the fake server held open at once (replies are delayed)."""

    def __init__(self) -> None:
        self.transport: FakeTransport | None = None
        self.seen: list[int] = []  # open requests (this one included) at each arrival

    def arrive(self) -> None:
        assert self.transport is not None
        self.seen.append(
            1 + sum(c.server.open_request_count for c in self.transport._live if not c.closed)
        )


# ---------------------------------------------------------------------------- GOAWAY


async def test_goaway_resends_unprocessed_once(make_client: Callable[..., Client]) -> None:
    accepted: Counter[str] = Counter()
    arrivals = [0]

    def handler(request: ReceivedRequest) -> Reply | Fault:
        arrivals[0] += 1
        if request.connection_id == 1 and arrivals[0] == 40:
            # Streams from this one up were not processed (last-stream-id below them).
            return Fault.goaway(reason="Shutdown")
        accepted[request.headers["apns-id"]] += 1
        return echo(request)

    transport = FakeTransport(handler)
    events: list[apnskit.ClientEvent] = []
    client = make_client(transport, event_hook=events.append)
    items = [notification() for _ in range(200)]
    results = await client.send_many(items)
    assert len(results) == 200
    assert all(r.accepted for r in results), [r for r in results if not r.accepted][:3]
    assert set(accepted.values()) == {1}
    assert len(accepted) == 200
    assert transport.connections == 2
    assert any(isinstance(e, apnskit.ConnectionClosed) and "Shutdown" in e.reason for e in events)
    assert any(isinstance(e, apnskit.RetryScheduled) for e in events)
    await client.close()
    closed = [e.connection_id for e in events if isinstance(e, apnskit.ConnectionClosed)]
    assert sorted(closed) == [1, 2]  # each connection reported closed exactly once
    await client.close()


async def test_goaway_with_processed_reply_not_resent(make_client: Callable[..., Client]) -> None:
    def handler(request: ReceivedRequest) -> Reply | Fault:
        if request.connection_id == 1:
            return Fault.goaway(reply=echo(request))
        return echo(request)

    transport = FakeTransport(handler)
    client = make_client(transport)
    n = notification()
    assert (await client.send(n)).accepted
    assert requests_per_id(transport) == {n.apns_id: 1}
    # The next notification goes on a new connection.
    m = notification()
    result = await client.send(m)
    assert result.accepted
    assert result.attempts == 1
    assert transport.requests[-1].connection_id == 2
    await client.close()


# ---------------------------------------------------------------------------- drops, resets


async def test_drop_resends_then_fails(make_client: Callable[..., Client]) -> None:
    transport = FakeTransport(lambda request: Fault.drop())
    client = make_client(transport)
    n = notification()
    result = await client.send(n)
    assert result.failed
    assert result.status is None
    assert isinstance(result.error, apnskit.ConnectionLostError)
    assert requests_per_id(transport) == {n.apns_id: 3}  # RetryPolicy.max_attempts
    assert result.attempts == 3
    await client.close()


async def test_drop_once_then_accepted(make_client: Callable[..., Client]) -> None:
    def handler(request: ReceivedRequest) -> Reply | Fault:
        return Fault.drop() if request.connection_id == 1 else echo(request)

    transport = FakeTransport(handler)
    client = make_client(transport)
    items = [notification() for _ in range(30)]
    results = await client.send_many(items)
    assert all(r.accepted for r in results)
    assert len(results) == 30
    accepted_ids = Counter(r.headers["apns-id"] for r in transport.requests if r.connection_id > 1)
    assert set(accepted_ids.values()) == {1}
    assert len(accepted_ids) == 30
    await client.close()


async def test_refused_stream_is_retried(make_client: Callable[..., Client]) -> None:
    seen: Counter[str] = Counter()

    def handler(request: ReceivedRequest) -> Reply | Fault:
        apns_id = request.headers["apns-id"]
        seen[apns_id] += 1
        return Fault.reset() if seen[apns_id] == 1 else echo(request)

    client = make_client(FakeTransport(handler))
    result = await client.send(notification())
    assert result.accepted
    assert result.attempts == 2
    await client.close()


async def test_refused_stream_forever_fails(make_client: Callable[..., Client]) -> None:
    transport = FakeTransport(lambda request: Fault.reset())
    client = make_client(transport)
    n = notification()
    result = await client.send(n)
    assert result.failed
    assert isinstance(result.error, apnskit.ConnectionLostError)
    assert requests_per_id(transport) == {n.apns_id: 3}
    await client.close()


async def test_other_stream_reset_is_not_retried(make_client: Callable[..., Client]) -> None:
    transport = FakeTransport(lambda request: Fault.reset(error_code=0x2))  # INTERNAL_ERROR
    client = make_client(transport)
    result = await client.send(notification())
    assert result.failed
    assert isinstance(result.error, apnskit.ConnectionLostError)
    assert len(transport.requests) == 1
    await client.close()


# ---------------------------------------------------------------------------- statuses


@pytest.mark.parametrize(
    ("status", "reason"),
    [(429, "TooManyRequests"), (500, "InternalServerError"), (503, "ServiceUnavailable")],
)
async def test_retryable_statuses(
    make_client: Callable[..., Client], status: int, reason: str
) -> None:
    seen: Counter[str] = Counter()

    def handler(request: ReceivedRequest) -> Reply:
        apns_id = request.headers["apns-id"]
        seen[apns_id] += 1
        if apns_id == NEVER or seen[apns_id] < 3:
            return echo(request, status, reason)
        return echo(request)

    events: list[apnskit.ClientEvent] = []
    transport = FakeTransport(handler)
    client = make_client(transport, event_hook=events.append)
    recovers = notification(apns_id=ONCE)
    result = await client.send(recovers)
    assert result.accepted
    assert result.attempts == 3

    never = notification(apns_id=NEVER)
    final = await client.send(never)
    assert final.status == status
    assert final.reason == reason
    assert final.rejected
    assert final.attempts == 3
    assert seen[never.apns_id or ""] == 3
    retries = [e for e in events if isinstance(e, apnskit.RetryScheduled)]
    assert len(retries) == 4
    assert all(e.delay > 0 and str(status) in e.reason for e in retries)
    await client.close()


@pytest.mark.parametrize(
    ("status", "reason"),
    [
        (400, "BadTopic"),
        (403, "InvalidProviderToken"),
        (404, "BadPath"),
        (413, "PayloadTooLarge"),
        (410, "ExpiredToken"),
    ],
)
async def test_other_rejections_not_retried(
    make_client: Callable[..., Client], status: int, reason: str
) -> None:
    transport = FakeTransport(lambda request: echo(request, status, reason))
    client = make_client(transport)
    result = await client.send(notification())
    assert result.status == status
    assert result.reason == reason
    assert result.attempts == 1
    assert isinstance(result.reason, apnskit.Reason)
    assert len(transport.requests) == 1
    await client.close()


async def test_expired_provider_token_renews_and_resends_once(
    make_client: Callable[..., Client],
) -> None:
    seen: Counter[str] = Counter()

    def handler(request: ReceivedRequest) -> Reply:
        apns_id = request.headers["apns-id"]
        seen[apns_id] += 1
        if apns_id == NEVER or seen[apns_id] == 1:
            return echo(request, 403, "ExpiredProviderToken")
        return echo(request)

    now = [1_700_000_000.0]
    credentials = apnskit.TokenCredentials(
        KEY_PEM, key_id="ABCDE12345", team_id="TEAM123456", clock=lambda: now[0]
    )
    transport = FakeTransport(handler)
    client = make_client(transport, credentials=credentials)
    result = await client.send(notification(apns_id=ONCE))
    assert result.accepted
    assert result.attempts == 2
    first, second = transport.requests[0], transport.requests[1]
    assert first.headers["authorization"] != second.headers["authorization"]
    assert credentials.generation == 2

    # Rejected again after renewal: returned, not retried a second time.
    now[0] += 120  # old enough that the credentials do not blame the clock
    never = notification(apns_id=NEVER)
    final = await client.send(never)
    assert final.status == 403
    assert final.reason is apnskit.Reason.EXPIRED_PROVIDER_TOKEN
    assert seen[never.apns_id or ""] == 2
    assert credentials.generation == 3
    await client.close()


async def test_expired_fresh_tokens_blame_the_clock(make_client: Callable[..., Client]) -> None:
    transport = FakeTransport(lambda r: echo(r, 403, "ExpiredProviderToken"))
    client = make_client(transport)
    first = await client.send(notification())
    assert first.status == 403
    assert first.error is None
    assert len(transport.requests) == 2
    # Rejected right after renewal again: the credentials say the clock is wrong.
    second = await client.send(notification())
    assert second.status == 403
    assert isinstance(second.error, apnskit.CredentialsError)
    assert "clock" in str(second.error)
    assert len(transport.requests) == 3
    await client.close()


# ---------------------------------------------------------------------------- deadlines


async def test_deadline_gives_timeout_result(make_client: Callable[..., Client]) -> None:
    def handler(request: ReceivedRequest) -> Reply | Fault:
        if request.headers["apns-id"] == NEVER:
            return Fault.no_reply()
        return echo(request)

    client = make_client(FakeTransport(handler), timeout=apnskit.Timeout(deadline=0.2))
    started = time.monotonic()
    result = await client.send(notification(apns_id=NEVER))
    elapsed = time.monotonic() - started
    assert result.failed
    assert isinstance(result.error, apnskit.DeadlineExceededError)
    assert isinstance(result.error, TimeoutError)
    assert 0.15 <= elapsed < 1.5
    # The connection still works afterwards (the stream was cancelled, not the connection).
    assert (await client.send(notification())).accepted
    await client.close()


async def test_deadline_in_send_many(make_client: Callable[..., Client]) -> None:
    def handler(request: ReceivedRequest) -> Reply | Fault:
        return Fault.no_reply() if request.stream_id % 4 == 1 else echo(request)

    client = make_client(FakeTransport(handler), timeout=apnskit.Timeout(deadline=0.2))
    results = await client.send_many([notification() for _ in range(40)])
    assert len(results) == 40
    late = [r for r in results if r.failed]
    assert late
    assert all(isinstance(r.error, apnskit.DeadlineExceededError) for r in late)
    assert sum(r.accepted for r in results) == 40 - len(late)
    await client.close()


# ---------------------------------------------------------------------------- connecting


async def test_connect_failures_back_off_then_succeed(make_client: Callable[..., Client]) -> None:
    events: list[apnskit.ClientEvent] = []
    transport = FakeTransport(fail_connects=2)
    client = make_client(transport, event_hook=events.append)
    result = await client.send(notification())
    assert result.accepted
    assert transport.connect_attempts == 3
    assert transport.connections == 1
    failed = [e for e in events if isinstance(e, apnskit.ConnectionFailed)]
    assert len(failed) == 2
    assert all(isinstance(e.error, apnskit.ConnectError) and e.retry_in > 0 for e in failed)
    await client.close()


async def test_connect_failures_exhaust_attempts(make_client: Callable[..., Client]) -> None:
    transport = FakeTransport(fail_connects=10)
    client = make_client(transport)
    results = await client.send_many([notification() for _ in range(5)])
    assert len(results) == 5
    assert all(r.failed and isinstance(r.error, apnskit.ConnectError) for r in results)
    assert transport.connect_attempts == 3
    await client.close()


# ---------------------------------------------------------------------------- stream limits


async def test_holds_one_stream_until_first_success(make_client: Callable[..., Client]) -> None:
    peak = Peak()

    def handler(request: ReceivedRequest) -> Fault:
        peak.arrive()
        return Fault.delay(0.005, echo(request))

    transport = FakeTransport(handler, max_concurrent_streams=8, hold_streams_until_success=True)
    peak.transport = transport
    client = make_client(transport, limits=apnskit.Limits(max_connections=1))
    results = await client.send_many([notification() for _ in range(100)])
    assert all(r.accepted for r in results)
    assert len(results) == 100
    assert peak.seen[0] == 1
    assert peak.seen[1] == 1
    assert max(peak.seen) == 8  # then the announced limit, never more
    assert transport.connections == 1
    await client.close()


async def test_stream_limit_lowered_mid_connection(make_client: Callable[..., Client]) -> None:
    peak = Peak()

    def handler(request: ReceivedRequest) -> Fault:
        peak.arrive()
        if len(peak.seen) == 20:
            assert peak.transport is not None
            peak.transport.set_max_concurrent_streams(3)
        return Fault.delay(0.002, echo(request))

    transport = FakeTransport(handler, max_concurrent_streams=50)
    peak.transport = transport
    client = make_client(transport, limits=apnskit.Limits(max_connections=1))
    results = await client.send_many([notification() for _ in range(200)])
    assert all(r.accepted for r in results)
    assert len(results) == 200
    assert max(peak.seen[:20]) > 3
    assert max(peak.seen[100:]) <= 3
    assert transport.connections == 1  # no PROTOCOL_ERROR GOAWAY from the server
    await client.close()


async def test_pool_opens_only_when_saturated(make_client: Callable[..., Client]) -> None:
    transport = FakeTransport(lambda r: Fault.delay(0.005, echo(r)))
    client = make_client(transport, limits=apnskit.Limits(max_connections=4))
    for _ in range(3):
        assert (await client.send(notification())).accepted
    results = await client.send_many([notification() for _ in range(300)])
    assert all(r.accepted for r in results)
    assert transport.connections == 1  # 1000 streams allowed: never saturated
    await client.close()


async def test_pool_grows_to_max_connections(make_client: Callable[..., Client]) -> None:
    peak = Peak()

    def handler(request: ReceivedRequest) -> Fault:
        peak.arrive()
        return Fault.delay(0.005, echo(request))

    transport = FakeTransport(handler, max_concurrent_streams=10)
    peak.transport = transport
    client = make_client(transport, limits=apnskit.Limits(max_connections=3))
    results = await client.send_many([notification() for _ in range(300)])
    assert all(r.accepted for r in results)
    assert len(results) == 300
    assert transport.connections == 3
    assert max(peak.seen) <= 30
    assert {r.connection_id for r in transport.requests} == {1, 2, 3}
    await client.close()


# ---------------------------------------------------------------------------- health checks


@pytest.mark.pure_python  # counts calls of a core method: the compiled pool calls it natively
async def test_ping_health_check_on_idle_connection(
    make_client: Callable[..., Client], monkeypatch: pytest.MonkeyPatch
) -> None:
    pings = [0]
    original = ApnsConnection.send_ping

    def counting(self: ApnsConnection, now: float | None = None) -> bytes:
        pings[0] += 1
        return original(self, now)

    monkeypatch.setattr(ApnsConnection, "send_ping", counting)
    transport = FakeTransport()
    client = make_client(transport, timeout=apnskit.Timeout(ping_interval=0.05, ping_timeout=1))
    assert (await client.send(notification())).accepted
    assert pings[0] == 0
    await _sleep(client, 0.1)
    assert (await client.send(notification())).accepted
    assert pings[0] == 1
    assert transport.connections == 1  # the healthy one was kept
    await client.close()


async def test_dead_idle_connection_is_replaced(make_client: Callable[..., Client]) -> None:
    events: list[apnskit.ClientEvent] = []
    transport = FakeTransport()
    client = make_client(
        transport,
        timeout=apnskit.Timeout(ping_interval=0.05, ping_timeout=0.1),
        event_hook=events.append,
    )
    assert (await client.send(notification())).accepted
    # A NAT silently dropped the connection: whatever the client writes vanishes.
    dead = transport._live[0]
    dead.deliver = lambda data: None  # type: ignore[method-assign]
    await _sleep(client, 0.1)
    started = time.monotonic()
    result = await client.send(notification())
    assert result.accepted
    assert result.attempts == 1
    assert time.monotonic() - started < 1.0
    assert transport.connections == 2
    closed = [e for e in events if isinstance(e, apnskit.ConnectionClosed)]
    assert any("PING" in e.reason for e in closed)
    await client.close()


# ---------------------------------------------------------------------------- event hook


async def test_event_hook_sees_everything(make_client: Callable[..., Client]) -> None:
    calls = [0]

    def handler(request: ReceivedRequest) -> Reply:
        calls[0] += 1
        return echo(request, 503, "ServiceUnavailable") if calls[0] == 1 else echo(request)

    events: list[apnskit.ClientEvent] = []
    client = make_client(FakeTransport(handler, fail_connects=1), event_hook=events.append)
    n = notification()
    result = await client.send(n)
    assert result.accepted
    await client.close()
    kinds = [type(e) for e in events]
    # Handed over once, first of all, from the caller (issue 15: hand-over to result latency).
    assert kinds.count(apnskit.NotificationSubmitted) == 1
    assert kinds[0] is apnskit.NotificationSubmitted
    assert events[0].notification is n  # type: ignore[attr-defined]
    assert kinds.count(apnskit.ConnectionFailed) == 1
    assert kinds.count(apnskit.ConnectionOpened) == 1
    assert kinds.count(apnskit.NotificationSent) == 2
    assert kinds.count(apnskit.RetryScheduled) == 1
    assert kinds.count(apnskit.ResultReady) == 1
    assert kinds.count(apnskit.ConnectionClosed) == 1
    sent = [e for e in events if isinstance(e, apnskit.NotificationSent)]
    assert [e.attempt for e in sent] == [1, 2]
    assert all(e.notification is n for e in sent)
    ready = next(e for e in events if isinstance(e, apnskit.ResultReady))
    assert ready.result is result
    assert kinds.index(apnskit.ConnectionOpened) < kinds.index(apnskit.NotificationSent)


async def test_raising_event_hook_does_not_break_sending(
    make_client: Callable[..., Client], caplog: pytest.LogCaptureFixture
) -> None:
    def hook(event: Any) -> None:
        raise RuntimeError("metrics backend down")

    client = make_client(FakeTransport(), event_hook=hook)
    assert (await client.send(notification())).accepted
    results = await client.send_many([notification() for _ in range(20)])
    assert all(r.accepted for r in results)
    await client.close()
    assert any("event hook" in r.getMessage() for r in caplog.records)


async def test_pool_waits_for_held_connection_to_open_up(
    make_client: Callable[..., Client],
) -> None:
    # Token auth: one stream until the first success. Opening more connections meanwhile
    # would only give more held connections (and TLS handshakes) for nothing.
    transport = FakeTransport(
        lambda r: Fault.delay(0.01, echo(r)),
        max_concurrent_streams=500,
        hold_streams_until_success=True,
    )
    client = make_client(transport, limits=apnskit.Limits(max_connections=4))
    results = await client.send_many([notification() for _ in range(300)])
    assert all(r.accepted for r in results)
    assert len(results) == 300
    assert transport.connections == 1
    await client.close()
