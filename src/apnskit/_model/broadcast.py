"""iOS 18 broadcast push and channel management: requests, results, errors.

The rules come from Apple's "Sending broadcast push notification requests to APNs"
(https://developer.apple.com/documentation/usernotifications/sending-broadcast-push-notification-requests-to-apns),
"Sending channel management requests to APNs"
(https://developer.apple.com/documentation/usernotifications/sending-channel-management-requests-to-apns)
and the broadcast rows of "Handling error responses from APNs". What those pages say, in short:

- A broadcast is ``POST /4/broadcasts/apps/<bundle id>`` on the usual APNs hosts, with
  ``apns-channel-id`` (required), ``apns-push-type: liveactivity`` (required),
  ``apns-priority`` (10, 5 or 1: the page speaks of "Medium and Low" priorities being
  grouped), ``apns-expiration`` and ``apns-request-id`` (a UUID APNs echoes; it makes one when
  it is missing). The body is a Live Activity payload.
- Channels live on the management hosts (:attr:`apnskit.Environment.management_host`, ports
  2195 sandbox / 2196 production): ``POST /1/apps/<bundle id>/channels`` with
  ``{"message-storage-policy": 0|1, "push-type": "LiveActivity"}`` creates one (201, the id in
  the ``apns-channel-id`` response header); ``GET`` and ``DELETE`` on the same path with an
  ``apns-channel-id`` header read one (200, body ``{"message-storage-policy": ...,
  "push-type": ...}``) or delete it (204); ``GET /1/apps/<bundle id>/all-channels`` lists them
  (200, ``{"channels": [...]}``). At most 10,000 channels per app per environment.
- Channel ids are base64 strings: ``BadChannelId`` is "not properly encoded, or greater than
  the allowed length". Apple does not state the allowed length, so apnskit does not guess one.
- ``apns-expiration`` is "Required" on every broadcast (the broadcast page's header table), so
  :class:`BroadcastNotification` always sends it: ``0`` (deliver once, store nothing) unless
  told otherwise. "Providing a nonzero expiration for a channel created with the No Message
  Stored storage policy results in message rejection" (the same row): on a policy 0 channel
  only ``apns-expiration: 0`` is accepted. The client cannot check this (it does not know the
  channel's policy when it sends); the mock server does, and answers ``BadExpirationDate``
  for a missing or refused expiration.

Where Apple is silent, a comment says so. Nothing here does I/O: the clients send the request
objects built here (anything with ``method``, ``path``, ``headers`` and ``body``) through
their dispatcher, and turn the :class:`~apnskit.PushResult` they get back into a
:class:`Channel`, a list of ids, or a :class:`ChannelError`.
"""

from __future__ import annotations

import base64
import binascii
import enum
import json
import re
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ClassVar

from apnskit._errors import LocalProtocolError, PushRejectedError, rejection_message
from apnskit._model.notification import Priority, PushType
from apnskit._model.payload import LiveActivityEvent, Payload
from apnskit._model.results import PushResult
from apnskit._model.rules import ALL_SUFFIXES, canonical_uuid, epoch, fail, serialize

__all__ = [
    "BroadcastNotification",
    "Channel",
    "ChannelError",
    "ChannelList",
    "ChannelRequest",
    "MessageStoragePolicy",
    "channel_from_result",
    "channel_ids_from_result",
    "check_deleted",
    "create_channel_request",
    "delete_channel_request",
    "get_channel_request",
    "list_channels_request",
]


class MessageStoragePolicy(enum.IntEnum):
    """A channel's ``message-storage-policy``: what APNs keeps for devices that are offline.

    The canonical names follow Apple's wording ("No Message Stored", "Most Recent Message
    Stored"); ``NO_STORAGE`` and ``MOST_RECENT`` are short aliases for the same values.
    """

    NO_MESSAGE_STORED = 0
    """APNs stores nothing; broadcasts on the channel must carry ``apns-expiration: 0``."""
    MOST_RECENT_MESSAGE_STORED = 1
    """APNs keeps the most recent broadcast for devices that are offline."""
    NO_STORAGE = 0
    MOST_RECENT = 1


#: The ``push-type`` value of a channel, spelled as Apple's channel management page spells it
#: (its ``InvalidPushType`` row: "The only allowed value is LiveActivity").
CHANNEL_PUSH_TYPE = "LiveActivity"

