"""What APNs said about a notification: :class:`PushResult` and :class:`Reason`.

Reasons and statuses follow Apple's "Handling notification responses from APNs"
(https://developer.apple.com/documentation/usernotifications/handling-notification-responses-from-apns).
"""

from __future__ import annotations

import base64
import enum
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

import apnskit._errors as error_classes
from apnskit._errors import ApnsError, InvalidNotificationError, PushRejectedError

if TYPE_CHECKING:
    from apnskit._model.notification import Notification

__all__ = ["PushResult", "Reason", "new_result", "parse_reason"]


class Reason(str, enum.Enum):
    """Every rejection reason Apple documents, with its HTTP status and retry advice.

    A reason string that is not listed here (Apple adds reasons over time) is kept as a
    plain ``str`` in :attr:`PushResult.reason`; it never raises. ``Reason("Unregistered")``
    looks a reason up by Apple's string.
    """

    BAD_COLLAPSE_ID = "BadCollapseId"
    BAD_DEVICE_TOKEN = "BadDeviceToken"
    BAD_EXPIRATION_DATE = "BadExpirationDate"
    BAD_MESSAGE_ID = "BadMessageId"
    BAD_PRIORITY = "BadPriority"
    BAD_TOPIC = "BadTopic"
    DEVICE_TOKEN_NOT_FOR_TOPIC = "DeviceTokenNotForTopic"
    DUPLICATE_HEADERS = "DuplicateHeaders"
    IDLE_TIMEOUT = "IdleTimeout"
    INVALID_PUSH_TYPE = "InvalidPushType"
    MISSING_DEVICE_TOKEN = "MissingDeviceToken"
    MISSING_TOPIC = "MissingTopic"
    PAYLOAD_EMPTY = "PayloadEmpty"
    TOPIC_DISALLOWED = "TopicDisallowed"
    MISSING_CHANNEL_ID = "MissingChannelId"
    BAD_CHANNEL_ID = "BadChannelId"
    CHANNEL_NOT_REGISTERED = "ChannelNotRegistered"
    INVALID_POLICY = "InvalidPolicy"
    TOO_MANY_CHANNELS = "TooManyChannels"
    CANNOT_CREATE_CHANNEL_CONFIG = "CannotCreateChannelConfig"
    MISSING_PUSH_TYPE = "MissingPushType"
    BAD_CERTIFICATE = "BadCertificate"
    BAD_CERTIFICATE_ENVIRONMENT = "BadCertificateEnvironment"
    EXPIRED_PROVIDER_TOKEN = "ExpiredProviderToken"
    FORBIDDEN = "Forbidden"
    INVALID_PROVIDER_TOKEN = "InvalidProviderToken"
    MISSING_PROVIDER_TOKEN = "MissingProviderToken"
    FEATURE_NOT_ENABLED = "FeatureNotEnabled"
    BAD_PATH = "BadPath"
    NOT_FOUND = "NotFound"
    METHOD_NOT_ALLOWED = "MethodNotAllowed"
    EXPIRED_TOKEN = "ExpiredToken"
    UNREGISTERED = "Unregistered"
    PAYLOAD_TOO_LARGE = "PayloadTooLarge"
    TOO_MANY_PROVIDER_TOKEN_UPDATES = "TooManyProviderTokenUpdates"
    TOO_MANY_REQUESTS = "TooManyRequests"
    INTERNAL_SERVER_ERROR = "InternalServerError"
    SERVICE_UNAVAILABLE = "ServiceUnavailable"
    SHUTDOWN = "Shutdown"

    @property
    def status(self) -> int:
        """The HTTP status APNs answers with for this reason."""
        return _REASON_INFO[self.value][0]

    @property
    def retryable(self) -> bool:
        """True when sending again (after a backoff, or with a new token) can succeed."""
        return _REASON_INFO[self.value][1]

    @property
    def description(self) -> str:
        """What the reason means, in a few words."""
        return _REASON_INFO[self.value][2]

    def __str__(self) -> str:
        return str(self.value)


