"""Threads, real sockets and TLS on loopback: thread safety, error mapping, end to end."""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable

import pytest
from client_support import FAST_RETRY, Client, echo, notification, token_credentials

import apnskit
from apnskit.testing import FakeTransport, MockApnsServer, ReceivedRequest, Reply

pytestmark = pytest.mark.anyio

DEVICE = "ab" * 32


# ---------------------------------------------------------------------------- threads


def test_sixteen_threads_share_one_sync_client() -> None:
    def handler(request: ReceivedRequest) -> Reply:
        token = request.path.rsplit("/", 1)[-1]
        # Each thread sends to its own token; odd threads' tokens are "unregistered".
        if int(token[:2], 16) % 2:
            return echo(request, 410, "Unregistered")
        return echo(request)

    transport = FakeTransport(handler, max_concurrent_streams=20)
    limits = apnskit.Limits(max_connections=2)
    errors: list[str] = []
    with apnskit.PushClient(
        token_credentials(), environment="sandbox", transport=transport, limits=limits
    ) as client:

        def worker(index: int) -> None:
            token = f"{index:02x}" * 32
            for _ in range(40):
                n = notification(token)
                result = client.send(n)
                if result.notification is not n or result.apns_id != n.apns_id:
                    errors.append(f"thread {index}: got someone else's result")
                elif (index % 2 and result.reason is not apnskit.Reason.UNREGISTERED) or (
                    not index % 2 and not result.accepted
                ):
                    errors.append(f"thread {index}: {result}")

        threads = [threading.Thread(target=worker, args=(i,)) for i in range(16)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        assert not any(thread.is_alive() for thread in threads)
    assert errors == []
    assert len(transport.requests) == 16 * 40
    assert 1 <= transport.connections <= 2
    # Several threads' notifications shared one connection.
    assert len({r.path for r in transport.requests if r.connection_id == 1}) > 1


def test_threads_mixing_send_and_send_many() -> None:
    transport = FakeTransport()
    with apnskit.PushClient(
        token_credentials(), environment="sandbox", transport=transport
    ) as client:
        counts: list[int] = []

        def many() -> None:
            counts.append(
                sum(r.accepted for r in client.send_many(notification() for _ in range(300)))
            )

        def single() -> None:
            counts.append(sum(client.send(notification()).accepted for _ in range(30)))

        threads = [threading.Thread(target=f) for f in (many, many, single, single)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
    assert sorted(counts) == [30, 30, 300, 300]


# ---------------------------------------------------------------------------- native errors


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_closed_port_is_a_connect_error(make_client: Callable[..., Client]) -> None:
    client = make_client(
        host="127.0.0.1", port=_closed_port(), retry=apnskit.RetryPolicy(max_attempts=1)
    )
    result = await client.send(notification())
    assert result.failed
    assert isinstance(result.error, apnskit.ConnectError)
    assert "refused" in str(result.error)
    await client.close()


async def test_untrusted_certificate_is_a_connect_error(
    make_client: Callable[..., Client],
) -> None:
    with MockApnsServer() as server:
        client = make_client(
            credentials=server.apns_token_credentials(),
            host=server.host,
            port=server.port,
            retry=apnskit.RetryPolicy(max_attempts=1),
        )
        result = await client.send(notification())
        await client.close()
    assert result.failed
    assert isinstance(result.error, apnskit.ConnectError)
    assert "ca_file" in str(result.error)
    assert not isinstance(result.error, OSError)


async def test_connect_timeout_maps_to_apnskit(make_client: Callable[..., Client]) -> None:
    # A listening socket that never accepts: the TLS handshake never completes.
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        client = make_client(
            host="127.0.0.1",
            port=listener.getsockname()[1],
            timeout=apnskit.Timeout(connect=0.2),
            retry=apnskit.RetryPolicy(max_attempts=1),
        )
        result = await client.send(notification())
        await client.close()
    assert isinstance(result.error, apnskit.ConnectTimeoutError)
    assert isinstance(result.error, apnskit.ConnectError)


# ---------------------------------------------------------------------------- end to end


@pytest.fixture
def server() -> object:
    with MockApnsServer(max_concurrent_streams=50) as srv:
        yield srv


def _tls_client(
    make_client: Callable[..., Client], srv: MockApnsServer, **kwargs: object
) -> Client:
    kwargs.setdefault("credentials", srv.apns_token_credentials())
    return make_client(host=srv.host, port=srv.port, ca_file=srv.ca_file, **kwargs)


async def test_e2e_token_auth(make_client: Callable[..., Client], server: MockApnsServer) -> None:
    client = _tls_client(make_client, server)
    n = notification(DEVICE)
    result = await client.send(n)
    assert result.accepted
    assert result.apns_id == n.apns_id
    assert result.apns_unique_id  # sandbox replies carry one

    results = await client.send_many([notification(DEVICE) for _ in range(300)])
    assert len(results) == 300
    assert all(r.accepted for r in results)
    assert len(server.received) == 301
    assert len({r.connection_id for r in server.received}) <= apnskit.Limits().max_connections

    server.unregister(DEVICE)
    gone = await client.send(notification(DEVICE))
    assert gone.status == 410
    assert gone.reason is apnskit.Reason.UNREGISTERED
    assert gone.timestamp is not None

    server.strict = True
    bad = await client.send(notification("cd" * 32))
    assert bad.status == 400
    assert bad.reason is apnskit.Reason.BAD_DEVICE_TOKEN
    await client.close()


async def test_e2e_pipelines_many_in_flight(
    make_client: Callable[..., Client], server: MockApnsServer
) -> None:
    client = _tls_client(make_client, server, limits=apnskit.Limits(max_connections=1))
    assert (await client.send(notification(DEVICE))).accepted
    server.faults.delay_next(100, 0.05)
    results = await client.send_many([notification(DEVICE) for _ in range(100)])
    assert all(r.accepted for r in results)
    await client.close()


async def test_e2e_goaway_and_drop(
    make_client: Callable[..., Client], server: MockApnsServer
) -> None:
    client = _tls_client(make_client, server)
    assert (await client.send(notification(DEVICE))).accepted
    server.faults.goaway_after(5)
    items = [notification(DEVICE) for _ in range(40)]
    results = await client.send_many(items)
    assert all(r.accepted for r in results), [r for r in results if not r.accepted][:2]
    accepted = [r.apns_id for r in server.received if r.status == 200]
    assert len(accepted) == len(set(accepted)) == 41

    server.faults.drop_after(3)
    results = await client.send_many([notification(DEVICE) for _ in range(20)])
    assert all(r.accepted for r in results), [r for r in results if not r.accepted][:2]
    accepted = [r.apns_id for r in server.received if r.status == 200]
    assert len(accepted) == len(set(accepted)) == 61
    await client.close()


async def test_e2e_retries_and_expired_token(
    make_client: Callable[..., Client], server: MockApnsServer
) -> None:
    client = _tls_client(make_client, server, retry=FAST_RETRY)
    server.faults.fail_next(2, status=503)
    result = await client.send(notification(DEVICE))
    assert result.accepted
    assert result.attempts == 3
    server.faults.refuse_next(1)
    assert (await client.send(notification(DEVICE))).accepted
    server.faults.expire_token_next(1)
    renewed = await client.send(notification(DEVICE))
    assert renewed.accepted
    assert renewed.attempts == 2
    first, second = server.received[-2:]
    assert first.reason == "ExpiredProviderToken"
    assert first.headers["authorization"] != second.headers["authorization"]
    await client.close()


async def test_e2e_certificate_auth(make_client: Callable[..., Client]) -> None:
    with MockApnsServer(auth="certificate") as srv:
        cert, key = srv.issue_client_certificate(["com.example.app"])
        credentials = apnskit.CertificateCredentials.from_file(cert, key_file=key)
        client = make_client(
            credentials=credentials,
            environment=None,
            host=srv.host,
            port=srv.port,
            ca_file=srv.ca_file,
        )
        results = await client.send_many([notification(DEVICE) for _ in range(20)])
        assert all(r.accepted for r in results)
        assert "authorization" not in srv.received[0].headers
        await client.close()
