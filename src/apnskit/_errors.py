"""The apnskit exception tree.

Exceptions are for local misuse and for broken connections. What APNs *says* about a
notification (a rejection with a reason) is a :class:`~apnskit.PushResult`, not an exception,
unless the caller asks for one with :meth:`~apnskit.PushResult.raise_for_status`.

Every public exception, as ``apnskit.<Name>`` (tests/results/test_errors.py checks this drawing
against the classes, so it cannot drift; "also X" names a second base class):

```
ApnsError
 +-- InvalidNotificationError (also ValueError)   bad notification, found before any byte is sent
 +-- CredentialsError (also ValueError)           key/certificate/password/environment problems
 +-- ConfigurationError (also ValueError)         a client was built with inconsistent options
 +-- ProtocolError                                a protocol's rules were broken
 |    +-- LocalProtocolError                      ... by us (a bug, or misuse of the internals)
 |    +-- RemoteProtocolError                     ... by the server (HTTP/2)
 +-- TransportError                               the network failed us
 |    +-- ConnectError                            could not connect (DNS, refused, TLS handshake)
 |    |    +-- ProxyError                         ... because the proxy refused or failed
 |    +-- ConnectionLostError                     an open connection broke or was closed
 |    +-- ApnsTimeoutError (also TimeoutError)    something took longer than allowed
 |         +-- ConnectTimeoutError (also ConnectError)
 |         +-- DeadlineExceededError              a notification's deadline passed
 +-- PushRejectedError                            APNs rejected a notification (raise_for_status)
 |    +-- ChannelError                            ... or a channel management request
 +-- ClientClosedError                            the client was used after close()
```

Internal subclasses (the core's ``HpackError``, a :class:`RemoteProtocolError`) are not drawn:
they reach callers only as their public parent.

**Timeouts are also built-in TimeoutErrors, hence OSErrors.** ``except TimeoutError`` is how
Python code catches a timeout whoever raised it (``socket``, ``asyncio.wait_for``,
``anyio.fail_after``), so :class:`ApnsTimeoutError` keeps :class:`TimeoutError` as a base. The
price: :class:`TimeoutError` is an :class:`OSError`, so ``except OSError`` catches apnskit's
timeouts (their ``errno`` and ``strerror`` are ``None``) but not its other network failures
(:class:`ConnectError`, :class:`ConnectionLostError`, :class:`ProxyError`), and a broad
``except OSError`` wrapped around a client call intercepts them. Catch
:class:`TransportError` for every network failure, and put ``except apnskit.ApnsError``
clauses before ``except OSError`` ones. Making every :class:`TransportError` an
:class:`OSError` (as ``requests`` does) was not chosen: apnskit's transports turn the socket
layer's OSErrors into their own exceptions with ``except OSError``, and every apnskit error
that is also an OSError is one more those handlers could swallow by mistake.

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
    """A protocol's rules were broken: HTTP/2 (RFC 9113), or an APNs exchange."""


class LocalProtocolError(ProtocolError):
    """We tried to do something the protocol (or the connection's state) does not allow.

    A bug in apnskit or misuse of its internals, not bad input: for instance an answer to a
    channel management request read as the answer to another kind of request.
    """


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

    Raised by :meth:`apnskit.PushResult.raise_for_status`. Pickles with its result (for
    Celery results and multiprocessing).

    Args:
        result: The result that was not accepted.
        message: The message; by default one naming the notification, what APNs said (or
            why nothing was said) and the ``apns-id``.

    Attributes:
        result: The result that was not accepted.
    """

    def __init__(self, result: PushResult, message: str | None = None) -> None:
        if message is None:
            message = rejection_message(_describe(result.notification), result)
            if result.apns_id:
                message += f" [apns-id {result.apns_id}]"
        super().__init__(message)
        self.result = result
        # The underlying error (connection lost, deadline...) is the cause, for tracebacks.
        if result.error is not None:
            self.__cause__ = result.error

    def __reduce__(self) -> tuple[object, ...]:
        # The default would call cls(message), which is not a PushResult; rebuild from the
        # message and the attributes instead, subclasses' ones (ChannelError.request) too.
        return (_rebuild_rejection, (type(self), str(self), self.__dict__))


def _rebuild_rejection(
    cls: type[PushRejectedError], message: str, attributes: dict[str, object]
) -> PushRejectedError:
    error = cls.__new__(cls, message)  # BaseException.__new__ sets args; no __init__
    error.__dict__.update(attributes)
    if error.result.error is not None:
        error.__cause__ = error.result.error
    return error


def rejection_message(subject: str, result: PushResult) -> str:
    """What befell ``subject`` (``"notification to ..."``), for a result that is not a success.

    Shared by :class:`PushRejectedError` and :class:`~apnskit.ChannelError`, which name their
    subject and add their own request id.
    """
    if result.status is None:
        error = result.error
        detail = f"{type(error).__name__}: {error}" if error is not None else "no answer"
        return f"{subject} failed without an answer from APNs ({detail})"
    reason = result.reason if result.reason is not None else "no reason given"
    return f"{subject} rejected by APNs: {result.status} {reason}"


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
