"""Notification: validation, push type inference, headers and serialization."""

from __future__ import annotations

import dataclasses
import json
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

import apnskit
from apnskit import InvalidNotificationError, Notification, Payload, Priority, PushType

# The ``expect_invalid`` fixture (conftest.py): expect_invalid(field, func, *args, match=...).
Checker = Callable[..., InvalidNotificationError]

TOKEN = "a1" * 32
TOPIC = "com.example.app"
ALERT = {"aps": {"alert": "hi"}}
UUID_LOWER = "123e4567-e89b-12d3-a456-426614174000"


def make(payload: Any = None, **kwargs: Any) -> Notification:
    kwargs.setdefault("topic", TOPIC)
    return Notification(
        kwargs.pop("device_token", TOKEN), ALERT if payload is None else payload, **kwargs
    )


# -- enums ------------------------------------------------------------------------------------

SUFFIXES = {
    "alert": "",
    "background": "",
    "location": ".location-query",
    "voip": ".voip",
    "complication": ".complication",
    "fileprovider": ".pushkit.fileprovider",
    "mdm": "",
    "liveactivity": ".push-type.liveactivity",
    "pushtotalk": ".voip-ptt",
    "widgets": ".push-type.widgets",
    "controls": ".push-type.controls",
}


def test_push_type_has_all_eleven_types_with_suffix_and_limit() -> None:
    assert {m.value for m in PushType} == set(SUFFIXES)
    for member in PushType:
        assert member.topic_suffix == SUFFIXES[member.value]
        assert member.max_payload_size == (5120 if member is PushType.VOIP else 4096)
        assert isinstance(member, str)
        assert str(member) == member.value
        assert PushType(member.value) is member


def test_priority_values() -> None:
    assert (Priority.IMMEDIATE, Priority.CONSIDERATE, Priority.LOW) == (10, 5, 1)


def test_public_names_are_exported() -> None:
    for name in (
        "Alert",
        "InterruptionLevel",
        "LiveActivityEvent",
        "Notification",
        "Payload",
        "Priority",
        "PushType",
        "Sound",
    ):
        assert name in apnskit.__all__
        assert getattr(apnskit, name).__doc__


# -- precomputed request parts ----------------------------------------------------------------


def test_simple_alert_precomputes_body_path_and_headers() -> None:
    n = make()
    assert n.body == b'{"aps":{"alert":"hi"}}'
    assert n.path == f"/3/device/{TOKEN}"
    assert n.headers == (("apns-push-type", "alert"), ("apns-topic", TOPIC))
    assert n.resolved_push_type is PushType.ALERT
    assert n.push_type is None
    assert n.priority is None


def test_all_headers_in_order() -> None:
    n = make(
        push_type="alert",
        priority=10,
        expiration=1_700_000_000,
        collapse_id="score",
        apns_id=UUID_LOWER.upper(),
    )
    assert n.headers == (
        ("apns-push-type", "alert"),
        ("apns-topic", TOPIC),
        ("apns-priority", "10"),
        ("apns-expiration", "1700000000"),
        ("apns-collapse-id", "score"),
        ("apns-id", UUID_LOWER),
    )
    assert n.push_type is PushType.ALERT
    assert n.priority is Priority.IMMEDIATE
    assert n.apns_id == UUID_LOWER
    names = [name for name, _ in n.headers]
    assert "authorization" not in names
    assert not any(name.startswith(":") for name in names)


def test_body_is_compact_utf8_json() -> None:
    n = make({"aps": {"alert": "héllo 中 😀"}, "k": [1, 2.5, None, True]})
    assert n.body == '{"aps":{"alert":"héllo 中 😀"},"k":[1,2.5,null,true]}'.encode()


def test_repr_is_short_and_leaves_out_the_body() -> None:
    n = make({"aps": {"alert": "x" * 3000}, "secret-ish": "y" * 500})
    text = repr(n)
    assert TOKEN in text
    assert TOPIC in text
    assert "alert" in text
    assert "xxxx" not in text
    assert len(text) < 250


