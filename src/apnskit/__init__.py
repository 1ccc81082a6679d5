"""apnskit: Apple Push Notification service over HTTP/2, sync and async, on a sans-I/O core."""

# -- credentials (issue 3) --
from apnskit._certinfo import CertificateInfo, CertificateTopic
from apnskit._config import (
    DEFAULT_LIMITS,
    DEFAULT_RETRY_POLICY,
    DEFAULT_TIMEOUT,
    Environment,
    Limits,
    RetryPolicy,
    Timeout,
)
from apnskit._credentials import CertificateCredentials, TokenCredentials
from apnskit._errors import (
    ApnsError,
    ApnsTimeoutError,
    ClientClosedError,
    ConfigurationError,
    ConnectError,
    ConnectionLostError,
    ConnectTimeoutError,
    CredentialsError,
    DeadlineExceededError,
    InvalidNotificationError,
    LocalProtocolError,
    ProtocolError,
    PushRejectedError,
    RemoteProtocolError,
    TransportError,
)

# -- models (issue 2) --
from apnskit._models import (
    Alert,
    InterruptionLevel,
    LiveActivityEvent,
    Notification,
    Payload,
    Priority,
    PushType,
    Sound,
)
from apnskit._results import PushResult, Reason

# -- clients (issue 4) --

__version__ = "0.1.0"

__all__ = [
    "DEFAULT_LIMITS",
    "DEFAULT_RETRY_POLICY",
    "DEFAULT_TIMEOUT",
    "Alert",
    "ApnsError",
    "ApnsTimeoutError",
    "CertificateCredentials",
    "CertificateInfo",
    "CertificateTopic",
    "ClientClosedError",
    "ConfigurationError",
    "ConnectError",
    "ConnectTimeoutError",
    "ConnectionLostError",
    "CredentialsError",
    "DeadlineExceededError",
    "Environment",
    "InterruptionLevel",
    "InvalidNotificationError",
    "Limits",
    "LiveActivityEvent",
    "LocalProtocolError",
    "Notification",
    "Payload",
    "Priority",
    "ProtocolError",
    "PushRejectedError",
    "PushResult",
    "PushType",
    "Reason",
    "RemoteProtocolError",
    "RetryPolicy",
    "Sound",
    "Timeout",
    "TokenCredentials",
    "TransportError",
]
