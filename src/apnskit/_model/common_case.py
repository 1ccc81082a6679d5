"""The most common notification, checked and stored in one step (issue 13).

Theory of operation: most notifications are alike: a dict payload whose ``aps`` has an
``alert`` (so neither background nor a Live Activity), no optional header, to a topic the
process has already found valid for alert pushes. :func:`alert_state` checks such a
notification with the fewest steps and returns the fields :class:`~apnskit.Notification`
stores, or None for anything else, valid or not: that takes ``Notification``'s general path,
which checks every rule in order and names the one broken. So this module never raises, and
never words an error.

It is a module of its own so that the compiled build (mypyc, ``hatch_build.py``) can compile
this step while ``Notification`` stays an ordinary dataclass. The rules it applies are the
ones of :data:`apnskit._model.notification.NOTIFICATION_RULES`;
tests/models/test_models_fast_paths.py holds both to the same outcome.
"""

from __future__ import annotations

import binascii
from typing import Any, Final

from apnskit._errors import InvalidNotificationError
from apnskit._model.rules import serialize

__all__ = ["ALERT_MAX_PAYLOAD", "VALID_TOPICS", "VALID_TOPICS_MAX", "alert_state"]

#: (topic, push type header value) pairs already found valid, each with the two headers every
#: notification of that pair sends (``apns-push-type``, ``apns-topic``), built once and shared:
#: most applications send to one or two topics, so the string checks run once per pair, and
#: a notification holds no header tuples of its own (two objects fewer for the garbage
#: collector per notification in flight, issue 13). Bounded: cleared when it grows past
#: :data:`VALID_TOPICS_MAX`. A :class:`~apnskit.PushType` member hashes and compares as its
#: value, so a pair holding either spelling is found with the other.
VALID_TOPICS: Final[dict[tuple[str, str], tuple[tuple[str, str], tuple[str, str]]]] = {}
VALID_TOPICS_MAX: Final = 1024
#: The largest payload APNs accepts for an alert push, in bytes (Apple's request page; the
#: same as ``PushType.ALERT.max_payload_size``).
ALERT_MAX_PAYLOAD: Final = 4096

_a2b_hex: Final = binascii.a2b_hex


def alert_state(
    device_token: str, payload: dict[str, Any], topic: str, template: dict[str, Any]
) -> dict[str, Any] | None:
    """A common-case notification's fields, or None when it is not one (valid or not).

    The caller has checked that no optional field is set and that the three arguments are of
    exactly these types.

    Args:
        device_token: The device token as given.
        payload: The dict payload.
        topic: The topic.
        template: The fields every common-case notification shares (push type, the unset
            optional fields); copied, never changed.
    """
    aps = payload.get("aps")
    # "alert" in aps: never background (Apple: content-available alone); no "event": not a
    # Live Activity. No aps at all is an alert too.
    if aps is not None and not (type(aps) is dict and "alert" in aps and "event" not in aps):
        return None
    headers = VALID_TOPICS.get((topic, "alert"))
    if headers is None:
        return None
    try:
        # binascii.a2b_hex() takes an even number of hex digits and nothing else (no
        # whitespace, unlike bytes.fromhex()).
        if not _a2b_hex(device_token):
            return None
        body = serialize(payload)
    except (ValueError, InvalidNotificationError):  # binascii.Error is a ValueError
        return None  # the general path says why
    if len(body) > ALERT_MAX_PAYLOAD:
        return None
    token = device_token.lower()
    # A copy of a dict of the same keys costs less than building one from scratch.
    state = template.copy()
    state["device_token"] = token
    state["payload"] = payload
    state["topic"] = topic
    state["body"] = body
    state["path"] = "/3/device/" + token
    state["headers"] = headers
    return state
