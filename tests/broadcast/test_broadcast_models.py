"""BroadcastNotification validation, MessageStoragePolicy, channel request builders."""

from __future__ import annotations

import json
import uuid
from datetime import datetime, timedelta, timezone

import pytest
from broadcast_support import BUNDLE, CHANNEL, REQUEST_ID, UPDATE

from apnskit import InvalidNotificationError, Payload, Priority, PushResult, Reason
from apnskit._model.broadcast import (
    BroadcastNotification,
    MessageStoragePolicy,
    create_channel_request,
    delete_channel_request,
    get_channel_request,
    list_channels_request,
)

UPDATE_PAYLOAD = Payload.live_activity_update(content_state={"score": 1}, timestamp=1_700_000_000)


def make(**overrides: object) -> BroadcastNotification:
    kwargs: dict[str, object] = {"bundle_id": BUNDLE, "channel_id": CHANNEL, "payload": UPDATE}
    kwargs.update(overrides)
    return BroadcastNotification(**kwargs)  # type: ignore[arg-type]


def rejects(field: str, match: str, **overrides: object) -> InvalidNotificationError:
    with pytest.raises(InvalidNotificationError, match=match) as info:
        make(**overrides)
    assert info.value.field == field
    return info.value


# -- what is sent --------------------------------------------------------------------------


def test_minimal_broadcast_request() -> None:
    note = make(payload=UPDATE_PAYLOAD)
    assert note.method == "POST"
    assert note.path == "/4/broadcasts/apps/com.example.app"
    # apns-expiration is required by Apple on every broadcast: 0 unless given.
    assert note.headers == (
        ("apns-push-type", "liveactivity"),
        ("apns-channel-id", CHANNEL),
        ("apns-expiration", "0"),
    )
    assert note.expiration == 0
    assert json.loads(note.body) == UPDATE_PAYLOAD.to_dict()


def test_every_optional_header() -> None:
    expires = datetime(2030, 1, 1, tzinfo=timezone.utc)
    note = make(priority=5, expiration=expires, apns_request_id=uuid.UUID(REQUEST_ID.upper()))
    assert note.priority is Priority.CONSIDERATE
    assert note.expiration == int(expires.timestamp())
    assert note.apns_request_id == REQUEST_ID
    assert note.headers[2:] == (
        ("apns-priority", "5"),
        ("apns-expiration", str(int(expires.timestamp()))),
        ("apns-request-id", REQUEST_ID),
    )


@pytest.mark.parametrize("priority", [10, 5, 1])
def test_priorities_apple_allows(priority: int) -> None:
    # Apple's broadcast page speaks of High, Medium and Low priorities.
    assert ("apns-priority", str(priority)) in make(priority=priority).headers


def test_expiration_zero_is_sent() -> None:
    assert ("apns-expiration", "0") in make(expiration=0).headers


def test_end_event_and_dict_payload_accepted() -> None:
    end = Payload.live_activity_end(
        content_state={"score": 2}, timestamp=1_700_000_100, dismissal_date=1_700_000_500
    )
    assert json.loads(make(payload=end).body)["aps"]["event"] == "end"
    ended = {"aps": {"event": "end", "timestamp": 1, "content-state": {}}, "custom": 1}
    assert json.loads(make(payload=ended).body) == ended


def test_repr_shows_no_payload() -> None:
    text = repr(make(apns_request_id=REQUEST_ID))
    assert "com.example.app" in text
    assert CHANNEL in text
    assert REQUEST_ID in text
    assert "score" not in text


def test_is_frozen() -> None:
    note = make()
    with pytest.raises(AttributeError):
        note.channel_id = "x"  # type: ignore[misc]


# -- bundle id ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("bundle", "match"),
    [
        ("", "is required"),
        (None, "is required"),
        ("com.example app", "printable ASCII"),
        ("com.exämple.app", "printable ASCII"),
        ("com.example/app", "must not contain"),
        ("com.example.app.push-type.liveactivity", "topic suffix"),
        ("com.example.app.voip", "topic suffix"),
    ],
)
def test_bundle_id_rules(bundle: object, match: str) -> None:
    rejects("bundle_id", match, bundle_id=bundle)


# -- channel id ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("channel", "match"),
    [
        ("", "is required"),
        (None, "is required"),
        ("not base64!", "not base64"),
        ("dHN0LXNyY2gtY2hubA", "length or padding"),
        ("dHN0=LXN", "not base64"),
        ("dGVzdA==\n", "not base64"),
    ],
)
def test_channel_id_rules(channel: object, match: str) -> None:
    rejects("channel_id", match, channel_id=channel)