def test_equality_ignores_precomputed_fields() -> None:
    assert make() == make()
    assert make() != make(collapse_id="a")


def test_replace_revalidates_and_recomputes(expect_invalid: Checker) -> None:
    n = make(priority=5)
    m = dataclasses.replace(n, payload={"aps": {"alert": "other"}}, collapse_id="c")
    assert m.body == b'{"aps":{"alert":"other"}}'
    assert ("apns-collapse-id", "c") in m.headers
    assert m.priority is Priority.CONSIDERATE
    expect_invalid("priority", dataclasses.replace, n, priority=7)


def test_with_apns_id_replaces_only_the_id(expect_invalid: Checker) -> None:
    n = make(collapse_id="c", apns_id=str(uuid.uuid4()))
    new_id = uuid.uuid4()
    m = n.with_apns_id(new_id)
    assert m.apns_id == str(new_id)
    assert m.headers[-1] == ("apns-id", str(new_id))
    assert [h for h in m.headers if h[0] == "apns-id"] == [("apns-id", str(new_id))]
    assert m.body is n.body
    assert m.path == n.path
    assert m == dataclasses.replace(n, apns_id=str(new_id))
    cleared = n.with_apns_id(None)
    assert cleared.apns_id is None
    assert all(h[0] != "apns-id" for h in cleared.headers)
    added = make().with_apns_id(UUID_LOWER.upper())
    assert added.headers[-1] == ("apns-id", UUID_LOWER)
    expect_invalid("apns_id", n.with_apns_id, "not-a-uuid")


def test_notification_is_frozen() -> None:
    n = make()
    with pytest.raises(dataclasses.FrozenInstanceError):
        n.topic = "other"  # type: ignore[misc]


# -- device token -----------------------------------------------------------------------------


@pytest.mark.parametrize("token", ["ab", "00" * 32, "fe" * 100])
def test_device_token_length_is_not_hard_coded(token: str) -> None:
    assert make(device_token=token).device_token == token


def test_device_token_uppercase_is_lowered() -> None:
    n = make(device_token="AB" * 32)
    assert n.device_token == "ab" * 32
    assert n.path == "/3/device/" + "ab" * 32


@pytest.mark.parametrize(
    ("token", "match"),
    [
        ("", "empty"),
        ("zz" * 32, "hex"),
        ("ab" * 31 + "g0", "hex"),
        ("abc", "3 hex digits.*even"),
        (" " + "ab" * 32, "whitespace"),
        ("ab" * 32 + "\n", "whitespace"),
        ("ab cd", "hex"),
        ("٣٣", "hex"),
        (b"ab" * 32, "bytes is not a hex string"),
        (None, "NoneType is not a hex string"),
        (1234, "int is not a hex string"),
    ],
)
def test_bad_device_token(expect_invalid: Checker, token: Any, match: str) -> None:
    expect_invalid("device_token", make, device_token=token, match=match)


# -- payload ----------------------------------------------------------------------------------


@pytest.mark.parametrize("payload", [["aps"], "{}", b"{}", 42, ("a",)])
def test_payload_must_be_dict_or_payload(expect_invalid: Checker, payload: Any) -> None:
    expect_invalid("payload", make, payload, match="not a dict or apnskit.Payload")


def test_payload_none_is_rejected(expect_invalid: Checker) -> None:
    expect_invalid("payload", Notification, TOKEN, None, topic=TOPIC, match="NoneType")


@pytest.mark.parametrize("aps", [[], "alert", 1])
def test_aps_must_be_a_dict(expect_invalid: Checker, aps: Any) -> None:
    expect_invalid("payload", make, {"aps": aps}, match="'aps' is a .*, not a dict")


