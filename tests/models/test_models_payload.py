"""Payload, Alert and Sound: aps keys, validation and the Live Activity helpers."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from apnskit import (
    Alert,
    InterruptionLevel,
    InvalidNotificationError,
    LiveActivityEvent,
    Notification,
    Payload,
    PushType,
    Sound,
)

# The ``expect_invalid`` fixture (conftest.py): expect_invalid(field, func, *args, match=...).
Checker = Callable[..., InvalidNotificationError]

WHEN = datetime(2030, 1, 2, 3, 4, 5, tzinfo=timezone.utc)
WHEN_EPOCH = 1893553445


# -- Alert ------------------------------------------------------------------------------------


def test_alert_uses_hyphenated_keys() -> None:
    alert = Alert(
        title="T",
        subtitle="S",
        body="B",
        launch_image="img.png",
        title_loc_key="TK",
        title_loc_args=["a"],
        subtitle_loc_key="SK",
        subtitle_loc_args=("b", "c"),
        loc_key="LK",
        loc_args=[],
        action_loc_key="AK",
    )
    assert alert.to_dict() == {
        "title": "T",
        "subtitle": "S",
        "body": "B",
        "launch-image": "img.png",
        "title-loc-key": "TK",
        "title-loc-args": ["a"],
        "subtitle-loc-key": "SK",
        "subtitle-loc-args": ["b", "c"],
        "loc-key": "LK",
        "loc-args": [],
        "action-loc-key": "AK",
    }
    assert Alert.from_dict(alert.to_dict()) == alert
    assert Alert(body="only").to_dict() == {"body": "only"}


def test_alert_is_keyword_only_and_frozen() -> None:
    with pytest.raises(TypeError):
        Alert("title")  # type: ignore[call-arg]
    with pytest.raises(dataclasses.FrozenInstanceError):
        Alert().title = "x"  # type: ignore[misc]


@pytest.mark.parametrize(
    ("kwargs", "field", "match"),
    [
        ({"title": 1}, "payload.alert.title", "int 1 is not a string"),
        ({"body": ["x"]}, "payload.alert.body", "not a string"),
        ({"loc_args": "abc"}, "payload.alert.loc_args", "not a list of strings"),
        ({"title_loc_args": [1]}, "payload.alert.title_loc_args", "item 1 .* not a string"),
        ({"subtitle_loc_args": 5}, "payload.alert.subtitle_loc_args", "not a list"),
    ],
)
def test_bad_alert(expect_invalid: Checker, kwargs: dict[str, Any], field: str, match: str) -> None:
    expect_invalid(field, Alert, match=match, **kwargs)


def test_alert_from_dict_rejects_unknown_key(expect_invalid: Checker) -> None:
    expect_invalid("payload.alert", Alert.from_dict, {"titel": "x"}, match="'titel'")


# -- Sound ------------------------------------------------------------------------------------


def test_sound_dict_form() -> None:
    assert Sound("alarm.caf", critical=True, volume=0.5).to_dict() == {
        "critical": 1,
        "name": "alarm.caf",
        "volume": 0.5,
    }
    assert Sound("x").to_dict() == {"critical": 0, "name": "x"}
    assert Sound.from_dict({"critical": 1, "name": "a", "volume": 1}) == Sound("a", True, 1)


@pytest.mark.parametrize(
    ("kwargs", "field", "match"),
    [
        ({"name": ""}, "payload.sound.name", "empty"),
        ({"name": None}, "payload.sound.name", "required"),
        ({"name": 3}, "payload.sound.name", "not a string"),
        ({"name": "a", "critical": 1}, "payload.sound.critical", "True or False"),
        ({"name": "a", "volume": 1.5}, "payload.sound.volume", "outside 0.0-1.0"),
        ({"name": "a", "volume": -0.1}, "payload.sound.volume", "outside"),
        ({"name": "a", "volume": float("nan")}, "payload.sound.volume", "outside"),
        ({"name": "a", "volume": True}, "payload.sound.volume", "not a number"),
        ({"name": "a", "volume": "1"}, "payload.sound.volume", "not a number"),
    ],
)
def test_bad_sound(expect_invalid: Checker, kwargs: dict[str, Any], field: str, match: str) -> None:
    expect_invalid(field, Sound, match=match, **kwargs)


def test_sound_from_dict_rejections(expect_invalid: Checker) -> None:
    expect_invalid("payload.sound", Sound.from_dict, {"name": "a", "loud": 1}, match="loud")
    expect_invalid("payload.sound.critical", Sound.from_dict, {"name": "a", "critical": 2})


# -- Payload: every aps key -------------------------------------------------------------------


def test_every_aps_key_serializes_with_apple_names() -> None:
    payload = Payload(
        alert=Alert(title="t", body="b"),
        badge=3,
        sound=Sound("s.caf", critical=True, volume=1.0),
        thread_id="th",
        category="cat",
        content_available=True,
        mutable_content=True,
        target_content_id="tc",
        interruption_level="time-sensitive",
        relevance_score=0.25,
        filter_criteria="work",
        url_args=["a", "b"],
        custom={"acme": {"id": 7}, "n": None},
    )
    assert payload.to_dict() == {
        "aps": {
            "alert": {"title": "t", "body": "b"},
            "badge": 3,
            "sound": {"critical": 1, "name": "s.caf", "volume": 1.0},
            "thread-id": "th",
            "category": "cat",
            "content-available": 1,
            "mutable-content": 1,
            "target-content-id": "tc",
            "interruption-level": "time-sensitive",
            "relevance-score": 0.25,
            "filter-criteria": "work",
            "url-args": ["a", "b"],
        },
        "acme": {"id": 7},
        "n": None,
    }
    assert payload.interruption_level is InterruptionLevel.TIME_SENSITIVE
    assert Payload.from_dict(payload.to_dict()) == payload


def test_simple_values() -> None:
    assert Payload().to_dict() == {"aps": {}}
    assert Payload(alert="hi", sound="default").to_dict() == {
        "aps": {"alert": "hi", "sound": "default"}
    }
    assert Payload(badge=0).to_dict() == {"aps": {"badge": 0}}
    assert Payload(content_available=False, mutable_content=False).to_dict() == {"aps": {}}
    assert Payload(interruption_level=InterruptionLevel.CRITICAL).to_dict() == {
        "aps": {"interruption-level": "critical"}
    }
    assert Payload(relevance_score=1).to_dict()["aps"]["relevance-score"] == 1


def test_content_changed_body_for_widgets_and_controls() -> None:
    payload = Payload(content_changed=True)
    for push_type in (PushType.WIDGETS, PushType.CONTROLS):
        n = Notification(
            "ab" * 32,
            payload,
            topic="com.example.app" + push_type.topic_suffix,
            push_type=push_type,
        )
        assert n.body == b'{"aps":{"content-changed":true}}'


def test_payload_is_keyword_only() -> None:
    with pytest.raises(TypeError):
        Payload("hi")  # type: ignore[call-arg]


@pytest.mark.parametrize(
    ("kwargs", "field", "match"),
    [
        ({"alert": 1}, "payload.alert", "int is not a string or apnskit.Alert"),
        ({"alert": {"title": "x"}}, "payload.alert", "dict is not a string"),
        ({"badge": -1}, "payload.badge", "-1 is negative; use 0 to clear"),
        ({"badge": True}, "payload.badge", "bool True is not an int"),
        ({"badge": 1.0}, "payload.badge", "float"),
        ({"badge": "1"}, "payload.badge", "str"),
        ({"sound": ""}, "payload.sound", "empty"),
        ({"sound": 1}, "payload.sound", "not a string or apnskit.Sound"),
        ({"thread_id": 1}, "payload.thread_id", "not a string"),
        ({"category": b"c"}, "payload.category", "not a string"),
        ({"target_content_id": 1}, "payload.target_content_id", "not a string"),
        ({"filter_criteria": 1}, "payload.filter_criteria", "not a string"),
        ({"content_available": 1}, "payload.content_available", "True or False"),
        ({"mutable_content": "yes"}, "payload.mutable_content", "True or False"),
        ({"content_changed": None}, "payload.content_changed", "True or False"),
        ({"interruption_level": "loud"}, "payload.interruption_level", "time-sensitive"),
        ({"interruption_level": 1}, "payload.interruption_level", "not one of"),
        ({"relevance_score": 1.01}, "payload.relevance_score", "outside 0.0-1.0"),
        ({"relevance_score": -1}, "payload.relevance_score", "outside"),
        ({"relevance_score": float("nan")}, "payload.relevance_score", "outside"),
        ({"relevance_score": True}, "payload.relevance_score", "not a number"),
        ({"url_args": "a"}, "payload.url_args", "not a list of strings"),
        ({"url_args": [1]}, "payload.url_args", "item 1"),
        ({"custom": {"aps": {}}}, "payload.custom", "named 'aps'"),
        ({"custom": {1: "x"}}, "payload.custom", "key 1 .* not a string"),
        ({"custom": ["x"]}, "payload.custom", "list is not a dict"),
        ({"custom": None}, "payload.custom", "must be a dict"),
    ],
)
def test_bad_payload_field(
    expect_invalid: Checker, kwargs: dict[str, Any], field: str, match: str
) -> None:
    expect_invalid(field, Payload, match=match, **kwargs)


def test_from_dict_rejections(expect_invalid: Checker) -> None:
    expect_invalid("payload", Payload.from_dict, ["aps"], match="list is not a dict")
    expect_invalid("payload.aps", Payload.from_dict, {"aps": 1}, match="int is not a dict")
    expect_invalid(
        "payload.aps", Payload.from_dict, {"aps": {"new-key": 1}}, match="'new-key'.*plain dict"
    )
    expect_invalid(
        "payload.content_available",
        Payload.from_dict,
        {"aps": {"content-available": 2}},
        match="0 or 1",
    )


def test_from_dict_parses_nested_forms() -> None:
    data = {
        "aps": {
            "alert": {"title": "t", "loc-args": ["x"]},
            "sound": {"critical": 1, "name": "a"},
            "content-available": 1,
        },
        "k": 1,
    }
    payload = Payload.from_dict(data)
    assert payload.alert == Alert(title="t", loc_args=("x",))
    assert payload.sound == Sound("a", critical=True)
    assert payload.content_available is True
    assert payload.custom == {"k": 1}
    assert payload.to_dict() == data


# -- times ------------------------------------------------------------------------------------


def test_aware_datetimes_become_epoch_seconds() -> None:
    tokyo = WHEN.astimezone(timezone(timedelta(hours=9)))
    payload = Payload.live_activity_update(
        content_state={"s": 1}, timestamp=tokyo, stale_date=WHEN, dismissal_date=WHEN_EPOCH + 60
    )
    assert payload.timestamp == WHEN_EPOCH
    assert payload.stale_date == WHEN_EPOCH
    assert payload.to_dict()["aps"]["dismissal-date"] == WHEN_EPOCH + 60


@pytest.mark.parametrize("name", ["timestamp", "stale_date", "dismissal_date"])
@pytest.mark.parametrize(
    ("value", "match"),
    [
        (datetime(2030, 1, 1), "naive datetime"),
        (-5, "negative"),
        (1.5, "float 1.5 is not a time"),
        (False, "bool"),
        ("2030-01-01", "str"),
        (WHEN_EPOCH * 1000, "milliseconds"),
    ],
)
def test_bad_time(expect_invalid: Checker, name: str, value: Any, match: str) -> None:
    kwargs: dict[str, Any] = {"event": "update", "content_state": {}, "timestamp": 1, name: value}
    expect_invalid(f"payload.{name}", Payload, match=match, **kwargs)


# -- Live Activities --------------------------------------------------------------------------


def test_live_activity_start() -> None:
    payload = Payload.live_activity_start(
        attributes_type="DeliveryAttributes",
        attributes={"order": "42"},
        content_state={"eta": 10},
        timestamp=WHEN,
        alert=Alert(title="On its way"),
        stale_date=WHEN + timedelta(hours=1),
        relevance_score=0.5,
        input_push_token=True,
        input_push_channel="ch==",
        dismissal_date=WHEN_EPOCH + 7200,
    )
    assert payload.event is LiveActivityEvent.START
    assert payload.to_dict() == {
        "aps": {
            "alert": {"title": "On its way"},
            "relevance-score": 0.5,
            "timestamp": WHEN_EPOCH,
            "event": "start",
            "content-state": {"eta": 10},
            "stale-date": WHEN_EPOCH + 3600,
            "dismissal-date": WHEN_EPOCH + 7200,
            "attributes-type": "DeliveryAttributes",
            "attributes": {"order": "42"},
            "input-push-token": 1,
            "input-push-channel": "ch==",
        }
    }
    n = Notification("ab" * 32, payload, topic="com.example.app.push-type.liveactivity")
    assert n.resolved_push_type is PushType.LIVEACTIVITY
    assert json.loads(n.body) == payload.to_dict()
    assert Payload.from_dict(payload.to_dict()) == payload


def test_live_activity_update_and_end() -> None:
    update = Payload.live_activity_update(content_state={"eta": 5}, timestamp=WHEN_EPOCH)
    assert update.to_dict() == {
        "aps": {"timestamp": WHEN_EPOCH, "event": "update", "content-state": {"eta": 5}}
    }
    end = Payload.live_activity_end(
        content_state={"eta": 0}, timestamp=WHEN, dismissal_date=WHEN + timedelta(minutes=5)
    )
    assert end.to_dict() == {
        "aps": {
            "timestamp": WHEN_EPOCH,
            "event": "end",
            "content-state": {"eta": 0},
            "dismissal-date": WHEN_EPOCH + 300,
        }
    }


def test_content_state_is_copied() -> None:
    state = {"eta": 1}
    payload = Payload.live_activity_update(content_state=state, timestamp=1)
    state["eta"] = 2
    assert payload.to_dict()["aps"]["content-state"] == {"eta": 1}


@pytest.mark.parametrize(
    ("kwargs", "field", "match"),
    [
        ({"event": "stop"}, "payload.event", "'stop' is not one of start, update, end"),
        ({"event": "update", "timestamp": 1}, "payload.content_state", "update push needs"),
        ({"event": "end", "content_state": {}}, "payload.timestamp", "end push needs"),
        (
            {"event": "start", "content_state": {}, "timestamp": 1, "attributes": {}},
            "payload.attributes_type",
            "start push needs",
        ),
        (
            {"event": "start", "content_state": {}, "timestamp": 1, "attributes_type": "A"},
            "payload.attributes",
            "start push needs",
        ),
        (
            {"event": "update", "content_state": {}, "timestamp": 1, "attributes": {}},
            "payload.attributes",
            "only allowed with event 'start', not 'update'",
        ),
        (
            {"event": "end", "content_state": {}, "timestamp": 1, "attributes_type": "A"},
            "payload.attributes_type",
            "only allowed with event 'start', not 'end'",
        ),
        (
            {"event": "update", "content_state": {}, "timestamp": 1, "input_push_token": True},
            "payload.input_push_token",
            "only allowed with event 'start'",
        ),
        (
            {"event": "update", "content_state": {}, "timestamp": 1, "input_push_channel": "c"},
            "payload.input_push_channel",
            "only allowed with event 'start'",
        ),
        ({"content_state": {}}, "payload.content_state", "needs event="),
        ({"timestamp": 1}, "payload.timestamp", "needs event="),
        ({"attributes": {}}, "payload.attributes", "needs event="),
        ({"stale_date": 1}, "payload.stale_date", "needs event="),
        ({"input_push_token": True}, "payload.input_push_token", "needs event="),
        (
            {"event": "update", "content_state": [1], "timestamp": 1},
            "payload.content_state",
            "list is not a dict",
        ),
        (
            {
                "event": "start",
                "content_state": {},
                "timestamp": 1,
                "attributes_type": "",
                "attributes": {},
            },
            "payload.attributes_type",
            "empty",
        ),
    ],
)
def test_live_activity_rules(
    expect_invalid: Checker, kwargs: dict[str, Any], field: str, match: str
) -> None:
    expect_invalid(field, Payload, match=match, **kwargs)


def test_live_activity_helpers_validate(expect_invalid: Checker) -> None:
    expect_invalid(
        "payload.timestamp",
        Payload.live_activity_end,
        content_state={},
        timestamp=datetime(2030, 1, 1),
        match="naive",
    )
    expect_invalid(
        "payload.attributes",
        Payload.live_activity_start,
        attributes_type="A",
        attributes=None,
        content_state={},
        timestamp=1,
    )
