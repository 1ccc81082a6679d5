"""Reading channel management answers: Channel, channel ids, deletions, ChannelError."""

from __future__ import annotations

import pytest
from broadcast_support import BUNDLE, CHANNEL, REQUEST_ID

from apnskit import (
    ConnectionLostError,
    LocalProtocolError,
    PushRejectedError,
    PushResult,
    Reason,
)
from apnskit._model.broadcast import (
    Channel,
    ChannelError,
    ChannelRequest,
    MessageStoragePolicy,
    channel_from_result,
    channel_ids_from_result,
    check_deleted,
    create_channel_request,
    delete_channel_request,
    get_channel_request,
    list_channels_request,
)
from apnskit._model.results import parse_reason

CREATE = create_channel_request(BUNDLE, MessageStoragePolicy.MOST_RECENT)
GET = get_channel_request(BUNDLE, CHANNEL)
DELETE = delete_channel_request(BUNDLE, CHANNEL)
LIST = list_channels_request(BUNDLE)


def answer(
    request: ChannelRequest,
    status: int | None,
    *,
    reason: str | None = None,
    body: bytes = b"",
    headers: dict[str, str] | None = None,
) -> PushResult:
    return PushResult(
        notification=request,
        status=status,
        reason=parse_reason(reason),
        headers={"apns-request-id": REQUEST_ID, **(headers or {})},
        body=body,
    )


def test_created_channel() -> None:
    result = answer(CREATE, 201, headers={"apns-channel-id": CHANNEL})
    assert channel_from_result(CREATE, result) == Channel(
        channel_id=CHANNEL,
        bundle_id=BUNDLE,
        message_storage_policy=MessageStoragePolicy.MOST_RECENT_MESSAGE_STORED,
        push_type="LiveActivity",
        request_id=REQUEST_ID,
    )


def test_created_without_channel_id_is_an_error() -> None:
    with pytest.raises(ChannelError, match="no apns-channel-id header") as info:
        channel_from_result(CREATE, answer(CREATE, 201))
    assert info.value.result.status == 201
    assert info.value.request is CREATE


def test_read_channel() -> None:
    body = b'{"message-storage-policy":0,"push-type":"LiveActivity"}'
    channel = channel_from_result(GET, answer(GET, 200, body=body))
    assert channel == Channel(
        CHANNEL, BUNDLE, MessageStoragePolicy.NO_STORAGE, "LiveActivity", REQUEST_ID
    )


def test_read_channel_with_unknown_policy_keeps_none() -> None:
    body = b'{"message-storage-policy":7}'
    channel = channel_from_result(GET, answer(GET, 200, body=body))
    assert (channel.message_storage_policy, channel.push_type) == (None, None)


@pytest.mark.parametrize("body", [b"", b"not json", b"[1]", b"\xff"])
def test_read_channel_with_bad_body(body: bytes) -> None:
    with pytest.raises(ChannelError, match="not a JSON object"):
        channel_from_result(GET, answer(GET, 200, body=body))


def test_channel_ids() -> None:
    body = b'{"channels":["' + CHANNEL.encode() + b'","YWJjZA=="]}'
    assert channel_ids_from_result(LIST, answer(LIST, 200, body=body)) == [CHANNEL, "YWJjZA=="]
    assert channel_ids_from_result(LIST, answer(LIST, 200, body=b'{"channels":[]}')) == []


@pytest.mark.parametrize("body", [b"{}", b'{"channels":"x"}', b'{"channels":[1]}'])
def test_channel_ids_with_bad_body(body: bytes) -> None:
    with pytest.raises(ChannelError, match="not a list of ids"):
        channel_ids_from_result(LIST, answer(LIST, 200, body=body))


def test_deleted() -> None:
    deleted = check_deleted(DELETE, answer(DELETE, 204))
    assert deleted.channel_id == DELETE.channel_id
    assert deleted.bundle_id == DELETE.bundle_id
    assert deleted.message_storage_policy is None


@pytest.mark.parametrize(
    ("request_", "parse", "status", "reason"),
    [
        (GET, channel_from_result, 400, "MissingChannelId"),
        (GET, channel_from_result, 400, "BadChannelId"),
        (GET, channel_from_result, 400, "ChannelNotRegistered"),
        (CREATE, channel_from_result, 400, "InvalidPushType"),
        (CREATE, channel_from_result, 400, "MissingPushType"),
        (CREATE, channel_from_result, 400, "InvalidPolicy"),
        (CREATE, channel_from_result, 400, "CannotCreateChannelConfig"),
        (LIST, channel_ids_from_result, 403, "FeatureNotEnabled"),
        (LIST, channel_ids_from_result, 403, "InvalidProviderToken"),
        (DELETE, check_deleted, 400, "ChannelNotRegistered"),
        (DELETE, check_deleted, 429, "TooManyRequests"),
        (DELETE, check_deleted, 500, "InternalServerError"),
        (GET, channel_from_result, 400, "SomethingAppleAddsLater"),
    ],
)
def test_rejections_raise_channel_error(
    request_: ChannelRequest, parse: object, status: int, reason: str
) -> None:
    result = answer(request_, status, reason=reason)
    with pytest.raises(ChannelError) as info:
        parse(request_, result)  # type: ignore[operator]
    error = info.value
    assert isinstance(error, PushRejectedError)
    assert error.result is result
    assert error.result.reason == reason
    assert f"rejected by APNs: {status} {reason}" in str(error)
    assert f"channel {request_.action} request for 'com.example.app'" in str(error)
    assert REQUEST_ID in str(error)


def test_known_reason_is_the_enum() -> None:
    with pytest.raises(ChannelError) as info:
        channel_from_result(GET, answer(GET, 400, reason="ChannelNotRegistered"))
    assert info.value.result.reason is Reason.CHANNEL_NOT_REGISTERED
    assert CHANNEL in str(info.value)


def test_failure_without_answer() -> None:
    result = PushResult(notification=LIST, status=None, error=ConnectionLostError("gone"))
    expected = r"failed without an answer from APNs \(ConnectionLostError"
    with pytest.raises(ChannelError, match=expected) as info:
        channel_ids_from_result(LIST, result)
    assert info.value.result.failed


def test_a_2xx_other_than_documented_is_still_success() -> None:
    # Apple documents 204 for deletion; any 2xx means the channel is gone.
    check_deleted(DELETE, answer(DELETE, 200))


def test_parser_and_request_must_match() -> None:
    # A mismatch is a bug in apnskit (the clients pair each request with its reader), not bad
    # input: LocalProtocolError, which a caller's `except ValueError` does not swallow.
    with pytest.raises(LocalProtocolError, match="'list' request cannot be read") as info:
        channel_from_result(LIST, answer(LIST, 200))
    assert not isinstance(info.value, ValueError)
    with pytest.raises(LocalProtocolError, match="expected 'list'"):
        channel_ids_from_result(GET, answer(GET, 200))
    with pytest.raises(LocalProtocolError, match="expected 'delete'"):
        check_deleted(CREATE, answer(CREATE, 201))


def test_channel_error_without_request() -> None:
    error = ChannelError(PushResult(notification=None, status=400, reason="BadChannelId"))
    assert str(error) == "channel request rejected by APNs: 400 BadChannelId"
    assert error.request is None