def test_unserializable_value_is_named(expect_invalid: Checker) -> None:
    expect_invalid(
        "payload",
        make,
        {"aps": {"alert": "x"}, "data": {"ids": [1, {2, 3}]}},
        match=r"payload\['data'\]\['ids'\]\[1\] is of type set",
    )
    expect_invalid("payload", make, {"when": datetime.now(timezone.utc)}, match="datetime")


def test_non_finite_float_is_rejected(expect_invalid: Checker) -> None:
    expect_invalid("payload", make, {"x": float("nan")}, match=r"payload\['x'\] is nan")
    expect_invalid("payload", make, {"x": [float("inf")]}, match="inf")


def test_circular_payload_is_rejected(expect_invalid: Checker) -> None:
    loop: dict[str, Any] = {}
    loop["self"] = loop
    expect_invalid("payload", make, {"aps": {}, "loop": loop}, match="circular")


def test_unencodable_key_is_rejected(expect_invalid: Checker) -> None:
    expect_invalid("payload", make, {(1, 2): "x"}, match="key of type tuple")


def test_lone_surrogate_is_rejected(expect_invalid: Checker) -> None:
    expect_invalid("payload", make, {"aps": {"alert": "\ud800"}}, match="surrogate")


def test_unknown_aps_keys_pass_through() -> None:
    payload = {"aps": {"alert": "a", "new-apple-key": {"x": 1}}, "custom": 1}
    assert json.loads(make(payload).body) == payload


def test_body_is_a_snapshot_of_the_dict() -> None:
    payload: dict[str, Any] = {"aps": {"alert": "a"}}
    n = make(payload)
    payload["aps"]["alert"] = "b"
    assert n.body == b'{"aps":{"alert":"a"}}'


def test_payload_object_is_serialized() -> None:
    n = make(Payload(alert="hi", badge=0, custom={"k": "v"}))
    assert n.body == b'{"aps":{"alert":"hi","badge":0},"k":"v"}'


# -- sizes (real UTF-8 bytes) -----------------------------------------------------------------

OVERHEAD = len(b'{"aps":{"alert":""}}')


def alert_of(text: str) -> dict[str, Any]:
    return {"aps": {"alert": text}}


def test_cjk_fits_in_utf8_bytes_although_escaped_it_would_not() -> None:
    text = "中" * 1300  # 3900 UTF-8 bytes; 7800 as \u escapes
    assert len(json.dumps(alert_of(text), separators=(",", ":"))) > 4096
    n = make(alert_of(text))
    assert len(n.body) == OVERHEAD + 3900
    assert "中".encode() in n.body


def test_emoji_fits_in_utf8_bytes_although_escaped_it_would_not() -> None:
    text = "😀" * 1000  # 4000 UTF-8 bytes; 12000 as surrogate-pair escapes
    n = make(alert_of(text))
    assert len(n.body) == OVERHEAD + 4000


def test_cjk_over_limit_in_bytes_although_under_in_characters(expect_invalid: Checker) -> None:
    text = "中" * 1400  # 1400 characters, 4200 bytes
    size = OVERHEAD + 4200
    expect_invalid(
        "payload",
        make,
        alert_of(text),
        match=rf"^payload: {size} bytes is over the 4096-byte limit for alert pushes$",
    )


def test_limit_boundary_is_inclusive(expect_invalid: Checker) -> None:
    exact = alert_of("x" * (4096 - OVERHEAD))
    assert len(make(exact).body) == 4096
    over = alert_of("x" * (4097 - OVERHEAD))
    expect_invalid("payload", make, over, match="4097 bytes is over the 4096-byte limit")


def test_voip_allows_5120_bytes(expect_invalid: Checker) -> None:
    exact = alert_of("x" * (5120 - OVERHEAD))
    n = make(exact, push_type="voip", topic=TOPIC + ".voip")
    assert len(n.body) == 5120
    expect_invalid(
        "payload",
        make,
        alert_of("x" * (5121 - OVERHEAD)),
        push_type=PushType.VOIP,
        topic=TOPIC + ".voip",
        match="5121 bytes is over the 5120-byte limit for voip pushes",
    )
    expect_invalid("payload", make, exact, match="5120 bytes is over the 4096-byte limit")