#: Channels an app may have per environment (Apple, "Sending channel management requests").
MAX_CHANNELS = 10_000

_BROADCAST_PREFIX = "/4/broadcasts/apps/"
# Standard base64 alphabet with its padding (Apple's examples are padded, e.g.
# "dHN0LXNyY2gtY2hubA=="); the decode below checks the padding is where it belongs.
_BASE64_RE = re.compile(r"[A-Za-z0-9+/]+={0,2}")
_PRIORITIES: dict[int, Priority] = {int(p): p for p in Priority}
# Broadcast can only update or end an activity that devices already run: a Live Activity is
# started on a device (or by push-to-start, which needs a per-device token), and then
# subscribes to the channel with input-push-channel.
_BROADCAST_EVENTS = frozenset({LiveActivityEvent.UPDATE.value, LiveActivityEvent.END.value})
_START_ONLY_KEYS = ("attributes-type", "attributes", "input-push-token", "input-push-channel")


def _check_bundle_id(bundle_id: object) -> str:
    if type(bundle_id) is not str or not bundle_id:
        raise fail("bundle_id", "is required: the app's bundle ID")
    if not (bundle_id.isascii() and bundle_id.isprintable()) or " " in bundle_id:
        raise fail("bundle_id", f"{bundle_id!r} must be printable ASCII without spaces")
    if "/" in bundle_id or "?" in bundle_id or "#" in bundle_id:
        # It goes into the request path as it is.
        raise fail("bundle_id", f"{bundle_id!r} must not contain '/', '?' or '#'")
    if bundle_id.endswith(ALL_SUFFIXES):
        suffix = next(s for s in ALL_SUFFIXES if bundle_id.endswith(s))
        raise fail(
            "bundle_id",
            f"{bundle_id!r} ends with the topic suffix {suffix!r}; broadcast and channel "
            "requests name the bare bundle ID in their path",
        )
    return bundle_id


def _check_channel_id(channel_id: object) -> str:
    if type(channel_id) is not str or not channel_id:
        raise fail("channel_id", "is required: the id APNs returned when the channel was created")
    if _BASE64_RE.fullmatch(channel_id) is None:
        raise fail(
            "channel_id",
            f"{channel_id!r} is not base64; channel ids are the base64 strings APNs returns "
            "(pass them on unchanged)",
        )
    try:
        base64.b64decode(channel_id, validate=True)
    except (binascii.Error, ValueError):
        raise fail(
            "channel_id", f"{channel_id!r} is not valid base64 (its length or padding is wrong)"
        ) from None
    return channel_id


def _check_live_activity_dict(payload: dict[str, Any]) -> None:
    aps = payload.get("aps")
    if not isinstance(aps, dict):
        raise fail("payload", "a broadcast needs an 'aps' dictionary with a Live Activity event")
    event = aps.get("event")
    if event is None:
        raise fail(
            "payload.event", "a broadcast carries a Live Activity payload: 'update' or 'end'"
        )
    if event not in _BROADCAST_EVENTS:
        raise fail(
            "payload.event",
            f"{event!r} cannot be broadcast; a channel can only 'update' or 'end' an activity",
        )
    timestamp = aps.get("timestamp")
    if isinstance(timestamp, bool) or not isinstance(timestamp, int):
        raise fail("payload.timestamp", f"a Live Activity {event} push needs it (epoch seconds)")
    if not isinstance(aps.get("content-state"), dict):
        raise fail("payload.content_state", f"a Live Activity {event} push needs it (a dict)")
    for key in _START_ONLY_KEYS:
        if key in aps:
            raise fail(f"payload.{key}", f"is only allowed with event 'start', not {event!r}")


