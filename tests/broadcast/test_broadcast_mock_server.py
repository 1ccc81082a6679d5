"""The mock server's broadcast and channel management endpoints, end to end over TLS."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest
from broadcast_support import (
    BUNDLE,
    CHANNEL,
    KEY_ID,
    REQUEST_ID,
    SIGNING_KEY,
    TEAM_ID,
    UPDATE,
    H2Client,
)

from apnskit import ConfigurationError, Payload, Reason
from apnskit._model.broadcast import (
    BroadcastNotification,
    ChannelError,
    MessageStoragePolicy,
    channel_from_result,
    channel_ids_from_result,
    check_deleted,
    create_channel_request,
    delete_channel_request,
    get_channel_request,
    list_channels_request,
)
from apnskit.testing import MockApnsServer

BROADCAST_PATH = f"/4/broadcasts/apps/{BUNDLE}"
CHANNELS_PATH = f"/1/apps/{BUNDLE}/channels"
BODY = json.dumps(UPDATE).encode()


def broadcast_headers(channel: str | None, **extra: str | None) -> list[tuple[str, str]]:
    # apns-expiration is required on every broadcast (Apple's header table): 0 unless given;
    # apns_expiration=None leaves it out.
    extra = {"apns_expiration": "0", **extra}
    headers = [("apns-push-type", "liveactivity")]
    if channel is not None:
        headers.append(("apns-channel-id", channel))
    headers.extend(
        (name.replace("_", "-"), value) for name, value in extra.items() if value is not None
    )
    return headers


# -- channel management -------------------------------------------------------------------


def test_channel_lifecycle(server: MockApnsServer, client: H2Client) -> None:
    create = create_channel_request(BUNDLE, MessageStoragePolicy.NO_STORAGE, request_id=REQUEST_ID)
    response = client.send(create)
    assert response.status == 201
    assert response.body == b""
    assert response.headers["apns-request-id"] == REQUEST_ID
    channel = channel_from_result(create, response.as_result(create))
    assert channel.request_id == REQUEST_ID
    assert channel.message_storage_policy is MessageStoragePolicy.NO_MESSAGE_STORED
    assert [c.channel_id for c in server.channels(BUNDLE)] == [channel.channel_id]
    assert server.channels(BUNDLE)[0].message_storage_policy == 0

    listing = list_channels_request(BUNDLE)
    response = client.send(listing)
    assert response.status == 200
    assert channel_ids_from_result(listing, response.as_result(listing)) == [channel.channel_id]
    # Without a request id, APNs makes one.
    assert len(response.headers["apns-request-id"]) == 36

    get = get_channel_request(BUNDLE, channel.channel_id)
    response = client.send(get)
    assert response.status == 200
    assert json.loads(response.body) == {"message-storage-policy": 0, "push-type": "LiveActivity"}
    read = channel_from_result(get, response.as_result(get))
    assert (read.channel_id, read.message_storage_policy) == (channel.channel_id, 0)

    delete = delete_channel_request(BUNDLE, channel.channel_id)
    response = client.send(delete)
    assert (response.status, response.body) == (204, b"")
    check_deleted(delete, response.as_result(delete))
    assert server.channels(BUNDLE) == []

    response = client.send(get)
    with pytest.raises(ChannelError) as info:
        channel_from_result(get, response.as_result(get))
    assert info.value.result.reason is Reason.CHANNEL_NOT_REGISTERED
    assert info.value.result.status == 400
    # Deleting twice: the channel is gone.
    assert client.send(delete).reason == "ChannelNotRegistered"


def test_channels_belong_to_their_app(server: MockApnsServer, client: H2Client) -> None:
    other = server.create_channel("com.example.other", 1)
    assert client.send(get_channel_request(BUNDLE, other)).reason == "ChannelNotRegistered"
    listing = client.send(list_channels_request(BUNDLE))
    assert json.loads(listing.body) == {"channels": []}
    assert [c.channel_id for c in server.channels("com.example.other")] == [other]


def test_channel_limit(connect: Callable[..., H2Client]) -> None:
    with MockApnsServer(max_channels=2) as srv:
        srv.trust_key(KEY_ID, TEAM_ID, SIGNING_KEY.public_key())
        client = connect(srv)
        request = create_channel_request(BUNDLE, 1)
        assert [client.send(request).status for _ in range(2)] == [201, 201]
        response = client.send(request)
        assert (response.status, response.reason) == (400, "CannotCreateChannelConfig")
        with pytest.raises(ChannelError) as info:
            channel_from_result(request, response.as_result(request))
        assert info.value.result.reason is Reason.CANNOT_CREATE_CHANNEL_CONFIG
        # Another app has its own allowance; deleting makes room again.
        assert client.send(create_channel_request("com.example.other", 1)).status == 201
        first = srv.channels(BUNDLE)[0].channel_id
        assert client.send(delete_channel_request(BUNDLE, first)).status == 204
        assert client.send(request).status == 201
        srv.max_channels = 5
        assert srv.max_channels == 5
        assert client.send(request).status == 201


def test_default_limit_is_apples() -> None:
    assert MockApnsServer().max_channels == 10_000


@pytest.mark.parametrize("bad", [-1, True, 1.5])
def test_limit_must_be_a_count(bad: object) -> None:
    with pytest.raises(ConfigurationError, match="max_channels"):
        MockApnsServer(max_channels=bad)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b'{"message-storage-policy":2,"push-type":"LiveActivity"}', "InvalidPolicy"),
        (b'{"message-storage-policy":true,"push-type":"LiveActivity"}', "InvalidPolicy"),
        (b'{"push-type":"LiveActivity"}', "InvalidPolicy"),
        (b'{"message-storage-policy":1,"push-type":"alert"}', "InvalidPushType"),
        (b'{"message-storage-policy":1}', "MissingPushType"),
        (b"not json", "BadPayload"),
        (b"", "BadPayload"),
    ],
)
def test_create_rejections(
    server: MockApnsServer, client: H2Client, body: bytes, reason: str
) -> None:
    response = client.request("POST", CHANNELS_PATH, body=body)
    assert (response.status, response.reason) == (400, reason)
    assert server.channels(BUNDLE) == []


def test_create_accepts_lowercase_push_type(server: MockApnsServer, client: H2Client) -> None:
    body = b'{"message-storage-policy":1,"push-type":"liveactivity"}'
    assert client.request("POST", CHANNELS_PATH, body=body).status == 201


@pytest.mark.parametrize("method", ["GET", "DELETE"])
@pytest.mark.parametrize(
    ("channel", "reason"),
    [
        (None, "MissingChannelId"),
        ("not base64!", "BadChannelId"),
        ("YWJ", "BadChannelId"),
        (CHANNEL, "ChannelNotRegistered"),
    ],
)
def test_read_and_delete_need_a_known_channel(
    client: H2Client, method: str, channel: str | None, reason: str
) -> None:
    headers = [] if channel is None else [("apns-channel-id", channel)]
    response = client.request(method, CHANNELS_PATH, headers)
    assert (response.status, response.reason) == (400, reason)


@pytest.mark.parametrize(
    ("method", "path", "status", "reason"),
    [
        ("PUT", CHANNELS_PATH, 405, "MethodNotAllowed"),
        ("POST", f"/1/apps/{BUNDLE}/all-channels", 405, "MethodNotAllowed"),
        ("GET", f"/1/apps/{BUNDLE}/other", 404, "BadPath"),
        ("GET", "/1/apps//channels", 404, "BadPath"),
        ("GET", BROADCAST_PATH, 405, "MethodNotAllowed"),
        ("POST", "/4/broadcasts/apps/", 404, "BadPath"),
        ("POST", "/4/broadcasts/apps/a/b", 404, "BadPath"),
    ],
)
def test_paths_and_methods(
    server: MockApnsServer, client: H2Client, method: str, path: str, status: int, reason: str
) -> None:
    channel = server.create_channel(BUNDLE)
    body = BODY if method == "POST" else b""
    response = client.request(method, path, broadcast_headers(channel), body)
    assert (response.status, response.reason) == (status, reason)


def test_management_needs_authentication(
    server: MockApnsServer, connect: Callable[..., H2Client]
) -> None:
    client = connect(authorization="")
    response = client.send(list_channels_request(BUNDLE))
    assert (response.status, response.reason) == (403, "MissingProviderToken")
    response = client.request(
        "GET", f"/1/apps/{BUNDLE}/all-channels", authorization="bearer not.a.jwt"
    )
    assert (response.status, response.reason) == (403, "InvalidProviderToken")


def test_key_restricted_to_other_topics(
    server: MockApnsServer, connect: Callable[..., H2Client]
) -> None:
    server.trust_key(KEY_ID, TEAM_ID, SIGNING_KEY.public_key(), topics=["com.example.other"])
    client = connect()
    assert client.send(list_channels_request(BUNDLE)).reason == "TopicDisallowed"
    assert client.send(list_channels_request("com.example.other")).status == 200


def test_feature_not_enabled(server: MockApnsServer, client: H2Client) -> None:
    channel = server.create_channel(BUNDLE)
    server.set_broadcast_enabled(BUNDLE, False)
    request = create_channel_request(BUNDLE, 1)
    response = client.send(request)
    assert (response.status, response.reason) == (403, "FeatureNotEnabled")
    with pytest.raises(ChannelError) as info:
        channel_from_result(request, response.as_result(request))
    assert info.value.result.reason is Reason.FEATURE_NOT_ENABLED
    note = BroadcastNotification(BUNDLE, channel, UPDATE)
    assert client.send(note).reason == "FeatureNotEnabled"
    server.set_broadcast_enabled(BUNDLE, True)
    assert client.send(note).status == 200


def test_bad_request_id(client: H2Client) -> None:
    response = client.request(
        "GET", f"/1/apps/{BUNDLE}/all-channels", [("apns-request-id", "nope")]
    )
    assert (response.status, response.reason) == (400, "BadMessageId")


def test_certificate_mode_checks_the_bundle(connect: Callable[..., H2Client]) -> None:
    with MockApnsServer(auth="certificate") as srv:
        cert = srv.issue_client_certificate([BUNDLE])
        client = connect(srv, cert=cert)
        assert client.send(create_channel_request(BUNDLE, 1)).status == 201
        response = client.send(create_channel_request("com.example.other", 1))
        assert response.reason == "TopicDisallowed"


# -- broadcast ------------------------------------------------------------------------------


def test_broadcast_accepted_and_recorded(server: MockApnsServer, client: H2Client) -> None:
    channel = server.create_channel(BUNDLE, 1)
    payload = Payload.live_activity_update(content_state={"score": 3}, timestamp=1_700_000_000)
    note = BroadcastNotification(
        BUNDLE, channel, payload, priority=5, expiration=2_000_000_000, apns_request_id=REQUEST_ID
    )
    response = client.send(note)
    assert (response.status, response.body) == (200, b"")
    assert response.headers["apns-request-id"] == REQUEST_ID
    assert response.as_result(note).request_id == REQUEST_ID
    (record,) = server.received
    assert record.is_broadcast
    assert record.channel_id == channel
    assert (record.status, record.outcome, record.device_token) == (200, "reply", "")
    assert record.path == BROADCAST_PATH
    assert record.payload == payload.to_dict()


def test_broadcast_generates_a_request_id(server: MockApnsServer, client: H2Client) -> None:
    channel = server.create_channel(BUNDLE)
    response = client.send(BroadcastNotification(BUNDLE, channel, UPDATE))
    assert response.status == 200
    assert len(response.headers["apns-request-id"]) == 36


def test_management_requests_are_recorded_too(server: MockApnsServer, client: H2Client) -> None:
    client.send(create_channel_request(BUNDLE, 1))
    (record,) = server.received
    assert (record.method, record.path, record.status, record.is_broadcast) == (
        "POST",
        CHANNELS_PATH,
        201,
        False,
    )


@pytest.mark.parametrize(
    ("channel", "reason"),
    [(None, "MissingChannelId"), ("%%%", "BadChannelId"), (CHANNEL, "ChannelNotRegistered")],
)
def test_broadcast_needs_a_known_channel(
    client: H2Client, channel: str | None, reason: str
) -> None:
    response = client.request("POST", BROADCAST_PATH, broadcast_headers(channel), BODY)
    assert (response.status, response.reason) == (400, reason)


def test_broadcast_to_a_channel_of_another_app(server: MockApnsServer, client: H2Client) -> None:
    channel = server.create_channel("com.example.other")
    response = client.send(BroadcastNotification(BUNDLE, channel, UPDATE))
    assert response.reason == "ChannelNotRegistered"


def test_broadcast_push_type(server: MockApnsServer, client: H2Client) -> None:
    channel = server.create_channel(BUNDLE)
    missing = client.request("POST", BROADCAST_PATH, [("apns-channel-id", channel)], BODY)
    assert (missing.status, missing.reason) == (400, "MissingPushType")
    wrong = client.request(
        "POST", BROADCAST_PATH, [("apns-channel-id", channel), ("apns-push-type", "alert")], BODY
    )
    assert (wrong.status, wrong.reason) == (400, "InvalidPushType")


@pytest.mark.parametrize(
    ("policy", "expiration", "status"),
    [
        (0, "0", 200),
        (0, "2000000000", 400),
        (1, "2000000000", 200),
        (1, "0", 200),
        (0, "soon", 400),
        # Apple lists apns-expiration as "Required" on broadcasts, whatever the policy.
        (0, None, 400),
        (1, None, 400),
    ],
)
def test_expiration_against_storage_policy(
    server: MockApnsServer, client: H2Client, policy: int, expiration: str | None, status: int
) -> None:
    channel = server.create_channel(BUNDLE, policy)
    response = client.request(
        "POST", BROADCAST_PATH, broadcast_headers(channel, apns_expiration=expiration), BODY
    )
    assert response.status == status
    if status == 400:
        assert response.reason == "BadExpirationDate"


@pytest.mark.parametrize(("priority", "status"), [("10", 200), ("5", 200), ("1", 200), ("7", 400)])
def test_broadcast_priority(
    server: MockApnsServer, client: H2Client, priority: str, status: int
) -> None:
    channel = server.create_channel(BUNDLE)
    response = client.request(
        "POST", BROADCAST_PATH, broadcast_headers(channel, apns_priority=priority), BODY
    )
    assert response.status == status
    if status == 400:
        assert response.reason == "BadPriority"


@pytest.mark.parametrize(
    ("body", "status", "reason"),
    [
        (b"", 400, "PayloadEmpty"),
        (b"{" + b" " * 4096 + b"}", 413, "PayloadTooLarge"),
        (b"not json", 400, "BadPayload"),
        (b'{"aps":{"alert":"hi"}}', 400, "BadPayload"),
        (b'{"aps":{"event":"start","timestamp":1,"content-state":{}}}', 400, "BadPayload"),
    ],
)
def test_broadcast_payload_rules(
    server: MockApnsServer, client: H2Client, body: bytes, status: int, reason: str
) -> None:
    channel = server.create_channel(BUNDLE)
    response = client.request("POST", BROADCAST_PATH, broadcast_headers(channel), body)
    assert (response.status, response.reason) == (status, reason)


def test_broadcast_duplicate_headers(server: MockApnsServer, client: H2Client) -> None:
    channel = server.create_channel(BUNDLE)
    headers = [*broadcast_headers(channel), ("apns-channel-id", channel)]
    assert client.request("POST", BROADCAST_PATH, headers, BODY).reason == "DuplicateHeaders"


def test_faults_apply_to_broadcasts_and_channels(server: MockApnsServer, client: H2Client) -> None:
    channel = server.create_channel(BUNDLE)
    server.faults.fail_next(1, status=503)
    note = BroadcastNotification(BUNDLE, channel, UPDATE, apns_request_id=REQUEST_ID)
    response = client.send(note)
    assert (response.status, response.reason) == (503, "ServiceUnavailable")
    assert response.headers["apns-request-id"] == REQUEST_ID
    assert client.send(note).status == 200
    server.faults.refuse_next(1)
    response = client.send(list_channels_request(BUNDLE))
    assert response.reset_code == 7  # REFUSED_STREAM
    records = server.received
    assert [(r.channel_id, r.status, r.outcome) for r in records[:2]] == [
        (channel, 503, "reply"),
        (channel, 200, "reply"),
    ]
    assert records[2].outcome == "reset"


def test_production_server_keeps_its_own_channels(connect: Callable[..., H2Client]) -> None:
    with MockApnsServer(environment="production") as srv:
        srv.trust_key(KEY_ID, TEAM_ID, SIGNING_KEY.public_key())
        client = connect(srv)
        created = client.send(create_channel_request(BUNDLE, 1))
        assert created.status == 201
        assert "apns-unique-id" not in created.headers
        assert [c.channel_id for c in srv.channels(BUNDLE)] == [created.headers["apns-channel-id"]]


def test_create_channel_helper_checks_policy(server: MockApnsServer) -> None:
    with pytest.raises(ValueError, match="message_storage_policy"):
        server.create_channel(BUNDLE, 2)
    assert server.channels(BUNDLE) == []
