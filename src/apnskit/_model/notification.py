"""The notification model: :class:`Notification`, :class:`Payload` and their parts.

Every rule here comes from Apple's "Sending notification requests to APNs"
(https://developer.apple.com/documentation/usernotifications/sending-notification-requests-to-apns)
and "Generating a remote notification"
(https://developer.apple.com/documentation/usernotifications/generating-a-remote-notification),
plus "Starting and updating Live Activities with ActivityKit push notifications" for the Live
Activity keys.

Theory of operation: a :class:`Notification` validates itself in ``__post_init__`` and
precomputes what the HTTP/2 core sends (``body``, ``path``, ``headers``), so a bad notification
cannot exist and the core never re-serializes. Construction is on the hot path of every send, so
the dict-payload path avoids enum calls, regex compilation and ``json.dumps`` keyword handling
(a shared encoder is built once at import).
"""

from __future__ import annotations

import enum
import json
import math
import re
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import KW_ONLY, dataclass, field, fields
from datetime import datetime
from typing import Any, ClassVar

from apnskit._errors import InvalidNotificationError

__all__ = [
    "Alert",
    "InterruptionLevel",
    "LiveActivityEvent",
    "Notification",
    "Payload",
    "Priority",
    "PushType",
    "Sound",
]


# --------------------------------------------------------------------------------------------
# Enums


class PushType(str, enum.Enum):
    """The value of the ``apns-push-type`` header, with the topic suffix and size limit it needs.

    ``PushType("voip")`` looks a member up by its header value.
    """

    ALERT = "alert"
    BACKGROUND = "background"
    LOCATION = "location"
    VOIP = "voip"
    COMPLICATION = "complication"
    FILEPROVIDER = "fileprovider"
    MDM = "mdm"
    LIVEACTIVITY = "liveactivity"
    PUSHTOTALK = "pushtotalk"
    WIDGETS = "widgets"
    CONTROLS = "controls"

    @property
    def topic_suffix(self) -> str:
        """What ``apns-topic`` must end with for this push type.

        ``""`` when the topic is the bare bundle ID (alert, background) or, for MDM, the
        certificate's UID.
        """
        return _TOPIC_SUFFIXES[self]

    @property
    def max_payload_size(self) -> int:
        """The largest payload APNs accepts for this push type, in bytes."""
        # VoIP is the one push type with a larger limit, per Apple's request page.
        return 5120 if self is PushType.VOIP else 4096

    def __str__(self) -> str:
        return str(self.value)


# Topic suffixes from Apple's "Sending notification requests to APNs" (apns-topic header).
_TOPIC_SUFFIXES: dict[PushType, str] = {
    PushType.ALERT: "",
    PushType.BACKGROUND: "",
    PushType.LOCATION: ".location-query",
    PushType.VOIP: ".voip",
    PushType.COMPLICATION: ".complication",
    PushType.FILEPROVIDER: ".pushkit.fileprovider",
    PushType.MDM: "",
    PushType.LIVEACTIVITY: ".push-type.liveactivity",
    PushType.PUSHTOTALK: ".voip-ptt",
    PushType.WIDGETS: ".push-type.widgets",
    PushType.CONTROLS: ".push-type.controls",
}


class Priority(enum.IntEnum):
    """The value of the ``apns-priority`` header."""

    IMMEDIATE = 10
    """Deliver now (APNs' default). Not allowed for a background-only payload."""
    CONSIDERATE = 5
    """Deliver with the device's power use in mind; required for background pushes."""
    LOW = 1
    """Lowest: the device may batch or delay delivery a long time."""


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
# Lookup tables for the hot path (dict lookups instead of Enum calls).

# A str-enum member hashes and compares like its value, so one table serves both spellings.
_PUSH_TYPE_BY_VALUE: dict[str, PushType] = {m.value: m for m in PushType}
_PRIORITY_BY_VALUE: dict[int, Priority] = {int(m): m for m in Priority}
_PRIORITY_HEADER: dict[int, str] = {int(m): str(int(m)) for m in Priority}
# For alert/background/mdm the topic is the bare bundle ID: a topic ending in another type's
# suffix means the push type and topic disagree (APNs answers DeviceTokenNotForTopic/BadTopic).
_ALL_SUFFIXES: tuple[str, ...] = tuple(m.topic_suffix for m in PushType if m.topic_suffix)