# -- push type --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        ({"aps": {"alert": "a"}}, PushType.ALERT),
        ({"aps": {"content-available": 1}}, PushType.BACKGROUND),
        ({"aps": {"content-available": 1}, "custom": 1}, PushType.BACKGROUND),
        ({"aps": {"content-available": 1, "alert": "a"}}, PushType.ALERT),
        ({"aps": {"content-available": 1, "badge": 1}}, PushType.ALERT),
        ({"aps": {"content-available": 1, "sound": "default"}}, PushType.ALERT),
        ({"aps": {"content-available": 0}}, PushType.ALERT),
        ({"aps": {}}, PushType.ALERT),
        ({"custom": 1}, PushType.ALERT),
        ({}, PushType.ALERT),
        (Payload(content_available=True), PushType.BACKGROUND),
        (Payload(content_available=True, custom={"k": 1}), PushType.BACKGROUND),
        (Payload(content_available=True, badge=3), PushType.ALERT),
        (Payload(content_available=True, sound="s"), PushType.ALERT),
        (Payload(content_available=True, alert="a"), PushType.ALERT),
        (Payload(alert="a"), PushType.ALERT),
    ],
)
def test_push_type_inference(payload: Any, expected: PushType) -> None:
    n = make(payload)
    assert n.resolved_push_type is expected
    assert n.headers[0] == ("apns-push-type", expected.value)


def test_live_activity_payload_infers_liveactivity() -> None:
    topic = TOPIC + ".push-type.liveactivity"
    payload = {"aps": {"event": "update", "timestamp": 1, "content-state": {}}}
    assert make(payload, topic=topic).resolved_push_type is PushType.LIVEACTIVITY
    typed = Payload.live_activity_update(content_state={"a": 1}, timestamp=5)
    assert make(typed, topic=topic).resolved_push_type is PushType.LIVEACTIVITY


@pytest.mark.parametrize("given", [*PushType, *(m.value for m in PushType)])
def test_push_type_accepts_enum_or_string(given: Any) -> None:
    member = PushType(given)
    n = make(push_type=given, topic=TOPIC + member.topic_suffix)
    assert n.push_type is member
    assert n.resolved_push_type is member
    assert n.headers[0] == ("apns-push-type", member.value)


@pytest.mark.parametrize("bad", ["ALERT", "email", "", 1, True, object()])
def test_bad_push_type(expect_invalid: Checker, bad: Any) -> None:
    expect_invalid("push_type", make, push_type=bad, match="not an APNs push type")


# -- topic ------------------------------------------------------------------------------------

SUFFIXED = [m for m in PushType if m.topic_suffix]
BARE = [m for m in PushType if not m.topic_suffix]


@pytest.mark.parametrize("push_type", list(PushType))
def test_topic_with_the_right_suffix_is_accepted(push_type: PushType) -> None:
    n = make(push_type=push_type, topic=TOPIC + push_type.topic_suffix)
    assert ("apns-topic", TOPIC + push_type.topic_suffix) in n.headers


@pytest.mark.parametrize("push_type", SUFFIXED)
def test_suffixed_type_rejects_bare_topic(expect_invalid: Checker, push_type: PushType) -> None:
    expect_invalid(
        "topic",
        make,
        push_type=push_type,
        topic=TOPIC,
        match=f"followed by '{push_type.topic_suffix}' for {push_type.value} pushes",
    )


@pytest.mark.parametrize("push_type", SUFFIXED)
def test_suffixed_type_rejects_suffix_alone(expect_invalid: Checker, push_type: PushType) -> None:
    expect_invalid("topic", make, push_type=push_type, topic=push_type.topic_suffix)