# -- payload ------------------------------------------------------------------------------


def test_payload_must_be_a_live_activity() -> None:
    rejects("payload.event", "Live Activity", payload=Payload(alert="hi"))
    rejects("payload.event", "'update' or 'end'", payload={"aps": {"alert": "hi"}})
    rejects("payload", "'aps' dictionary", payload={"custom": 1})
    rejects("payload", "'aps' dictionary", payload={"aps": "update"})
    rejects("payload", "not a dict", payload="{}")


def test_start_cannot_be_broadcast() -> None:
    start = Payload.live_activity_start(
        attributes_type="Game", attributes={}, content_state={}, timestamp=1
    )
    rejects("payload.event", "'start' cannot be broadcast", payload=start)
    rejects(
        "payload.event",
        "cannot be broadcast",
        payload={"aps": {"event": "start", "timestamp": 1, "content-state": {}}},
    )


def test_dict_payload_needs_apples_required_keys() -> None:
    rejects(
        "payload.timestamp", "needs it", payload={"aps": {"event": "update", "content-state": {}}}
    )
    rejects(
        "payload.timestamp",
        "needs it",
        payload={"aps": {"event": "update", "timestamp": True, "content-state": {}}},
    )
    rejects("payload.content_state", "needs it", payload={"aps": {"event": "end", "timestamp": 1}})
    rejects(
        "payload.input-push-channel",
        "only allowed with event 'start'",
        payload={
            "aps": {
                "event": "update",
                "timestamp": 1,
                "content-state": {},
                "input-push-channel": CHANNEL,
            }
        },
    )


def test_payload_size_limit() -> None:
    base = len(json.dumps(UPDATE, separators=(",", ":")).encode())
    fits = {"aps": UPDATE["aps"], "pad": "x" * (4096 - base - len(',"pad":""'))}
    assert len(make(payload=fits).body) == 4096
    too_big = {"aps": UPDATE["aps"], "pad": "x" * (4097 - base - len(',"pad":""'))}
    error = rejects("payload", "4097 bytes is over the 4096-byte limit", payload=too_big)
    assert "broadcast" in str(error)


def test_payload_must_be_json() -> None:
    rejects(
        "payload",
        "cannot be encoded as JSON",
        payload={"aps": UPDATE["aps"], "when": datetime.now(timezone.utc)},
    )


# -- priority, expiration, request id -------------------------------------------------------


@pytest.mark.parametrize("priority", [0, 2, 11, True, "10", 5.0])
def test_priority_rules(priority: object) -> None:
    rejects("priority", "is not 10, 5 or 1", priority=priority)


def test_expiration_rules() -> None:
    rejects("expiration", "negative", expiration=-1)
    rejects("expiration", "milliseconds", expiration=1_700_000_000_000_000)
    rejects("expiration", "naive datetime", expiration=datetime(2030, 1, 1))
    rejects("expiration", "is not a time", expiration="0")
    later = datetime.now(timezone.utc) + timedelta(hours=1)
    assert make(expiration=later).expiration == int(later.timestamp())


@pytest.mark.parametrize("request_id", ["", "abc", REQUEST_ID.replace("-", ""), 123])
def test_request_id_rules(request_id: object) -> None:
    rejects("apns_request_id", "canonical UUID", apns_request_id=request_id)


# -- MessageStoragePolicy -----------------------------------------------------------------


def test_storage_policy_values_and_aliases() -> None:
    assert MessageStoragePolicy.NO_MESSAGE_STORED == 0
    assert MessageStoragePolicy.MOST_RECENT_MESSAGE_STORED == 1
    assert MessageStoragePolicy.NO_STORAGE is MessageStoragePolicy.NO_MESSAGE_STORED
    assert MessageStoragePolicy.MOST_RECENT is MessageStoragePolicy.MOST_RECENT_MESSAGE_STORED
    assert len(list(MessageStoragePolicy)) == 2


# -- channel request builders -------------------------------------------------------------


