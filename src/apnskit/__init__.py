"""apnskit: Apple Push Notification service over HTTP/2, sync and async, on a sans-I/O core."""

import importlib.metadata as _metadata

# -- clients (issue 4) --
from apnskit._clients.async_client import AsyncPushClient
from apnskit._clients.sync_client import PushClient
from apnskit._config import (
    DEFAULT_LIMITS,
    DEFAULT_RETRY_POLICY,
    DEFAULT_TIMEOUT,
    Environment,
    Limits,
    RetryPolicy,
    Timeout,
)
from apnskit._credentials.certificate import CertificateCredentials
from apnskit._credentials.certinfo import CertificateInfo, CertificateTopic
from apnskit._credentials.token import TokenCredentials
from apnskit._engine.client_events import (
    ClientEvent,
    ConnectionClosed,
    ConnectionFailed,
    ConnectionOpened,
    NotificationSent,
    NotificationSubmitted,
    ResultReady,
    RetryCause,
    RetryScheduled,
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
    ProxyError,
    PushRejectedError,
    RemoteProtocolError,
    TransportError,
)
from apnskit._model.broadcast import (
    BroadcastNotification,
    Channel,
    ChannelError,
    ChannelList,
    MessageStoragePolicy,
)
from apnskit._model.notification import Notification, Priority, PushType
from apnskit._model.payload import Alert, InterruptionLevel, LiveActivityEvent, Payload, Sound
from apnskit._model.results import PushResult, Reason

try:
    # One source for the version: pyproject.toml, as installed (issue 16 item 5).
    __version__ = _metadata.version("apnskit")
except _metadata.PackageNotFoundError:  # pragma: no cover - running from a bare tree
    __version__ = "0+unknown"

__all__ = [
    "Alert",
    "ApnsError",
    "ApnsTimeoutError",
    "AsyncPushClient",
    "BroadcastNotification",
    "CertificateCredentials",
    "CertificateInfo",
    "CertificateTopic",
    "Channel",
    "ChannelError",
    "ChannelList",
    "ClientClosedError",
    "ClientEvent",
    "ConfigurationError",
    "ConnectError",
    "ConnectTimeoutError",
    "ConnectionClosed",
    "ConnectionFailed",
    "ConnectionLostError",
    "ConnectionOpened",
    "CredentialsError",
    "DEFAULT_LIMITS",
    "DEFAULT_RETRY_POLICY",
    "DEFAULT_TIMEOUT",
    "DeadlineExceededError",
    "Environment",
    "InterruptionLevel",
    "InvalidNotificationError",
    "Limits",
    "LiveActivityEvent",
    "LocalProtocolError",
    "MessageStoragePolicy",
    "Notification",
    "NotificationSent",
    "NotificationSubmitted",
    "Payload",
    "Priority",
    "ProtocolError",
    "ProxyError",
    "PushClient",
    "PushRejectedError",
    "PushResult",
    "PushType",
    "Reason",
    "RemoteProtocolError",
    "ResultReady",
    "RetryCause",
    "RetryPolicy",
    "RetryScheduled",
    "Sound",
    "Timeout",
    "TokenCredentials",
    "TransportError",
]