# Apple's "Handling notification responses from APNs" table: status, retry helps, meaning.
_REASON_INFO: dict[str, tuple[int, bool, str]] = {
    "BadCollapseId": (400, False, "apns-collapse-id is longer than 64 bytes"),
    "BadDeviceToken": (
        400,
        False,
        "bad device token; often a sandbox token sent to production or the reverse",
    ),
    "BadExpirationDate": (400, False, "apns-expiration is bad"),
    "BadMessageId": (400, False, "apns-id is bad"),
    "BadPriority": (400, False, "apns-priority is bad"),
    "BadTopic": (400, False, "apns-topic is invalid"),
    "DeviceTokenNotForTopic": (400, False, "the device token does not match the topic"),
    "DuplicateHeaders": (400, False, "a header was repeated"),
    "IdleTimeout": (400, False, "idle timeout"),
    "InvalidPushType": (400, False, "apns-push-type is invalid"),
    "MissingDeviceToken": (400, False, "no device token in the path"),
    "MissingTopic": (400, False, "apns-topic is missing but required"),
    "PayloadEmpty": (400, False, "the payload is empty"),
    "TopicDisallowed": (400, False, "pushing to this topic is not allowed"),
    "MissingChannelId": (400, False, "apns-channel-id is missing"),
    "BadChannelId": (400, False, "apns-channel-id is bad"),
    "ChannelNotRegistered": (400, False, "the channel does not exist"),
    "InvalidPolicy": (400, False, "message-storage-policy is invalid"),
    "TooManyChannels": (400, False, "the app already has the maximum number of channels"),
    "CannotCreateChannelConfig": (
        400,
        False,
        "the app has reached the maximum number of channels (10,000 per environment)",
    ),
    "MissingPushType": (400, False, "apns-push-type is missing"),
    "BadCertificate": (403, False, "the certificate is bad"),
    "BadCertificateEnvironment": (403, False, "the certificate is for the other environment"),
    "ExpiredProviderToken": (
        403,
        True,
        "the provider token is stale; a new one is made and the push retried",
    ),
    "Forbidden": (403, False, "the action is not allowed"),
    "InvalidProviderToken": (
        403,
        False,
        "the provider token is not valid or its signature does not verify",
    ),
    "MissingProviderToken": (403, False, "no certificate and no provider token were given"),
    "FeatureNotEnabled": (403, False, "broadcast is not enabled for this app"),
    "BadPath": (404, False, "the request path is bad"),
    "NotFound": (404, False, "the resource was not found"),
    "MethodNotAllowed": (405, False, "only POST is supported"),
    "ExpiredToken": (410, False, "the device token has expired"),
    "Unregistered": (
        410,
        False,
        "the device token is no longer active for the topic; stop sending to it",
    ),
    "PayloadTooLarge": (413, False, "the payload is too large"),
    "TooManyProviderTokenUpdates": (429, True, "the provider token is being updated too often"),
    "TooManyRequests": (429, True, "too many requests to the same device token"),
    "InternalServerError": (500, True, "internal server error"),
    "ServiceUnavailable": (503, True, "the service is unavailable"),
    "Shutdown": (503, True, "the APNs server is shutting down"),
}

_REASONS: dict[str, Reason] = {r.value: r for r in Reason}


def parse_reason(value: str | None) -> Reason | str | None:
    """Map Apple's reason string to a :class:`Reason`, keeping unknown strings as they are."""
    if value is None:
        return None
    return _REASONS.get(value, value)


