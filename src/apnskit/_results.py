"""What APNs said about a notification: :class:`PushResult` and :class:`Reason`.

Reasons and statuses follow Apple's "Handling notification responses from APNs"
(https://developer.apple.com/documentation/usernotifications/handling-notification-responses-from-apns).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from apnskit._errors import PushRejectedError

if TYPE_CHECKING:
    from apnskit._models import Notification

__all__ = ["PushResult", "Reason", "parse_reason"]


class Reason(str, enum.Enum):
    """Every rejection reason Apple documents, with its HTTP status and retry advice.

    A reason string that is not listed here (Apple adds reasons over time) is kept as a
    plain ``str`` in :attr:`PushResult.reason`; it never raises.
    """

    status: int
    retryable: bool
    description: str

    def __new__(cls, value: str, status: int, retryable: bool, description: str) -> Reason:
        obj = str.__new__(cls, value)
        obj._value_ = value
        obj.status = status
        obj.retryable = retryable
        obj.description = description
        return obj

    # 400
    BAD_COLLAPSE_ID = ("BadCollapseId", 400, False, "apns-collapse-id is longer than 64 bytes")
    BAD_DEVICE_TOKEN = (
        "BadDeviceToken",
        400,
        False,
        "bad device token; often a sandbox token sent to production or the reverse",
    )
    BAD_EXPIRATION_DATE = ("BadExpirationDate", 400, False, "apns-expiration is bad")
    BAD_MESSAGE_ID = ("BadMessageId", 400, False, "apns-id is bad")
    BAD_PRIORITY = ("BadPriority", 400, False, "apns-priority is bad")
    BAD_TOPIC = ("BadTopic", 400, False, "apns-topic is invalid")
    DEVICE_TOKEN_NOT_FOR_TOPIC = (
        "DeviceTokenNotForTopic",
        400,
        False,
        "the device token does not match the topic",
    )
    DUPLICATE_HEADERS = ("DuplicateHeaders", 400, False, "a header was repeated")
    IDLE_TIMEOUT = ("IdleTimeout", 400, False, "idle timeout")
    INVALID_PUSH_TYPE = ("InvalidPushType", 400, False, "apns-push-type is invalid")
    MISSING_DEVICE_TOKEN = ("MissingDeviceToken", 400, False, "no device token in the path")
    MISSING_TOPIC = ("MissingTopic", 400, False, "apns-topic is missing but required")
    PAYLOAD_EMPTY = ("PayloadEmpty", 400, False, "the payload is empty")
    TOPIC_DISALLOWED = ("TopicDisallowed", 400, False, "pushing to this topic is not allowed")
    MISSING_CHANNEL_ID = ("MissingChannelId", 400, False, "apns-channel-id is missing")
    BAD_CHANNEL_ID = ("BadChannelId", 400, False, "apns-channel-id is bad")
    CHANNEL_NOT_REGISTERED = (
        "ChannelNotRegistered",
        400,
        False,
        "the channel does not exist",
    )
    INVALID_POLICY = ("InvalidPolicy", 400, False, "message-storage-policy is invalid")
    TOO_MANY_CHANNELS = (
        "TooManyChannels",
        400,
        False,
        "the app already has the maximum number of channels",
    )
    # Apple's broadcast rows of "Handling error responses from APNs": the channel limit is
    # answered CannotCreateChannelConfig, and a missing apns-push-type MissingPushType.
    CANNOT_CREATE_CHANNEL_CONFIG = (
        "CannotCreateChannelConfig",
        400,
        False,
        "the app has reached the maximum number of channels (10,000 per environment)",
    )
    MISSING_PUSH_TYPE = ("MissingPushType", 400, False, "apns-push-type is missing")
    # 403
    BAD_CERTIFICATE = ("BadCertificate", 403, False, "the certificate is bad")
    BAD_CERTIFICATE_ENVIRONMENT = (
        "BadCertificateEnvironment",
        403,
        False,
        "the certificate is for the other environment",
    )
    EXPIRED_PROVIDER_TOKEN = (
        "ExpiredProviderToken",
        403,
        True,
        "the provider token is stale; a new one is made and the push retried",
    )
    FORBIDDEN = ("Forbidden", 403, False, "the action is not allowed")
    INVALID_PROVIDER_TOKEN = (
        "InvalidProviderToken",
        403,
        False,
        "the provider token is not valid or its signature does not verify",
    )
    MISSING_PROVIDER_TOKEN = (
        "MissingProviderToken",
        403,
        False,
        "no certificate and no provider token were given",
    )
    FEATURE_NOT_ENABLED = (
        "FeatureNotEnabled",
        403,
        False,
        "broadcast is not enabled for this app",
    )
    # 404, 405
    BAD_PATH = ("BadPath", 404, False, "the request path is bad")
    NOT_FOUND = ("NotFound", 404, False, "the resource was not found")
    METHOD_NOT_ALLOWED = ("MethodNotAllowed", 405, False, "only POST is supported")
    # 410
    EXPIRED_TOKEN = ("ExpiredToken", 410, False, "the device token has expired")
    UNREGISTERED = (
        "Unregistered",
        410,
        False,
        "the device token is no longer active for the topic; stop sending to it",
    )
    # 413
    PAYLOAD_TOO_LARGE = ("PayloadTooLarge", 413, False, "the payload is too large")
    # 429
    TOO_MANY_PROVIDER_TOKEN_UPDATES = (
        "TooManyProviderTokenUpdates",
        429,
        True,
        "the provider token is being updated too often",
    )
    TOO_MANY_REQUESTS = (
        "TooManyRequests",
        429,
        True,
        "too many requests to the same device token",
    )
    # 500, 503
    INTERNAL_SERVER_ERROR = ("InternalServerError", 500, True, "internal server error")
    SERVICE_UNAVAILABLE = ("ServiceUnavailable", 503, True, "the service is unavailable")
    SHUTDOWN = ("Shutdown", 503, True, "the APNs server is shutting down")

    def __str__(self) -> str:
        return str(self.value)


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

    @staticmethod
    def timestamp_from_ms(value: object) -> datetime | None:
        """Convert the ``timestamp`` of a 410 body (ms since the epoch) to a UTC datetime."""
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return None
        try:
            return datetime.fromtimestamp(value / 1000.0, tz=timezone.utc)
        except (OverflowError, OSError, ValueError):
            return None
