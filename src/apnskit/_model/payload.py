"""The payload: :class:`Payload` (``aps`` and custom keys), :class:`Alert` and :class:`Sound`.

Every rule here comes from Apple's "Generating a remote notification"
(https://developer.apple.com/documentation/usernotifications/generating-a-remote-notification)
and, for the Live Activity keys, "Starting and updating Live Activities with ActivityKit push
notifications". Each class checks its fields against a table of
:class:`~apnskit._model.rules.Rule` entries (field, check, message) in ``__init__``, then
converts the values it stores in another form (lists to tuples, times to epoch seconds, strings
to enum members); the Live Activity rules, which tie several fields to the ``event``, follow.
``Payload`` and ``Alert`` first test the common shape (plain strings, no Live Activity keys)
with one expression, and walk their tables only when it fails (issue 13).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from types import MappingProxyType
from typing import Any

from apnskit._model.rules import Convert, Rule, RuleTable, epoch, fail

__all__ = [
    "ALERT_RULES",
    "PAYLOAD_RULES",
    "SOUND_RULES",
    "Alert",
    "InterruptionLevel",
    "LiveActivityEvent",
    "Payload",
    "Sound",
]


class InterruptionLevel(str, enum.Enum):
    """The ``interruption-level`` aps key (iOS 15+)."""

    PASSIVE = "passive"
    ACTIVE = "active"
    TIME_SENSITIVE = "time-sensitive"
    CRITICAL = "critical"

    def __str__(self) -> str:
        return str(self.value)


class LiveActivityEvent(str, enum.Enum):
    """The ``event`` aps key of a Live Activity push."""

    START = "start"
    UPDATE = "update"
    END = "end"

    def __str__(self) -> str:
        return str(self.value)


# --------------------------------------------------------------------------------------------
# The rules a payload's kinds of value follow. Each builder returns the table entries for one
# field; a class's table lists its fields in the order they are checked.


def _is_not_str(value: object) -> bool:
    return value is not None and not isinstance(value, str)


def _is_not_bool(value: object) -> bool:
    return not isinstance(value, bool)


def _is_not_number(value: object) -> bool:
    return value is not None and (isinstance(value, bool) or not isinstance(value, (int, float)))


def _is_outside_unit_interval(value: Any) -> bool:
    return value is not None and not 0.0 <= value <= 1.0  # also true for NaN


def _is_not_str_list(value: object) -> bool:
    # A bare string is a Sequence too; ["a", "b"] was almost certainly meant.
    return value is not None and (
        isinstance(value, (str, bytes)) or not isinstance(value, Sequence)
    )


def _first_non_str(values: Any) -> tuple[object, ...]:
    """The first item that is not a string, in a 1-tuple (empty when there is none)."""
    for item in values or ():
        if not isinstance(item, str):
            return (item,)
    return ()


def _is_not_mapping(value: object) -> bool:
    return value is not None and not isinstance(value, Mapping)


def _non_str_item_message(values: Any) -> str:
    (item,) = _first_non_str(values)
    return f"item {item!r} ({type(item).__name__}) is not a string"


def _non_str_key_message(mapping: Any) -> str:
    (key,) = _first_non_str(mapping)
    return f"key {key!r} ({type(key).__name__}) is not a string"


def _text(name: str) -> tuple[Rule, ...]:
    """An optional string; empty allowed (Apple does not forbid it)."""
    return (Rule(name, _is_not_str, "{type} {value!r} is not a string"),)


def _name(name: str) -> tuple[Rule, ...]:
    """An optional string that names something, so not empty."""
    return (
        *_text(name),
        Rule(name, lambda v: v == "", "must not be an empty string; leave it as None to omit it"),
    )


def _flag(name: str) -> tuple[Rule, ...]:
    """A bool (False leaves the key out)."""
    return (Rule(name, _is_not_bool, "{type} {value!r} must be True or False"),)


def _unit_interval(name: str) -> tuple[Rule, ...]:
    """An optional number from 0.0 to 1.0."""
    return (
        Rule(name, _is_not_number, "{type} {value!r} is not a number"),
        Rule(name, _is_outside_unit_interval, "{value!r} is outside 0.0-1.0"),
    )


def _str_list(name: str) -> tuple[Rule, ...]:
    """An optional list of strings (stored as a tuple)."""
    return (
        Rule(name, _is_not_str_list, "{type} {value!r} is not a list of strings"),
        Rule(name, _first_non_str, _non_str_item_message),
    )


def _mapping(name: str) -> tuple[Rule, ...]:
    """An optional dict with string keys (stored as a copy)."""
    return (
        Rule(name, _is_not_mapping, "{type} is not a dict"),
        Rule(name, _first_non_str, _non_str_key_message),
    )


def _as_tuple(field_name: str, value: Sequence[str]) -> tuple[str, ...]:
    return tuple(value)


def _as_dict(field_name: str, value: Mapping[str, Any]) -> dict[str, Any]:
    return dict(value)


# --------------------------------------------------------------------------------------------
# Alert and Sound

# Field name -> Apple's hyphenated key, in the order Apple lists them.
_ALERT_KEYS: tuple[tuple[str, str], ...] = (
    ("title", "title"),
    ("subtitle", "subtitle"),
    ("body", "body"),
    ("launch_image", "launch-image"),
    ("title_loc_key", "title-loc-key"),
    ("title_loc_args", "title-loc-args"),
    ("subtitle_loc_key", "subtitle-loc-key"),
    ("subtitle_loc_args", "subtitle-loc-args"),
    ("loc_key", "loc-key"),
    ("loc_args", "loc-args"),
    ("action_loc_key", "action-loc-key"),
)
_ALERT_ARGS = frozenset({"title_loc_args", "subtitle_loc_args", "loc_args"})
#: The alert's rules: every field is an optional string but the ``*_loc_args``, which are
#: lists of strings.
ALERT_RULES = RuleTable(
    (
        rule
        for name, _ in _ALERT_KEYS
        for rule in (_str_list(name) if name in _ALERT_ARGS else _text(name))
    ),
    dict.fromkeys(_ALERT_ARGS, _as_tuple),
)


# One call sets an instance's __dict__ past the frozen dataclass's __setattr__ (see __init__).
_set_attr = object.__setattr__


@dataclass(frozen=True, kw_only=True)
class Alert:
    """The dictionary form of the ``alert`` aps key.

    Every field is optional; ``None`` leaves the key out. The ``*_loc_args`` fields take a list
    of strings that fill the placeholders of the matching localization key.
    """

    title: str | None = None
    """Title shown above the body."""
    subtitle: str | None = None
    """Line between title and body."""
    body: str | None = None
    """The message text."""
    launch_image: str | None = None
    """Image file name shown while the app launches (``launch-image``)."""
    title_loc_key: str | None = None
    """Localizable.strings key for the title (``title-loc-key``)."""
    title_loc_args: Sequence[str] | None = None
    """Arguments for ``title_loc_key`` (``title-loc-args``)."""
    subtitle_loc_key: str | None = None
    """Localizable.strings key for the subtitle (``subtitle-loc-key``)."""
    subtitle_loc_args: Sequence[str] | None = None
    """Arguments for ``subtitle_loc_key`` (``subtitle-loc-args``)."""
    loc_key: str | None = None
    """Localizable.strings key for the body (``loc-key``)."""
    loc_args: Sequence[str] | None = None
    """Arguments for ``loc_key`` (``loc-args``)."""
    action_loc_key: str | None = None
    """Localizable.strings key for the action button title (``action-loc-key``)."""

    def __init__(
        self,
        *,
        title: str | None = None,
        subtitle: str | None = None,
        body: str | None = None,
        launch_image: str | None = None,
        title_loc_key: str | None = None,
        title_loc_args: Sequence[str] | None = None,
        subtitle_loc_key: str | None = None,
        subtitle_loc_args: Sequence[str] | None = None,
        loc_key: str | None = None,
        loc_args: Sequence[str] | None = None,
        action_loc_key: str | None = None,
    ) -> None:
        # Written out rather than generated: a frozen dataclass's __init__ calls
        # object.__setattr__ once per field (about 1,300 instructions each); here the fields
        # go in one dict that becomes the instance's __dict__.
        _set_attr(
            self,
            "__dict__",
            {
                "title": title,
                "subtitle": subtitle,
                "body": body,
                "launch_image": launch_image,
                "title_loc_key": title_loc_key,
                "title_loc_args": title_loc_args,
                "subtitle_loc_key": subtitle_loc_key,
                "subtitle_loc_args": subtitle_loc_args,
                "loc_key": loc_key,
                "loc_args": loc_args,
                "action_loc_key": action_loc_key,
            },
        )
        # The common alert (title, subtitle, body as plain strings, nothing else) keeps every
        # rule and needs no conversion; anything else goes through the table, which has the
        # last word (a chain of ``is`` holds when all are the same object, here None).
        if not (
            (title is None or type(title) is str)
            and (subtitle is None or type(subtitle) is str)
            and (body is None or type(body) is str)
            and launch_image
            is title_loc_key
            is title_loc_args
            is subtitle_loc_key
            is subtitle_loc_args
            is loc_key
            is loc_args
            is action_loc_key
            is None
        ):
            ALERT_RULES.apply(self, "payload.alert.")

    def to_dict(self) -> dict[str, Any]:
        """Return the alert as Apple's dictionary, with hyphenated keys and no ``None`` values."""
        out: dict[str, Any] = {}
        if (
            self.launch_image
            is self.title_loc_key
            is self.title_loc_args
            is self.subtitle_loc_key
            is self.subtitle_loc_args
            is self.loc_key
            is self.loc_args
            is self.action_loc_key
            is None
        ):
            # Only title, subtitle and body may be set (the common alert): no lists to copy.
            if self.title is not None:
                out["title"] = self.title
            if self.subtitle is not None:
                out["subtitle"] = self.subtitle
            if self.body is not None:
                out["body"] = self.body
            return out
        for name, key in _ALERT_KEYS:
            value = getattr(self, name)
            if value is not None:
                out[key] = list(value) if name in _ALERT_ARGS else value
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Alert:
        """Build an alert from Apple's dictionary form (hyphenated keys).

        Raises:
            InvalidNotificationError: A key is unknown or a value has the wrong type.
        """
        by_key = {key: name for name, key in _ALERT_KEYS}
        kwargs: dict[str, Any] = {}
        for key, value in data.items():
            if key not in by_key:
                raise fail("payload.alert", f"unknown alert key {key!r}")
            kwargs[by_key[key]] = value
        return cls(**kwargs)


