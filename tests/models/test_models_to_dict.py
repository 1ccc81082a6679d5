"""Notification.to_dict()/from_dict() and PushResult.to_dict()/from_dict(): JSON-safe round
trips (the form notifications travel in over a task queue and in JSONL files), and bad dicts
rejected with InvalidNotificationError naming the field."""

from __future__ import annotations

import json
import uuid
from datetime import datetime, timezone
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_models_properties import (
    TOPIC,
    epochs,
    json_values,
    live_payloads,
    plain_payloads,
    short_text,
)

import apnskit
from apnskit import InvalidNotificationError, Notification, Payload, PushResult, PushType, Reason

TOKEN = "0f" * 32
SETTINGS = settings(max_examples=100, deadline=None)


def _json_round_trip(data: dict[str, Any]) -> dict[str, Any]:
    decoded = json.loads(json.dumps(data))
    assert isinstance(decoded, dict)
    return decoded


def _notifications(draw: st.DrawFn) -> Notification:
    payload = draw(
        plain_payloads
        | live_payloads
        | st.builds(lambda aps: {"aps": aps}, st.dictionaries(short_text, json_values, max_size=4))
    )
    as_dict = payload.to_dict() if isinstance(payload, Payload) else payload
    aps = as_dict.get("aps", {})
    if "event" in aps:
        push_type: PushType | None = draw(st.sampled_from([None, PushType.LIVEACTIVITY]))
    else:
        push_type = draw(st.sampled_from([None, PushType.ALERT, PushType.VOIP]))
    resolved = push_type or PushType.ALERT
    background = bool(aps.get("content-available")) and not {"alert", "badge", "sound"} & set(aps)
    priorities = [None, 5, 1] if background else [None, 10, 5, 1]
    try:
        return Notification(
            draw(st.text("0123456789abcdef", min_size=1, max_size=40).map(lambda t: t * 2)),
            payload,
            topic=TOPIC + resolved.topic_suffix if push_type else TOPIC + "",
            push_type=push_type,
            priority=draw(st.sampled_from(priorities)),
            expiration=draw(st.none() | epochs),
            collapse_id=draw(st.none() | st.text("abc-123", min_size=1, max_size=64)),
            apns_id=draw(st.none() | st.uuids().map(str)),
        )
    except InvalidNotificationError:
        # Too big for its push type, or a background-inferred payload with a suffixed topic:
        # the model tests cover those rules; here only valid notifications matter.
        from hypothesis import reject

        reject()


notifications = st.composite(_notifications)()


@SETTINGS
@given(notification=notifications)
def test_notification_round_trips_through_json(notification: Notification) -> None:
    data = notification.to_dict()
    again = Notification.from_dict(_json_round_trip(data))
    # Same bytes on the wire: body, path and headers.
    assert again.body == notification.body
    assert again.path == notification.path
    assert again.headers == notification.headers
    assert again.resolved_push_type is notification.resolved_push_type
    assert again.to_dict() == _json_round_trip(data)
    if isinstance(notification.payload, dict):
        assert again == notification


def test_notification_to_dict_keys_and_values() -> None:
    apns_id = uuid.uuid4()
    n = Notification(
        TOKEN.upper(),
        Payload(alert="Hi", badge=2),
        topic="com.example.app.voip",
        push_type="voip",
        priority=5,
        expiration=datetime(2030, 1, 1, tzinfo=timezone.utc),
        collapse_id="c1",
        apns_id=apns_id,
    )
    assert n.to_dict() == {
        "device_token": TOKEN,
        "payload": {"aps": {"alert": "Hi", "badge": 2}},
        "topic": "com.example.app.voip",
        "push_type": "voip",
        "priority": 5,
        "expiration": 1893456000,
        "collapse_id": "c1",
        "apns_id": str(apns_id),
    }
    # Unset fields stay out; an inferred push type is not written.
    bare = Notification(TOKEN, {"aps": {"alert": "x"}}, topic=TOPIC)
    assert bare.to_dict() == {
        "device_token": TOKEN,
        "payload": {"aps": {"alert": "x"}},
        "topic": TOPIC,
    }
    assert Notification.from_dict({**bare.to_dict(), "apns_id": None}) == bare


GOOD = {"device_token": TOKEN, "payload": {"aps": {"alert": "x"}}, "topic": TOPIC}


