"""Field rules the model's classes share: how a broken rule is reported, and the rules themselves.

The notification (:mod:`apnskit._model.notification`), the payload
(:mod:`apnskit._model.payload`) and the broadcast requests (:mod:`apnskit._model.broadcast`)
check their fields against the same rules: epoch times, canonical UUIDs, topic suffixes,
compact JSON. This module holds them once, with public names, so that each class's validation
reads as a table of :class:`Rule` entries (field, check, message) applied by a small loop
rather than a branch per field.

Theory of operation: a :class:`Rule` names one field, a predicate that is true when the value
*breaks* the rule, and the message that says so. A class lists its rules in the order they are
checked, a field's rules together; a field's later rules may assume its earlier ones held (a
length rule after a type rule). A :class:`RuleTable` applies such a list to an object; the
notification's hot path instead tests each field with one combined expression and calls
:func:`broken_rule` only when that test fails, to find which rule was broken and say so (the
message names the field).

Rules that depend on two fields (a topic's suffix and the push type, priority 10 and a
background push, the payload's size limit) are written out where both fields are known.
"""

from __future__ import annotations

import json
import math
import re
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import datetime
from typing import Any, NamedTuple

from apnskit._errors import InvalidNotificationError

__all__ = [
    "ALL_SUFFIXES",
    "HEX_RE",
    "MAX_COLLAPSE_ID_BYTES",
    "MAX_EPOCH",
    "TOPIC_SUFFIXES",
    "UUID_RE",
    "Convert",
    "Rule",
    "RuleTable",
    "broken_rule",
    "canonical_uuid",
    "epoch",
    "fail",
    "serialize",
]

#: One or more hex digits, either case (device tokens).
HEX_RE = re.compile(r"[0-9a-fA-F]+")
#: A canonical UUID: 8-4-4-4-12 hex digits with hyphens, either case (``apns-id``,
#: ``apns-request-id``).
UUID_RE = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")

#: Largest epoch-seconds value accepted (9999-12-31T23:59:59Z). Anything larger is almost
#: always milliseconds by mistake.
MAX_EPOCH = 253_402_300_799

#: apns-collapse-id limit, in bytes (Apple: "must not exceed 64 bytes").
MAX_COLLAPSE_ID_BYTES = 64