#: The sound's rules: a required non-empty name, a bool, an optional volume from 0.0 to 1.0.
SOUND_RULES = RuleTable(
    (
        *_name("name"),
        Rule("name", lambda v: v is None, "is required"),
        *_flag("critical"),
        *_unit_interval("volume"),
    )
)


@dataclass(frozen=True, slots=True)
class Sound:
    """The dictionary form of the ``sound`` aps key, used for critical alerts.

    A plain sound is just its file name: pass a string to :class:`Payload` instead.
    """

    name: str
    """Sound file name in the app bundle or Library/Sounds, or ``"default"``."""
    critical: bool = False
    """Play as a critical alert (needs Apple's critical-alert entitlement)."""
    volume: float | None = None
    """Critical alert volume, 0.0 (silent) to 1.0 (full)."""

    def __post_init__(self) -> None:
        SOUND_RULES.apply(self, "payload.sound.")

    def to_dict(self) -> dict[str, Any]:
        """Return ``{"critical": 0|1, "name": ..., "volume": ...}`` (volume only when set)."""
        out: dict[str, Any] = {"critical": 1 if self.critical else 0, "name": self.name}
        if self.volume is not None:
            out["volume"] = self.volume
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Sound:
        """Build a sound from Apple's dictionary form.

        Raises:
            InvalidNotificationError: A key is unknown or a value has the wrong type.
        """
        unknown = set(data) - {"critical", "name", "volume"}
        if unknown:
            raise fail("payload.sound", f"unknown sound key(s) {sorted(unknown)!r}")
        critical = data.get("critical", 0)
        if critical not in (0, 1) or isinstance(critical, float):
            raise fail("payload.sound.critical", f"{critical!r} must be 0 or 1")
        name: Any = data.get("name")
        return cls(name=name, critical=bool(critical), volume=data.get("volume"))


