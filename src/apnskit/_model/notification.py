"""The notification model: :class:`Notification`, :class:`PushType` and :class:`Priority`.

Every rule here comes from Apple's "Sending notification requests to APNs"
(https://developer.apple.com/documentation/usernotifications/sending-notification-requests-to-apns);
the payload's own rules are in :mod:`apnskit._model.payload`, the rules both share in
:mod:`apnskit._model.rules`.

Theory of operation: a :class:`Notification` validates itself in ``__post_init__`` and
precomputes what the HTTP/2 core sends (``body``, ``path``, ``headers``), so a bad notification
cannot exist and the core never re-serializes. Construction is on the hot path of every send, so
the dict-payload path avoids enum calls, regex compilation, ``json.dumps`` keyword handling (a
shared encoder is built once at import) and per-field loops: each field is tested with one
combined expression, and only when that fails is the field's entry in the rule table
(``NOTIFICATION_RULES``) walked to say which rule was broken.
"""

from __future__ import annotations

import enum
import uuid
from collections.abc import Mapping
from dataclasses import KW_ONLY, dataclass, field
from datetime import datetime
from typing import Any

from apnskit._model.payload import Payload
from apnskit._model.rules import (
    ALL_SUFFIXES,
    HEX_RE,
    MAX_COLLAPSE_ID_BYTES,
    TOPIC_SUFFIXES,
    Rule,
    broken_rule,
    canonical_uuid,
    epoch,
    fail,
    serialize,
)

__all__ = ["NOTIFICATION_RULES", "Notification", "Priority", "PushType"]


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
        return TOPIC_SUFFIXES[self.value]

    @property
    def max_payload_size(self) -> int:
        """The largest payload APNs accepts for this push type, in bytes."""
        # VoIP is the one push type with a larger limit, per Apple's request page.
        return 5120 if self is PushType.VOIP else 4096

    def __str__(self) -> str:
        return str(self.value)


class Priority(enum.IntEnum):
    """The value of the ``apns-priority`` header."""

    IMMEDIATE = 10
    """Deliver now (APNs' default). Not allowed for a background-only payload."""
    CONSIDERATE = 5
    """Deliver with the device's power use in mind; required for background pushes."""
    LOW = 1
    """Lowest: the device may batch or delay delivery a long time."""


# --------------------------------------------------------------------------------------------
# Lookup tables for the hot path (dict lookups instead of Enum calls).

# A str-enum member hashes and compares like its value, so one table serves both spellings.
_PUSH_TYPE_BY_VALUE: dict[str, PushType] = {m.value: m for m in PushType}
_PRIORITY_BY_VALUE: dict[int, Priority] = {int(m): m for m in Priority}
_PRIORITY_HEADER: dict[int, str] = {int(m): str(int(m)) for m in Priority}

# Per push type, plain values read on every Notification: an enum member's .value and
# properties go through descriptors that cost more than a dict lookup.
_PUSH_TYPE_HEADER: dict[PushType, str] = {m: m.value for m in PushType}
_MAX_PAYLOAD: dict[PushType, int] = {m: m.max_payload_size for m in PushType}
# (topic, push type) pairs already found valid: most applications send to one or two topics,
# so the string checks run once per pair. Bounded: cleared when it grows past the limit.
_VALID_TOPICS: set[tuple[str, PushType]] = set()
_VALID_TOPICS_MAX = 1024


def _has_lone_surrogate(text: str) -> bool:
    try:
        text.encode()
    except UnicodeEncodeError:
        return True
    return False


