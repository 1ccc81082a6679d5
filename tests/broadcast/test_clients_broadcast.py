"""Broadcast push and channel management through both clients, over TLS against the mock.

Every behaviour test runs three times: PushClient (``sync``), and AsyncPushClient on anyio's
asyncio and trio backends. The last tests check the request wiring over FakeTransport.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import anyio
import pytest
from broadcast_client_support import (
    BUNDLE,
    FAST_RETRY,
    REQUEST_ID,
    UPDATE,
    BroadcastClient,
    broadcast,
    channel_requests,
    client_class,
    joint_ca_file,
)
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

import apnskit
from apnskit import ChannelError, MessageStoragePolicy, Reason
from apnskit.testing import FakeTransport, MockApnsServer, ReceivedRequest, Reply
from support.flavors import anyio_backend, flavor  # noqa: F401 (fixtures)

pytestmark = pytest.mark.anyio

MakeClient = Callable[..., BroadcastClient]


@pytest.fixture
async def make(flavor: str, server: MockApnsServer) -> AsyncIterator[MakeClient]:
    """Clients of the test's flavour, pointed at ``server`` unless told otherwise."""
    made: list[BroadcastClient] = []
    credentials = server.apns_token_credentials()

    def factory(credentials: Any = credentials, **kwargs: Any) -> BroadcastClient:
        kwargs.setdefault("host", server.host)
        kwargs.setdefault("port", server.port)
        kwargs.setdefault("ca_file", server.ca_file)
        kwargs.setdefault("retry", FAST_RETRY)
        client = BroadcastClient(flavor, client_class(flavor)(credentials, **kwargs))
        made.append(client)
        return client

    yield factory
    for client in made:
        await client.close()


async def wait_for_no_connections(*servers: MockApnsServer) -> None:
    # The server notices a closed connection a moment after the client closes it.
    deadline = time.monotonic() + 5.0
    # The mock offers no event for a closed connection, so poll.
    while any(s.open_connections for s in servers) and time.monotonic() < deadline:  # noqa: ASYNC110
        await anyio.sleep(0.01)
    assert [s.open_connections for s in servers] == [0] * len(servers)


# ------------------------------------------------------------------ channel life cycle


async def test_create_get_list_broadcast_delete(server: MockApnsServer, make: MakeClient) -> None:
    client = make()
    stored = await client.create_channel(
        message_storage_policy=MessageStoragePolicy.MOST_RECENT_MESSAGE_STORED,
        request_id=REQUEST_ID,
    )
    assert stored.bundle_id == BUNDLE
    assert stored.message_storage_policy is MessageStoragePolicy.MOST_RECENT_MESSAGE_STORED
    assert stored.push_type == "LiveActivity"
    assert stored.request_id == REQUEST_ID  # APNs echoes the request id
    assert [c.channel_id for c in server.channels(BUNDLE)] == [stored.channel_id]
    assert server.channels(BUNDLE)[0].message_storage_policy == 1

    no_storage = await client.create_channel()  # the default policy: nothing stored
    assert no_storage.message_storage_policy is MessageStoragePolicy.NO_MESSAGE_STORED
    assert no_storage.channel_id != stored.channel_id
    assert await client.list_channels() == [stored.channel_id, no_storage.channel_id]
    assert await client.list_channels("com.example.other") == []

    read = await client.get_channel(no_storage.channel_id)
    assert read.channel_id == no_storage.channel_id
    assert read.message_storage_policy is MessageStoragePolicy.NO_MESSAGE_STORED
    assert read.push_type == "LiveActivity"
    assert read.request_id is not None
    assert len(read.request_id) == 36

    result = await client.send_broadcast(broadcast(stored.channel_id, apns_request_id=REQUEST_ID))
    assert (result.status, result.reason) == (200, None)
    assert result.request_id == REQUEST_ID
    sent = [r for r in server.received if r.is_broadcast]
    assert len(sent) == 1
    assert sent[0].channel_id == stored.channel_id
    assert sent[0].payload == UPDATE.to_dict()

    # Without a request id, APNs makes one and the result carries it.
    result = await client.send_broadcast(broadcast(no_storage.channel_id, expiration=0))
    assert result.accepted
    assert result.request_id is not None
    assert result.request_id != REQUEST_ID

    await client.delete_channel(stored.channel_id)
    assert [c.channel_id for c in server.channels(BUNDLE)] == [no_storage.channel_id]
    assert await client.list_channels() == [no_storage.channel_id]