@pytest.mark.parametrize(
    ("data", "field", "match"),
    [
        ([GOOD], "notification", "list is not a dict"),
        ("{}", "notification", "str is not a dict"),
        ({**GOOD, "token": TOKEN}, "token", "is not a notification field"),
        ({k: v for k, v in GOOD.items() if k != "device_token"}, "device_token", "is required"),
        ({k: v for k, v in GOOD.items() if k != "payload"}, "payload", "is required"),
        ({k: v for k, v in GOOD.items() if k != "topic"}, "topic", "is required"),
        ({**GOOD, "device_token": "xyz"}, "device_token", "hex digits"),
        ({**GOOD, "device_token": 12}, "device_token", "int is not a hex string"),
        ({**GOOD, "payload": "{}"}, "payload", "not a dict"),
        ({**GOOD, "topic": ""}, "topic", "is required"),
        ({**GOOD, "push_type": "email"}, "push_type", "not an APNs push type"),
        ({**GOOD, "priority": 10.0}, "priority", "is not 1, 5 or 10"),
        ({**GOOD, "priority": "10"}, "priority", "is not 1, 5 or 10"),
        ({**GOOD, "expiration": "tomorrow"}, "expiration", "is not a time"),
        ({**GOOD, "collapse_id": "x" * 65}, "collapse_id", "65 bytes"),
        ({**GOOD, "apns_id": "not-a-uuid"}, "apns_id", "canonical UUID"),
    ],
)
def test_notification_from_bad_dict_names_the_field(data: Any, field: str, match: str) -> None:
    with pytest.raises(InvalidNotificationError, match=match) as info:
        Notification.from_dict(data)
    assert info.value.field == field
    assert str(info.value).startswith(f"{field}: ")


# -- PushResult ---------------------------------------------------------------------------------

NOTIFICATION = Notification(TOKEN, {"aps": {"alert": "x"}}, topic=TOPIC, apns_id=str(uuid.uuid4()))

results = st.builds(
    PushResult,
    st.just(NOTIFICATION),
    st.none() | st.sampled_from([200, 400, 403, 410, 429, 500, 503]),
    apns_id=st.none() | st.uuids().map(str),
    apns_unique_id=st.none() | st.uuids().map(str),
    reason=st.none() | st.sampled_from(list(Reason)) | st.just("SomethingNew"),
    timestamp=st.none()
    | st.datetimes(
        min_value=datetime(2000, 1, 1),
        max_value=datetime(2100, 1, 1),
        timezones=st.just(timezone.utc),
    ),
    error=st.none()
    | st.sampled_from(
        [apnskit.ConnectionLostError("gone"), apnskit.DeadlineExceededError("late"), OSError("x")]
    ),
    attempts=st.integers(1, 10),
    headers=st.dictionaries(st.text("abc-", min_size=1), st.text(max_size=8), max_size=3),
    body=st.binary(max_size=40),
)


@SETTINGS
@given(result=results)
def test_push_result_round_trips_through_json(result: PushResult) -> None:
    data = _json_round_trip(result.to_dict())
    again = PushResult.from_dict(data)
    assert again.notification == result.notification
    assert again.notification.body == result.notification.body
    for name in ("status", "apns_id", "apns_unique_id", "timestamp", "attempts", "headers", "body"):
        assert getattr(again, name) == getattr(result, name), name
    assert again.reason == result.reason
    assert type(again.reason) is type(result.reason)  # Reason members come back as members
    assert (again.accepted, again.rejected, again.failed) == (
        result.accepted,
        result.rejected,
        result.failed,
    )
    assert again.token_invalid == result.token_invalid
    if result.error is None:
        assert again.error is None
    else:
        assert isinstance(again.error, apnskit.ApnsError)
        name = type(result.error).__name__
        assert type(again.error).__name__ == name or str(again.error).startswith(name + ": ")
    if not isinstance(result.error, OSError):
        assert again.to_dict() == data


def test_push_result_errors_come_back_as_apnskit_exceptions() -> None:
    lost = PushResult(NOTIFICATION, None, error=apnskit.ConnectionLostError("peer closed"))
    again = PushResult.from_dict(lost.to_dict())
    assert type(again.error) is apnskit.ConnectionLostError
    assert str(again.error) == "peer closed"
    other = PushResult(NOTIFICATION, None, error=OSError("boom"))
    rebuilt = PushResult.from_dict(other.to_dict())
    assert type(rebuilt.error) is apnskit.ApnsError
    assert str(rebuilt.error) == "OSError: boom"


