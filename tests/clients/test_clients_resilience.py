"""Connections that die in ways the network does not report, servers that drop at once,
and closing a client under load: nothing hangs, nothing floods, nothing is lost."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

import pytest
from client_support import Client, echo, notification, token_credentials

import apnskit
from apnskit.testing import FakeTransport, Fault, MockApnsServer, ReceivedRequest, Reply

pytestmark = pytest.mark.anyio

QUICK_RETRY = apnskit.RetryPolicy(max_attempts=3, backoff_base=0.01, backoff_max=0.05)


async def test_silently_dead_connection_is_detected_and_replaced(
    make_client: Callable[..., Client],
) -> None:
    transport = FakeTransport(echo)
    client = make_client(
        transport,
        retry=QUICK_RETRY,
        timeout=apnskit.Timeout(deadline=10.0, ping_timeout=0.1),
    )
    assert (await client.send(notification())).accepted
    transport.blackhole()  # a NAT forgot the connection: writes vanish, nothing comes back
    started = time.monotonic()
    result = await client.send(notification())
    # Streams open and nothing read for 2 x ping_timeout: PING; no ack within ping_timeout:
    # the connection is declared lost and the notification resent on a new one.
    assert result.accepted
    assert result.attempts == 2
    assert transport.connections == 2
    assert time.monotonic() - started < 5.0  # long before the 10 s deadline


@pytest.mark.parametrize(
    "fault",
    [Fault.goaway(last_stream_id=0, reason="Shutdown"), Fault.drop()],
    ids=["goaway", "drop"],
)
async def test_server_that_drops_every_connection_meets_backoff(
    make_client: Callable[..., Client], fault: Fault
) -> None:
    # Apple treats rapid reconnects as denial of service: a connection that ends before any
    # answer counts as a failed connect, so reconnects back off exponentially.
    transport = FakeTransport(lambda request: fault)
    client = make_client(
        transport,
        retry=apnskit.RetryPolicy(max_attempts=3, backoff_base=0.01, backoff_max=0.2, jitter=0),
        timeout=apnskit.Timeout(deadline=1.0),
    )
    results = await client.send_many([notification() for _ in range(200)])
    assert len(results) == 200
    assert not any(r.accepted for r in results)
    # Without backoff this opened one connection per notification per attempt (600+).
    assert transport.connections <= 12


def test_close_wakes_threads_blocked_in_send() -> None:
    transport = FakeTransport(lambda request: Fault.no_reply())
    client = apnskit.PushClient(
        token_credentials(),
        environment="sandbox",
        transport=transport,
        timeout=apnskit.Timeout(deadline=None),
    )
    results: list[apnskit.PushResult] = []
    threads = [
        threading.Thread(target=lambda: results.append(client.send(notification())))
        for _ in range(4)
    ]
    for thread in threads:
        thread.start()
    time.sleep(0.2)  # every thread is now waiting; one of them drives the I/O
    started = time.monotonic()
    client.close()
    for thread in threads:
        thread.join(5)
    assert not any(thread.is_alive() for thread in threads)
    assert time.monotonic() - started < 2.0
    assert len(results) == 4
    assert all(isinstance(r.error, apnskit.ClientClosedError) for r in results)


async def test_close_ends_tasks_waiting_in_send() -> None:
    transport = FakeTransport(lambda request: Fault.no_reply())
    client = apnskit.AsyncPushClient(
        token_credentials(),
        environment="sandbox",
        transport=transport,
        timeout=apnskit.Timeout(deadline=None),
    )
    results: list[apnskit.PushResult] = []

    async def one() -> None:
        results.append(await client.send(notification()))

    import anyio

    async with anyio.create_task_group() as group:
        for _ in range(4):
            group.start_soon(one)
        await anyio.sleep(0.2)
        with anyio.fail_after(5):
            await client.close()
    assert len(results) == 4
    assert all(isinstance(r.error, apnskit.ClientClosedError) for r in results)


def _bearer(credentials: apnskit.TokenCredentials) -> str:
    auth = credentials.authorization()
    assert auth is not None
    return auth[0].split(" ", 1)[1]


def test_no_jwt_in_any_log_line_of_a_full_send(caplog: pytest.LogCaptureFixture) -> None:
    # Every logger at DEBUG, the client and both server stand-ins on the other end.
    caplog.set_level(logging.DEBUG)
    with MockApnsServer() as server:
        credentials = server.apns_token_credentials()
        jwt = _bearer(credentials)
        with apnskit.PushClient(
            credentials, host=server.host, port=server.port, ca_file=str(server.ca_file)
        ) as client:
            assert client.send(notification()).accepted
            assert jwt not in repr(client)
    fake_credentials = token_credentials()
    fake_jwt = _bearer(fake_credentials)

    def handler(request: ReceivedRequest) -> Reply:
        assert fake_jwt not in repr(request)
        return echo(request)

    with apnskit.PushClient(
        fake_credentials, environment="sandbox", transport=FakeTransport(handler)
    ) as client:
        assert client.send(notification()).accepted
    assert caplog.records  # DEBUG logging really was on
    for record in caplog.records:
        text = record.getMessage()
        assert jwt not in text
        assert fake_jwt not in text
    assert jwt not in repr(credentials)
    assert fake_jwt not in str(fake_credentials)


def test_breaking_out_of_send_many_stops_sending() -> None:
    transport = FakeTransport(echo)
    with apnskit.PushClient(
        token_credentials(),
        environment="sandbox",
        transport=transport,
        limits=apnskit.Limits(max_in_flight=100),
    ) as client:
        results = client.send_many(notification() for _ in range(5000))
        for count, _ in enumerate(results, start=1):
            if count == 10:
                break
        results.close()  # what CPython does at once when the loop's iterator goes away
        sent_at_break = len(transport.requests)
        # The client keeps working, and nothing more of the abandoned batch goes out.
        assert client.send(notification()).accepted
    assert sent_at_break < 300
    assert len(transport.requests) == sent_at_break + 1


async def test_leaving_async_send_many_stops_sending(anyio_backend: str) -> None:
    from contextlib import aclosing

    transport = FakeTransport(echo)
    async with apnskit.AsyncPushClient(
        token_credentials(),
        environment="sandbox",
        transport=transport,
        limits=apnskit.Limits(max_in_flight=100),
    ) as client:
        async with aclosing(client.send_many(notification() for _ in range(5000))) as results:
            count = 0
            async for _ in results:
                count += 1
                if count == 10:
                    break
        sent_at_break = len(transport.requests)
        assert (await client.send(notification())).accepted
    assert sent_at_break < 300
    assert len(transport.requests) == sent_at_break + 1


def test_closing_right_after_leaving_send_many_with_the_fake() -> None:
    # close() writes RST_STREAMs and a GOAWAY in one go; the fake server must not try to
    # answer a request on the connection that GOAWAY just closed.
    transport = FakeTransport(lambda request: Reply(200))
    with apnskit.PushClient(
        token_credentials(), environment="sandbox", transport=transport
    ) as client:
        results = client.send_many(notification() for _ in range(10))
        for _ in results:
            break
        results.close()
    assert transport.requests