async def test_deleted_channel_is_not_registered(server: MockApnsServer, make: MakeClient) -> None:
    client = make()
    channel = await client.create_channel()
    await client.delete_channel(channel.channel_id)

    with pytest.raises(ChannelError) as raised:
        await client.get_channel(channel.channel_id)
    assert raised.value.result.status == 400
    assert raised.value.result.reason is Reason.CHANNEL_NOT_REGISTERED
    assert raised.value.result.request_id is not None
    assert "ChannelNotRegistered" in str(raised.value)
    assert channel.channel_id in str(raised.value)

    with pytest.raises(ChannelError) as raised:
        await client.delete_channel(channel.channel_id)
    assert raised.value.result.reason is Reason.CHANNEL_NOT_REGISTERED

    # A broadcast is answered like a device push: a result, not an exception.
    result = await client.send_broadcast(broadcast(channel.channel_id))
    assert (result.status, result.reason) == (400, Reason.CHANNEL_NOT_REGISTERED)


async def test_channel_limit(server: MockApnsServer, make: MakeClient) -> None:
    server.max_channels = 2
    client = make()
    await client.create_channel()
    await client.create_channel()
    with pytest.raises(ChannelError) as raised:
        await client.create_channel()
    assert raised.value.result.status == 400
    assert raised.value.result.reason is Reason.CANNOT_CREATE_CHANNEL_CONFIG
    assert len(server.channels(BUNDLE)) == 2
    # Deleting one makes room again.
    await client.delete_channel(server.channels(BUNDLE)[0].channel_id)
    assert (await client.create_channel()).channel_id in await client.list_channels()


async def test_feature_not_enabled(server: MockApnsServer, make: MakeClient) -> None:
    channel_id = server.create_channel(BUNDLE)
    server.set_broadcast_enabled(BUNDLE, False)
    client = make()
    with pytest.raises(ChannelError) as raised:
        await client.create_channel()
    assert raised.value.result.status == 403
    assert raised.value.result.reason is Reason.FEATURE_NOT_ENABLED
    with pytest.raises(ChannelError) as raised:
        await client.list_channels()
    assert raised.value.result.reason is Reason.FEATURE_NOT_ENABLED
    result = await client.send_broadcast(broadcast(channel_id))
    assert (result.status, result.reason) == (403, Reason.FEATURE_NOT_ENABLED)
    assert not result.accepted

    server.set_broadcast_enabled(BUNDLE, True)
    assert (await client.send_broadcast(broadcast(channel_id))).accepted


async def test_no_message_stored_channel_needs_expiration_zero(
    server: MockApnsServer, make: MakeClient
) -> None:
    client = make()
    channel = await client.create_channel(message_storage_policy=MessageStoragePolicy.NO_STORAGE)
    result = await client.send_broadcast(broadcast(channel.channel_id, expiration=1_900_000_000))
    assert (result.status, result.reason) == (400, Reason.BAD_EXPIRATION_DATE)
    assert (await client.send_broadcast(broadcast(channel.channel_id, expiration=0))).accepted


async def test_send_broadcast_refuses_a_device_notification(
    server: MockApnsServer, make: MakeClient
) -> None:
    client = make()
    device_push = apnskit.Notification("ab" * 32, {"aps": {"alert": "hi"}}, topic=BUNDLE)
    with pytest.raises(apnskit.InvalidNotificationError) as raised:
        await client.send_broadcast(device_push)
    assert "BroadcastNotification" in str(raised.value)
    with pytest.raises(apnskit.InvalidNotificationError):
        await client.send_broadcast({"aps": {"event": "update"}})
    assert server.received == []