@dataclass(frozen=True, slots=True)
class PushResult:
    """The outcome of one notification: accepted, rejected by APNs, or failed locally.

    Every notification handed to a client ends in exactly one ``PushResult``.
    """

    notification: Notification | Any
    """The notification (or broadcast request) this result belongs to."""
    status: int | None
    """The HTTP status APNs answered with; ``None`` when no answer arrived (see ``error``)."""
    apns_id: str | None = None
    """The ``apns-id`` APNs echoed or assigned."""
    apns_unique_id: str | None = None
    """``apns-unique-id`` (sandbox only), for the Push Notifications Console."""
    reason: Reason | str | None = None
    """Apple's reason for a rejection; an unknown reason is kept as its string."""
    timestamp: datetime | None = None
    """For 410 answers: when APNs learned the token stopped being valid (UTC)."""
    error: BaseException | None = None
    """For failures without an answer: the error (connection lost, deadline passed...)."""
    attempts: int = 1
    """How many times the notification was sent (retries included)."""
    headers: dict[str, str] = field(default_factory=dict, repr=False, compare=False)
    """Other response headers (e.g. ``apns-channel-id`` for channel management)."""
    body: bytes = field(default=b"", repr=False, compare=False)
    """The raw response body."""

    @property
    def accepted(self) -> bool:
        """True when APNs accepted the notification (a 2xx answer)."""
        return self.status is not None and 200 <= self.status < 300

    @property
    def failed(self) -> bool:
        """True when no answer was received from APNs (``error`` says why)."""
        return self.status is None

    @property
    def rejected(self) -> bool:
        """True when APNs answered and did not accept the notification."""
        return self.status is not None and not self.accepted

    @property
    def channel_id(self) -> str | None:
        """The ``apns-channel-id`` response header (channel management), if any."""
        return self.headers.get("apns-channel-id")

    @property
    def request_id(self) -> str | None:
        """The ``apns-request-id`` response header (broadcast and channel management)."""
        return self.headers.get("apns-request-id")

    @property
    def token_invalid(self) -> bool:
        """True when the device token should no longer be used (410, or BadDeviceToken)."""
        return self.status == 410 or self.reason == Reason.BAD_DEVICE_TOKEN

    def raise_for_status(self) -> PushResult:
        """Raise :class:`apnskit.PushRejectedError` unless the notification was accepted.

        Returns:
            The result itself, so calls can be chained.
        """
        if not self.accepted:
            raise PushRejectedError(self)
        return self

    def to_dict(self) -> dict[str, Any]:
        """Return the result as a JSON-safe dict; :meth:`from_dict` is its inverse.

        Keys: ``notification`` (:meth:`apnskit.Notification.to_dict`), ``status``,
        ``apns_id``, ``apns_unique_id``, ``reason`` (Apple's string), ``timestamp`` (ISO 8601),
        ``error`` (``{"type": ..., "message": ...}``) and ``attempts``; ``headers`` and the
        response ``body`` (UTF-8 text, or ``body_base64`` when it is not UTF-8) when not
        empty. The error keeps its class name and message only: :meth:`from_dict` rebuilds
        an apnskit exception of that name, or an :class:`apnskit.ApnsError` naming it.

        Raises:
            TypeError: The result belongs to something other than a device
                :class:`~apnskit.Notification` (a broadcast or channel request).
        """
        from apnskit._model.notification import Notification

        notification = self.notification
        if not isinstance(notification, Notification):
            raise TypeError(
                f"PushResult.to_dict: only results of device notifications, not of "
                f"{type(notification).__name__}"
            )
        error = self.error
        out: dict[str, Any] = {
            "notification": notification.to_dict(),
            "status": self.status,
            "apns_id": self.apns_id,
            "apns_unique_id": self.apns_unique_id,
            "reason": None if self.reason is None else str(self.reason),
            "timestamp": None if self.timestamp is None else self.timestamp.isoformat(),
            "error": None
            if error is None
            else {"type": type(error).__name__, "message": str(error)},
            "attempts": self.attempts,
        }
        if self.headers:
            out["headers"] = dict(self.headers)
        if self.body:
            try:
                out["body"] = self.body.decode()
            except UnicodeDecodeError:
                out["body_base64"] = base64.b64encode(self.body).decode("ascii")
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PushResult:
        """Rebuild a result from the dict :meth:`to_dict` makes (e.g. a task's JSON result).

        Raises:
            InvalidNotificationError: ``data`` is not such a dict: an unknown key, a missing
                ``notification`` or ``status``, or a value of the wrong type; the error names
                the field (``notification.<field>`` for the notification's own).
        """
        from apnskit._model.notification import Notification

        if not isinstance(data, Mapping):
            raise InvalidNotificationError("result", f"{type(data).__name__} is not a dict")
        unknown = [key for key in data if key not in _RESULT_KEYS]
        if unknown:
            raise InvalidNotificationError(
                str(unknown[0]), "is not a result field; allowed: " + ", ".join(_RESULT_KEYS)
            )
        for key in ("notification", "status"):
            if key not in data:
                raise InvalidNotificationError(key, "is required")
        try:
            notification = Notification.from_dict(data["notification"])
        except InvalidNotificationError as exc:
            # Name the field as it sits in the result: notification.device_token, ...
            field_name = exc.field if exc.field == "notification" else f"notification.{exc.field}"
            raise InvalidNotificationError(
                field_name, str(exc).removeprefix(f"{exc.field}: ")
            ) from None
        status = data["status"]
        if status is not None and (
            isinstance(status, bool) or not isinstance(status, int) or not 100 <= status <= 599
        ):
            raise InvalidNotificationError("status", f"{status!r} is not an HTTP status or null")
        for key in ("apns_id", "apns_unique_id", "reason", "timestamp", "body", "body_base64"):
            value = data.get(key)
            if value is not None and not isinstance(value, str):
                raise InvalidNotificationError(key, f"{type(value).__name__} is not a string")
        timestamp = None
        if data.get("timestamp") is not None:
            try:
                timestamp = datetime.fromisoformat(data["timestamp"])
            except ValueError:
                raise InvalidNotificationError(
                    "timestamp", f"{data['timestamp']!r} is not an ISO 8601 time"
                ) from None
            if timestamp.tzinfo is None:
                raise InvalidNotificationError("timestamp", "has no UTC offset")
        attempts = data.get("attempts", 1)
        if isinstance(attempts, bool) or not isinstance(attempts, int) or attempts < 1:
            raise InvalidNotificationError("attempts", f"{attempts!r} is not an integer >= 1")
        headers = data.get("headers", {})
        if not isinstance(headers, Mapping) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in headers.items()
        ):
            raise InvalidNotificationError("headers", "must be a dict of strings to strings")
        body = b""
        if data.get("body") is not None:
            body = data["body"].encode()
        elif data.get("body_base64") is not None:
            try:
                body = base64.b64decode(data["body_base64"], validate=True)
            except ValueError:
                raise InvalidNotificationError("body_base64", "is not base64") from None
        return cls(
            notification,
            status,
            apns_id=data.get("apns_id"),
            apns_unique_id=data.get("apns_unique_id"),
            reason=parse_reason(data.get("reason")),
            timestamp=timestamp,
            error=_error_from_dict(data.get("error")),
            attempts=attempts,
            headers=dict(headers),
            body=body,
        )

    @staticmethod
    def timestamp_from_ms(value: object) -> datetime | None:
        """Convert the ``timestamp`` of a 410 body (ms since the epoch) to a UTC datetime."""
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return None
        try:
            return datetime.fromtimestamp(value / 1000.0, tz=timezone.utc)
        except (OverflowError, OSError, ValueError):
            return None