@dataclass(frozen=True, slots=True, repr=False)
class BroadcastNotification:
    """One Live Activity update (or end) broadcast to every device subscribed to a channel.

    Construction checks the rules APNs would otherwise reject the request for, and precomputes
    what the HTTP/2 core sends (:attr:`body`, :attr:`path`, :attr:`headers`), like
    :class:`~apnskit.Notification`.

    Args:
        bundle_id: The app's bundle ID, without a push-type suffix.
        channel_id: The channel's id, as APNs returned it (base64).
        payload: A Live Activity payload (``Payload.live_activity_update`` or
            ``Payload.live_activity_end``, or the equivalent dict) with event ``update`` or
            ``end``: a broadcast cannot start an activity.
        priority: ``apns-priority``: 10, 5 or 1. Omitted, no header is sent (APNs uses 10).
        expiration: ``apns-expiration``: epoch seconds or an aware datetime; default ``0``
            (deliver once, store nothing). Apple requires the header on every broadcast, so it
            is always sent. On a channel created with
            :attr:`MessageStoragePolicy.NO_MESSAGE_STORED` it must be ``0`` (APNs rejects any
            other value; only the server knows the channel's policy). On a
            :attr:`~MessageStoragePolicy.MOST_RECENT_MESSAGE_STORED` channel give a date for
            APNs to store the update until.
        apns_request_id: ``apns-request-id``, a UUID APNs echoes (it makes one if omitted).

    Raises:
        InvalidNotificationError: A field breaks a rule; the message names the field.
    """

    bundle_id: str
    """The bundle ID from the request path."""
    channel_id: str
    """The ``apns-channel-id`` header."""
    payload: Payload | dict[str, Any]
    """The payload as given."""
    priority: Priority | int | None = None
    """The priority (normalized to :class:`~apnskit.Priority`), or None."""
    expiration: int | datetime | None = None
    """Expiration as int epoch seconds (a datetime is converted); ``0`` when not given."""
    apns_request_id: str | uuid.UUID | None = None
    """The ``apns-request-id`` as a lowercase UUID string, or None."""

    body: bytes = field(init=False, compare=False)
    """The payload serialized as compact UTF-8 JSON."""
    path: str = field(init=False, compare=False)
    """The request path, ``/4/broadcasts/apps/<bundle id>``."""
    headers: tuple[tuple[str, str], ...] = field(init=False, compare=False)
    """APNs request headers (no authorization, no pseudo-headers)."""

    method: ClassVar[str] = "POST"
    """The HTTP method."""

    def __post_init__(self) -> None:
        setattr_ = object.__setattr__
        bundle_id = _check_bundle_id(self.bundle_id)
        channel_id = _check_channel_id(self.channel_id)

        payload = self.payload
        if isinstance(payload, Payload):
            event = payload.event
            if event is None:
                raise fail(
                    "payload.event",
                    "a broadcast carries a Live Activity payload: use "
                    "Payload.live_activity_update or Payload.live_activity_end",
                )
            if event is LiveActivityEvent.START:
                raise fail(
                    "payload.event",
                    "'start' cannot be broadcast; a channel can only 'update' or 'end' an activity",
                )
            body = serialize(payload.to_dict())
        elif isinstance(payload, dict):
            _check_live_activity_dict(payload)
            body = serialize(payload)
        else:
            raise fail("payload", f"{type(payload).__name__} is not a dict or apnskit.Payload")
        # Apple's broadcast page sends Live Activity payloads and names no other limit; the Live
        # Activity (non-VoIP) limit applies. (Some third-party clients claim 5 KB for
        # broadcasts; unverified, and a payload within 4096 bytes is accepted either way.)
        limit = PushType.LIVEACTIVITY.max_payload_size
        if len(body) > limit:
            raise fail(
                "payload", f"{len(body)} bytes is over the {limit}-byte limit for broadcasts"
            )

        headers: list[tuple[str, str]] = [
            ("apns-push-type", PushType.LIVEACTIVITY.value),
            ("apns-channel-id", channel_id),
        ]
        priority: object = self.priority
        if priority is not None:
            normalized = (
                None
                if isinstance(priority, bool) or not isinstance(priority, int)
                else _PRIORITIES.get(priority)
            )
            if normalized is None:
                raise fail("priority", f"{priority!r} is not 10, 5 or 1")
            setattr_(self, "priority", normalized)
            headers.append(("apns-priority", str(int(normalized))))
        # Apple lists apns-expiration as "Required" for broadcasts (see the module docstring);
        # 0 is the value every channel accepts.
        expiration = 0 if self.expiration is None else epoch("expiration", self.expiration)
        setattr_(self, "expiration", expiration)
        headers.append(("apns-expiration", str(expiration)))
        request_id = self.apns_request_id
        if request_id is not None:
            request_id = canonical_uuid("apns_request_id", request_id)
            setattr_(self, "apns_request_id", request_id)
            headers.append(("apns-request-id", request_id))

        setattr_(self, "body", body)
        setattr_(self, "headers", tuple(headers))
        setattr_(self, "path", _BROADCAST_PREFIX + bundle_id)

    def __repr__(self) -> str:
        parts = [f"bundle_id={self.bundle_id!r}", f"channel_id={self.channel_id!r}"]
        if self.apns_request_id is not None:
            parts.append(f"apns_request_id={self.apns_request_id!r}")
        parts.append(f"body_bytes={len(self.body)}")
        return f"BroadcastNotification({', '.join(parts)})"