async def test_bad_input_is_refused_before_sending(
    server: MockApnsServer, make: MakeClient
) -> None:
    client = make()
    with pytest.raises(apnskit.InvalidNotificationError, match="channel_id"):
        await client.get_channel("not base64!")
    with pytest.raises(apnskit.InvalidNotificationError, match="message_storage_policy"):
        await client.create_channel(message_storage_policy=2)
    with pytest.raises(apnskit.InvalidNotificationError, match="apns_request_id"):
        await client.list_channels(request_id="not-a-uuid")
    with pytest.raises(apnskit.InvalidNotificationError, match="bundle_id"):
        await client.list_channels(BUNDLE + ".push-type.liveactivity")
    assert server.received == []


# ------------------------------------------------------------------ retries


@pytest.mark.parametrize(
    ("status", "reason"), [(503, "ServiceUnavailable"), (429, "TooManyRequests")]
)
async def test_create_is_retried_after_an_explicit_refusal(
    server: MockApnsServer, make: MakeClient, status: int, reason: str
) -> None:
    # 429 and 503 say APNs turned the request away before doing anything: no channel was
    # made, so sending the create again cannot make two.
    client = make()
    server.faults.fail_next(1, status=status, reason=reason)
    channel = await client.create_channel()
    assert [r.status for r in channel_requests(server, "POST")] == [status, 201]
    assert [c.channel_id for c in server.channels(BUNDLE)] == [channel.channel_id]


async def test_create_is_not_retried_after_500(server: MockApnsServer, make: MakeClient) -> None:
    # A 500 may have done part of the work: resending could make a second channel.
    client = make()
    server.faults.fail_next(1, status=500, reason="InternalServerError")
    with pytest.raises(ChannelError) as raised:
        await client.create_channel()
    assert raised.value.result.status == 500
    assert raised.value.result.reason is Reason.INTERNAL_SERVER_ERROR
    assert raised.value.result.attempts == 1
    assert len(channel_requests(server, "POST")) == 1
    assert server.channels(BUNDLE) == []


async def test_create_is_not_retried_after_a_lost_connection(
    server: MockApnsServer, make: MakeClient
) -> None:
    client = make()
    await client.list_channels()  # the management connection is up
    server.faults.drop_after(0)
    with pytest.raises(ChannelError) as raised:
        await client.create_channel()
    assert raised.value.result.status is None
    assert isinstance(raised.value.result.error, apnskit.ConnectionLostError)
    assert len(channel_requests(server, "POST")) == 1


async def test_reads_are_retried_after_503(server: MockApnsServer, make: MakeClient) -> None:
    channel_id = server.create_channel(BUNDLE, 1)
    client = make()
    server.faults.fail_next(1, status=503, reason="ServiceUnavailable")
    channel = await client.get_channel(channel_id)
    assert channel.channel_id == channel_id
    assert channel.message_storage_policy is MessageStoragePolicy.MOST_RECENT_MESSAGE_STORED
    gets = channel_requests(server, "GET")
    assert [r.status for r in gets] == [503, 200]

    server.faults.fail_next(1, status=500)
    assert await client.list_channels() == [channel_id]
    server.faults.fail_next(1, status=503)
    await client.delete_channel(channel_id)
    assert server.channels(BUNDLE) == []
    deletes = channel_requests(server, "DELETE")
    assert [r.status for r in deletes] == [503, 204]


async def test_broadcast_is_retried_after_503(server: MockApnsServer, make: MakeClient) -> None:
    channel_id = server.create_channel(BUNDLE, 1)
    client = make()
    server.faults.fail_next(1, status=503)
    result = await client.send_broadcast(broadcast(channel_id, apns_request_id=REQUEST_ID))
    assert result.accepted
    assert result.attempts == 2
    assert result.request_id == REQUEST_ID


# ------------------------------------------------------------------ connections


async def test_management_client_is_closed_with_the_parent(
    server: MockApnsServer, make: MakeClient
) -> None:
    client = make()
    channel = await client.create_channel()
    assert (await client.send_broadcast(broadcast(channel.channel_id, expiration=0))).accepted
    # One connection for pushes, one for channel management (the mock serves both).
    assert server.open_connections == 2
    await client.close()
    await wait_for_no_connections(server)
    with pytest.raises(apnskit.ClientClosedError):
        await client.list_channels()
    with pytest.raises(apnskit.ClientClosedError):
        await client.send_broadcast(broadcast(channel.channel_id))
    await client.close()  # twice is fine