# --------------------------------------------------------------------------------------------
# Payload

# Scalar aps fields: (field name, aps key). Order is the order keys appear in the JSON.
_PAYLOAD_KEYS: tuple[tuple[str, str], ...] = (
    ("alert", "alert"),
    ("badge", "badge"),
    ("sound", "sound"),
    ("thread_id", "thread-id"),
    ("category", "category"),
    ("content_available", "content-available"),
    ("mutable_content", "mutable-content"),
    ("target_content_id", "target-content-id"),
    ("interruption_level", "interruption-level"),
    ("relevance_score", "relevance-score"),
    ("filter_criteria", "filter-criteria"),
    ("url_args", "url-args"),
    ("timestamp", "timestamp"),
    ("event", "event"),
    ("content_state", "content-state"),
    ("stale_date", "stale-date"),
    ("dismissal_date", "dismissal-date"),
    ("attributes_type", "attributes-type"),
    ("attributes", "attributes"),
    ("input_push_token", "input-push-token"),
    ("input_push_channel", "input-push-channel"),
    ("content_changed", "content-changed"),
)
_FIELD_BY_APS_KEY = {key: name for name, key in _PAYLOAD_KEYS}
# Payload.to_dict writes out the first keys of _PAYLOAD_KEYS (to mutable-content).
_FIRST_KEYS = 7


