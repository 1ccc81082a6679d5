"""The FastAPI example against the mock APNs server, through httpx's ASGI transport.

httpx.ASGITransport does not run the lifespan, so the test enters the app's lifespan itself,
as a server would at startup and shutdown.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from push_app import create_app, get_push_client

import apnskit
from apnskit.testing import MockApnsServer

pytestmark = pytest.mark.anyio

GOOD = "ab" * 32
GONE = "cd" * 32


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
async def server() -> AsyncIterator[MockApnsServer]:
    async with MockApnsServer() as srv:
        srv.unregister(GONE)
        yield srv


@pytest.fixture
async def app_and_client(server: MockApnsServer) -> AsyncIterator[tuple[Any, httpx.AsyncClient]]:
    made: list[apnskit.AsyncPushClient] = []

    def make_client() -> apnskit.AsyncPushClient:
        client = apnskit.AsyncPushClient(
            server.apns_token_credentials(),
            host=server.host,
            port=server.port,
            ca_file=server.ca_file,
        )
        made.append(client)
        return client

    app = create_app(make_client, topic="com.example.app")
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://app") as http:
            yield app, http
    # The lifespan closed the one client it made.
    assert len(made) == 1
    with pytest.raises(apnskit.ClientClosedError):
        await made[0].send(apnskit.Notification(GOOD, {"aps": {}}, topic="com.example.app"))


async def test_notify(
    server: MockApnsServer, app_and_client: tuple[Any, httpx.AsyncClient]
) -> None:
    _, http = app_and_client
    response = await http.post(
        "/notify", json={"device_token": GOOD, "title": "Order", "body": "Shipped"}
    )
    assert response.status_code == 200
    answer = response.json()
    assert answer["accepted"] is True
    assert answer["status"] == 200
    assert answer["apns_id"]
    (received,) = server.received
    assert received.device_token == GOOD
    assert received.payload == {"aps": {"alert": {"title": "Order", "body": "Shipped"}}}


async def test_one_client_serves_concurrent_requests(
    server: MockApnsServer, app_and_client: tuple[Any, httpx.AsyncClient]
) -> None:
    import anyio

    app, http = app_and_client
    statuses: list[int] = []

    async def one(i: int) -> None:
        response = await http.post(
            "/notify", json={"device_token": f"{i:064x}", "title": "t", "body": str(i)}
        )
        statuses.append(response.status_code)

    async with anyio.create_task_group() as tg:
        for i in range(1, 41):
            tg.start_soon(one, i)
    assert statuses == [200] * 40
    assert len(server.received) == 40
    # All over the app's one client: its pool, not a connection per request.
    assert server.open_connections <= apnskit.DEFAULT_LIMITS.max_connections
    assert isinstance(app.state.push_client, apnskit.AsyncPushClient)


async def test_rejection_and_bad_input(
    server: MockApnsServer, app_and_client: tuple[Any, httpx.AsyncClient]
) -> None:
    _, http = app_and_client
    response = await http.post("/notify", json={"device_token": GONE, "title": "t", "body": "b"})
    assert response.status_code == 200
    assert response.json()["accepted"] is False
    assert response.json()["reason"] == "Unregistered"
    response = await http.post("/notify", json={"device_token": "xyz", "title": "t", "body": "b"})
    assert response.status_code == 422
    assert "device_token" in response.json()["detail"]
    assert len(server.received) == 1  # the bad one never left


async def test_broadcast(
    server: MockApnsServer, app_and_client: tuple[Any, httpx.AsyncClient]
) -> None:
    _, http = app_and_client
    tokens = [f"{i:064x}" for i in range(1, 101)] + [GONE]
    response = await http.post("/broadcast", json={"device_tokens": tokens, "body": "Sale"})
    assert response.status_code == 200
    assert response.json() == {"accepted": 100, "invalid_tokens": [GONE], "failed": 0}


async def test_failure_is_a_502(
    server: MockApnsServer, app_and_client: tuple[Any, httpx.AsyncClient]
) -> None:
    app, http = app_and_client
    short = apnskit.AsyncPushClient(
        server.apns_token_credentials(),
        host=server.host,
        port=server.port,
        ca_file=server.ca_file,
        timeout=apnskit.Timeout(deadline=0.5),
        retry=apnskit.RetryPolicy(max_attempts=1),
    )
    # The dependency is the seam: a test can hand routes another client.
    app.dependency_overrides[get_push_client] = lambda: short
    try:
        server.faults.never_reply_next(1)
        response = await http.post(
            "/notify", json={"device_token": GOOD, "title": "t", "body": "b"}
        )
    finally:
        app.dependency_overrides.clear()
        await short.close()
    assert response.status_code == 502
    assert response.json()["detail"] == "DeadlineExceededError"
