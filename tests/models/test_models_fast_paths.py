"""The constructors' fast paths (issue 13) agree with the full rule tables.

``Notification``, ``Payload`` and ``Alert`` test the common shape of their fields with one
expression and walk their rule tables only when it fails. Here many valid and invalid values,
around that common shape, go both ways: through the constructor, and through the class's
table applied to a plain object (the reference). Both must accept or reject alike, with the
same message, and an accepted value must be stored and serialized as the reference says.
A fast check looser than its table (one that lets a negative badge through, say) fails here.
"""

from __future__ import annotations

import copy
import json
import pickle
from dataclasses import MISSING, FrozenInstanceError, fields, replace
from types import MappingProxyType, SimpleNamespace
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from apnskit import Alert, InvalidNotificationError, Notification, Payload, PushType, Sound
from apnskit._model.common_case import ALERT_MAX_PAYLOAD
from apnskit._model.notification import NOTIFICATION_RULES
from apnskit._model.payload import ALERT_RULES, PAYLOAD_RULES
from apnskit._model.rules import RuleTable, broken_rule

SETTINGS = settings(max_examples=400, deadline=None)
TOPIC = "com.example.app"


class Text(str):
    """A str subclass: the fast paths leave it to the tables."""


def outcome(build: Any) -> tuple[str, Any]:
    """("ok", the built value) or ("error", the message)."""
    try:
        return ("ok", build())
    except InvalidNotificationError as exc:
        return ("error", str(exc))


def by_table(cls: type, table: RuleTable, prefix: str, kwargs: dict[str, Any]) -> Any:
    """The reference: ``cls``'s defaults updated with ``kwargs``, checked by ``table`` alone."""
    values = {
        f.name: f.default if f.default is not MISSING else f.default_factory()  # type: ignore[misc]
        for f in fields(cls)
    }
    values.update(kwargs)
    obj = SimpleNamespace(**values)
    table.apply(obj, prefix)
    return obj


def stored(obj: Any, cls: type) -> dict[str, tuple[type, Any]]:
    return {f.name: (type(getattr(obj, f.name)), getattr(obj, f.name)) for f in fields(cls)}


# Values around the common shape: right and wrong types, edge values, str subclasses.
texts = st.sampled_from([None, "", "Hello", "héllo ☃", Text("sub"), 5, b"x", ["a"]])
alert_kwargs = st.fixed_dictionaries(
    {},
    optional={
        "title": texts,
        "subtitle": texts,
        "body": texts,
        "launch_image": texts,
        "loc_key": texts,
        "loc_args": st.sampled_from([None, ["a", "b"], ("a",), "ab", [1], 3]),
        "action_loc_key": texts,
    },
)


@SETTINGS
@given(alert_kwargs)
@example({"title": 5})
@example({"subtitle": b"x"})
@example({"body": ["a"]})
@example({"loc_args": "ab"})
@example({"title": "T", "subtitle": "S", "body": "B"})
def test_alert_fast_path_agrees_with_its_table(kwargs: dict[str, Any]) -> None:
    got = outcome(lambda: Alert(**kwargs))
    want = outcome(lambda: by_table(Alert, ALERT_RULES, "payload.alert.", kwargs))
    assert got[0] == want[0]
    if got[0] == "error":
        assert got[1] == want[1]
        return
    assert stored(got[1], Alert) == stored(want[1], Alert)
    expected = {}
    for f in fields(Alert):
        value = getattr(want[1], f.name)
        if value is not None:
            expected[f.name.replace("_", "-")] = list(value) if f.name.endswith("args") else value
    assert got[1].to_dict() == expected
    assert list(got[1].to_dict()) == list(expected)  # Apple's key order


payload_kwargs = st.fixed_dictionaries(
    {},
    optional={
        "alert": st.sampled_from([None, "", "Hi", Text("sub"), Alert(title="T", body="B"), 7]),
        "badge": st.sampled_from([None, 0, 3, -1, True, 1.5, "3", 2**70]),
        "sound": st.sampled_from([None, "", "default", Text("x"), Sound("s", critical=True), 1]),
        "thread_id": texts,
        "category": texts,
        "content_available": st.sampled_from([True, False, 0, 1, None]),
        "mutable_content": st.sampled_from([True, False, 0, 1, None]),
        "target_content_id": texts,
        "relevance_score": st.sampled_from([None, 0.5, 2, True]),
        "filter_criteria": texts,
        "url_args": st.sampled_from([None, ["a"], "a", [1]]),
        "custom": st.sampled_from(
            [
                {},
                {"k": 1},
                {"k": [1, "x"], "j": None},
                {"aps": {}},
                {1: "x"},
                {Text("k"): 1},
                MappingProxyType({"k": 2}),
                None,
                ["k"],
            ]
        ),
    },
)