async def test_management_host_and_port_route_channel_requests(
    server: MockApnsServer, make: MakeClient, tmp_path: Path
) -> None:
    with MockApnsServer() as manager:
        # The second server trusts the first one's signing key: tokens are shared.
        key = server.new_token_key()
        manager.trust_key(
            key.key_id,
            key.team_id,
            serialization.load_pem_private_key(key.private_key_pem, None).public_key(),
        )
        credentials = apnskit.TokenCredentials(
            key.private_key_pem, key_id=key.key_id, team_id=key.team_id
        )
        client = make(
            credentials,
            management_host=manager.host,
            management_port=manager.port,
            ca_file=joint_ca_file(tmp_path, server, manager),
        )
        channel = await client.create_channel()
        assert [c.channel_id for c in manager.channels(BUNDLE)] == [channel.channel_id]
        assert server.channels(BUNDLE) == []
        assert await client.list_channels() == [channel.channel_id]
        await client.get_channel(channel.channel_id)

        on_push_server = server.create_channel(BUNDLE)
        assert (await client.send_broadcast(broadcast(on_push_server))).accepted
        assert [r.path for r in server.received] == [f"/4/broadcasts/apps/{BUNDLE}"]
        assert {r.path for r in manager.received} == {
            f"/1/apps/{BUNDLE}/channels",
            f"/1/apps/{BUNDLE}/all-channels",
        }
        assert not any(r.is_broadcast for r in manager.received)
        await client.close()
        await wait_for_no_connections(server, manager)


# ------------------------------------------------------------------ wiring (FakeTransport)


class RecordingTransport(FakeTransport):
    """A FakeTransport that also records where each connection was opened."""

    def __init__(self, handler: Any) -> None:
        super().__init__(handler)
        self.addresses: list[tuple[str, int]] = []

    def connect(self, host: str, port: int, **kwargs: Any) -> Any:
        self.addresses.append((host, port))
        return super().connect(host, port, **kwargs)

    async def connect_async(self, host: str, port: int, **kwargs: Any) -> Any:
        self.addresses.append((host, port))
        return await super().connect_async(host, port, **kwargs)


CHANNEL_ID = "dHN0LXNyY2gtY2hubA=="
_FAKE_KEY_PEM = ec.generate_private_key(ec.SECP256R1()).private_bytes(
    serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
)


def fake_credentials() -> apnskit.TokenCredentials:
    return apnskit.TokenCredentials(_FAKE_KEY_PEM, key_id="ABCDE12345", team_id="TEAM123456")


def apns_like(request: ReceivedRequest) -> Reply:
    """Answer like APNs: echo the request id, and each endpoint's documented success."""
    echo = (("apns-request-id", request.headers.get("apns-request-id", REQUEST_ID)),)
    if request.path.endswith("/all-channels"):
        return Reply(200, echo, body=json.dumps({"channels": [CHANNEL_ID]}).encode())
    if request.path.endswith("/channels"):
        if request.method == "POST":
            return Reply(201, (*echo, ("apns-channel-id", CHANNEL_ID)))
        if request.method == "GET":
            body = {"message-storage-policy": 1, "push-type": "LiveActivity"}
            return Reply(200, echo, body=json.dumps(body).encode())
        return Reply(204, echo)
    return Reply(200, echo)