#: Each notification field's rules, in the order they are checked. ``__post_init__`` tests a
#: field with one combined expression and walks its rules here only when that fails, for the
#: message; an optional field is tested only when set. ``expiration`` and ``apns_id`` follow
#: the shared rules :func:`~apnskit._model.rules.epoch` and
#: :func:`~apnskit._model.rules.canonical_uuid`. The rules that tie two fields together (push
#: type and payload, topic suffix, background priority, size limit) are in ``__post_init__``
#: and ``_check_topic``.
NOTIFICATION_RULES: tuple[Rule, ...] = (
    # Hex of even length; the length itself is Apple's to change.
    Rule("device_token", lambda v: type(v) is not str, "{type} is not a hex string"),
    Rule("device_token", lambda v: not v, "is empty; pass the hex token the device registered"),
    Rule(
        "device_token",
        lambda v: v != v.strip(),
        "has surrounding whitespace; pass the bare hex token",
    ),
    Rule(
        "device_token",
        lambda v: HEX_RE.fullmatch(v) is None,
        "contains characters other than hex digits 0-9a-f",
    ),
    Rule(
        "device_token",
        lambda v: len(v) % 2,
        lambda v: f"has {len(v)} hex digits; a token has an even number",
    ),
    Rule(
        "payload",
        lambda v: not isinstance(v, (dict, Payload)),
        "{type} is not a dict or apnskit.Payload",
    ),
    Rule(
        "payload",
        lambda v: isinstance(v, dict) and not isinstance(v.get("aps"), (dict, type(None))),
        lambda v: f"'aps' is a {type(v['aps']).__name__}, not a dict",
    ),
    Rule(
        "push_type",
        lambda v: not isinstance(v, str) or v not in _PUSH_TYPE_BY_VALUE,
        lambda v: f"{v!r} is not an APNs push type; use one of " + ", ".join(_PUSH_TYPE_BY_VALUE),
    ),
    Rule(
        "topic",
        lambda v: type(v) is not str or not v,
        "is required: the app's bundle ID (plus the push type's suffix)",
    ),
    Rule(
        "topic",
        lambda v: not (v.isascii() and v.isprintable()) or " " in v,
        "{value!r} must be printable ASCII without spaces",
    ),
    Rule(
        "priority",
        lambda v: isinstance(v, bool) or not isinstance(v, int),
        "{type} {value!r} is not 1, 5 or 10",
    ),
    Rule("priority", lambda v: v not in _PRIORITY_BY_VALUE, "{value!r} is not 1, 5 or 10"),
    Rule("collapse_id", lambda v: type(v) is not str, "{type} is not a string"),
    Rule(
        "collapse_id",
        _has_lone_surrogate,
        "contains a lone surrogate; UTF-8 cannot encode it",
    ),
    Rule(
        "collapse_id",
        lambda v: not 0 < len(v.encode()) <= MAX_COLLAPSE_ID_BYTES,
        lambda v: (
            f"{len(v.encode())} bytes; it must be 1 to {MAX_COLLAPSE_ID_BYTES} bytes of UTF-8"
        ),
    ),
    Rule("collapse_id", lambda v: not v.isprintable(), "must not contain control characters"),
)


def _payload_push_type(payload: Payload) -> PushType:
    """The push type a :class:`Payload`'s content implies (when none is given)."""
    if payload.event is not None:
        return PushType.LIVEACTIVITY
    if payload.is_background_only:
        return PushType.BACKGROUND
    return PushType.ALERT


def _check_topic(topic: object, resolved: PushType) -> None:
    """Check ``topic`` for push type ``resolved``; remember it when valid."""
    if (
        type(topic) is not str
        or not (topic and topic.isascii() and topic.isprintable())
        or " " in topic
    ):
        raise broken_rule(NOTIFICATION_RULES, "topic", topic)
    suffix = resolved.topic_suffix
    if suffix:
        if not topic.endswith(suffix) or len(topic) == len(suffix):
            raise fail(
                "topic",
                f"{topic!r} must be the bundle ID followed by {suffix!r} for "
                f"{resolved.value} pushes",
            )
    elif topic.endswith(ALL_SUFFIXES):
        other = next(s for s in ALL_SUFFIXES if topic.endswith(s))
        raise fail(
            "topic",
            f"{topic!r} ends with {other!r}, which belongs to another push type; "
            f"{resolved.value} pushes use the bare bundle ID",
        )
    if len(_VALID_TOPICS) >= _VALID_TOPICS_MAX:
        _VALID_TOPICS.clear()
    _VALID_TOPICS.add((topic, resolved))