def aps_json(obj: Any) -> dict[str, Any]:
    """The reference JSON of a checked payload (no Live Activity keys in these examples)."""
    aps: dict[str, Any] = {}
    for f in fields(Payload):
        value = getattr(obj, f.name)
        if f.name == "custom" or value is None or value is False:
            continue
        if value is True:
            value = 1
        elif isinstance(value, (Alert, Sound)):
            value = value.to_dict()
        elif isinstance(value, tuple):
            value = list(value)
        aps[f.name.replace("_", "-")] = value
    return {"aps": aps, **obj.custom}


@SETTINGS
@given(payload_kwargs)
# Each rule of the common shape broken once, whatever hypothesis draws.
@example({"custom": {"aps": {}}})
@example({"custom": {1: "x"}})
@example({"custom": None})
@example({"badge": -1})
@example({"badge": True})
@example({"sound": ""})
@example({"alert": 7})
@example({"content_available": 1})
@example({"mutable_content": None})
@example({"thread_id": 5})
@example({"category": b"x"})
@example({"target_content_id": 5})
@example(
    {"alert": "Hi", "badge": 0, "sound": "default", "mutable_content": True, "custom": {"k": 1}}
)
def test_payload_fast_path_agrees_with_its_table(kwargs: dict[str, Any]) -> None:
    got = outcome(lambda: Payload(**kwargs))
    want = outcome(lambda: by_table(Payload, PAYLOAD_RULES, "payload.", kwargs))
    assert got[0] == want[0]
    if got[0] == "error":
        assert got[1] == want[1]
        return
    payload = got[1]
    assert stored(payload, Payload) == stored(want[1], Payload)
    if "custom" in kwargs:
        assert payload.custom is not kwargs["custom"]  # stored as a copy
    expected = aps_json(want[1])
    body = Notification("ab" * 32, payload, topic=TOPIC).body
    assert json.loads(body) == expected
    assert body == json.dumps(expected, ensure_ascii=False, separators=(",", ":")).encode()


tokens = st.one_of(
    st.text("0123456789abcdefABCDEF", max_size=70),
    st.text("0123456789abcdef \t\ng-xé٣", max_size=12),
    st.sampled_from(
        ["", " ab", "ab ", "a b1", "ab\n", "a", "0x12", "\uff11\uff12", Text("ab"), 12, None]
    ),
)


@SETTINGS
@given(tokens)
@example("")
@example("ab ")
@example("a b1")
@example("abc")
@example("\uff11\uff12")
def test_device_token_fast_check_agrees_with_the_table(token: Any) -> None:
    got = outcome(lambda: Notification(token, {}, topic=TOPIC))
    rule_error = any(r.field == "device_token" and r.broken(token) for r in NOTIFICATION_RULES)
    if rule_error:
        assert got == ("error", str(broken_rule(NOTIFICATION_RULES, "device_token", token)))
    else:
        assert got[0] == "ok"
        assert got[1].device_token == token.lower()
        assert got[1].path == "/3/device/" + token.lower()
        assert got[1].with_device_token(token).device_token == token.lower()


def test_payload_flags_outside_the_common_shape_still_meet_their_rules() -> None:
    # input-push-token needs a Live Activity start (a rule outside the table); content-changed
    # is sent as true, not 1: both leave the fast paths for the full checks.
    assert outcome(lambda: Payload(input_push_token=True)) == (
        "error",
        "payload.input_push_token: is a Live Activity key and needs event='start', 'update' "
        "or 'end'",
    )
    body = Notification("ab" * 32, Payload(content_changed=True), topic=TOPIC).body
    assert body == b'{"aps":{"content-changed":true}}'


def test_hand_written_constructors_keep_the_dataclass_behaviour() -> None:
    # The three classes write __init__ out and store their fields as one __dict__: copies,
    # pickles (Celery), replace(), equality, hashing and frozenness are as the dataclass made
    # them.
    alert = Alert(title="T", body="B")
    payload = Payload(alert=alert, badge=2, custom={"k": 1})
    notification = Notification(
        "AB" * 32,
        payload,
        topic=TOPIC,
        priority=5,  # type: ignore[arg-type]
        apns_id="12345678-1234-1234-1234-1234567890AB",
    )
    for obj in (alert, payload, notification):
        for twin in (copy.copy(obj), copy.deepcopy(obj), pickle.loads(pickle.dumps(obj))):
            assert twin == obj
            assert type(twin) is type(obj)
            assert vars(twin) == vars(obj)
        with pytest.raises(FrozenInstanceError):
            obj.body = "x"  # type: ignore[misc]
        with pytest.raises(FrozenInstanceError):
            del obj.body  # type: ignore[misc]
    assert hash(alert) == hash(Alert(title="T", body="B"))
    moved = replace(notification, topic="com.example.other")
    assert moved.headers[1] == ("apns-topic", "com.example.other")
    assert moved.body == notification.body
    assert replace(payload, badge=3).to_dict() == {
        "aps": {"alert": alert.to_dict(), "badge": 3},
        "k": 1,
    }
    assert Payload().custom == {}
    assert Payload().custom is not Payload().custom


