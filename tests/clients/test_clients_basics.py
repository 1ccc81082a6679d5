"""Both clients over FakeTransport: results, rejections, send_many, lifecycle."""

from __future__ import annotations

import datetime as dt
import inspect
from collections.abc import Callable, Iterator
from typing import Any

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
from apnskit.testing import FakeTransport, Fault, ReceivedRequest, Reply

pytestmark = pytest.mark.anyio

# ---------------------------------------------------------------------------- parity


def _public(cls: type) -> dict[str, Any]:
    # Inherited members count too (the constructor and ``environment`` live in a shared base).
    members: dict[str, Any] = {}
    for klass in reversed(cls.__mro__[:-1]):
        members.update((n, o) for n, o in vars(klass).items() if not n.startswith("_"))
    return members


def test_public_names_are_identical() -> None:
    sync, asyn = _public(apnskit.PushClient), _public(apnskit.AsyncPushClient)
    assert sorted(sync) == sorted(asyn)
    assert {
        "send",
        "send_many",
        "send_broadcast",
        "create_channel",
        "get_channel",
        "list_channels",
        "delete_channel",
        "close",
        "environment",
    } <= set(sync)


@pytest.mark.parametrize("name", sorted(_public(apnskit.PushClient)))
def test_public_member_signatures_match(name: str) -> None:
    s = getattr(apnskit.PushClient, name)
    a = getattr(apnskit.AsyncPushClient, name)
    assert type(s) is type(a)  # property vs function
    if isinstance(s, property):
        assert inspect.signature(s.fget) == inspect.signature(a.fget)  # type: ignore[arg-type]
        return
    s_params = list(inspect.signature(s).parameters.values())
    a_params = list(inspect.signature(a).parameters.values())
    assert [(p.name, p.kind, p.default) for p in s_params] == [
        (p.name, p.kind, p.default) for p in a_params
    ]
    assert not inspect.iscoroutinefunction(s)
    assert not inspect.isasyncgenfunction(s)
    assert inspect.iscoroutinefunction(a) or inspect.isasyncgenfunction(a)
    if inspect.isgeneratorfunction(s):
        assert inspect.isasyncgenfunction(a)


def test_constructors_match() -> None:
    s = inspect.signature(apnskit.PushClient.__init__).parameters.values()
    a = inspect.signature(apnskit.AsyncPushClient.__init__).parameters.values()
    assert [(p.name, p.kind, p.default, str(p.annotation)) for p in s] == [
        (p.name, p.kind, p.default, str(p.annotation)) for p in a
    ]


def test_context_manager_protocols() -> None:
    assert hasattr(apnskit.PushClient, "__enter__")
    assert hasattr(apnskit.PushClient, "__exit__")
    assert inspect.iscoroutinefunction(apnskit.AsyncPushClient.__aenter__)
    assert inspect.iscoroutinefunction(apnskit.AsyncPushClient.__aexit__)


# ---------------------------------------------------------------------------- results


def _router(request: ReceivedRequest) -> Reply:
    token = request.path.rsplit("/", 1)[-1]
    if token.startswith("dead"):
        return Reply(
            410,
            headers=(("apns-id", request.headers["apns-id"]),),
            reason="Unregistered",
            timestamp_ms=1_700_000_000_000,
        )
    if token.startswith("bad0"):
        return echo(request, 400, "BadDeviceToken")
    if token.startswith("beef"):
        return echo(request, 400, "SomethingAppleAddedLater")
    return echo(request)


async def test_send_accepted(make_client: Callable[..., Client]) -> None:
    transport = FakeTransport(_router)
    client = make_client(transport)
    n = notification()
    result = await client.send(n)
    assert result.accepted
    assert result.status == 200
    assert result.apns_id == n.apns_id
    assert result.notification is n
    assert result.raise_for_status() is result
    assert len(transport.requests) == 1
    request = transport.requests[0]
    assert request.path == f"/3/device/{'ab' * 32}"
    assert request.headers["apns-topic"] == "com.example.app"
    assert request.headers["authorization"].startswith("bearer ")
    await client.close()


async def test_rejections_are_results(make_client: Callable[..., Client]) -> None:
    client = make_client(FakeTransport(_router))
    gone = await client.send(notification("dead" * 16))
    assert gone.status == 410
    assert gone.reason is apnskit.Reason.UNREGISTERED
    assert gone.timestamp == dt.datetime(2023, 11, 14, 22, 13, 20, tzinfo=dt.timezone.utc)
    assert gone.token_invalid
    assert gone.rejected
    assert not gone.accepted
    with pytest.raises(apnskit.PushRejectedError) as info:
        gone.raise_for_status()
    assert info.value.result is gone

    bad = await client.send(notification("bad0" * 16))
    assert bad.status == 400
    assert bad.reason is apnskit.Reason.BAD_DEVICE_TOKEN
    assert bad.attempts == 1  # not retried

    unknown = await client.send(notification("beef" * 16))
    assert unknown.status == 400
    assert unknown.reason == "SomethingAppleAddedLater"
    assert not isinstance(unknown.reason, apnskit.Reason)
    with pytest.raises(apnskit.PushRejectedError, match="SomethingAppleAddedLater"):
        unknown.raise_for_status()
    await client.close()