# Per push type, plain values read on every Notification: an enum member's .value and
# properties go through descriptors that cost more than a dict lookup.
_PUSH_TYPE_HEADER: dict[PushType, str] = {m: m.value for m in PushType}
_MAX_PAYLOAD: dict[PushType, int] = {m: m.max_payload_size for m in PushType}
# (topic, push type) pairs already found valid: most applications send to one or two topics,
# so the string checks run once per pair. Bounded: cleared when it grows past the limit.
_VALID_TOPICS: set[tuple[str, PushType]] = set()
_VALID_TOPICS_MAX = 1024

_HEX_RE = re.compile(r"[0-9a-fA-F]+")
_UUID_RE = re.compile(
    r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
)

# Compact UTF-8 JSON: non-ASCII text counts its real UTF-8 bytes toward the size limit instead
# of the six-byte \uXXXX escapes; NaN/Infinity are not JSON. Built once because json.dumps with
# keyword arguments constructs a new encoder on every call.
_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False)
_encode = _ENCODER.encode


def _make_one_shot_encoder() -> Any:
    """The C encoder ``JSONEncoder.encode`` builds on every call, built once (or None).

    Same settings as ``_ENCODER``. ``markers`` is None (no shared circular-reference table,
    which would make two threads encoding one shared payload dict see a false cycle): a
    payload that contains itself ends in RecursionError, which ``_serialize`` reports as a
    circular reference.
    """
    make = getattr(json.encoder, "c_make_encoder", None)
    if make is None:
        return None
    try:
        return make(
            None,
            _ENCODER.default,
            json.encoder.encode_basestring,
            None,
            ":",
            ",",
            False,
            False,
            False,
        )
    except TypeError:  # another interpreter's signature: use the public path
        return None


_c_encode = _make_one_shot_encoder()

#: Largest epoch-seconds value accepted (9999-12-31T23:59:59Z). Anything larger is almost
#: always milliseconds by mistake.
_MAX_EPOCH = 253_402_300_799

#: apns-collapse-id limit, in bytes (Apple: "must not exceed 64 bytes").
_MAX_COLLAPSE_ID_BYTES = 64


# --------------------------------------------------------------------------------------------
# Small validators shared by the dataclasses


def _fail(field_name: str, message: str) -> InvalidNotificationError:
    return InvalidNotificationError(field_name, message)


def _epoch(field_name: str, value: object) -> int:
    """Return ``value`` (int epoch seconds or aware datetime) as int epoch seconds."""
    if isinstance(value, datetime):
        if value.tzinfo is None or value.tzinfo.utcoffset(value) is None:
            raise _fail(
                field_name,
                f"{value.isoformat()} is a naive datetime; pass a timezone-aware datetime "
                "(e.g. with tzinfo=timezone.utc) or int epoch seconds",
            )
        seconds = math.floor(value.timestamp())
    elif isinstance(value, int) and not isinstance(value, bool):
        seconds = int(value)
    else:
        raise _fail(
            field_name,
            f"{type(value).__name__} {value!r} is not a time; pass int epoch seconds "
            "or a timezone-aware datetime",
        )
    if seconds < 0:
        raise _fail(field_name, f"{seconds} is negative; epoch seconds must be 0 or more")
    if seconds > _MAX_EPOCH:
        raise _fail(
            field_name,
            f"{seconds} is after the year 9999; APNs wants epoch seconds, not milliseconds",
        )
    return seconds


def _opt_str(field_name: str, value: object, *, allow_empty: bool = False) -> None:
    if value is None:
        return
    if not isinstance(value, str):
        raise _fail(field_name, f"{type(value).__name__} {value!r} is not a string")
    if not allow_empty and not value:
        raise _fail(field_name, "must not be an empty string; leave it as None to omit it")