@dataclass(frozen=True, repr=False)
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

    def __init__(
        self,
        device_token: str,
        payload: Payload | dict[str, Any],
        *,
        topic: str,
        push_type: PushType | None = None,
        priority: Priority | None = None,
        expiration: int | datetime | None = None,
        collapse_id: str | None = None,
        apns_id: str | uuid.UUID | None = None,
    ) -> None:
        # Written out rather than generated: the dataclass __init__ of a frozen class calls
        # object.__setattr__ once per field (about 1,300 instructions each). Here the fields
        # go in one dict that becomes the instance's __dict__, and what validation computes
        # is stored into that dict directly. The given values are stored first, so that a
        # repr during a rejection shows them.
        state: dict[str, Any] = {
            "device_token": device_token,
            "payload": payload,
            "topic": topic,
            "push_type": push_type,
            "priority": priority,
            "expiration": expiration,
            "collapse_id": collapse_id,
            "apns_id": apns_id,
        }
        _set_attr(self, "__dict__", state)
        state["device_token"] = token = _checked_token(device_token)
        body, resolved = _checked_body(payload, push_type, state)
        state["resolved_push_type"] = resolved
        state["body"] = body
        if type(topic) is not str or (topic, resolved) not in _VALID_TOPICS:
            _check_topic(topic, resolved)
        state["path"] = "/3/device/" + token
        push_type_header = ("apns-push-type", _PUSH_TYPE_HEADER[resolved])
        if (
            priority is None
            and expiration is None
            and collapse_id is None
            and apns_id is None
            and resolved is not PushType.BACKGROUND
        ):
            # The common case: two headers, no list to build.
            state["headers"] = (push_type_header, ("apns-topic", topic))
        else:
            state["headers"] = _optional_headers(state, [push_type_header, ("apns-topic", topic)])

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
            raise fail("notification", f"{type(data).__name__} is not a dict")
        unknown = [key for key in data if key not in _DICT_KEYS]
        if unknown:
            raise fail(
                str(unknown[0]),
                "is not a notification field; allowed: " + ", ".join(_DICT_KEYS),
            )
        for key in ("device_token", "payload", "topic"):
            if data.get(key) is None:
                raise fail(key, "is required")
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
        token = _checked_token(device_token)
        clone = object.__new__(Notification)
        _set_attr(clone, "__dict__", {**self.__dict__, "device_token": token})
        clone.__dict__["path"] = "/3/device/" + token
        return clone

    def with_apns_id(self, apns_id: str | uuid.UUID | None) -> Notification:
        """Return a copy with another ``apns-id``, without re-serializing the payload.

        Args:
            apns_id: A UUID (any case), or None to let APNs assign one.

        Raises:
            InvalidNotificationError: ``apns_id`` is not a canonical UUID.
        """
        normalized = None if apns_id is None else canonical_uuid("apns_id", apns_id)
        headers = tuple(h for h in self.headers if h[0] != "apns-id")
        if normalized is not None:
            headers += (("apns-id", normalized),)
        clone = object.__new__(Notification)
        _set_attr(clone, "__dict__", {**self.__dict__, "apns_id": normalized, "headers": headers})
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


# The apns-priority sent for a background push given none.
_BACKGROUND_PRIORITY = "5"
# One call sets an instance's __dict__ (or a field) past the frozen dataclass's __setattr__.
_set_attr = object.__setattr__
_from_hex = bytes.fromhex


def _checked_token(token: object) -> str:
    """``token`` lowercased, or the error for the first token rule it breaks."""
    # bytes.fromhex() rejects anything but hex digit pairs, except that it skips whitespace:
    # two digits per byte means none was skipped. Quicker than the regular expression.
    try:
        if type(token) is str and len(_from_hex(token)) * 2 == len(token) and token:
            return token.lower()
    except ValueError:
        pass
    raise broken_rule(NOTIFICATION_RULES, "device_token", token)