def _aps_value(name: str, value: object) -> object:
    """The JSON form of a set aps field (not None nor False)."""
    if value is True:
        # Apple spells these flags as 1, except content-changed, documented as true.
        return True if name == "content_changed" else 1
    if isinstance(value, (Alert, Sound)):
        return value.to_dict()
    if isinstance(value, enum.Enum):
        return value.value
    if name == "url_args":
        return list(value)  # type: ignore[call-overload]
    if isinstance(value, dict):
        return dict(value)
    return value


# Keys that only make sense in a Live Activity push (they need an ``event``).
_LIVE_ACTIVITY_FIELDS = (
    "timestamp",
    "content_state",
    "stale_date",
    "dismissal_date",
    "attributes_type",
    "attributes",
    "input_push_token",
    "input_push_channel",
)
# ActivityKit reads these only from a push-to-start payload.
_START_ONLY_FIELDS = ("attributes_type", "attributes", "input_push_token", "input_push_channel")


_INTERRUPTION_LEVELS = tuple(m.value for m in InterruptionLevel)


def _as_level(field_name: str, value: str) -> InterruptionLevel:
    return InterruptionLevel(value)


# Fields stored in another form than given; times are checked as they are converted (after
# the fields that have rules).
_PAYLOAD_CONVERSIONS: dict[str, Convert] = {
    "interruption_level": _as_level,
    "url_args": _as_tuple,
    "content_state": _as_dict,
    "attributes": _as_dict,
    "custom": _as_dict,
    "timestamp": epoch,
    "stale_date": epoch,
    "dismissal_date": epoch,
}


#: The payload's rules, in the order they are checked (roughly the order Apple lists the keys).
#: The times (``timestamp``, ``stale_date``, ``dismissal_date``) are checked as they are
#: converted (:func:`~apnskit._model.rules.epoch`), and the rules that tie fields to the
#: ``event`` come after, in ``Payload._check_live_activity``.
PAYLOAD_RULES = RuleTable(
    (
        Rule(
            "alert",
            lambda v: v is not None and not isinstance(v, (str, Alert)),
            "{type} is not a string or apnskit.Alert",
        ),
        Rule(
            "badge",
            lambda v: v is not None and (isinstance(v, bool) or not isinstance(v, int)),
            "{type} {value!r} is not an int",
        ),
        Rule(
            "badge",
            lambda v: v is not None and v < 0,
            "{value} is negative; use 0 to clear the badge",
        ),
        Rule(
            "sound",
            lambda v: v is not None and not isinstance(v, (str, Sound)),
            "{type} is not a string or apnskit.Sound",
        ),
        Rule("sound", lambda v: v == "", "must not be empty; use 'default' or a file name"),
        *_text("thread_id"),
        *_text("category"),
        *_text("target_content_id"),
        *_text("filter_criteria"),
        *_flag("content_available"),
        *_flag("mutable_content"),
        *_flag("input_push_token"),
        *_flag("content_changed"),
        Rule(
            "interruption_level",
            lambda v: v is not None and v not in _INTERRUPTION_LEVELS,
            "{value!r} is not one of passive, active, time-sensitive, critical",
        ),
        *_unit_interval("relevance_score"),
        *_str_list("url_args"),
        *_mapping("content_state"),
        *_mapping("attributes"),
        *_name("attributes_type"),
        *_name("input_push_channel"),
        *_mapping("custom"),
        Rule("custom", lambda v: v is None, "must be a dict (use {{}} for none)"),
        Rule(
            "custom",
            lambda v: "aps" in v,
            "a custom key named 'aps' would replace Apple's dictionary; use the Payload fields "
            "for aps keys",
        ),
    ),
    _PAYLOAD_CONVERSIONS,
)