@dataclass(frozen=True, slots=True)
class Channel:
    """A broadcast channel, as APNs described it.

    Attributes:
        channel_id: The channel's id (base64), to share with devices.
        bundle_id: The app the channel belongs to.
        message_storage_policy: The channel's storage policy; ``None`` when APNs did not say,
            or said a value apnskit does not know.
        push_type: The channel's push type as APNs spells it (``"LiveActivity"``), or ``None``.
        request_id: The ``apns-request-id`` of the answer that described it, or ``None``.
    """

    channel_id: str
    bundle_id: str
    message_storage_policy: MessageStoragePolicy | None
    push_type: str | None
    request_id: str | None


class ChannelList(list[str]):
    """The channel ids of an app (a plain ``list`` of ids), with the answer's request id.

    Attributes:
        request_id: The ``apns-request-id`` of the answer, or ``None``.
    """

    request_id: str | None = None


class ChannelError(PushRejectedError):
    """A channel management request was not answered with success.

    Raised by :func:`channel_from_result`, :func:`channel_ids_from_result` and
    :func:`check_deleted`. Like :class:`~apnskit.PushRejectedError` it carries the
    :class:`~apnskit.PushResult`: ``error.result.reason`` is Apple's reason (e.g.
    ``Reason.CHANNEL_NOT_REGISTERED``), ``error.result.status`` the HTTP status (``None`` when
    no answer arrived; ``error.result.error`` then says why).

    Attributes:
        result: The result that was not a success.
        request: The request it answers (``None`` when not given).
    """

    def __init__(
        self,
        result: PushResult,
        request: ChannelRequest | None = None,
        detail: str | None = None,
    ) -> None:
        if request is None:
            what = "channel request"
        else:
            what = f"channel {request.action} request for {request.bundle_id!r}"
            if request.channel_id is not None:
                what += f" (channel {request.channel_id})"
        message = f"{what}: {detail}" if detail is not None else rejection_message(what, result)
        if result.request_id is not None:
            message += f" [apns-request-id {result.request_id}]"
        super().__init__(result, message)
        self.request = request


@dataclass(frozen=True, slots=True)
class ChannelRequest:
    """One channel management request, ready for a client's dispatcher.

    Build one with :func:`create_channel_request`, :func:`get_channel_request`,
    :func:`delete_channel_request` or :func:`list_channels_request`. It must be sent to the
    management host of the environment (:attr:`apnskit.Environment.management_host` and
    :attr:`~apnskit.Environment.management_port`), not the push host.

    Attributes:
        action: ``"create"``, ``"get"``, ``"delete"`` or ``"list"``.
        bundle_id: The app.
        method: The HTTP method.
        path: The request path.
        headers: The request headers (no authorization, no pseudo-headers).
        body: The request body (empty except for ``create``).
        channel_id: The channel, for ``get`` and ``delete``.
        message_storage_policy: The policy asked for, for ``create``.
        request_id: The ``apns-request-id`` sent, or ``None``.
    """

    action: str
    bundle_id: str
    method: str
    path: str
    headers: tuple[tuple[str, str], ...]
    body: bytes = field(default=b"", repr=False)
    channel_id: str | None = None
    message_storage_policy: MessageStoragePolicy | None = None
    request_id: str | None = None

    #: Requests go to the management host (see the class docstring), not the push host.
    management: ClassVar[bool] = True

    @property
    def idempotent(self) -> bool:
        """False for ``create``, which could make two channels if sent twice.

        The client does not retry a non-idempotent request after an answer it cannot trust
        (5xx, 429, a lost connection).
        """
        return self.action != "create"


