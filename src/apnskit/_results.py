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

    @staticmethod
    def timestamp_from_ms(value: object) -> datetime | None:
        """Convert the ``timestamp`` of a 410 body (ms since the epoch) to a UTC datetime."""
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return None
        try:
            return datetime.fromtimestamp(value / 1000.0, tz=timezone.utc)
        except (OverflowError, OSError, ValueError):
            return None