# The default of Payload's ``custom``: no custom keys (stored as a new empty dict).
_NO_CUSTOM: Mapping[str, Any] = MappingProxyType({})


def _later_fields_unset(state: dict[str, Any]) -> bool:
    """Whether the fields after the first keys (``_FIRST_KEYS``) are at their defaults."""
    return (
        state["input_push_token"] is state["content_changed"] is False
        # A chain of `is` holds when all are the same object, here None (no generator).
        and state["target_content_id"]
        is state["interruption_level"]
        is state["relevance_score"]
        is state["filter_criteria"]
        is state["url_args"]
        is state["timestamp"]
        is state["event"]
        is state["content_state"]
        is state["stale_date"]
        is state["dismissal_date"]
        is state["attributes_type"]
        is state["attributes"]
        is state["input_push_channel"]
        is None
    )


def _is_common(state: dict[str, Any]) -> bool:
    """Whether a payload's fields have the common shape, which keeps every rule.

    Alert, badge, sound, thread ID, category and the two flags, each of the exact type the
    rules allow; the other fields unset; custom keys in a plain dict of string keys. Stricter
    than the rule table (a str subclass goes to the table, which has the last word).
    """
    alert = state["alert"]
    badge = state["badge"]
    sound = state["sound"]
    thread_id = state["thread_id"]
    category = state["category"]
    custom = state["custom"]
    return (
        (alert is None or type(alert) is str or type(alert) is Alert)
        and (badge is None or (type(badge) is int and badge >= 0))
        and (sound is None or type(sound) is Sound or (type(sound) is str and sound != ""))
        and (thread_id is None or type(thread_id) is str)
        and (category is None or type(category) is str)
        # bool cannot be subclassed: True and False are its only instances.
        and type(state["content_available"]) is bool
        and type(state["mutable_content"]) is bool
        and _later_fields_unset(state)
        and (
            custom is _NO_CUSTOM
            or (
                type(custom) is dict
                and "aps" not in custom
                and all(type(key) is str for key in custom)
            )
        )
    )