def _base_headers(request_id: object) -> tuple[list[tuple[str, str]], str | None]:
    if request_id is None:
        return [], None
    checked = canonical_uuid("apns_request_id", request_id)
    return [("apns-request-id", checked)], checked


def create_channel_request(
    bundle_id: str,
    policy: MessageStoragePolicy | int,
    *,
    request_id: str | uuid.UUID | None = None,
) -> ChannelRequest:
    """Build the request that creates a Live Activity channel.

    Args:
        bundle_id: The app's bundle ID.
        policy: The channel's :class:`MessageStoragePolicy` (or 0 / 1).
        request_id: An ``apns-request-id`` UUID; APNs makes one if omitted.

    Returns:
        ``POST /1/apps/<bundle id>/channels`` with
        ``{"message-storage-policy": <policy>, "push-type": "LiveActivity"}``.

    Raises:
        InvalidNotificationError: A bad bundle ID, policy or request id.
    """
    bundle = _check_bundle_id(bundle_id)
    if isinstance(policy, bool) or not isinstance(policy, int) or policy not in (0, 1):
        raise fail(
            "message_storage_policy",
            f"{policy!r} is not 0 (no message stored) or 1 (most recent message stored)",
        )
    storage = MessageStoragePolicy(policy)
    headers, checked = _base_headers(request_id)
    body = json.dumps(
        {"message-storage-policy": int(storage), "push-type": CHANNEL_PUSH_TYPE},
        separators=(",", ":"),
    ).encode()
    return ChannelRequest(
        action="create",
        bundle_id=bundle,
        method="POST",
        path=f"/1/apps/{bundle}/channels",
        headers=tuple(headers),
        body=body,
        message_storage_policy=storage,
        request_id=checked,
    )


def _one_channel_request(
    action: str, method: str, bundle_id: str, channel_id: str, request_id: object
) -> ChannelRequest:
    bundle = _check_bundle_id(bundle_id)
    channel = _check_channel_id(channel_id)
    headers, checked = _base_headers(request_id)
    headers.append(("apns-channel-id", channel))
    return ChannelRequest(
        action=action,
        bundle_id=bundle,
        method=method,
        path=f"/1/apps/{bundle}/channels",
        headers=tuple(headers),
        channel_id=channel,
        request_id=checked,
    )


def get_channel_request(
    bundle_id: str, channel_id: str, *, request_id: str | uuid.UUID | None = None
) -> ChannelRequest:
    """Build the request that reads one channel (``GET /1/apps/<bundle id>/channels``).

    Raises:
        InvalidNotificationError: A bad bundle ID, channel id or request id.
    """
    return _one_channel_request("get", "GET", bundle_id, channel_id, request_id)


def delete_channel_request(
    bundle_id: str, channel_id: str, *, request_id: str | uuid.UUID | None = None
) -> ChannelRequest:
    """Build the request that deletes one channel (``DELETE /1/apps/<bundle id>/channels``).

    Raises:
        InvalidNotificationError: A bad bundle ID, channel id or request id.
    """
    return _one_channel_request("delete", "DELETE", bundle_id, channel_id, request_id)


def list_channels_request(
    bundle_id: str, *, request_id: str | uuid.UUID | None = None
) -> ChannelRequest:
    """Build the request that lists an app's channels (``GET /1/apps/<bundle id>/all-channels``).

    Raises:
        InvalidNotificationError: A bad bundle ID or request id.
    """
    bundle = _check_bundle_id(bundle_id)
    headers, checked = _base_headers(request_id)
    return ChannelRequest(
        action="list",
        bundle_id=bundle,
        method="GET",
        path=f"/1/apps/{bundle}/all-channels",
        headers=tuple(headers),
        request_id=checked,
    )


# -- reading the answers ------------------------------------------------------------------


def _require_success(request: ChannelRequest, result: PushResult) -> None:
    if not result.accepted:
        raise ChannelError(result, request)


def _json_body(request: ChannelRequest, result: PushResult) -> dict[str, Any]:
    try:
        data = json.loads(result.body) if result.body else None
    except (ValueError, UnicodeDecodeError):
        data = None
    if not isinstance(data, dict):
        raise ChannelError(result, request, "the answer's body is not a JSON object")
    return data


