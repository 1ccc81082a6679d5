"""PushResult and Reason: Apple's reasons, their statuses, and results as users read them."""

from __future__ import annotations

import copy
import dataclasses
import pickle
from datetime import datetime, timezone

import pytest

import apnskit
from apnskit import PushRejectedError, PushResult, Reason
from apnskit._model.results import new_result, parse_reason

# Apple's "Handling notification responses from APNs" table (apns-reference.md, Response).
APPLE_TABLE = {
    400: [
        "BadCollapseId",
        "BadDeviceToken",
        "BadExpirationDate",
        "BadMessageId",
        "BadPriority",
        "BadTopic",
        "DeviceTokenNotForTopic",
        "DuplicateHeaders",
        "IdleTimeout",
        "InvalidPushType",
        "MissingDeviceToken",
        "MissingTopic",
        "PayloadEmpty",
        "TopicDisallowed",
    ],
    403: [
        "BadCertificate",
        "BadCertificateEnvironment",
        "ExpiredProviderToken",
        "Forbidden",
        "InvalidProviderToken",
        "MissingProviderToken",
    ],
    404: ["BadPath"],
    405: ["MethodNotAllowed"],
    410: ["Unregistered", "ExpiredToken"],
    413: ["PayloadTooLarge"],
    429: ["TooManyProviderTokenUpdates", "TooManyRequests"],
    500: ["InternalServerError"],
    503: ["ServiceUnavailable", "Shutdown"],
}
RETRYABLE = {
    "ExpiredProviderToken",
    "TooManyProviderTokenUpdates",
    "TooManyRequests",
    "InternalServerError",
    "ServiceUnavailable",
    "Shutdown",
}


@pytest.mark.parametrize(
    ("status", "name"), [(status, name) for status, names in APPLE_TABLE.items() for name in names]
)
def test_every_documented_reason_has_its_status(status: int, name: str) -> None:
    reason = Reason(name)
    assert reason == name
    assert str(reason) == name
    assert reason.status == status
    assert reason.retryable is (name in RETRYABLE)
    assert reason.description
    assert parse_reason(name) is reason


def test_unknown_reasons_are_kept_as_strings() -> None:
    assert parse_reason("SomethingAppleAddsIn2027") == "SomethingAppleAddsIn2027"
    assert not isinstance(parse_reason("SomethingAppleAddsIn2027"), Reason)
    assert parse_reason(None) is None
    with pytest.raises(ValueError, match="SomethingNew"):
        Reason("SomethingNew")


def _notification() -> apnskit.Notification:
    return apnskit.Notification("ab" * 32, {"aps": {"alert": "hi"}}, topic="com.example.app")


def test_accepted_result() -> None:
    result = PushResult(notification=_notification(), status=200, apns_id="x")
    assert result.accepted
    assert not result.rejected
    assert not result.failed
    assert result.raise_for_status() is result


def test_rejected_result_raises_typed_error() -> None:
    result = PushResult(notification=_notification(), status=410, reason=Reason.UNREGISTERED)
    assert result.rejected
    assert result.token_invalid
    with pytest.raises(PushRejectedError) as info:
        result.raise_for_status()
    assert info.value.result is result
    assert "410" in str(info.value)
    assert "Unregistered" in str(info.value)


def test_failed_result_raises_with_the_error() -> None:
    error = apnskit.ConnectionLostError("gone")
    result = PushResult(notification=_notification(), status=None, error=error)
    assert result.failed
    assert not result.accepted
    with pytest.raises(PushRejectedError, match="gone"):
        result.raise_for_status()


def test_bad_device_token_marks_token_invalid() -> None:
    result = PushResult(notification=_notification(), status=400, reason=Reason.BAD_DEVICE_TOKEN)
    assert result.token_invalid
    other = PushResult(notification=_notification(), status=400, reason=Reason.BAD_TOPIC)
    assert not other.token_invalid


def test_timestamp_from_ms() -> None:
    assert PushResult.timestamp_from_ms(1_700_000_000_000) == datetime(
        2023, 11, 14, 22, 13, 20, tzinfo=timezone.utc
    )
    assert PushResult.timestamp_from_ms("soon") is None
    assert PushResult.timestamp_from_ms(True) is None
    assert PushResult.timestamp_from_ms(10**30) is None


def test_channel_and_request_ids_come_from_headers() -> None:
    result = PushResult(
        notification=None,
        status=201,
        headers={"apns-channel-id": "abc=", "apns-request-id": "rid"},
    )
    assert result.channel_id == "abc="
    assert result.request_id == "rid"


def test_error_messages_say_what_happened() -> None:
    rejected = PushResult(
        notification=_notification(), status=410, reason=Reason.UNREGISTERED, apns_id="id-1"
    )
    with pytest.raises(PushRejectedError) as info:
        rejected.raise_for_status()
    assert str(info.value) == (
        "notification to abababab...abab rejected by APNs: 410 Unregistered [apns-id id-1]"
    )
    lost = apnskit.ConnectionLostError("APNs closed the TCP connection")
    failed = PushResult(notification=_notification(), status=None, error=lost)
    with pytest.raises(PushRejectedError) as info:
        failed.raise_for_status()
    assert str(info.value) == (
        "notification to abababab...abab failed without an answer from APNs "
        "(ConnectionLostError: APNs closed the TCP connection)"
    )
    assert info.value.__cause__ is lost


# -- new_result: the clients' fast constructor (issue 13) ------------------------------------


def _all_fields() -> dict[str, object]:
    notification = apnskit.Notification("ab" * 32, {"aps": {"alert": "hi"}}, topic="com.x.y")
    return {
        "notification": notification,
        "status": 410,
        "apns_id": "5e2e1f2c-0000-4000-8000-000000000001",
        "apns_unique_id": "u-1",
        "reason": Reason.UNREGISTERED,
        "timestamp": datetime(2026, 1, 2, tzinfo=timezone.utc),
        "error": None,
        "attempts": 2,
        "headers": {"apns-channel-id": "c"},
        "body": b'{"reason":"Unregistered"}',
    }


def test_new_result_is_the_same_push_result_as_the_constructor() -> None:
    fields = _all_fields()
    fast = new_result(**fields)  # type: ignore[arg-type]
    slow = PushResult(**fields)  # type: ignore[arg-type]
    assert type(fast) is PushResult
    assert fast == slow
    assert repr(fast) == repr(slow)
    # Every field, the ones left out of == and repr included.
    for name in (f.name for f in dataclasses.fields(PushResult)):
        assert getattr(fast, name) == fields[name], name
    assert fast.token_invalid
    assert fast.channel_id == "c"


def test_new_result_is_frozen_and_pickles_and_copies_like_any_result() -> None:
    fast = new_result(**_all_fields())  # type: ignore[arg-type]
    with pytest.raises(dataclasses.FrozenInstanceError):
        fast.status = 200  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        del fast.reason  # type: ignore[misc]
    # Celery pickles results.
    for copied in (pickle.loads(pickle.dumps(fast)), copy.copy(fast), copy.deepcopy(fast)):
        assert type(copied) is PushResult
        assert copied == fast
        assert copied.headers == fast.headers
        assert copied.body == fast.body
    assert dataclasses.replace(fast, status=200).accepted