async def test_request_wiring(flavor: str) -> None:
    transport = RecordingTransport(apns_like)
    cls = client_class(flavor)
    client = BroadcastClient(
        flavor,
        cls(fake_credentials(), environment="sandbox", transport=transport, retry=FAST_RETRY),
    )
    other_id = "4d9c0a14-36a4-4b7e-9a39-3bd0d1c1d8a7"
    try:
        created = await client.create_channel(
            message_storage_policy=MessageStoragePolicy.MOST_RECENT, request_id=REQUEST_ID
        )
        assert (created.channel_id, created.request_id) == (CHANNEL_ID, REQUEST_ID)
        read = await client.get_channel(CHANNEL_ID, request_id=other_id)
        assert read.message_storage_policy is MessageStoragePolicy.MOST_RECENT_MESSAGE_STORED
        assert read.request_id == other_id
        assert await client.list_channels() == [CHANNEL_ID]
        await client.delete_channel(CHANNEL_ID)
        result = await client.send_broadcast(
            apnskit.BroadcastNotification(
                BUNDLE, CHANNEL_ID, UPDATE, priority=5, expiration=0, apns_request_id=other_id
            )
        )
        assert result.accepted
        assert result.request_id == other_id
    finally:
        await client.close()

    create, get, listing, delete, push = transport.requests
    assert (create.method, create.path) == ("POST", f"/1/apps/{BUNDLE}/channels")
    assert json.loads(create.body) == {"message-storage-policy": 1, "push-type": "LiveActivity"}
    assert create.headers["apns-request-id"] == REQUEST_ID
    assert "apns-channel-id" not in create.headers
    assert (get.method, get.path, get.body) == ("GET", f"/1/apps/{BUNDLE}/channels", b"")
    assert get.headers["apns-channel-id"] == CHANNEL_ID
    assert get.headers["apns-request-id"] == other_id
    assert (listing.method, listing.path) == ("GET", f"/1/apps/{BUNDLE}/all-channels")
    assert "apns-request-id" not in listing.headers
    assert "apns-channel-id" not in listing.headers
    assert (delete.method, delete.path) == ("DELETE", f"/1/apps/{BUNDLE}/channels")
    assert delete.headers["apns-channel-id"] == CHANNEL_ID
    assert (push.method, push.path) == ("POST", f"/4/broadcasts/apps/{BUNDLE}")
    assert push.headers["apns-push-type"] == "liveactivity"
    assert push.headers["apns-channel-id"] == CHANNEL_ID
    assert push.headers["apns-request-id"] == other_id
    assert push.headers["apns-priority"] == "5"
    assert push.headers["apns-expiration"] == "0"
    assert "apns-topic" not in push.headers
    assert json.loads(push.body) == UPDATE.to_dict()
    for request in transport.requests:
        # Channel management authenticates with the same provider token.
        assert request.headers["authorization"].startswith("bearer ")
        assert "apns-push-type" not in request.headers or request is push
    # Channel management on Apple's management host, broadcasts on the push host.
    assert transport.addresses == [
        ("api-manage-broadcast.sandbox.push.apple.com", 2195),
        ("api.sandbox.push.apple.com", 443),
    ]
    assert [r.connection_id for r in transport.requests] == [1, 1, 1, 1, 2]


async def test_management_address_overrides(flavor: str) -> None:
    transport = RecordingTransport(apns_like)
    credentials = fake_credentials()
    cls = client_class(flavor)
    production = BroadcastClient(
        flavor, cls(credentials, environment="production", transport=transport)
    )
    proxied = BroadcastClient(
        flavor, cls(credentials, host="proxy.example", port=8443, transport=transport)
    )
    explicit = BroadcastClient(
        flavor,
        cls(
            credentials,
            host="proxy.example",
            port=8443,
            management_host="manage.example",
            management_port=9443,
            transport=transport,
        ),
    )
    try:
        await production.list_channels()
        await proxied.list_channels()
        await explicit.list_channels()
    finally:
        for client in (production, proxied, explicit):
            await client.close()
    assert transport.addresses == [
        ("api-manage-broadcast.push.apple.com", 2196),
        ("proxy.example", 8443),
        ("manage.example", 9443),
    ]


async def test_list_and_delete_carry_the_request_id(
    server: MockApnsServer, make: MakeClient
) -> None:
    channel_id = server.create_channel(BUNDLE, 0)
    client = make()
    listed = await client.list_channels(request_id="5f1d3a2e-8c4b-4e6f-9a7d-0b2c4e6f8a1d")
    assert listed == [channel_id]
    assert listed.request_id == "5f1d3a2e-8c4b-4e6f-9a7d-0b2c4e6f8a1d"
    deleted = await client.delete_channel(
        channel_id, request_id="6a2e4b3f-9d5c-4f7a-8b8e-1c3d5f7a9b2e"
    )
    assert deleted.channel_id == channel_id
    assert deleted.bundle_id == BUNDLE
    assert deleted.request_id == "6a2e4b3f-9d5c-4f7a-8b8e-1c3d5f7a9b2e"