def test_push_result_of_a_410_keeps_its_timestamp_and_reason() -> None:
    since = datetime(2026, 5, 1, 12, 0, 0, 123000, tzinfo=timezone.utc)
    gone = PushResult(NOTIFICATION, 410, apns_id="x", reason=Reason.UNREGISTERED, timestamp=since)
    data = gone.to_dict()
    assert data["reason"] == "Unregistered"
    assert data["timestamp"] == "2026-05-01T12:00:00.123000+00:00"
    again = PushResult.from_dict(json.loads(json.dumps(data)))
    assert again.token_invalid
    assert again.timestamp == since
    assert again.reason is Reason.UNREGISTERED


def test_push_result_to_dict_refuses_a_broadcast_result() -> None:
    with pytest.raises(TypeError, match="only results of device notifications"):
        PushResult(object(), 200).to_dict()


GOOD_RESULT = PushResult(NOTIFICATION, 200, apns_id="a").to_dict()


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ([GOOD_RESULT], "result"),
        ({**GOOD_RESULT, "colour": "red"}, "colour"),
        ({k: v for k, v in GOOD_RESULT.items() if k != "notification"}, "notification"),
        ({k: v for k, v in GOOD_RESULT.items() if k != "status"}, "status"),
        ({**GOOD_RESULT, "notification": "n"}, "notification"),
        (
            {**GOOD_RESULT, "notification": {**GOOD, "device_token": "q"}},
            "notification.device_token",
        ),
        ({**GOOD_RESULT, "notification": {**GOOD, "extra": 1}}, "notification.extra"),
        ({**GOOD_RESULT, "status": "200"}, "status"),
        ({**GOOD_RESULT, "status": True}, "status"),
        ({**GOOD_RESULT, "status": 42}, "status"),
        ({**GOOD_RESULT, "apns_id": 5}, "apns_id"),
        ({**GOOD_RESULT, "reason": ["BadTopic"]}, "reason"),
        ({**GOOD_RESULT, "timestamp": "yesterday"}, "timestamp"),
        ({**GOOD_RESULT, "timestamp": "2026-01-01T00:00:00"}, "timestamp"),
        ({**GOOD_RESULT, "error": "boom"}, "error"),
        ({**GOOD_RESULT, "error": {"type": "X"}}, "error"),
        ({**GOOD_RESULT, "attempts": 0}, "attempts"),
        ({**GOOD_RESULT, "headers": {"a": 1}}, "headers"),
        ({**GOOD_RESULT, "body_base64": "***"}, "body_base64"),
    ],
)
def test_push_result_from_bad_dict_names_the_field(data: Any, field: str) -> None:
    with pytest.raises(InvalidNotificationError) as info:
        PushResult.from_dict(data)
    assert info.value.field == field
    assert str(info.value).startswith(f"{field}: ")


# -- with_device_token: one payload, many devices (how a campaign chunk is rebuilt) -----------


def test_with_device_token_replaces_only_the_token() -> None:
    n = Notification(TOKEN, {"aps": {"alert": "x"}}, topic=TOPIC, priority=5, collapse_id="c")
    other = "AB" * 32
    m = n.with_device_token(other)
    assert m.device_token == other.lower()
    assert m.path == "/3/device/" + other.lower()
    assert m.body is n.body
    assert m.headers == n.headers
    assert m == Notification(
        other, {"aps": {"alert": "x"}}, topic=TOPIC, priority=5, collapse_id="c"
    )
    assert n.device_token == TOKEN  # the original is unchanged


@pytest.mark.parametrize(
    ("bad", "match"), [("xyz", "hex digits"), ("abc", "even number"), ("", "empty"), (5, "int")]
)
def test_with_device_token_rejects_a_bad_token(bad: Any, match: str) -> None:
    n = Notification(TOKEN, {"aps": {"alert": "x"}}, topic=TOPIC)
    with pytest.raises(InvalidNotificationError, match=match) as info:
        n.with_device_token(bad)
    assert info.value.field == "device_token"
