"""Property tests: valid notifications round-trip; invalid ones only raise our error."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from apnskit import (
    Alert,
    InterruptionLevel,
    InvalidNotificationError,
    Notification,
    Payload,
    PushType,
    Sound,
)

SETTINGS = settings(max_examples=200, deadline=None)
TOKEN = "0f" * 32
TOPIC = "com.example.app"

# Text that UTF-8 can encode (no lone surrogates).
text = st.text(st.characters(blacklist_categories=["Cs"]), max_size=40)
short_text = st.text(st.characters(blacklist_categories=["Cs"]), max_size=12)
json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63)
    | st.floats(allow_nan=False, allow_infinity=False)
    | text
)
json_values = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(short_text, children, max_size=4)
    ),
    max_leaves=12,
)
json_objects = st.dictionaries(short_text, json_values, max_size=5)

alerts = (
    st.none()
    | text
    | st.builds(
        Alert,
        title=st.none() | text,
        subtitle=st.none() | text,
        body=st.none() | text,
        launch_image=st.none() | text,
        title_loc_key=st.none() | text,
        title_loc_args=st.none() | st.lists(short_text, max_size=3),
        loc_key=st.none() | text,
        loc_args=st.none() | st.lists(short_text, max_size=3),
        action_loc_key=st.none() | text,
    )
)
sounds = (
    st.none()
    | text.filter(bool)
    | st.builds(
        Sound,
        name=text.filter(bool),
        critical=st.booleans(),
        volume=st.none() | st.floats(0.0, 1.0),
    )
)
epochs = st.integers(0, 4_102_444_800)

plain_payloads = st.builds(
    Payload,
    alert=alerts,
    badge=st.none() | st.integers(0, 10**6),
    sound=sounds,
    thread_id=st.none() | text,
    category=st.none() | text,
    content_available=st.booleans(),
    mutable_content=st.booleans(),
    target_content_id=st.none() | text,
    interruption_level=st.none() | st.sampled_from(list(InterruptionLevel)),
    relevance_score=st.none() | st.floats(0.0, 1.0),
    filter_criteria=st.none() | text,
    url_args=st.none() | st.lists(short_text, max_size=3),
    content_changed=st.booleans(),
    custom=json_objects.filter(lambda d: "aps" not in d),
)
live_payloads = st.one_of(
    st.builds(
        Payload.live_activity_start,
        attributes_type=text.filter(bool),
        attributes=json_objects,
        content_state=json_objects,
        timestamp=epochs,
        alert=alerts,
        stale_date=st.none() | epochs,
        relevance_score=st.none() | st.floats(0.0, 1.0),
        input_push_token=st.booleans(),
        input_push_channel=st.none() | text.filter(bool),
        dismissal_date=st.none() | epochs,
    ),
    st.builds(
        Payload.live_activity_update,
        content_state=json_objects,
        timestamp=epochs,
        alert=alerts,
        stale_date=st.none() | epochs,
        dismissal_date=st.none() | epochs,
    ),
    st.builds(
        Payload.live_activity_end,
        content_state=json_objects,
        timestamp=epochs,
        dismissal_date=st.none() | epochs,
    ),
)
push_types = st.sampled_from([p for p in PushType if p is not PushType.BACKGROUND])


def expected_size(obj: dict[str, Any]) -> int:
    return len(json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode())


def check_round_trip(payload: Payload | dict[str, Any], push_type: PushType) -> None:
    as_dict = payload.to_dict() if isinstance(payload, Payload) else payload
    size = expected_size(as_dict)
    topic = TOPIC + push_type.topic_suffix
    aps = as_dict.get("aps")
    if isinstance(aps, dict) and "event" in aps and push_type is not PushType.LIVEACTIVITY:
        # A Live Activity payload only goes out as a liveactivity push.
        with pytest.raises(InvalidNotificationError, match=r"^push_type: .* Live Activity"):
            Notification(TOKEN, payload, topic=topic, push_type=push_type)
        return
    if size > push_type.max_payload_size:
        with pytest.raises(InvalidNotificationError, match=f"^payload: {size} bytes is over"):
            Notification(TOKEN, payload, topic=topic, push_type=push_type)
        return
    n = Notification(TOKEN, payload, topic=topic, push_type=push_type)
    assert len(n.body) == size
    assert json.loads(n.body) == as_dict


@SETTINGS
@given(payload=plain_payloads | live_payloads, push_type=push_types)
def test_payload_objects_round_trip(payload: Payload, push_type: PushType) -> None:
    check_round_trip(payload, push_type)
    # from_dict is the inverse of to_dict.
    assert Payload.from_dict(payload.to_dict()).to_dict() == payload.to_dict()


@SETTINGS
@given(
    aps=st.dictionaries(short_text, json_values, max_size=6),
    custom=json_objects.filter(lambda d: "aps" not in d),
    push_type=push_types,
)
def test_dict_payloads_round_trip(
    aps: dict[str, Any], custom: dict[str, Any], push_type: PushType
) -> None:
    check_round_trip({"aps": aps, **custom}, push_type)


@SETTINGS
@given(
    cjk=st.integers(0, 1400),
    emoji=st.integers(0, 1000),
    accented=st.integers(0, 2000),
    ascii_=st.integers(0, 4100),
)
def test_size_limit_is_measured_in_utf8_bytes(
    cjk: int, emoji: int, accented: int, ascii_: int
) -> None:
    # 3, 4, 2 and 1 UTF-8 bytes per character; the \u-escaped forms would be 6, 12, 6 and 1.
    message = "中" * cjk + "😀" * emoji + "é" * accented + "a" * ascii_
    check_round_trip({"aps": {"alert": message}}, PushType.ALERT)


# -- invalid inputs ---------------------------------------------------------------------------

HEX = re.compile(r"[0-9a-fA-F]+")
UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
# Wrong types for a field; None is only wrong where the field is required.
others = st.integers() | st.floats() | st.binary() | st.lists(st.integers(), max_size=2)

bad_tokens = (
    st.text().filter(lambda s: HEX.fullmatch(s) is None)
    | st.text("0123456789abcdefABCDEF", min_size=1).filter(lambda s: len(s) % 2 == 1)
    | others
    | st.none()
)
bad_priorities = (
    st.integers().filter(lambda i: i not in (1, 5, 10))
    | st.booleans()
    | st.floats()
    | st.text()
    | st.just(10.0)
)
bad_apns_ids = (
    st.text().filter(lambda s: UUID.fullmatch(s) is None) | others | st.uuids().map(lambda u: u.hex)
)
long_collapse_ids = st.text(min_size=65, max_size=100) | st.text(
    st.sampled_from("中😀é"), min_size=33, max_size=60
)
SUFFIXES = [p.topic_suffix for p in PushType if p.topic_suffix]
bad_topics = (
    st.just("")
    | st.text(min_size=1).map(lambda s: s + " ")
    | st.text().map(lambda s: "com.é" + s)
    | st.text().map(lambda s: "com.x\n" + s)
    | st.sampled_from(SUFFIXES).map(lambda s: TOPIC + s)
    | others
    | st.none()
)
bad_push_types = st.text().filter(lambda s: s not in {p.value for p in PushType}) | others
bad_expirations = st.integers(max_value=-1) | st.floats() | st.booleans() | st.text()
oversize = st.integers(4097 - 20, 20_000).map(lambda n: {"aps": {"alert": "x" * n}}) | st.integers(
    1366, 3000
).map(lambda n: {"aps": {"alert": "中" * n}})

invalid_kwargs = st.one_of(
    bad_tokens.map(lambda v: {"device_token": v}),
    bad_priorities.map(lambda v: {"priority": v}),
    bad_apns_ids.map(lambda v: {"apns_id": v}),
    long_collapse_ids.map(lambda v: {"collapse_id": v}),
    bad_push_types.map(lambda v: {"push_type": v}),
    bad_expirations.map(lambda v: {"expiration": v}),
    oversize.map(lambda v: {"payload": v}),
    bad_topics.map(lambda v: {"topic": v}),
    (others | st.text() | st.none()).map(lambda v: {"payload": v}),
)


@SETTINGS
@given(invalid_kwargs)
def test_invalid_inputs_only_raise_invalid_notification_error(bad: dict[str, Any]) -> None:
    kwargs: dict[str, Any] = {"device_token": TOKEN, "payload": {"aps": {"alert": "x"}}}
    kwargs["topic"] = TOPIC
    kwargs.update(bad)
    (field,) = bad
    # Anything but InvalidNotificationError (TypeError, UnicodeError...) escapes and fails.
    with pytest.raises(InvalidNotificationError) as info:
        Notification(kwargs.pop("device_token"), kwargs.pop("payload"), **kwargs)
    assert isinstance(info.value, ValueError)
    assert info.value.field == field