# Notification.__init__'s common case (dict payload, an alert, no optional header) is built
# in one step; whatever does not fit it, valid or not, goes the general path. The general
# path (every rule in order) is the reference here.
alert_payloads = st.one_of(
    st.sampled_from(
        [
            {},
            {"aps": {"alert": "hi"}},
            {"aps": {"alert": {"title": "T", "body": "B"}}, "k": [1, 2]},
            {"aps": {"alert": "hi", "event": "update"}},
            {"aps": {"alert": "hi", "content-available": 1}},
            {"aps": {"content-available": 1}},
            {"aps": {"badge": 1}},
            {"aps": None},
            {"aps": ["alert"]},
            {"aps": {"alert": "x" * 4090}},
            {"aps": {"alert": "x" * 5000}},
            {"aps": {"alert": float("nan")}},
            {"aps": {"alert": {1, 2}}},
            {"aps": {"alert": "é" * 2100}},
        ]
    ),
    st.dictionaries(st.text(max_size=5), st.text(max_size=5), max_size=3),
)
alert_topics = st.sampled_from(
    [TOPIC, "com.example.other", "com.example.app.voip", "bad topic", "", Text(TOPIC), None, 3]
)
alert_tokens = st.sampled_from(["ab" * 32, "AB" * 32, "ab ", "", "abc", "zz", Text("ab"), None])


@SETTINGS
@given(alert_tokens, alert_payloads, alert_topics)
@example("ab" * 32, {"aps": {"alert": float("nan")}}, TOPIC)
@example("abc", {"aps": {"alert": "hi"}}, TOPIC)
@example("ab" * 32, {"aps": {"alert": "hi"}}, "bad topic")
def test_notification_common_case_agrees_with_the_general_path(
    token: Any, payload: Any, topic: Any
) -> None:
    Notification("ab" * 32, {}, topic=TOPIC)  # TOPIC is known valid: the common case applies

    def reference() -> Notification:
        built = object.__new__(Notification)
        built._init_checked(token, payload, topic, None, None, None, None, None)
        return built

    got, expected = outcome(lambda: Notification(token, payload, topic=topic)), outcome(reference)
    assert got[0] == expected[0]
    if got[0] == "error":
        assert got[1] == expected[1]
    else:
        assert vars(got[1]) == vars(expected[1])
        assert got[1] == expected[1]
        assert repr(got[1]) == repr(expected[1])


def test_common_case_is_taken_without_the_general_path(monkeypatch: pytest.MonkeyPatch) -> None:
    # The common case (common_case.alert_state) must really be the path a plain alert takes:
    # were it to refuse everything, the agreement test above would still pass.
    Notification("ab" * 32, {}, topic=TOPIC)  # TOPIC is known valid from now on

    def general_path(*args: Any) -> None:
        raise AssertionError("the general path was taken")

    monkeypatch.setattr(Notification, "_init_checked", general_path)
    payload = {"aps": {"alert": {"title": "T", "body": "B"}}, "k": [1, 2]}
    built = Notification("AB" * 32, payload, topic=TOPIC)
    assert built.device_token == "ab" * 32
    assert built.body == json.dumps(payload, separators=(",", ":")).encode()
    assert built.headers == (("apns-push-type", "alert"), ("apns-topic", TOPIC))
    assert built.resolved_push_type is PushType.ALERT
    assert built.path == "/3/device/" + "ab" * 32
    # A second one does not share the first one's fields.
    other = Notification("cd" * 32, {"aps": {"alert": "x"}}, topic=TOPIC)
    assert (built.device_token, built.payload) == ("ab" * 32, payload)
    assert other.device_token == "cd" * 32
    # Anything outside the common case goes the general path (here: refused by the patch).
    for kwargs in ({"priority": 5}, {"push_type": "alert"}):
        with pytest.raises(AssertionError, match="general path"):
            Notification("ab" * 32, payload, topic=TOPIC, **kwargs)
    with pytest.raises(AssertionError, match="general path"):
        Notification("ab" * 32, {"aps": {"content-available": 1}}, topic=TOPIC)


def test_common_case_size_limit_is_the_alert_push_limit() -> None:
    assert PushType.ALERT.max_payload_size == ALERT_MAX_PAYLOAD
