"""apnskit: Apple Push Notification service over HTTP/2, sync and async, on a sans-I/O core."""

from apnskit._config import (
    DEFAULT_LIMITS,
    DEFAULT_RETRY_POLICY,
    DEFAULT_TIMEOUT,
    Environment,
    Limits,
    RetryPolicy,
    Timeout,
)
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
from apnskit._results import PushResult, Reason

# -- models (issue 2) --
# -- credentials (issue 3) --
# -- clients (issue 4) --

__version__ = "0.1.0"

__all__ = [
    "DEFAULT_LIMITS",
    "DEFAULT_RETRY_POLICY",
    "DEFAULT_TIMEOUT",
    "ApnsError",
    "ApnsTimeoutError",
    "ClientClosedError",
    "ConfigurationError",
    "ConnectError",
    "ConnectTimeoutError",
    "ConnectionLostError",
    "CredentialsError",
    "DeadlineExceededError",
    "Environment",
    "InvalidNotificationError",
    "Limits",
    "LocalProtocolError",
    "ProtocolError",
    "PushRejectedError",
    "PushResult",
    "Reason",
    "RemoteProtocolError",
    "RetryPolicy",
    "Timeout",
    "TransportError",
]
