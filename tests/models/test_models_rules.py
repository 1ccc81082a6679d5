"""The rule tables and the shared field rules (apnskit._model.rules).

Each table is checked two ways: it covers every field the class validates (a field dropped
from its table fails here), and every rule in it is reached by one example whose exact message
is the one apnskit has always given (a rule whose message changed, or that an earlier rule
shadows, fails here). The examples go through the constructors, so they also prove that the
notification's combined fast-path tests refuse exactly what its table describes.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Callable, Iterable
from datetime import datetime, timezone
from typing import Any

import pytest

from apnskit import (
    Alert,
    BroadcastNotification,
    InvalidNotificationError,
    Notification,
    Payload,
    PushType,
    Sound,
)
from apnskit._model.notification import NOTIFICATION_RULES
from apnskit._model.payload import ALERT_RULES, PAYLOAD_RULES, SOUND_RULES
from apnskit._model.rules import (
    ALL_SUFFIXES,
    TOPIC_SUFFIXES,
    Rule,
    RuleTable,
    broken_rule,
    canonical_uuid,
    epoch,
    serialize,
)

TOKEN = "a1" * 32
TOPIC = "com.example.app"
ALERT = {"aps": {"alert": "hi"}}
UUID_TEXT = "123E4567-E89B-12D3-A456-426614174000"


def first_rule(rules: Iterable[Rule], field: str, value: object) -> Rule | None:
    """The rule of ``field`` that ``value`` breaks first (the one whose message is given)."""
    return next((r for r in rules if r.field == field and r.broken(value)), None)


# -- Notification -------------------------------------------------------------------------------

# (field, bad value, the exact message apnskit gives), one or more per rule in the table.
NOTIFICATION_EXAMPLES: list[tuple[str, Any, str]] = [
    ("device_token", 12, "int is not a hex string"),
    ("device_token", "", "is empty; pass the hex token the device registered"),
    ("device_token", " a1b2", "has surrounding whitespace; pass the bare hex token"),
    ("device_token", "a1g2", "contains characters other than hex digits 0-9a-f"),
    ("device_token", "a1b", "has 3 hex digits; a token has an even number"),
    ("payload", "{}", "str is not a dict or apnskit.Payload"),
    ("payload", {"aps": ["alert"]}, "'aps' is a list, not a dict"),
    (
        "push_type",
        "push",
        "'push' is not an APNs push type; use one of "
        "alert, background, location, voip, complication, fileprovider, mdm, liveactivity, "
        "pushtotalk, widgets, controls",
    ),
    (
        "push_type",
        3,
        "3 is not an APNs push type; use one of alert, background, location, "
        "voip, complication, fileprovider, mdm, liveactivity, pushtotalk, widgets, controls",
    ),
    ("topic", "", "is required: the app's bundle ID (plus the push type's suffix)"),
    ("topic", None, "is required: the app's bundle ID (plus the push type's suffix)"),
    ("topic", "com.example app", "'com.example app' must be printable ASCII without spaces"),
    ("topic", "com.exämple", "'com.exämple' must be printable ASCII without spaces"),
    ("priority", "10", "str '10' is not 1, 5 or 10"),
    ("priority", True, "bool True is not 1, 5 or 10"),
    ("priority", 7, "7 is not 1, 5 or 10"),
    ("collapse_id", b"id", "bytes is not a string"),
    ("collapse_id", "a\ud800", "contains a lone surrogate; UTF-8 cannot encode it"),
    ("collapse_id", "", "0 bytes; it must be 1 to 64 bytes of UTF-8"),
    ("collapse_id", "é" * 33, "66 bytes; it must be 1 to 64 bytes of UTF-8"),
    ("collapse_id", "a\nb", "must not contain control characters"),
]


def build(field: str, value: Any) -> Notification:
    kwargs: dict[str, Any] = {"device_token": TOKEN, "payload": ALERT, "topic": TOPIC}
    kwargs[field] = value
    return Notification(kwargs.pop("device_token"), kwargs.pop("payload"), **kwargs)


@pytest.mark.parametrize(("field", "value", "message"), NOTIFICATION_EXAMPLES)
def test_notification_rules_give_their_messages(field: str, value: Any, message: str) -> None:
    with pytest.raises(InvalidNotificationError) as info:
        build(field, value)
    assert info.value.field == field
    assert str(info.value) == f"{field}: {message}"
    # The table alone gives the same answer as the constructor.
    assert str(broken_rule(NOTIFICATION_RULES, field, value)) == f"{field}: {message}"


def test_every_notification_rule_has_an_example() -> None:
    reached = {id(first_rule(NOTIFICATION_RULES, f, v)) for f, v, _ in NOTIFICATION_EXAMPLES}
    unreached = [rule for rule in NOTIFICATION_RULES if id(rule) not in reached]
    assert unreached == []


def test_notification_table_covers_every_field_with_a_rule() -> None:
    # Before the split, __post_init__ had a branch for each of these fields. expiration and
    # apns_id follow the shared rules epoch() and canonical_uuid(), tested below.
    constructor_fields = {f.name for f in dataclasses.fields(Notification) if f.init}
    assert {r.field for r in NOTIFICATION_RULES} | {"expiration", "apns_id"} == constructor_fields


def test_notification_valid_values_break_no_rule() -> None:
    # The combined fast-path tests and the tables agree on what is valid.
    n = Notification(TOKEN.upper(), ALERT, topic=TOPIC, push_type="alert", priority=5)
    n = dataclasses.replace(n, collapse_id="x" * 64)
    for rule in NOTIFICATION_RULES:
        assert not rule.broken(getattr(n, rule.field)), rule


# -- Payload, Alert, Sound ---------------------------------------------------------------------

PAYLOAD_EXAMPLES: list[tuple[str, Any, str]] = [
    ("alert", 3, "int is not a string or apnskit.Alert"),
    ("badge", "1", "str '1' is not an int"),
    ("badge", False, "bool False is not an int"),
    ("badge", -1, "-1 is negative; use 0 to clear the badge"),
    ("sound", 1.5, "float is not a string or apnskit.Sound"),
    ("sound", "", "must not be empty; use 'default' or a file name"),
    ("thread_id", 5, "int 5 is not a string"),
    ("category", 5, "int 5 is not a string"),
    ("target_content_id", 5, "int 5 is not a string"),
    ("filter_criteria", 5, "int 5 is not a string"),
    ("content_available", 1, "int 1 must be True or False"),
    ("mutable_content", None, "NoneType None must be True or False"),
    ("input_push_token", "yes", "str 'yes' must be True or False"),
    ("content_changed", 0, "int 0 must be True or False"),
    (
        "interruption_level",
        "loud",
        "'loud' is not one of passive, active, time-sensitive, critical",
    ),
    ("relevance_score", "high", "str 'high' is not a number"),
    ("relevance_score", 1.5, "1.5 is outside 0.0-1.0"),
    ("url_args", "a", "str 'a' is not a list of strings"),
    ("url_args", ["a", 2], "item 2 (int) is not a string"),
    ("content_state", [1], "list is not a dict"),
    ("content_state", {1: "x"}, "key 1 (int) is not a string"),
    ("attributes", 5, "int is not a dict"),
    ("attributes", {None: 1}, "key None (NoneType) is not a string"),
    ("attributes_type", 3, "int 3 is not a string"),
    ("attributes_type", "", "must not be an empty string; leave it as None to omit it"),
    ("input_push_channel", 3, "int 3 is not a string"),
    ("input_push_channel", "", "must not be an empty string; leave it as None to omit it"),
    ("custom", (("a", 1),), "tuple is not a dict"),
    ("custom", {("a",): 1}, "key ('a',) (tuple) is not a string"),
    ("custom", None, "must be a dict (use {} for none)"),
    (
        "custom",
        {"aps": {}},
        "a custom key named 'aps' would replace Apple's dictionary; use the Payload fields "
        "for aps keys",
    ),
]
ALERT_EXAMPLES: list[tuple[str, Any, str]] = [
    *[
        (name, 1, "int 1 is not a string")
        for name in ("title", "subtitle", "body", "launch_image", "title_loc_key")
    ],
    *[(name, 1, "int 1 is not a string") for name in ("subtitle_loc_key", "loc_key")],
    ("action_loc_key", 1, "int 1 is not a string"),
    *[
        (name, "a", "str 'a' is not a list of strings")
        for name in ("title_loc_args", "subtitle_loc_args", "loc_args")
    ],
    *[
        (name, [b"a"], "item b'a' (bytes) is not a string")
        for name in ("title_loc_args", "subtitle_loc_args", "loc_args")
    ],
]
SOUND_EXAMPLES: list[tuple[str, Any, str]] = [
    ("name", 1, "int 1 is not a string"),
    ("name", "", "must not be an empty string; leave it as None to omit it"),
    ("name", None, "is required"),
    ("critical", 1, "int 1 must be True or False"),
    ("volume", "1", "str '1' is not a number"),
    ("volume", float("nan"), "nan is outside 0.0-1.0"),
]

TABLES: list[tuple[str, Callable[..., Any], RuleTable, list[tuple[str, Any, str]]]] = [
    ("payload.", Payload, PAYLOAD_RULES, PAYLOAD_EXAMPLES),
    ("payload.alert.", Alert, ALERT_RULES, ALERT_EXAMPLES),
    ("payload.sound.", lambda **kw: Sound(**{"name": "ping", **kw}), SOUND_RULES, SOUND_EXAMPLES),
]


@pytest.mark.parametrize(
    ("prefix", "make", "field", "value", "message"),
    [(p, m, *example) for p, m, _, examples in TABLES for example in examples],
)
def test_payload_rules_give_their_messages(
    prefix: str, make: Callable[..., Any], field: str, value: Any, message: str
) -> None:
    with pytest.raises(InvalidNotificationError) as info:
        make(**{field: value})
    assert info.value.field == prefix + field
    assert str(info.value) == f"{prefix}{field}: {message}"


@pytest.mark.parametrize(("prefix", "rules", "examples"), [(p, r, e) for p, _, r, e in TABLES])
def test_every_payload_rule_has_an_example(
    prefix: str, rules: RuleTable, examples: list[tuple[str, Any, str]]
) -> None:
    reached = {id(first_rule(rules, field, value)) for field, value, _ in examples}
    assert [rule for rule in rules if id(rule) not in reached] == []


def test_payload_tables_cover_every_field() -> None:
    # Times are checked as they are converted (epoch), event by the Live Activity rules.
    checked_elsewhere = {"timestamp", "stale_date", "dismissal_date", "event"}
    for cls, rules, elsewhere in (
        (Payload, PAYLOAD_RULES, checked_elsewhere),
        (Alert, ALERT_RULES, set()),
        (Sound, SOUND_RULES, set()),
    ):
        fields = {f.name for f in dataclasses.fields(cls)}
        assert {r.field for r in rules} | elsewhere == fields, cls


# -- the shared rules --------------------------------------------------------------------------


def test_rule_table_reports_the_first_broken_rule_in_table_order() -> None:
    @dataclasses.dataclass
    class Obj:
        a: int = 1
        b: str = "x"

    table = RuleTable(
        (
            Rule("a", lambda v: v > 5, "{value} is too big"),
            Rule("a", lambda v: v == 1, lambda v: f"{v} is one"),
            Rule("b", lambda v: v == "x", "{type} {value!r} is x"),
        )
    )
    assert len(table) == 3
    assert [rule.field for rule in table] == ["a", "a", "b"]
    with pytest.raises(InvalidNotificationError, match=r"^p\.a: 1 is one$"):
        table.apply(Obj(), "p.")
    with pytest.raises(InvalidNotificationError, match=r"^a: 9 is too big$"):
        table.apply(Obj(a=9))
    with pytest.raises(InvalidNotificationError, match=r"^b: str 'x' is x$"):
        table.apply(Obj(a=2))
    table.apply(Obj(a=2, b="y"))  # nothing broken: no error


def test_rule_table_passes_over_none_and_false_only_when_no_rule_refuses_them() -> None:
    calls: list[object] = []

    def optional_int(value: object) -> bool:
        calls.append(value)
        return value is not None and not isinstance(value, int)

    @dataclasses.dataclass
    class Obj:
        n: object = None
        flag: object = None

    table = RuleTable(
        (
            Rule("n", optional_int, "{type} is not an int"),
            Rule("flag", lambda v: not isinstance(v, bool), "{value!r} must be True or False"),
        ),
        {"n": lambda name, v: v * 2},
    )
    calls.clear()  # the table tried its rules on None and False once, when it was built
    table.apply(Obj(n=None, flag=False))
    assert calls == []  # n at None breaks no rule: passed over without a call
    with pytest.raises(InvalidNotificationError, match=r"^flag: None must be True or False$"):
        table.apply(Obj(n=None, flag=None))  # None breaks the flag's rule: not passed over
    obj = Obj(n=False, flag=True)  # False has a conversion: it is checked and converted
    table.apply(obj)
    assert calls == [False]
    assert obj.n == 0
    obj = Obj(n=4, flag=True)
    table.apply(obj)
    assert obj.n == 8


def test_broken_rule_still_refuses_a_value_no_rule_names() -> None:
    err = broken_rule((), "topic", "x")
    assert (err.field, str(err)) == ("topic", "topic: 'x' is not valid")


def test_canonical_uuid_is_the_rule_of_apns_id_and_apns_request_id() -> None:
    assert canonical_uuid("f", UUID_TEXT) == UUID_TEXT.lower()
    assert canonical_uuid("f", uuid.UUID(UUID_TEXT)) == UUID_TEXT.lower()
    message = "'nope' is not a canonical UUID (8-4-4-4-12 hex digits with hyphens)"
    for bad_uuid in ("nope",):
        with pytest.raises(InvalidNotificationError) as note:
            Notification(TOKEN, ALERT, topic=TOPIC, apns_id=bad_uuid)
        assert str(note.value) == f"apns_id: {message}"
        update = Payload.live_activity_update(content_state={}, timestamp=1)
        with pytest.raises(InvalidNotificationError) as cast:
            BroadcastNotification("com.example.app", "AAAA", update, apns_request_id=bad_uuid)
        assert str(cast.value) == f"apns_request_id: {message}"


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (
            datetime(2030, 1, 1),
            "2030-01-01T00:00:00 is a naive datetime; pass a timezone-aware "
            "datetime (e.g. with tzinfo=timezone.utc) or int epoch seconds",
        ),
        (1.5, "float 1.5 is not a time; pass int epoch seconds or a timezone-aware datetime"),
        (-1, "-1 is negative; epoch seconds must be 0 or more"),
        (
            1_700_000_000_000,
            "1700000000000 is after the year 9999; APNs wants epoch seconds, not milliseconds",
        ),
    ],
)
def test_epoch_rules(value: object, message: str) -> None:
    with pytest.raises(InvalidNotificationError) as info:
        epoch("expiration", value)
    assert str(info.value) == f"expiration: {message}"
    # The same rule for the notification, its payload and a broadcast.
    with pytest.raises(InvalidNotificationError, match=r"^payload\.stale_date: "):
        Payload(stale_date=value)  # type: ignore[arg-type]


def test_epoch_accepts_int_and_aware_datetime() -> None:
    assert epoch("f", 0) == 0
    assert epoch("f", datetime(2030, 1, 1, tzinfo=timezone.utc)) == 1_893_456_000


def test_serialize_is_compact_utf8_and_names_what_json_cannot_encode() -> None:
    assert (
        serialize({"aps": {"alert": "é"}, "n": [1.5]}) == '{"aps":{"alert":"é"},"n":[1.5]}'.encode()
    )
    with pytest.raises(InvalidNotificationError, match=r"payload\['n'\]\[0\] is nan"):
        serialize({"n": [float("nan")]})


def test_topic_suffixes_are_the_push_types() -> None:
    assert set(TOPIC_SUFFIXES) == {p.value for p in PushType}
    assert {p.topic_suffix for p in PushType if p.topic_suffix} == set(ALL_SUFFIXES)
    assert PushType.VOIP.topic_suffix == ".voip"
    # A broadcast's bundle ID must not end in any of them (the rule the notification's bare
    # topics follow too).
    update = Payload.live_activity_update(content_state={}, timestamp=1)
    for suffix in ALL_SUFFIXES:
        with pytest.raises(InvalidNotificationError, match=r"^bundle_id: .*topic suffix"):
            BroadcastNotification("com.example.app" + suffix, "AAAA", update)