#: What ``apns-topic`` must end with, per ``apns-push-type`` value ("" for the bare bundle ID:
#: alert and background; for MDM, the certificate's UID). From Apple's "Sending notification
#: requests to APNs" (the apns-topic header).
TOPIC_SUFFIXES: dict[str, str] = {
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
#: Every non-empty suffix. A bare-bundle-ID topic (or a broadcast's bundle ID) ending in one
#: means the push type and topic disagree (APNs answers DeviceTokenNotForTopic/BadTopic).
ALL_SUFFIXES: tuple[str, ...] = tuple(s for s in TOPIC_SUFFIXES.values() if s)


# --------------------------------------------------------------------------------------------
# Rules and how they are applied


def fail(field_name: str, message: str) -> InvalidNotificationError:
    """The error for ``field_name`` breaking a rule (to ``raise``); the message names the rule."""
    return InvalidNotificationError(field_name, message)


class Rule(NamedTuple):
    """One rule one field must keep.

    Attributes:
        field: The attribute the rule reads.
        broken: True (truthy) when the value breaks the rule. It may assume the field's
            earlier rules in the same table held.
        message: What is wrong: a :meth:`str.format` template (``{value!r}`` and ``{type}``,
            the value's type name), or a function of the value for the messages that describe
            a part of it.
    """

    field: str
    broken: Callable[[Any], object]
    message: str | Callable[[Any], str]

    def error(self, value: object, prefix: str = "") -> InvalidNotificationError:
        """The error for ``value`` breaking this rule, for field ``prefix + field``."""
        message = self.message
        if isinstance(message, str):
            text = message.format(value=value, type=type(value).__name__)
        else:
            text = message(value)
        return fail(prefix + self.field, text)


#: Turns a checked value into the form a class stores: ``convert(field name, value)``. It may
#: check as it converts (:func:`epoch`), raising for the field it is given.
Convert = Callable[[str, Any], Any]


def _broken_by(rules: tuple[Rule, ...], value: object) -> bool:
    """Whether ``value`` breaks one of ``rules`` (checked in order, as a table does)."""
    try:
        return any(rule.broken(value) for rule in rules)
    except Exception:  # a rule that cannot even look at the value is broken by it
        return True


class RuleTable:
    """A class's rules in the order they are checked, and how its checked values are stored.

    :meth:`apply` reads each field once. A field at ``None`` (or ``False``) that breaks none
    of its rules, the common case for the many optional keys of a payload, is passed over
    without calling them: which fields those are is worked out here, once, from the rules.

    Args:
        rules: The rules; a field's rules stand together.
        conversions: Field name to :data:`Convert`, for the fields stored in another form
            (applied to a set value once its rules hold). A field with no rule is converted
            after the fields that have some, in this mapping's order.
    """

    __slots__ = ("_steps", "rules")

    def __init__(
        self, rules: Iterable[Rule], conversions: Mapping[str, Convert] | None = None
    ) -> None:
        self.rules: tuple[Rule, ...] = tuple(rules)
        """The rules, in order."""
        conversions = conversions or {}
        fields = dict.fromkeys([*(r.field for r in self.rules), *conversions])
        steps = []
        for name in fields:
            own = tuple(r for r in self.rules if r.field == name)
            convert = conversions.get(name)
            # None is never converted; False is, when the field has a conversion.
            none_breaks = _broken_by(own, None)
            false_breaks = convert is not None or _broken_by(own, False)
            steps.append((name, own, convert, none_breaks, false_breaks))
        self._steps = tuple(steps)

    def __iter__(self) -> Iterator[Rule]:
        return iter(self.rules)

    def __len__(self) -> int:
        return len(self.rules)

    def apply(self, obj: object, prefix: str = "") -> None:
        """Check ``obj``'s fields against the rules in order, then store converted values.

        Args:
            obj: The (frozen) object whose attributes the rules read.
            prefix: Put before each field name in the error (``"payload."``).

        Raises:
            InvalidNotificationError: The first broken rule, naming its field.
        """
        for name, rules, convert, none_breaks, false_breaks in self._steps:
            value = getattr(obj, name)
            if value is None:
                if not none_breaks:
                    continue
            elif value is False and not false_breaks:
                continue
            for rule in rules:
                if rule.broken(value):
                    raise rule.error(value, prefix)
            if convert is not None:
                object.__setattr__(obj, name, convert(prefix + name, value))


def broken_rule(
    rules: Iterable[Rule], field_name: str, value: object, prefix: str = ""
) -> InvalidNotificationError:
    """The error for the first of ``field_name``'s rules that ``value`` breaks.

    For a hot path that tests a field with one combined expression and needs the message only
    when that test fails. A value the combined test refused but no rule names is still
    refused, with a generic message (a combined test stricter than its table is a bug the
    rule tests catch).
    """
    for rule in rules:
        if rule.field == field_name and rule.broken(value):
            return rule.error(value, prefix)
    return fail(prefix + field_name, f"{value!r} is not valid")


# --------------------------------------------------------------------------------------------
# Rules several classes share


def epoch(field_name: str, value: object) -> int:
    """Return ``value`` (int epoch seconds or an aware datetime) as int epoch seconds.

    Raises:
        InvalidNotificationError: A naive datetime, not a time, negative, or after 9999.
    """
    if isinstance(value, datetime):
        if value.tzinfo is None or value.tzinfo.utcoffset(value) is None:
            raise fail(
                field_name,
                f"{value.isoformat()} is a naive datetime; pass a timezone-aware datetime "
                "(e.g. with tzinfo=timezone.utc) or int epoch seconds",
            )
        seconds = math.floor(value.timestamp())
    elif isinstance(value, int) and not isinstance(value, bool):
        seconds = int(value)
    else:
        raise fail(
            field_name,
            f"{type(value).__name__} {value!r} is not a time; pass int epoch seconds "
            "or a timezone-aware datetime",
        )
    if seconds < 0:
        raise fail(field_name, f"{seconds} is negative; epoch seconds must be 0 or more")
    if seconds > MAX_EPOCH:
        raise fail(
            field_name,
            f"{seconds} is after the year 9999; APNs wants epoch seconds, not milliseconds",
        )
    return seconds


def canonical_uuid(field_name: str, value: object) -> str:
    """Return ``value`` (a :class:`uuid.UUID` or a canonical UUID string) as lowercase text.

    Raises:
        InvalidNotificationError: Anything else.
    """
    if isinstance(value, uuid.UUID):
        return str(value)
    if type(value) is not str or UUID_RE.fullmatch(value) is None:
        raise fail(
            field_name,
            f"{value!r} is not a canonical UUID (8-4-4-4-12 hex digits with hyphens)",
        )
    return value.lower()


# --------------------------------------------------------------------------------------------
# Compact JSON

# Compact UTF-8 JSON: non-ASCII text counts its real UTF-8 bytes toward the size limit instead
# of the six-byte \uXXXX escapes; NaN/Infinity are not JSON. Built once because json.dumps with
# keyword arguments constructs a new encoder on every call.
_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False)
_encode = _ENCODER.encode


def _make_one_shot_encoder() -> Any:
    """The C encoder ``JSONEncoder.encode`` builds on every call, built once (or None).

    Same settings as ``_ENCODER``. ``markers`` is None (no shared circular-reference table,
    which would make two threads encoding one shared payload dict see a false cycle): a
    payload that contains itself ends in RecursionError, which :func:`serialize` reports as a
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


def serialize(obj: dict[str, Any]) -> bytes:
    """``obj`` as compact UTF-8 JSON, the body APNs receives.

    Raises:
        InvalidNotificationError: For field ``payload``, naming the first value JSON cannot
            encode (NaN, a set, a circular reference...).
    """
    try:
        if _c_encode is not None:
            return "".join(_c_encode(obj, 0)).encode()
        return _encode(obj).encode()
    except (TypeError, ValueError, RecursionError) as exc:
        where = _find_unserializable(obj, "payload", set()) or str(exc)
        raise fail("payload", f"cannot be encoded as JSON: {where}") from None