def _expect(request: ChannelRequest, *actions: str) -> None:
    # The clients pair each request with its reader, and neither is public: a mismatch is a
    # bug in apnskit, not bad input, so not a ValueError a caller's `except ValueError` (meant
    # for a bad bundle id, say) would swallow.
    if request.action not in actions:
        raise LocalProtocolError(
            f"request: a {request.action!r} request cannot be read this way; "
            f"expected {' or '.join(repr(a) for a in actions)}"
        )


def channel_from_result(request: ChannelRequest, result: PushResult) -> Channel:
    """Turn the answer to a ``create`` or ``get`` request into a :class:`Channel`.

    Args:
        request: The request that was sent.
        result: What the client got back.

    Returns:
        The channel. For ``create`` its id is the ``apns-channel-id`` response header and its
        policy the one asked for; for ``get`` both come from the response.

    Raises:
        ChannelError: The answer was not a success (or no answer arrived), or a success that
            lacks what Apple documents (the channel id header, the JSON body).
        LocalProtocolError: ``request`` is not a ``create`` or ``get`` request (a bug in
            apnskit).
    """
    _expect(request, "create", "get")
    _require_success(request, result)
    if request.action == "create":
        channel_id = result.channel_id
        if not channel_id:
            raise ChannelError(result, request, "the answer has no apns-channel-id header")
        return Channel(
            channel_id=channel_id,
            bundle_id=request.bundle_id,
            message_storage_policy=request.message_storage_policy,
            push_type=CHANNEL_PUSH_TYPE,
            request_id=result.request_id,
        )
    data = _json_body(request, result)
    raw_policy = data.get("message-storage-policy")
    policy: MessageStoragePolicy | None = None
    if isinstance(raw_policy, int) and not isinstance(raw_policy, bool) and raw_policy in (0, 1):
        policy = MessageStoragePolicy(raw_policy)
    push_type = data.get("push-type")
    assert request.channel_id is not None
    return Channel(
        # Apple's read answer describes the channel named in the request.
        channel_id=result.channel_id or request.channel_id,
        bundle_id=request.bundle_id,
        message_storage_policy=policy,
        push_type=push_type if isinstance(push_type, str) else None,
        request_id=result.request_id,
    )


def channel_ids_from_result(request: ChannelRequest, result: PushResult) -> ChannelList:
    """Turn the answer to a ``list`` request into the app's channel ids.

    Raises:
        ChannelError: The answer was not a success, or its body is not
            ``{"channels": [<id>, ...]}``.
        LocalProtocolError: ``request`` is not a ``list`` request (a bug in apnskit).
    """
    _expect(request, "list")
    _require_success(request, result)
    channels = _json_body(request, result).get("channels")
    if not isinstance(channels, list) or not all(isinstance(c, str) for c in channels):
        raise ChannelError(result, request, "the answer's 'channels' is not a list of ids")
    ids = ChannelList(channels)
    ids.request_id = result.request_id
    return ids


def check_deleted(
    request: ChannelRequest, result: PushResult, *, earlier_send_may_have_run: bool = False
) -> Channel:
    """Check the answer to a ``delete`` request (Apple answers 204 No Content).

    Args:
        request: The ``delete`` request.
        result: Its result.
        earlier_send_may_have_run: An earlier send of it may have been processed without its
            answer reaching us (its connection was lost, or APNs answered 500).

    Returns:
        The deleted channel (its id and the answer's request id; nothing else is known).

    Raises:
        ChannelError: The answer was not a success (or no answer arrived).
        LocalProtocolError: ``request`` is not a ``delete`` request (a bug in apnskit).
    """
    _expect(request, "delete")
    if result.reason == "ChannelNotRegistered" and earlier_send_may_have_run:
        # An earlier send of this DELETE may have deleted the channel and only its answer was
        # lost (the request was resent): the channel is gone, which is what was asked. An
        # earlier send refused unprocessed (REFUSED_STREAM, 429, 503, above a GOAWAY's last
        # stream) deleted nothing, so then ChannelNotRegistered is the true answer.
        pass
    else:
        _require_success(request, result)
    assert request.channel_id is not None  # delete requests always name their channel
    return Channel(
        channel_id=request.channel_id,
        bundle_id=request.bundle_id,
        message_storage_policy=None,
        push_type=None,
        request_id=result.request_id,
    )


# Like the errors in apnskit._errors: tracebacks name it as users import it.
ChannelError.__module__ = "apnskit"