def test_create_channel_request() -> None:
    request = create_channel_request(BUNDLE, MessageStoragePolicy.NO_STORAGE)
    assert (request.action, request.method, request.path) == (
        "create",
        "POST",
        "/1/apps/com.example.app/channels",
    )
    assert json.loads(request.body) == {"message-storage-policy": 0, "push-type": "LiveActivity"}
    assert request.headers == ()
    assert request.message_storage_policy is MessageStoragePolicy.NO_MESSAGE_STORED
    assert request.management is True
    with_id = create_channel_request(BUNDLE, 1, request_id=REQUEST_ID.upper())
    assert with_id.headers == (("apns-request-id", REQUEST_ID),)
    assert with_id.request_id == REQUEST_ID
    assert json.loads(with_id.body)["message-storage-policy"] == 1


@pytest.mark.parametrize("policy", [2, -1, True, "1", None, 1.0])
def test_create_channel_request_rejects_bad_policy(policy: object) -> None:
    with pytest.raises(InvalidNotificationError, match="is not 0") as info:
        create_channel_request(BUNDLE, policy)  # type: ignore[arg-type]
    assert info.value.field == "message_storage_policy"


def test_get_delete_and_list_requests() -> None:
    get = get_channel_request(BUNDLE, CHANNEL, request_id=REQUEST_ID)
    assert (get.action, get.method, get.path, get.body) == (
        "get",
        "GET",
        "/1/apps/com.example.app/channels",
        b"",
    )
    assert get.headers == (("apns-request-id", REQUEST_ID), ("apns-channel-id", CHANNEL))
    delete = delete_channel_request(BUNDLE, CHANNEL)
    assert (delete.action, delete.method, delete.path) == (
        "delete",
        "DELETE",
        "/1/apps/com.example.app/channels",
    )
    assert delete.headers == (("apns-channel-id", CHANNEL),)
    assert delete.channel_id == CHANNEL
    listing = list_channels_request(BUNDLE)
    assert (listing.action, listing.method, listing.path, listing.headers) == (
        "list",
        "GET",
        "/1/apps/com.example.app/all-channels",
        (),
    )


def test_builders_validate_their_arguments() -> None:
    with pytest.raises(InvalidNotificationError) as info:
        get_channel_request(BUNDLE, "bad id")
    assert info.value.field == "channel_id"
    with pytest.raises(InvalidNotificationError) as info:
        delete_channel_request("", CHANNEL)
    assert info.value.field == "bundle_id"
    with pytest.raises(InvalidNotificationError) as info:
        list_channels_request(BUNDLE, request_id="nope")
    assert info.value.field == "apns_request_id"
    with pytest.raises(InvalidNotificationError) as info:
        create_channel_request("com.example.app.push-type.liveactivity", 1)
    assert info.value.field == "bundle_id"


# -- PushResult and Reason additions --------------------------------------------------------


def test_push_result_channel_and_request_ids() -> None:
    result = PushResult(
        notification=None,
        status=201,
        headers={"apns-channel-id": CHANNEL, "apns-request-id": REQUEST_ID},
    )
    assert (result.channel_id, result.request_id) == (CHANNEL, REQUEST_ID)
    bare = PushResult(notification=None, status=200)
    assert (bare.channel_id, bare.request_id) == (None, None)


def test_broadcast_reasons_are_known() -> None:
    assert Reason("CannotCreateChannelConfig").status == 400
    assert Reason("MissingPushType") is Reason.MISSING_PUSH_TYPE
    for name in ("MissingChannelId", "BadChannelId", "ChannelNotRegistered", "FeatureNotEnabled"):
        assert Reason(name).retryable is False


def test_delete_that_was_resent_and_finds_no_channel_counts_as_deleted() -> None:
    from apnskit._model.broadcast import ChannelError, check_deleted, delete_channel_request

    request = delete_channel_request("com.example.app", "dHN0LXNyY2gtY2hubA==")
    gone = PushResult(
        notification=request, status=400, reason=Reason("ChannelNotRegistered"), attempts=2
    )
    check_deleted(request, gone, earlier_send_may_have_run=True)  # an earlier send deleted it
    # A second attempt after a first one refused unprocessed (REFUSED_STREAM, 503...): the
    # first deleted nothing, so the channel truly is not registered (issue 11 item 10).
    with pytest.raises(ChannelError, match="ChannelNotRegistered"):
        check_deleted(request, gone, earlier_send_may_have_run=False)
    first_try = PushResult(
        notification=request, status=400, reason=Reason("ChannelNotRegistered"), attempts=1
    )
    with pytest.raises(ChannelError, match="ChannelNotRegistered"):
        check_deleted(request, first_try)