def _opt_str_tuple(field_name: str, value: object) -> tuple[str, ...] | None:
    if value is None:
        return None
    # A bare string is a Sequence too; ["a", "b"] was almost certainly meant.
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
        raise _fail(field_name, f"{type(value).__name__} {value!r} is not a list of strings")
    for item in value:
        if not isinstance(item, str):
            raise _fail(field_name, f"item {item!r} ({type(item).__name__}) is not a string")
    return tuple(value)


def _opt_bool(field_name: str, value: object) -> None:
    if not isinstance(value, bool):
        raise _fail(field_name, f"{type(value).__name__} {value!r} must be True or False")


def _opt_mapping(field_name: str, value: object) -> dict[str, Any] | None:
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise _fail(field_name, f"{type(value).__name__} is not a dict")
    for key in value:
        if not isinstance(key, str):
            raise _fail(field_name, f"key {key!r} ({type(key).__name__}) is not a string")
    return dict(value)


def _unit_interval(field_name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _fail(field_name, f"{type(value).__name__} {value!r} is not a number")
    if not 0.0 <= value <= 1.0:  # also rejects NaN
        raise _fail(field_name, f"{value!r} is outside 0.0-1.0")
    return value


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


@dataclass(frozen=True, slots=True, kw_only=True)
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

    def __post_init__(self) -> None:
        for name, _ in _ALERT_KEYS:
            value = getattr(self, name)
            if name in _ALERT_ARGS:
                object.__setattr__(self, name, _opt_str_tuple(f"payload.alert.{name}", value))
            else:
                _opt_str(f"payload.alert.{name}", value, allow_empty=True)

    def to_dict(self) -> dict[str, Any]:
        """Return the alert as Apple's dictionary, with hyphenated keys and no ``None`` values."""
        out: dict[str, Any] = {}
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
                raise _fail("payload.alert", f"unknown alert key {key!r}")
            kwargs[by_key[key]] = value
        return cls(**kwargs)


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
        _opt_str("payload.sound.name", self.name)
        if self.name is None:
            raise _fail("payload.sound.name", "is required")
        _opt_bool("payload.sound.critical", self.critical)
        if self.volume is not None:
            _unit_interval("payload.sound.volume", self.volume)

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
            raise _fail("payload.sound", f"unknown sound key(s) {sorted(unknown)!r}")
        critical = data.get("critical", 0)
        if critical not in (0, 1) or isinstance(critical, float):
            raise _fail("payload.sound.critical", f"{critical!r} must be 0 or 1")
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


@dataclass(frozen=True, slots=True, kw_only=True)
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

    def __post_init__(self) -> None:
        setattr_ = object.__setattr__
        alert = self.alert
        if alert is not None and not isinstance(alert, (str, Alert)):
            raise _fail("payload.alert", f"{type(alert).__name__} is not a string or apnskit.Alert")
        badge = self.badge
        if badge is not None and (isinstance(badge, bool) or not isinstance(badge, int)):
            raise _fail("payload.badge", f"{type(badge).__name__} {badge!r} is not an int")
        if badge is not None and badge < 0:
            raise _fail("payload.badge", f"{badge} is negative; use 0 to clear the badge")
        sound = self.sound
        if sound is not None:
            if not isinstance(sound, (str, Sound)):
                raise _fail(
                    "payload.sound", f"{type(sound).__name__} is not a string or apnskit.Sound"
                )
            if isinstance(sound, str) and not sound:
                raise _fail("payload.sound", "must not be empty; use 'default' or a file name")
        for name in ("thread_id", "category", "target_content_id", "filter_criteria"):
            _opt_str(f"payload.{name}", getattr(self, name), allow_empty=True)
        for name in ("content_available", "mutable_content", "input_push_token", "content_changed"):
            _opt_bool(f"payload.{name}", getattr(self, name))
        level = self.interruption_level
        if level is not None:
            try:
                setattr_(self, "interruption_level", InterruptionLevel(level))
            except ValueError:
                raise _fail(
                    "payload.interruption_level",
                    f"{level!r} is not one of passive, active, time-sensitive, critical",
                ) from None
        if self.relevance_score is not None:
            _unit_interval("payload.relevance_score", self.relevance_score)
        setattr_(self, "url_args", _opt_str_tuple("payload.url_args", self.url_args))
        for name in ("timestamp", "stale_date", "dismissal_date"):
            value = getattr(self, name)
            if value is not None:
                setattr_(self, name, _epoch(f"payload.{name}", value))
        setattr_(self, "content_state", _opt_mapping("payload.content_state", self.content_state))
        setattr_(self, "attributes", _opt_mapping("payload.attributes", self.attributes))
        _opt_str("payload.attributes_type", self.attributes_type)
        _opt_str("payload.input_push_channel", self.input_push_channel)
        custom = _opt_mapping("payload.custom", self.custom)
        if custom is None:
            raise _fail("payload.custom", "must be a dict (use {} for none)")
        if "aps" in custom:
            raise _fail(
                "payload.custom",
                "a custom key named 'aps' would replace Apple's dictionary; use the Payload "
                "fields for aps keys",
            )
        setattr_(self, "custom", custom)
        self._check_live_activity()

    def _check_live_activity(self) -> None:
        event = self.event
        if event is None:
            for name in _LIVE_ACTIVITY_FIELDS:
                value = getattr(self, name)
                if value is not None and value is not False:
                    raise _fail(
                        f"payload.{name}",
                        "is a Live Activity key and needs event='start', 'update' or 'end'",
                    )
            return
        try:
            event = LiveActivityEvent(event)
        except ValueError:
            raise _fail("payload.event", f"{event!r} is not one of start, update, end") from None
        object.__setattr__(self, "event", event)
        if self.content_state is None:
            raise _fail("payload.content_state", f"a Live Activity {event} push needs it")
        if self.timestamp is None:
            raise _fail("payload.timestamp", f"a Live Activity {event} push needs it")
        if event is LiveActivityEvent.START:
            if self.attributes_type is None:
                raise _fail("payload.attributes_type", "a Live Activity start push needs it")
            if self.attributes is None:
                raise _fail("payload.attributes", "a Live Activity start push needs it")
        else:
            for name in _START_ONLY_FIELDS:
                value = getattr(self, name)
                if value is not None and value is not False:
                    raise _fail(
                        f"payload.{name}",
                        f"is only allowed with event 'start', not {event.value!r}",
                    )

    def to_dict(self) -> dict[str, Any]:
        """Return the payload as the JSON object APNs expects: ``{"aps": {...}, **custom}``."""
        aps: dict[str, Any] = {}
        for name, key in _PAYLOAD_KEYS:
            value = getattr(self, name)
            if value is None or value is False:
                continue
            if value is True:
                # Apple spells these flags as 1, except content-changed, documented as true.
                value = True if name == "content_changed" else 1
            elif isinstance(value, (Alert, Sound)):
                value = value.to_dict()
            elif isinstance(value, enum.Enum):
                value = value.value
            elif name == "url_args":
                value = list(value)
            elif isinstance(value, dict):
                value = dict(value)
            aps[key] = value
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
            raise _fail("payload", f"{type(data).__name__} is not a dict")
        aps = data.get("aps", {})
        if not isinstance(aps, Mapping):
            raise _fail("payload.aps", f"{type(aps).__name__} is not a dict")
        kwargs: dict[str, Any] = {}
        for key, raw in aps.items():
            name = _FIELD_BY_APS_KEY.get(key)
            if name is None:
                raise _fail(
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
                    raise _fail(f"payload.{name}", f"{raw!r} must be 0 or 1")
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


# --------------------------------------------------------------------------------------------
# Notification


def _find_unserializable(value: object, path: str, seen: set[int]) -> str | None:
    """Describe the first value under ``value`` that JSON cannot encode, or None."""
    if value is None or isinstance(value, (str, bool, int)):
        return None
    if isinstance(value, float):
        return None if math.isfinite(value) else f"{path} is {value!r}, which JSON cannot encode"
    if isinstance(value, (dict, list, tuple)):
        if id(value) in seen:
            return f"{path} contains itself (a circular reference)"
        seen.add(id(value))
        items = value.items() if isinstance(value, dict) else enumerate(value)
        for key, item in items:
            if isinstance(value, dict) and not isinstance(key, (str, int, float, bool, type(None))):
                return f"{path} has a key of type {type(key).__name__}, which JSON cannot encode"
            found = _find_unserializable(item, f"{path}[{key!r}]", seen)
            if found is not None:
                return found
        seen.discard(id(value))
        return None
    return f"{path} is of type {type(value).__name__}, which is not JSON-serializable"


def _serialize(obj: dict[str, Any]) -> bytes:
    try:
        if _c_encode is not None:
            return "".join(_c_encode(obj, 0)).encode()
        return _encode(obj).encode()
    except (TypeError, ValueError, RecursionError) as exc:
        where = _find_unserializable(obj, "payload", set()) or str(exc)
        raise _fail("payload", f"cannot be encoded as JSON: {where}") from None


def _check_topic(topic: object, resolved: PushType) -> None:
    """Check ``topic`` for push type ``resolved``; remember it when valid."""
    if type(topic) is not str or not topic:
        raise _fail("topic", "is required: the app's bundle ID (plus the push type's suffix)")
    if not (topic.isascii() and topic.isprintable()) or " " in topic:
        raise _fail("topic", f"{topic!r} must be printable ASCII without spaces")
    suffix = resolved.topic_suffix
    if suffix:
        if not topic.endswith(suffix) or len(topic) == len(suffix):
            raise _fail(
                "topic",
                f"{topic!r} must be the bundle ID followed by {suffix!r} for "
                f"{resolved.value} pushes",
            )
    elif topic.endswith(_ALL_SUFFIXES):
        other = next(s for s in _ALL_SUFFIXES if topic.endswith(s))
        raise _fail(
            "topic",
            f"{topic!r} ends with {other!r}, which belongs to another push type; "
            f"{resolved.value} pushes use the bare bundle ID",
        )
    if len(_VALID_TOPICS) >= _VALID_TOPICS_MAX:
        _VALID_TOPICS.clear()
    _VALID_TOPICS.add((topic, resolved))


@dataclass(frozen=True, slots=True, repr=False)
class Notification:
    """One push notification to one device, validated and ready to send.

    Construction checks every rule APNs would otherwise reject the request for, and
    precomputes what the HTTP/2 core sends: :attr:`body`, :attr:`path` and :attr:`headers`.
    The body is serialized once here; mutating a dict payload afterwards does not change it.

    Args:
        device_token: The device token as hex (any case; stored lowercase).
        payload: A :class:`Payload`, or a plain dict (unknown aps keys pass through).
        topic: The ``apns-topic``: the bundle ID plus the suffix the push type needs.
        push_type: The ``apns-push-type``. Inferred when omitted: ``liveactivity`` for a
            payload with an ``event``, ``background`` for content-available without alert,
            badge or sound, otherwise ``alert``.
        priority: The ``apns-priority`` (10, 5 or 1). Omitted, no header is sent (APNs uses
            10) except for background pushes, which get 5 as Apple requires.
        expiration: ``apns-expiration``: epoch seconds or an aware datetime; ``0`` means try
            once and do not store.
        collapse_id: ``apns-collapse-id``, at most 64 UTF-8 bytes.
        apns_id: ``apns-id``, a UUID (any case; stored lowercase). APNs makes one if omitted.

    Raises:
        InvalidNotificationError: A field breaks a rule; the message names the field.
    """

    device_token: str
    """The device token, lowercase hex."""
    payload: Payload | dict[str, Any]
    """The payload as given."""
    _: KW_ONLY
    topic: str
    """The ``apns-topic`` header."""
    push_type: PushType | None = None
    """The push type as given (normalized to :class:`PushType`), or None to infer it."""
    priority: Priority | None = None
    """The priority as given (normalized to :class:`Priority`), or None."""
    expiration: int | datetime | None = None
    """Expiration as int epoch seconds (a datetime is converted), or None."""
    collapse_id: str | None = None
    """The ``apns-collapse-id`` header, or None."""
    apns_id: str | uuid.UUID | None = None
    """The ``apns-id`` as a lowercase UUID string, or None."""

    body: bytes = field(init=False, compare=False)
    """The payload serialized as compact UTF-8 JSON."""
    path: str = field(init=False, compare=False)
    """The request path, ``/3/device/<token>``."""
    headers: tuple[tuple[str, str], ...] = field(init=False, compare=False)
    """APNs request headers (no authorization, no pseudo-headers)."""
    resolved_push_type: PushType = field(init=False, compare=False)
    """The push type actually sent: :attr:`push_type` or the inferred one."""

    _DEFAULT_BACKGROUND_PRIORITY: ClassVar[str] = "5"

    def __post_init__(self) -> None:
        setattr_ = object.__setattr__

        # -- device token: hex of even length; the length itself is Apple's to change.
        token = self.device_token
        if type(token) is not str or _HEX_RE.fullmatch(token) is None or len(token) % 2:
            raise _bad_token(token)
        token = token.lower()
        setattr_(self, "device_token", token)

        # -- payload and inferred push type
        payload = self.payload
        if isinstance(payload, Payload):
            body = _serialize(payload.to_dict())
            if payload.event is not None:
                inferred = PushType.LIVEACTIVITY
            elif payload.is_background_only:
                inferred = PushType.BACKGROUND
            else:
                inferred = PushType.ALERT
        elif isinstance(payload, dict):
            aps = payload.get("aps")
            inferred = PushType.ALERT
            if aps is not None:
                if not isinstance(aps, dict):
                    raise _fail("payload", f"'aps' is a {type(aps).__name__}, not a dict")
                if "event" in aps:
                    inferred = PushType.LIVEACTIVITY
                elif (
                    aps.get("content-available")
                    and "alert" not in aps
                    and "badge" not in aps
                    and "sound" not in aps
                ):
                    inferred = PushType.BACKGROUND
            body = _serialize(payload)
        else:
            raise _fail("payload", f"{type(payload).__name__} is not a dict or apnskit.Payload")

        push_type: object = self.push_type
        if push_type is None:
            resolved = inferred
        else:
            given = _PUSH_TYPE_BY_VALUE.get(push_type) if isinstance(push_type, str) else None
            if given is None:
                raise _fail(
                    "push_type",
                    f"{push_type!r} is not an APNs push type; use one of "
                    + ", ".join(_PUSH_TYPE_BY_VALUE),
                )
            resolved = given
            setattr_(self, "push_type", resolved)
            if inferred is PushType.LIVEACTIVITY and resolved is not PushType.LIVEACTIVITY:
                # Apple: the push type must match the payload; an ActivityKit payload (one
                # with an "event") only reaches the Live Activity as a liveactivity push.
                raise _fail(
                    "push_type",
                    f"{resolved.value!r} does not match a Live Activity payload (it has an "
                    "'event'); use 'liveactivity' or leave push_type out",
                )
        setattr_(self, "resolved_push_type", resolved)

        limit = _MAX_PAYLOAD[resolved]
        if len(body) > limit:
            raise _fail(
                "payload",
                f"{len(body)} bytes is over the {limit}-byte limit for {resolved.value} pushes",
            )
        setattr_(self, "body", body)

        # -- topic and its push-type suffix
        topic = self.topic
        if type(topic) is not str or (topic, resolved) not in _VALID_TOPICS:
            _check_topic(topic, resolved)
        headers: list[tuple[str, str]] = [
            ("apns-push-type", _PUSH_TYPE_HEADER[resolved]),
            ("apns-topic", topic),
        ]

        # -- priority
        priority: object = self.priority
        if priority is not None:
            if isinstance(priority, bool) or not isinstance(priority, int):
                raise _fail("priority", f"{type(priority).__name__} {priority!r} is not 1, 5 or 10")
            normalized = _PRIORITY_BY_VALUE.get(priority)
            if normalized is None:
                raise _fail("priority", f"{priority!r} is not 1, 5 or 10")
            if normalized == 10 and resolved is PushType.BACKGROUND:
                # Apple: "it's an error to specify a priority of 10" for background pushes.
                raise _fail("priority", "10 is not allowed for background pushes; use 5 or 1")
            setattr_(self, "priority", normalized)
            headers.append(("apns-priority", _PRIORITY_HEADER[priority]))
        elif resolved is PushType.BACKGROUND:
            # APNs defaults to 10, which it rejects for background pushes: send 5 explicitly.
            headers.append(("apns-priority", self._DEFAULT_BACKGROUND_PRIORITY))

        # -- expiration
        expiration = self.expiration
        if expiration is not None:
            expiration = _epoch("expiration", expiration)
            setattr_(self, "expiration", expiration)
            headers.append(("apns-expiration", str(expiration)))

        # -- collapse id
        collapse_id = self.collapse_id
        if collapse_id is not None:
            if type(collapse_id) is not str:
                raise _fail("collapse_id", f"{type(collapse_id).__name__} is not a string")
            try:
                size = len(collapse_id.encode())
            except UnicodeEncodeError:
                raise _fail(
                    "collapse_id", "contains a lone surrogate; UTF-8 cannot encode it"
                ) from None
            if not size or size > _MAX_COLLAPSE_ID_BYTES:
                raise _fail(
                    "collapse_id",
                    f"{size} bytes; it must be 1 to {_MAX_COLLAPSE_ID_BYTES} bytes of UTF-8",
                )
            if not collapse_id.isprintable():
                raise _fail("collapse_id", "must not contain control characters")
            headers.append(("apns-collapse-id", collapse_id))

        # -- apns id
        apns_id = self.apns_id
        if apns_id is not None:
            apns_id = _check_apns_id(apns_id)
            setattr_(self, "apns_id", apns_id)
            headers.append(("apns-id", apns_id))

        setattr_(self, "headers", tuple(headers))
        setattr_(self, "path", "/3/device/" + token)

    def to_dict(self) -> dict[str, Any]:
        """Return the notification as a JSON-safe dict; :meth:`from_dict` is its inverse.

        Keys are the constructor's argument names: ``device_token``, ``payload`` (the JSON
        object, also when a :class:`Payload` was given), ``topic``, and ``push_type`` (its
        header value), ``priority``, ``expiration`` (epoch seconds), ``collapse_id`` and
        ``apns_id`` when they are set. A push type left to inference stays out, so the round
        trip gives back a notification with the same body and headers (equal to this one when
        its payload is a dict). Used to put notifications on a task queue
        (:mod:`apnskit.contrib.celery`) and in JSONL files.
        """
        payload = self.payload
        out: dict[str, Any] = {
            "device_token": self.device_token,
            # The dict form of a Payload is what was serialized into the body, so the
            # notification rebuilt from it sends the same bytes.
            "payload": payload.to_dict() if isinstance(payload, Payload) else payload,
            "topic": self.topic,
        }
        if self.push_type is not None:
            out["push_type"] = PushType(self.push_type).value
        if self.priority is not None:
            out["priority"] = int(self.priority)
        if self.expiration is not None:
            # __post_init__ turned a datetime into int epoch seconds.
            out["expiration"] = self.expiration
        if self.collapse_id is not None:
            out["collapse_id"] = self.collapse_id
        if self.apns_id is not None:
            out["apns_id"] = str(self.apns_id)
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Notification:
        """Build a notification from the dict :meth:`to_dict` makes (e.g. read from JSON).

        The payload comes back as a plain dict; everything is validated as by the
        constructor.

        Args:
            data: ``device_token``, ``payload`` and ``topic``, and optionally ``push_type``,
                ``priority``, ``expiration``, ``collapse_id`` and ``apns_id`` (a missing or
                ``None`` optional key means unset).

        Raises:
            InvalidNotificationError: ``data`` is not a dict, has a key that is not one of
                these, lacks a required one, or a value breaks a rule; the error names the
                field.
        """
        if not isinstance(data, Mapping):
            raise _fail("notification", f"{type(data).__name__} is not a dict")
        unknown = [key for key in data if key not in _DICT_KEYS]
        if unknown:
            raise _fail(
                str(unknown[0]),
                "is not a notification field; allowed: " + ", ".join(_DICT_KEYS),
            )
        for key in ("device_token", "payload", "topic"):
            if data.get(key) is None:
                raise _fail(key, "is required")
        kwargs = {key: data.get(key) for key in _DICT_OPTIONAL_KEYS}
        return cls(data["device_token"], data["payload"], topic=data["topic"], **kwargs)

    def with_device_token(self, device_token: str) -> Notification:
        """Return a copy for another device, without re-serializing or re-checking the rest.

        The fast way to send one payload to many devices (a campaign's chunk is rebuilt this
        way on the worker).

        Args:
            device_token: The other device's token (hex, any case; stored lowercase).

        Raises:
            InvalidNotificationError: ``device_token`` is not an even number of hex digits.
        """
        token = device_token
        if type(token) is not str or _HEX_RE.fullmatch(token) is None or len(token) % 2:
            raise _bad_token(token)
        token = token.lower()
        clone = object.__new__(Notification)
        for f in _NOTIFICATION_FIELDS:
            object.__setattr__(clone, f, getattr(self, f))
        object.__setattr__(clone, "device_token", token)
        object.__setattr__(clone, "path", "/3/device/" + token)
        return clone

    def with_apns_id(self, apns_id: str | uuid.UUID | None) -> Notification:
        """Return a copy with another ``apns-id``, without re-serializing the payload.

        Args:
            apns_id: A UUID (any case), or None to let APNs assign one.

        Raises:
            InvalidNotificationError: ``apns_id`` is not a canonical UUID.
        """
        normalized = None if apns_id is None else _check_apns_id(apns_id)
        clone = object.__new__(Notification)
        for f in _NOTIFICATION_FIELDS:
            object.__setattr__(clone, f, getattr(self, f))
        object.__setattr__(clone, "apns_id", normalized)
        headers = tuple(h for h in self.headers if h[0] != "apns-id")
        if normalized is not None:
            headers += (("apns-id", normalized),)
        object.__setattr__(clone, "headers", headers)
        return clone

    def __repr__(self) -> str:
        # getattr: a repr may be asked for while __post_init__ is still rejecting the object
        # (tracebacks, debuggers, hypothesis reports); it must not raise then.
        resolved = getattr(self, "resolved_push_type", None)
        given = self.push_type
        parts = [
            f"device_token={self.device_token!r}",
            f"topic={self.topic!r}",
            # What the attribute holds; an inferred type is shown apart, so that the repr never
            # claims a push_type the attribute does not have.
            f"push_type={given.value if isinstance(given, PushType) else given!r}",
        ]
        if given is None and resolved is not None:
            parts.append(f"resolved_push_type={resolved.value!r}")
        if self.apns_id is not None:
            parts.append(f"apns_id={self.apns_id!r}")
        body = getattr(self, "body", None)
        if body is not None:
            parts.append(f"body_bytes={len(body)}")
        return f"Notification({', '.join(parts)})"


_NOTIFICATION_FIELDS = tuple(f.name for f in fields(Notification))
# The keys of Notification.to_dict(), in the constructor's order.
_DICT_OPTIONAL_KEYS = ("push_type", "priority", "expiration", "collapse_id", "apns_id")
_DICT_KEYS = ("device_token", "payload", "topic", *_DICT_OPTIONAL_KEYS)


def _bad_token(token: object) -> InvalidNotificationError:
    if type(token) is not str:
        return _fail("device_token", f"{type(token).__name__} is not a hex string")
    if not token:
        return _fail("device_token", "is empty; pass the hex token the device registered")
    if token != token.strip():
        return _fail("device_token", "has surrounding whitespace; pass the bare hex token")
    if _HEX_RE.fullmatch(token) is None:
        return _fail("device_token", "contains characters other than hex digits 0-9a-f")
    return _fail("device_token", f"has {len(token)} hex digits; a token has an even number")


def _check_apns_id(apns_id: object) -> str:
    if isinstance(apns_id, uuid.UUID):
        return str(apns_id)
    if type(apns_id) is not str or _UUID_RE.fullmatch(apns_id) is None:
        raise _fail(
            "apns_id",
            f"{apns_id!r} is not a canonical UUID (8-4-4-4-12 hex digits with hyphens)",
        )
    return apns_id.lower()