@dataclass(frozen=True, kw_only=True)
class Payload:
    """A notification payload: the ``aps`` dictionary plus custom top-level keys.

    Every field is optional and ``None`` (or ``False``) leaves its key out. Times accept int
    epoch seconds or a timezone-aware :class:`~datetime.datetime` and are stored as int epoch
    seconds. For Live Activities prefer :meth:`live_activity_start`,
    :meth:`live_activity_update` and :meth:`live_activity_end`.

    Raises:
        InvalidNotificationError: A field breaks one of Apple's rules (the message names it).
    """

    alert: str | Alert | None = None
    """A plain string, or an :class:`Alert` for title/subtitle/localization."""
    badge: int | None = None
    """The app icon badge number; ``0`` clears it."""
    sound: str | Sound | None = None
    """A sound file name, or a :class:`Sound` for critical alerts."""
    thread_id: str | None = None
    """Groups notifications in Notification Center (``thread-id``)."""
    category: str | None = None
    """The notification category, for custom actions."""
    content_available: bool = False
    """Wake the app in the background (``content-available: 1``)."""
    mutable_content: bool = False
    """Let a notification service extension modify it (``mutable-content: 1``)."""
    target_content_id: str | None = None
    """The window or content to bring forward (``target-content-id``)."""
    interruption_level: InterruptionLevel | str | None = None
    """passive, active, time-sensitive or critical (``interruption-level``)."""
    relevance_score: float | None = None
    """0.0-1.0; orders notification summaries and Live Activities (``relevance-score``)."""
    filter_criteria: str | None = None
    """Focus filter criteria (``filter-criteria``)."""
    url_args: Sequence[str] | None = None
    """Safari web push URL arguments (``url-args``)."""
    timestamp: int | datetime | None = None
    """Live Activity: when the content state was produced, epoch seconds."""
    event: LiveActivityEvent | str | None = None
    """Live Activity: start, update or end."""
    content_state: Mapping[str, Any] | None = None
    """Live Activity: the ``ContentState`` the app decodes (``content-state``)."""
    stale_date: int | datetime | None = None
    """Live Activity: when the content becomes outdated (``stale-date``)."""
    dismissal_date: int | datetime | None = None
    """Live Activity: when an ended activity leaves the Lock Screen (``dismissal-date``)."""
    attributes_type: str | None = None
    """Live Activity start: the ``ActivityAttributes`` type name (``attributes-type``)."""
    attributes: Mapping[str, Any] | None = None
    """Live Activity start: the static attributes."""
    input_push_token: bool = False
    """Live Activity start: ask for an update push token (``input-push-token: 1``)."""
    input_push_channel: str | None = None
    """Live Activity start (iOS 18): subscribe to a broadcast channel (``input-push-channel``)."""
    content_changed: bool = False
    """Widgets/controls push: ``{"aps": {"content-changed": true}}``."""
    custom: Mapping[str, Any] = field(default_factory=dict)
    """Custom keys placed beside ``aps`` at the top level (a key named ``"aps"`` is an error)."""

    def __init__(
        self,
        *,
        alert: str | Alert | None = None,
        badge: int | None = None,
        sound: str | Sound | None = None,
        thread_id: str | None = None,
        category: str | None = None,
        content_available: bool = False,
        mutable_content: bool = False,
        target_content_id: str | None = None,
        interruption_level: InterruptionLevel | str | None = None,
        relevance_score: float | None = None,
        filter_criteria: str | None = None,
        url_args: Sequence[str] | None = None,
        timestamp: int | datetime | None = None,
        event: LiveActivityEvent | str | None = None,
        content_state: Mapping[str, Any] | None = None,
        stale_date: int | datetime | None = None,
        dismissal_date: int | datetime | None = None,
        attributes_type: str | None = None,
        attributes: Mapping[str, Any] | None = None,
        input_push_token: bool = False,
        input_push_channel: str | None = None,
        content_changed: bool = False,
        custom: Mapping[str, Any] = _NO_CUSTOM,
    ) -> None:
        # Written out rather than generated, as Alert's: one dict becomes the __dict__.
        state: dict[str, Any] = {
            "alert": alert,
            "badge": badge,
            "sound": sound,
            "thread_id": thread_id,
            "category": category,
            "content_available": content_available,
            "mutable_content": mutable_content,
            "target_content_id": target_content_id,
            "interruption_level": interruption_level,
            "relevance_score": relevance_score,
            "filter_criteria": filter_criteria,
            "url_args": url_args,
            "timestamp": timestamp,
            "event": event,
            "content_state": content_state,
            "stale_date": stale_date,
            "dismissal_date": dismissal_date,
            "attributes_type": attributes_type,
            "attributes": attributes,
            "input_push_token": input_push_token,
            "input_push_channel": input_push_channel,
            "content_changed": content_changed,
            "custom": custom,
        }
        _set_attr(self, "__dict__", state)
        if _is_common(state):
            # Nothing to convert but custom, stored as a copy as the table's conversion does.
            state["custom"] = {} if custom is _NO_CUSTOM else dict(custom)
        else:
            PAYLOAD_RULES.apply(self, "payload.")
            self._check_live_activity()

    def _check_live_activity(self) -> None:
        event = self.event
        if event is None:
            for name in _LIVE_ACTIVITY_FIELDS:
                value = getattr(self, name)
                if value is not None and value is not False:
                    raise fail(
                        f"payload.{name}",
                        "is a Live Activity key and needs event='start', 'update' or 'end'",
                    )
            return
        try:
            event = LiveActivityEvent(event)
        except ValueError:
            raise fail("payload.event", f"{event!r} is not one of start, update, end") from None
        object.__setattr__(self, "event", event)
        if self.content_state is None:
            raise fail("payload.content_state", f"a Live Activity {event} push needs it")
        if self.timestamp is None:
            raise fail("payload.timestamp", f"a Live Activity {event} push needs it")
        if event is LiveActivityEvent.START:
            if self.attributes_type is None:
                raise fail("payload.attributes_type", "a Live Activity start push needs it")
            if self.attributes is None:
                raise fail("payload.attributes", "a Live Activity start push needs it")
        else:
            for name in _START_ONLY_FIELDS:
                value = getattr(self, name)
                if value is not None and value is not False:
                    raise fail(
                        f"payload.{name}",
                        f"is only allowed with event 'start', not {event.value!r}",
                    )

    def to_dict(self) -> dict[str, Any]:
        """Return the payload as the JSON object APNs expects: ``{"aps": {...}, **custom}``."""
        aps: dict[str, Any] = {}
        # The first keys, written out (a plain str or int is sent as it is), then the others
        # in order when one is set. Read from the instance dict, whose values are Any to mypy
        # (a chain of `is` across fields of different types is no error then).
        state: dict[str, Any] = self.__dict__
        value = state["alert"]
        if value is not None:
            aps["alert"] = value if type(value) is str else _aps_value("alert", value)
        value = state["badge"]
        if value is not None:
            aps["badge"] = value if type(value) is int else _aps_value("badge", value)
        value = state["sound"]
        if value is not None:
            aps["sound"] = value if type(value) is str else _aps_value("sound", value)
        value = state["thread_id"]
        if value is not None:
            aps["thread-id"] = value if type(value) is str else _aps_value("thread_id", value)
        value = state["category"]
        if value is not None:
            aps["category"] = value if type(value) is str else _aps_value("category", value)
        if state["content_available"]:
            aps["content-available"] = 1
        if state["mutable_content"]:
            aps["mutable-content"] = 1
        if not _later_fields_unset(state):
            for name, key in _PAYLOAD_KEYS[_FIRST_KEYS:]:
                value = getattr(self, name)
                if value is not None and value is not False:
                    aps[key] = _aps_value(name, value)
        out: dict[str, Any] = {"aps": aps}
        out.update(self.custom)
        return out

    @property
    def is_background_only(self) -> bool:
        """True when this is a silent push: content-available without alert, badge or sound."""
        return (
            self.content_available
            and self.alert is None
            and self.badge is None
            and self.sound is None
        )

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Payload:
        """Build a payload from its JSON object form (the inverse of :meth:`to_dict`).

        Raises:
            InvalidNotificationError: The data is not a payload, has an ``aps`` key apnskit does
                not model (send such payloads as a plain dict instead), or breaks a rule.
        """
        if not isinstance(data, Mapping):
            raise fail("payload", f"{type(data).__name__} is not a dict")
        aps = data.get("aps", {})
        if not isinstance(aps, Mapping):
            raise fail("payload.aps", f"{type(aps).__name__} is not a dict")
        kwargs: dict[str, Any] = {}
        for key, raw in aps.items():
            name = _FIELD_BY_APS_KEY.get(key)
            if name is None:
                raise fail(
                    "payload.aps",
                    f"unknown key {key!r}; send a plain dict payload to pass it through",
                )
            value: Any = raw
            if name == "alert" and isinstance(raw, Mapping):
                value = Alert.from_dict(raw)
            elif name == "sound" and isinstance(raw, Mapping):
                value = Sound.from_dict(raw)
            elif name in ("content_available", "mutable_content", "input_push_token"):
                if raw not in (0, 1) or isinstance(raw, float):
                    raise fail(f"payload.{name}", f"{raw!r} must be 0 or 1")
                value = bool(raw)
            kwargs[name] = value
        kwargs["custom"] = {k: v for k, v in data.items() if k != "aps"}
        return cls(**kwargs)

    @classmethod
    def live_activity_start(
        cls,
        *,
        attributes_type: str,
        attributes: Mapping[str, Any],
        content_state: Mapping[str, Any],
        timestamp: int | datetime,
        alert: str | Alert | None = None,
        stale_date: int | datetime | None = None,
        relevance_score: float | None = None,
        input_push_token: bool = False,
        input_push_channel: str | None = None,
        dismissal_date: int | datetime | None = None,
        sound: str | Sound | None = None,
        custom: Mapping[str, Any] | None = None,
    ) -> Payload:
        """A push-to-start Live Activity payload (``event: start``, iOS 17.2+).

        Args:
            attributes_type: The ``ActivityAttributes`` type name in the app.
            attributes: The activity's static attributes.
            content_state: The initial ``ContentState``.
            timestamp: When this state was produced (epoch seconds or aware datetime).
            alert: Optional alert shown when the activity starts.
            stale_date: When the content becomes outdated.
            relevance_score: 0.0-1.0, orders several activities.
            input_push_token: Ask the device for a push token for updates.
            input_push_channel: A broadcast channel ID to subscribe to (iOS 18).
            dismissal_date: When the activity leaves the Lock Screen after ending.
            sound: Optional sound for the alert.
            custom: Custom top-level keys.

        Raises:
            InvalidNotificationError: A value breaks one of Apple's rules.
        """
        return cls(
            event=LiveActivityEvent.START,
            attributes_type=attributes_type,
            attributes=attributes,
            content_state=content_state,
            timestamp=timestamp,
            alert=alert,
            sound=sound,
            stale_date=stale_date,
            relevance_score=relevance_score,
            input_push_token=input_push_token,
            input_push_channel=input_push_channel,
            dismissal_date=dismissal_date,
            custom=custom if custom is not None else {},
        )

    @classmethod
    def live_activity_update(
        cls,
        *,
        content_state: Mapping[str, Any],
        timestamp: int | datetime,
        alert: str | Alert | None = None,
        stale_date: int | datetime | None = None,
        relevance_score: float | None = None,
        dismissal_date: int | datetime | None = None,
        sound: str | Sound | None = None,
        custom: Mapping[str, Any] | None = None,
    ) -> Payload:
        """A Live Activity update payload (``event: update``).

        Args:
            content_state: The new ``ContentState``.
            timestamp: When this state was produced; older updates are ignored by the device.
            alert: Optional alert to light up the screen.
            stale_date: When the content becomes outdated.
            relevance_score: 0.0-1.0, orders several activities.
            dismissal_date: When the activity leaves the Lock Screen after ending.
            sound: Optional sound for the alert.
            custom: Custom top-level keys.

        Raises:
            InvalidNotificationError: A value breaks one of Apple's rules.
        """
        return cls(
            event=LiveActivityEvent.UPDATE,
            content_state=content_state,
            timestamp=timestamp,
            alert=alert,
            sound=sound,
            stale_date=stale_date,
            relevance_score=relevance_score,
            dismissal_date=dismissal_date,
            custom=custom if custom is not None else {},
        )

    @classmethod
    def live_activity_end(
        cls,
        *,
        content_state: Mapping[str, Any],
        timestamp: int | datetime,
        dismissal_date: int | datetime | None = None,
        alert: str | Alert | None = None,
        stale_date: int | datetime | None = None,
        relevance_score: float | None = None,
        sound: str | Sound | None = None,
        custom: Mapping[str, Any] | None = None,
    ) -> Payload:
        """A Live Activity end payload (``event: end``).

        Args:
            content_state: The final ``ContentState``.
            timestamp: When this state was produced.
            dismissal_date: When the ended activity leaves the Lock Screen (a past time
                removes it at once; omitted, the system keeps it up to four hours).
            alert: Optional alert.
            stale_date: When the content becomes outdated.
            relevance_score: 0.0-1.0, orders several activities.
            sound: Optional sound for the alert.
            custom: Custom top-level keys.

        Raises:
            InvalidNotificationError: A value breaks one of Apple's rules.
        """
        return cls(
            event=LiveActivityEvent.END,
            content_state=content_state,
            timestamp=timestamp,
            dismissal_date=dismissal_date,
            alert=alert,
            sound=sound,
            stale_date=stale_date,
            relevance_score=relevance_score,
            custom=custom if custom is not None else {},
        )