def _checked_body(
    payload: object, push_type: object, state: dict[str, Any]
) -> tuple[bytes, PushType]:
    """The serialized payload and the push type sent (given, else the one it implies)."""
    if isinstance(payload, dict):
        aps = payload.get("aps")
        inferred = PushType.ALERT
        if aps is not None:
            if not isinstance(aps, dict):
                raise broken_rule(NOTIFICATION_RULES, "payload", payload)
            if "event" in aps:
                inferred = PushType.LIVEACTIVITY
            elif (
                aps.get("content-available")
                and "alert" not in aps
                and "badge" not in aps
                and "sound" not in aps
            ):
                inferred = PushType.BACKGROUND
        body = serialize(payload)
    elif isinstance(payload, Payload):
        body = serialize(payload.to_dict())
        inferred = _payload_push_type(payload)
    else:
        raise broken_rule(NOTIFICATION_RULES, "payload", payload)
    resolved = inferred if push_type is None else _given_push_type(push_type, inferred, state)
    limit = _MAX_PAYLOAD[resolved]
    if len(body) > limit:
        raise fail(
            "payload",
            f"{len(body)} bytes is over the {limit}-byte limit for {resolved.value} pushes",
        )
    return body, resolved


def _given_push_type(push_type: object, inferred: PushType, state: dict[str, Any]) -> PushType:
    """Check and normalize the push type the caller gave; it must fit the payload."""
    given = _PUSH_TYPE_BY_VALUE.get(push_type) if isinstance(push_type, str) else None
    if given is None:
        raise broken_rule(NOTIFICATION_RULES, "push_type", push_type)
    state["push_type"] = given
    if inferred is PushType.LIVEACTIVITY and given is not PushType.LIVEACTIVITY:
        # Apple: the push type must match the payload; an ActivityKit payload (one
        # with an "event") only reaches the Live Activity as a liveactivity push.
        raise fail(
            "push_type",
            f"{given.value!r} does not match a Live Activity payload (it has an "
            "'event'); use 'liveactivity' or leave push_type out",
        )
    return given


def _given_priority(priority: object, resolved: PushType, state: dict[str, Any]) -> str:
    """Check and normalize the priority the caller gave; return its header value."""
    normalized = (
        None
        if isinstance(priority, bool) or not isinstance(priority, int)
        else _PRIORITY_BY_VALUE.get(priority)
    )
    if normalized is None:
        raise broken_rule(NOTIFICATION_RULES, "priority", priority)
    if normalized == 10 and resolved is PushType.BACKGROUND:
        # Apple: "it's an error to specify a priority of 10" for background pushes.
        raise fail("priority", "10 is not allowed for background pushes; use 5 or 1")
    state["priority"] = normalized
    return _PRIORITY_HEADER[normalized]


def _optional_headers(
    state: dict[str, Any], headers: list[tuple[str, str]]
) -> tuple[tuple[str, str], ...]:
    """``headers`` plus those of the optional fields set in ``state`` (checked, normalized)."""
    resolved: PushType = state["resolved_push_type"]
    if state["priority"] is not None:
        headers.append(("apns-priority", _given_priority(state["priority"], resolved, state)))
    elif resolved is PushType.BACKGROUND:
        # APNs defaults to 10, which it rejects for background pushes: send 5 explicitly.
        headers.append(("apns-priority", _BACKGROUND_PRIORITY))
    expiration = state["expiration"]
    if expiration is not None:
        state["expiration"] = expiration = epoch("expiration", expiration)
        headers.append(("apns-expiration", str(expiration)))
    collapse_id = state["collapse_id"]
    if collapse_id is not None:
        # isprintable() is False for a lone surrogate, so encode() cannot fail after it.
        if not (
            type(collapse_id) is str
            and collapse_id.isprintable()
            and 0 < len(collapse_id.encode()) <= MAX_COLLAPSE_ID_BYTES
        ):
            raise broken_rule(NOTIFICATION_RULES, "collapse_id", collapse_id)
        headers.append(("apns-collapse-id", collapse_id))
    apns_id = state["apns_id"]
    if apns_id is not None:
        state["apns_id"] = apns_id = canonical_uuid("apns_id", apns_id)
        headers.append(("apns-id", apns_id))
    return tuple(headers)


# The keys of Notification.to_dict(), in the constructor's order.
_DICT_OPTIONAL_KEYS = ("push_type", "priority", "expiration", "collapse_id", "apns_id")
_DICT_KEYS = ("device_token", "payload", "topic", *_DICT_OPTIONAL_KEYS)