class _Draft:
    """A :class:`PushResult` being written: the same slots, without the frozen guard.

    The frozen dataclass's ``__init__`` writes each field through ``object.__setattr__``,
    which made building the result about 6% of a client's CPU per notification (callgrind,
    issue 13). :func:`new_result` writes the fields here with plain stores and then makes the
    object a ``PushResult``: CPython allows the ``__class__`` change because both classes have
    the same slots on the same base, and from then on the object is a ``PushResult`` like any
    other (frozen, equal, hashable, picklable, copyable).
    """

    # The same slots as PushResult, so the __class__ change below is allowed.
    __slots__ = tuple(f.name for f in fields(PushResult))

    notification: Any
    status: int | None
    apns_id: str | None
    apns_unique_id: str | None
    reason: Reason | str | None
    timestamp: datetime | None
    error: BaseException | None
    attempts: int
    headers: dict[str, str]
    body: bytes


_make_draft = object.__new__
_set_attribute = object.__setattr__


def new_result(
    notification: Any,
    status: int | None,
    apns_id: str | None,
    apns_unique_id: str | None,
    reason: Reason | str | None,
    timestamp: datetime | None,
    error: BaseException | None,
    attempts: int,
    headers: dict[str, str],
    body: bytes,
) -> PushResult:
    """``PushResult(...)`` with every field given, for the clients' hot path (see ``_Draft``).

    No field is checked, as with the dataclass constructor.
    """
    draft = _make_draft(_Draft)
    draft.notification = notification
    draft.status = status
    draft.apns_id = apns_id
    draft.apns_unique_id = apns_unique_id
    draft.reason = reason
    draft.timestamp = timestamp
    draft.error = error
    draft.attempts = attempts
    draft.headers = headers
    draft.body = body
    _set_attribute(draft, "__class__", PushResult)
    result: Any = draft
    return result  # type: ignore[no-any-return]


# The keys of PushResult.to_dict().
_RESULT_KEYS = (
    "notification",
    "status",
    "apns_id",
    "apns_unique_id",
    "reason",
    "timestamp",
    "error",
    "attempts",
    "headers",
    "body",
    "body_base64",
)
# apnskit's exceptions that take just a message, rebuilt by name by PushResult.from_dict.
_ERRORS_BY_NAME: dict[str, type[ApnsError]] = {
    name: getattr(error_classes, name)
    for name in (
        "ApnsError",
        "ApnsTimeoutError",
        "ClientClosedError",
        "ConnectError",
        "ConnectTimeoutError",
        "ConnectionLostError",
        "CredentialsError",
        "ConfigurationError",
        "DeadlineExceededError",
        "LocalProtocolError",
        "ProtocolError",
        "RemoteProtocolError",
        "TransportError",
    )
}


def _error_from_dict(value: object) -> BaseException | None:
    if value is None:
        return None
    if (
        not isinstance(value, Mapping)
        or set(value) != {"type", "message"}
        or not all(isinstance(v, str) for v in value.values())
    ):
        raise InvalidNotificationError(
            "error", 'must be null or {"type": <class name>, "message": <text>}'
        )
    cls = _ERRORS_BY_NAME.get(value["type"])
    if cls is None:
        # Not one of ours (an OSError, a bug's exception...): keep its name in the message.
        return ApnsError(f"{value['type']}: {value['message']}")
    return cls(value["message"])
