"""The apnskit exception tree.

Exceptions are for local misuse and for broken connections. What APNs *says* about a
notification (a rejection with a reason) is a :class:`~apnskit.PushResult`, not an exception,
unless the caller asks for one with :meth:`~apnskit.PushResult.raise_for_status`.

```
ApnsError
 +-- InvalidNotificationError (also ValueError)   bad notification, found before any byte is sent
 +-- CredentialsError (also ValueError)           key/certificate/password/environment problems
 +-- ConfigurationError (also ValueError)         a client was built with inconsistent options
 +-- ProtocolError                                HTTP/2 rules were broken
 |    +-- LocalProtocolError                      ... by us (a bug, or misuse of the core)
 |    +-- RemoteProtocolError                     ... by the server
 +-- TransportError                               the network failed us
 |    +-- ConnectError                            could not connect (DNS, refused, TLS handshake)
 |    |    +-- ProxyError                          ... because the proxy refused or failed
 |    +-- ConnectionLostError                     an open connection broke or was closed
 |    +-- ApnsTimeoutError (also TimeoutError)    something took longer than allowed
 |         +-- ConnectTimeoutError (also ConnectError)
 |         +-- DeadlineExceededError              a notification's deadline passed
 +-- PushRejectedError                            APNs rejected a notification (raise_for_status)
 +-- ClientClosedError                            the client was used after close()
```

Messages never contain secrets (JWTs, private keys, passwords): they name the field and the
rule instead.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from apnskit._model.results import PushResult

__all__ = [
    "ApnsError",
    "ApnsTimeoutError",
    "ClientClosedError",
    "ConfigurationError",
    "ConnectError",
    "ConnectTimeoutError",
    "ConnectionLostError",
    "CredentialsError",
    "DeadlineExceededError",
    "InvalidNotificationError",
    "LocalProtocolError",
    "ProtocolError",
    "ProxyError",
    "PushRejectedError",
    "RemoteProtocolError",
    "TransportError",
]


class ApnsError(Exception):
    """Root of every exception apnskit raises."""


class InvalidNotificationError(ApnsError, ValueError):
    """A notification (or one of its parts) breaks one of Apple's rules.

    Raised while the notification is being built, before any byte is sent. The message
    names the field, what is wrong with the value, and the rule.

    Attributes:
        field: The name of the offending field, e.g. ``"device_token"`` or ``"payload"``.
    """

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


class CredentialsError(ApnsError, ValueError):
    """A key, certificate, password or environment choice cannot be used."""


class ConfigurationError(ApnsError, ValueError):
    """A client or server was configured with options that cannot work together."""


class ProtocolError(ApnsError):
    """The HTTP/2 protocol was violated (RFC 9113)."""


class LocalProtocolError(ProtocolError):
    """We tried to do something HTTP/2 (or the connection's state) does not allow."""


class RemoteProtocolError(ProtocolError):
    """The peer broke HTTP/2; the connection cannot be used any more.

    Attributes:
        error_code: The HTTP/2 error code (RFC 9113 section 7) we sent in our GOAWAY.
    """

    def __init__(self, message: str, error_code: int = 1) -> None:
        super().__init__(message)
        self.error_code = error_code


class TransportError(ApnsError):
    """The network failed: a connection could not be made, or broke."""


class ConnectError(TransportError):
    """A connection could not be established (DNS, refused, TLS handshake, ALPN)."""


class ProxyError(ConnectError):
    """The proxy in front of APNs refused the tunnel, failed, or is unreachable.

    The message names the proxy (scheme, host and port, never its credentials) and what it
    said: an HTTP status such as ``407 Proxy Authentication Required``, or a SOCKS5 reply.

    Attributes:
        proxy: The proxy as ``scheme://host:port``, without credentials.
    """

    def __init__(self, message: str, *, proxy: str) -> None:
        super().__init__(message)
        self.proxy = proxy

    def __reduce__(self) -> tuple[object, ...]:
        # Keyword-only arguments survive pickling (multiprocessing, Celery results).
        return (_make_proxy_error, (str(self), self.proxy))


def _make_proxy_error(message: str, proxy: str) -> ProxyError:
    return ProxyError(message, proxy=proxy)


class ConnectionLostError(TransportError):
    """An established connection broke or was closed by the peer."""


class ApnsTimeoutError(TransportError, TimeoutError):
    """Something took longer than the configured timeout."""


class ConnectTimeoutError(ConnectError, ApnsTimeoutError):
    """Establishing a connection (TCP + TLS) timed out."""


class DeadlineExceededError(ApnsTimeoutError):
    """A notification's deadline passed before APNs answered it."""


class PushRejectedError(ApnsError):
    """APNs rejected a notification, or it failed to be delivered to APNs.

    Raised by :meth:`apnskit.PushResult.raise_for_status`.

    Attributes:
        result: The result that was not accepted.
    """

    def __init__(self, result: PushResult) -> None:
        target = _describe(result.notification)
        if result.status is None:
            error = result.error
            detail = f"{type(error).__name__}: {error}" if error is not None else "no answer"
            message = f"{target} failed without an answer from APNs ({detail})"
        else:
            reason = result.reason if result.reason is not None else "no reason given"
            message = f"{target} rejected by APNs: {result.status} {reason}"
        if result.apns_id:
            message += f" [apns-id {result.apns_id}]"
        super().__init__(message)
        self.result = result
        # The underlying error (connection lost, deadline...) is the cause, for tracebacks.
        if result.error is not None:
            self.__cause__ = result.error


def _describe(item: object) -> str:
    token = getattr(item, "device_token", None)
    if isinstance(token, str):
        shown = f"{token[:8]}...{token[-4:]}" if len(token) > 16 else token
        return f"notification to {shown}"
    channel = getattr(item, "channel_id", None)
    if isinstance(channel, str):
        return f"broadcast to channel {channel}"
    return "request"


class ClientClosedError(ApnsError):
    """A client was used after it was closed."""


# Tracebacks and reprs show the public name (apnskit.CredentialsError), not the private module
# it is defined in; `except apnskit.CredentialsError` is what users write. Pickling still works:
# apnskit re-exports every one of them under that name.
for _name in __all__:
    globals()[_name].__module__ = "apnskit"
del _name