@pytest.mark.parametrize("push_type", SUFFIXED)
@pytest.mark.parametrize("other", SUFFIXED)
def test_suffixed_type_rejects_other_suffix(
    expect_invalid: Checker, push_type: PushType, other: PushType
) -> None:
    if other is push_type:
        assert make(push_type=push_type, topic=TOPIC + other.topic_suffix)
    else:
        expect_invalid("topic", make, push_type=push_type, topic=TOPIC + other.topic_suffix)


@pytest.mark.parametrize("push_type", BARE)
@pytest.mark.parametrize("other", SUFFIXED)
def test_bare_type_rejects_any_suffix(
    expect_invalid: Checker, push_type: PushType, other: PushType
) -> None:
    expect_invalid(
        "topic",
        make,
        {"aps": {"content-available": 1}},
        push_type=push_type,
        topic=TOPIC + other.topic_suffix,
        match=f"ends with '{other.topic_suffix}'.*{push_type.value} pushes use the bare",
    )


def test_inferred_alert_rejects_voip_topic(expect_invalid: Checker) -> None:
    expect_invalid("topic", make, topic="com.x.voip", match="'.voip'")


@pytest.mark.parametrize(
    ("topic", "match"),
    [
        (None, "is required"),
        ("", "is required"),
        (42, "is required"),
        ("com.example app", "printable ASCII"),
        ("com.exämple", "printable ASCII"),
        ("com.example\r\nx: y", "printable ASCII"),
    ],
)
def test_bad_topic(expect_invalid: Checker, topic: Any, match: str) -> None:
    expect_invalid("topic", make, topic=topic, match=match)


def test_topic_is_keyword_only() -> None:
    with pytest.raises(TypeError):
        Notification(TOKEN, ALERT, TOPIC)  # type: ignore[call-arg]


# -- priority ---------------------------------------------------------------------------------


@pytest.mark.parametrize("value", [1, 5, 10, *Priority])
def test_priority_accepted(value: int) -> None:
    n = make(priority=value)
    assert n.priority is Priority(value)
    assert ("apns-priority", str(int(value))) in n.headers


@pytest.mark.parametrize(
    ("value", "match"),
    [
        (0, "0 is not 1, 5 or 10"),
        (2, "2 is not"),
        (11, "11 is not"),
        (-10, "-10 is not"),
        (True, "bool True"),
        (False, "bool False"),
        (10.0, "float"),
        ("10", "str"),
    ],
)
def test_bad_priority(expect_invalid: Checker, value: Any, match: str) -> None:
    expect_invalid("priority", make, priority=value, match=match)


def test_priority_10_not_allowed_for_background(expect_invalid: Checker) -> None:
    background = {"aps": {"content-available": 1}}
    expect_invalid("priority", make, background, priority=10, match="background")
    expect_invalid("priority", make, ALERT, push_type="background", priority=Priority.IMMEDIATE)
    assert make(background, priority=5).priority is Priority.CONSIDERATE
    assert make(background, priority=1).headers[2] == ("apns-priority", "1")


def test_background_without_priority_sends_5() -> None:
    n = make({"aps": {"content-available": 1}})
    assert n.priority is None
    assert n.headers[2] == ("apns-priority", "5")


@pytest.mark.parametrize("push_type", [p for p in PushType if p is not PushType.BACKGROUND])
def test_no_priority_header_when_unset(push_type: PushType) -> None:
    n = make(push_type=push_type, topic=TOPIC + push_type.topic_suffix)
    assert n.priority is None
    assert all(name != "apns-priority" for name, _ in n.headers)


# -- expiration -------------------------------------------------------------------------------


def test_expiration_int_and_zero() -> None:
    assert make(expiration=0).headers[-1] == ("apns-expiration", "0")
    assert make(expiration=1_800_000_000).expiration == 1_800_000_000