async def test_send_many_one_result_each(make_client: Callable[..., Client]) -> None:
    transport = FakeTransport(_router)
    client = make_client(transport)
    items = [notification() for _ in range(300)] + [notification("dead" * 16) for _ in range(20)]
    results = await client.send_many(items)
    assert len(results) == len(items)
    assert {id(r.notification) for r in results} == {id(n) for n in items}
    assert sorted(r.apns_id or "" for r in results) == sorted(n.apns_id or "" for n in items)
    assert sum(r.accepted for r in results) == 300
    assert sum(r.reason is apnskit.Reason.UNREGISTERED for r in results) == 20
    assert set(requests_per_id(transport).values()) == {1}
    assert transport.connections == 1
    await client.close()


async def test_send_many_pipelines(make_client: Callable[..., Client]) -> None:
    # Every reply is delayed, so all requests the client pipelines are open at the server at
    # once; a client sending one round trip at a time would show at most one.
    peak = [0]
    holder: list[FakeTransport] = []

    def slow(request: ReceivedRequest) -> Fault:
        live = sum(c.server.open_request_count for c in holder[0]._live)
        peak[0] = max(peak[0], live + 1)
        return Fault.delay(0.02, echo(request))

    transport = FakeTransport(slow)
    holder.append(transport)
    client = make_client(transport)
    items = [notification() for _ in range(400)]
    results = await client.send_many(items)
    assert len(results) == 400
    assert all(r.accepted for r in results)
    assert peak[0] >= 200
    await client.close()


async def test_send_many_reads_a_generator_lazily(make_client: Callable[..., Client]) -> None:
    limits = apnskit.Limits(max_in_flight=200)
    batch = 200  # min(1000, max_in_flight)
    pulled = [0]
    # 20k rather than a million: the in-memory HTTP/2 server costs ~100 us a request.
    total = 20_000
    template = notification()

    def source() -> Iterator[apnskit.Notification]:
        for _ in range(total):
            pulled[0] += 1
            yield template

    client = make_client(FakeTransport(), limits=limits)
    consumed = 0
    worst = 0
    async for result in client.iter_many(source()):
        assert result.accepted
        consumed += 1
        worst = max(worst, pulled[0] - consumed)
    assert consumed == total == pulled[0]
    assert worst <= limits.max_in_flight + batch
    assert client.dispatcher.outstanding == 0
    await client.close()


async def test_non_notifications_fail_without_crashing(make_client: Callable[..., Client]) -> None:
    transport = FakeTransport()
    client = make_client(transport)
    good = notification()
    items: list[Any] = [good, "not a notification", None, {"aps": {}}]
    results = await client.send_many(items)
    assert len(results) == 4
    by_item = {id(r.notification): r for r in results}
    assert by_item[id(good)].accepted
    for item in items[1:]:
        result = by_item[id(item)]
        assert result.failed
        assert result.status is None
        assert isinstance(result.error, apnskit.InvalidNotificationError)
    single = await client.send(42)
    assert isinstance(single.error, apnskit.InvalidNotificationError)
    assert len(transport.requests) == 1
    await client.close()


# ---------------------------------------------------------------------------- lifecycle


async def test_close_twice_and_send_after_close(make_client: Callable[..., Client]) -> None:
    client = make_client(FakeTransport())
    assert (await client.send(notification())).accepted
    await client.close()
    await client.close()
    with pytest.raises(apnskit.ClientClosedError):
        await client.send(notification())
    with pytest.raises(apnskit.ClientClosedError):
        await client.send_many([notification()])


async def test_close_before_any_send(make_client: Callable[..., Client]) -> None:
    transport = FakeTransport()
    client = make_client(transport)
    await client.close()
    assert transport.connections == 0
    with pytest.raises(apnskit.ClientClosedError):
        await client.send(notification())


async def test_context_managers(flavor: str) -> None:
    transport = FakeTransport()
    creds = token_credentials()
    if flavor == "sync":
        with apnskit.PushClient(creds, environment="sandbox", transport=transport) as client:
            assert client.send(notification()).accepted
        with pytest.raises(apnskit.ClientClosedError):
            client.send(notification())
        return
    async with apnskit.AsyncPushClient(creds, environment="sandbox", transport=transport) as ac:
        assert (await ac.send(notification())).accepted
    with pytest.raises(apnskit.ClientClosedError):
        await ac.send(notification())


@pytest.mark.parametrize("flavor", ["asyncio", "trio"])
async def test_async_client_without_async_with(flavor: str) -> None:
    client = apnskit.AsyncPushClient(
        token_credentials(), environment="sandbox", transport=FakeTransport(), retry=FAST_RETRY
    )
    assert (await client.send(notification())).accepted
    results = [r async for r in client.send_many([notification() for _ in range(50)])]
    assert len(results) == 50
    assert all(r.accepted for r in results)
    await client.close()


@pytest.mark.parametrize("cls", [apnskit.PushClient, apnskit.AsyncPushClient])
def test_wrong_transport_kind_is_a_configuration_error(cls: type) -> None:
    with pytest.raises(apnskit.ConfigurationError, match="transport"):
        cls(token_credentials(), environment="sandbox", transport=object())