def test_expiration_aware_datetime_is_converted() -> None:
    utc = datetime(2030, 1, 2, 3, 4, 5, tzinfo=timezone.utc)
    n = make(expiration=utc)
    assert n.expiration == int(utc.timestamp()) == 1893553445
    plus2 = utc.astimezone(timezone(timedelta(hours=2)))
    assert make(expiration=plus2).expiration == 1893553445
    assert make(expiration=utc + timedelta(microseconds=999_999)).expiration == 1893553445


@pytest.mark.parametrize(
    ("value", "match"),
    [
        (-1, "-1 is negative"),
        (datetime(2030, 1, 1), "naive datetime"),
        (True, "bool True is not a time"),
        (1.5, "float"),
        ("0", "str"),
        (1_800_000_000_000, "milliseconds"),
        (datetime(1960, 1, 1, tzinfo=timezone.utc), "negative"),
    ],
)
def test_bad_expiration(expect_invalid: Checker, value: Any, match: str) -> None:
    expect_invalid("expiration", make, expiration=value, match=match)


# -- collapse id ------------------------------------------------------------------------------


def test_collapse_id_limit_counts_utf8_bytes(expect_invalid: Checker) -> None:
    assert make(collapse_id="x" * 64).collapse_id == "x" * 64
    assert make(collapse_id="中" * 21).headers[-1] == ("apns-collapse-id", "中" * 21)
    expect_invalid("collapse_id", make, collapse_id="x" * 65, match="65 bytes.*1 to 64 bytes")
    # 22 characters, but 66 bytes.
    expect_invalid("collapse_id", make, collapse_id="中" * 22, match="66 bytes")


@pytest.mark.parametrize(
    ("value", "match"),
    [("", "0 bytes"), (12, "int is not a string"), (b"x", "bytes"), ("a\nb", "control")],
)
def test_bad_collapse_id(expect_invalid: Checker, value: Any, match: str) -> None:
    expect_invalid("collapse_id", make, collapse_id=value, match=match)


# -- apns id ----------------------------------------------------------------------------------


def test_apns_id_normalized_to_lowercase() -> None:
    assert make(apns_id=UUID_LOWER.upper()).apns_id == UUID_LOWER
    value = uuid.uuid4()
    assert make(apns_id=value).apns_id == str(value)


@pytest.mark.parametrize(
    "value",
    [
        "",
        UUID_LOWER.replace("-", ""),
        "{" + UUID_LOWER + "}",
        "urn:uuid:" + UUID_LOWER,
        UUID_LOWER[:-1],
        UUID_LOWER + "0",
        UUID_LOWER.replace("a", "g"),
        " " + UUID_LOWER,
        12345,
        b"123e4567-e89b-12d3-a456-426614174000",
    ],
)
def test_bad_apns_id(expect_invalid: Checker, value: Any) -> None:
    expect_invalid("apns_id", make, apns_id=value, match="not a canonical UUID")


def test_live_activity_payload_needs_the_liveactivity_push_type() -> None:
    from datetime import datetime, timezone

    payload = Payload.live_activity_update(
        content_state={"score": 1}, timestamp=datetime.now(timezone.utc)
    )
    with pytest.raises(InvalidNotificationError, match=r"^push_type: .alert. does not match"):
        Notification("ab" * 32, payload, topic="com.example.app", push_type="alert")
    inferred = Notification("ab" * 32, payload, topic="com.example.app.push-type.liveactivity")
    assert inferred.resolved_push_type is PushType.LIVEACTIVITY


def test_repr_shows_push_type_as_the_attribute_holds_it() -> None:
    # Issue 12: push_type was None while the repr said 'alert'.
    inferred = make({"aps": {"alert": "hi"}})
    assert inferred.push_type is None
    assert "push_type=None" in repr(inferred)
    assert "resolved_push_type='alert'" in repr(inferred)
    given = make({"aps": {"alert": "hi"}}, push_type="alert")
    assert "push_type='alert'" in repr(given)
    assert "resolved_push_type" not in repr(given)
