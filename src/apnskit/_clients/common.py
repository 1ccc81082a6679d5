"""What PushClient and AsyncPushClient share: settling options into one frozen setup.

Both clients call :func:`settle` with the same arguments and then only differ in how they
wait (threads and selectors, or anyio tasks).
"""

from __future__ import annotations

import random
import ssl
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Protocol

from apnskit._config import (
    DEFAULT_LIMITS,
    DEFAULT_PORT,
    DEFAULT_RETRY_POLICY,
    DEFAULT_TIMEOUT,
    Environment,
    Limits,
    RetryPolicy,
    Timeout,
)
from apnskit._engine.client_events import ClientEvent
from apnskit._engine.dispatcher import Dispatcher
from apnskit._engine.pool import PooledConnection
from apnskit._engine.tickets import Ticket
from apnskit._errors import (
    ApnsError,
    ClientClosedError,
    ConfigurationError,
    ConnectionLostError,
    CredentialsError,
    InvalidNotificationError,
)
from apnskit._transports.proxy import Proxy, choose_proxy

__all__ = [
    "CERTIFICATE_REFUSED",
    "ClientBase",
    "ClientSetup",
    "Credentials",
    "EventHook",
    "build_ssl_context",
    "check_broadcast",
    "closed_by_server",
    "settle",
]

#: A callable that receives a client's events (for metrics).
EventHook = Callable[[ClientEvent], None]


class Credentials(Protocol):
    """What a client needs from :class:`apnskit.TokenCredentials` or ``CertificateCredentials``."""

    def authorization(self) -> tuple[str, int] | None:
        """``("bearer <jwt>", generation)`` for token auth; None for certificates.

        The clients call it and hand the header to the dispatcher, which reads no clock.
        """

    def token_rejected(self, generation: int) -> None:
        """APNs said ExpiredProviderToken for a token of this generation."""

    def resolve_environment(self, environment: str | Environment | None) -> Environment:
        """The environment to use, checked against the credentials."""

    def configure_ssl_context(self, context: ssl.SSLContext) -> None:
        """Load a client certificate into ``context`` (certificate auth)."""


@dataclass(frozen=True, slots=True)
class ClientSetup:
    """Everything a client decided at construction."""

    environment: Environment
    host: str
    port: int
    authority: str
    ssl_context: ssl.SSLContext
    token_auth: bool
    timeout: Timeout
    limits: Limits
    retry: RetryPolicy


#: What it means when a server closes a connection before its first SETTINGS frame while we
#: present a client certificate. With TLS 1.3 the client's handshake is over before the server
#: has checked the certificate, so the refusal arrives as a close (or an alert) on the first
#: read. ``apnskit check --connect`` says the same.
CERTIFICATE_REFUSED = (
    "the server closed the connection right after the TLS handshake: it refused the client "
    "certificate (issued by a CA it does not trust, expired or revoked, or for the other "
    "environment; 'apnskit check --cert FILE --connect' shows which)"
)


def closed_by_server(
    conn: PooledConnection, setup: ClientSetup, error: ApnsError | None = None
) -> ApnsError:
    """The error for a connection the server closed (``error``: the read failure, if any).

    Args:
        conn: The connection that was closed.
        setup: The client's setup (token or certificate auth).
        error: What the read raised, or None at a clean end of stream.
    """
    if not setup.token_auth and not conn.core.settings_received:
        return ConnectionLostError(CERTIFICATE_REFUSED)
    return error if error is not None else ConnectionLostError("APNs closed the TCP connection")


def build_ssl_context(
    credentials: Credentials | None, ca_file: str | None, ssl_context: ssl.SSLContext | None
) -> ssl.SSLContext:
    """A TLS 1.2+ client context with ALPN ``h2``, the system trust store plus ``ca_file``.

    ``credentials`` may be None (``apnskit check --connect`` without a key or certificate).
    A caller's ``ssl_context`` is used as given, never changed (it may serve other
    connections of the caller's): it must offer ALPN ``h2`` and, for certificate
    authentication, hold the client certificate already.
    """
    if ssl_context is None:
        # Apple: HTTP/2 over TLS 1.2 or later; server certificates chain to a public CA
        # (USERTrust RSA since 2025), which the system store has.
        context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        if ca_file is not None:
            try:
                context.load_verify_locations(cafile=ca_file)
            except (OSError, ssl.SSLError) as error:
                # ssl.SSLError is an OSError: its reason ("NO_CERTIFICATE_OR_CRL_FOUND") or
                # the system's words ("no such file or directory"), not "[Errno 2] ...".
                why = getattr(error, "reason", None) or (error.strerror or str(error)).lower()
                raise ConfigurationError(
                    f"ca_file: cannot load {ca_file!r} as PEM certificates: {why}"
                ) from error
        if credentials is not None:
            credentials.configure_ssl_context(context)
        # RFC 9113 section 3.2: HTTP/2 over TLS is negotiated with ALPN "h2".
        context.set_alpn_protocols(["h2"])
        return context
    if ca_file is not None:
        raise ConfigurationError(
            "ca_file: give either ssl_context or ca_file; load the CA into your context"
        )
    if not isinstance(ssl_context, ssl.SSLContext):
        raise ConfigurationError(
            f"ssl_context: expected an ssl.SSLContext, got {type(ssl_context).__name__}"
        )
    if "h2" not in offered_alpn_protocols(ssl_context):
        raise ConfigurationError(
            "ssl_context: does not offer ALPN 'h2', which APNs requires (RFC 9113 section "
            "3.2); call ssl_context.set_alpn_protocols(['h2']) on it first"
        )
    return ssl_context


def offered_alpn_protocols(context: ssl.SSLContext) -> list[str]:
    """The ALPN protocols ``context`` offers, read from the ClientHello it writes.

    ``ssl.SSLContext`` has no getter for them, so a handshake is started in memory (nothing
    is sent anywhere) and the ALPN extension (RFC 7301 section 3.1) is read back.
    """
    outgoing = ssl.MemoryBIO()
    tls = context.wrap_bio(ssl.MemoryBIO(), outgoing, server_hostname="alpn-check.invalid")
    try:
        tls.do_handshake()
    except ssl.SSLWantReadError:
        pass
    except (ssl.SSLError, ValueError):  # e.g. a server-side context
        return []
    return _alpn_from_client_hello(outgoing.read())


def _alpn_from_client_hello(record: bytes) -> list[str]:
    # TLS record (5 bytes) > Handshake header (4) > ClientHello: version (2), random (32),
    # session id, cipher suites, compression methods, then the extensions (RFC 8446 4.1.2).
    try:
        hello = record[9:]
        at = 34
        at += 1 + hello[at]
        at += 2 + int.from_bytes(hello[at : at + 2], "big")
        at += 1 + hello[at]
        end = at + 2 + int.from_bytes(hello[at : at + 2], "big")
        at += 2
        while at + 4 <= end:
            kind = int.from_bytes(hello[at : at + 2], "big")
            size = int.from_bytes(hello[at + 2 : at + 4], "big")
            body = hello[at + 4 : at + 4 + size]
            at += 4 + size
            if kind == 16:  # application_layer_protocol_negotiation
                names: list[str] = []
                pos = 2
                while pos < len(body):
                    length = body[pos]
                    names.append(body[pos + 1 : pos + 1 + length].decode("ascii", "replace"))
                    pos += 1 + length
                return names
    except IndexError:
        pass
    return []


def settle(
    credentials: Any,
    *,
    environment: str | Environment | None,
    host: str | None,
    port: int | None,
    ca_file: str | None,
    ssl_context: ssl.SSLContext | None,
    timeout: Timeout,
    limits: Limits,
    retry: RetryPolicy,
) -> ClientSetup:
    """Check the constructor arguments and work out host, port and TLS."""
    for name in ("authorization", "token_rejected", "resolve_environment"):
        if not callable(getattr(credentials, name, None)):
            raise ConfigurationError(
                "credentials: expected apnskit.TokenCredentials or CertificateCredentials, "
                f"got {type(credentials).__name__}"
            )
    if not isinstance(timeout, Timeout):
        raise ConfigurationError("timeout: must be an apnskit.Timeout")
    if not isinstance(limits, Limits):
        raise ConfigurationError("limits: must be an apnskit.Limits")
    if not isinstance(retry, RetryPolicy):
        raise ConfigurationError("retry: must be an apnskit.RetryPolicy")
    if host is None:
        env = credentials.resolve_environment(environment)
        host = env.host
    else:
        # An explicit host (a proxy, the mock server) does not need the environment; it is
        # still checked against a certificate when given.
        try:
            env = credentials.resolve_environment(environment)
        except CredentialsError:
            if environment is not None:
                raise
            env = Environment.SANDBOX
    if port is None:
        port = DEFAULT_PORT
    if isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536:
        raise ConfigurationError(f"port: {port!r} is not a TCP port number (1..65535)")
    context = build_ssl_context(credentials, ca_file, ssl_context)
    name = f"[{host}]" if ":" in host else host
    authority = name if port == DEFAULT_PORT else f"{name}:{port}"
    return ClientSetup(
        environment=env,
        host=host,
        port=port,
        authority=authority,
        ssl_context=context,
        token_auth=credentials.authorization() is not None,
        timeout=timeout,
        limits=limits,
        retry=retry,
    )


class ClientBase:
    """The constructor and configuration both clients share; I/O lives in the subclasses.

    Keeping ``__init__`` here makes the two constructors identical by construction (a test
    still compares every public signature of the twins).
    """

    def __init__(
        self,
        credentials: Any,
        *,
        environment: str | Environment | None = None,
        host: str | None = None,
        port: int | None = None,
        management_host: str | None = None,
        management_port: int | None = None,
        ca_file: str | None = None,
        ssl_context: ssl.SSLContext | None = None,
        transport: Any = None,
        timeout: Timeout = DEFAULT_TIMEOUT,
        limits: Limits = DEFAULT_LIMITS,
        retry: RetryPolicy = DEFAULT_RETRY_POLICY,
        event_hook: EventHook | None = None,
        proxy: str | None = None,
        trust_env: bool = True,
    ) -> None:
        setup = settle(
            credentials,
            environment=environment,
            host=host,
            port=port,
            ca_file=ca_file,
            ssl_context=ssl_context,
            timeout=timeout,
            limits=limits,
            retry=retry,
        )
        self._setup = setup
        self._credentials = credentials
        self._event_hook = event_hook
        # A custom transport (FakeTransport, your own) makes its own connections: a proxy
        # cannot be slid under it, and the environment's is not forced on it.
        if transport is not None and proxy is not None:
            raise ConfigurationError(
                "proxy: a custom transport makes its own connections; give proxy or transport"
            )
        self._proxy: Proxy | None = (
            choose_proxy(proxy, trust_env, setup.host, setup.port) if transport is None else None
        )
        self._transport = self._check_transport(transport)
        self._custom_transport = transport is not None
        if management_host is None:
            if host is None:
                management_host = setup.environment.management_host
                management_port = management_port or setup.environment.management_port
            else:
                # A custom host (the mock server, a proxy) serves channel management too
                # unless told otherwise.
                management_host = setup.host
                management_port = management_port or setup.port
        # An explicit management host is Apple's kind: its port follows the environment.
        management_port = management_port or setup.environment.management_port
        self._management_address = (management_host, management_port)
        # Channel management has its own host: NO_PROXY may list one and not the other, so
        # its proxy is chosen now, with the same options (and the same errors, up front).
        self._management_proxy: Proxy | None = (
            choose_proxy(proxy, trust_env, management_host, management_port)
            if transport is None
            else None
        )
        self._dispatcher = Dispatcher(
            authority=setup.authority,
            credentials=credentials,
            limits=setup.limits,
            retry=setup.retry,
            timeout=setup.timeout,
            random=random.random,
            on_done=_on_done,
            event_hook=event_hook,
            hold_until_success=setup.token_auth,
            host=setup.host,
            port=setup.port,
        )
        self._closed = False
        self._init_io()

    def _check_transport(self, transport: Any) -> Any:
        """Return the transport to use (the default one for None); raise if it cannot serve."""
        raise NotImplementedError

    def _init_io(self) -> None:
        """Set up the subclass's locks, poller and state."""
        raise NotImplementedError

    def _withdraw(self, tickets: Iterable[Ticket], error: ClientClosedError) -> None:
        """Cancel ``tickets``, whose callers left (the client layer implements it)."""
        raise NotImplementedError

    def _check_open(self) -> None:
        if self._closed:
            raise ClientClosedError("the client was closed")

    def __repr__(self) -> str:
        s = self._setup
        # The proxy is shown as scheme://host:port: never its credentials.
        via = f" via {self._proxy.display}" if self._proxy is not None else ""
        return f"<{type(self).__name__} {s.environment.value} {s.host}:{s.port}{via}>"

    @property
    def environment(self) -> Environment:
        """The APNs environment this client sends to."""
        return self._setup.environment

    def _management_options(self) -> dict[str, Any]:
        """Arguments for the client that talks to the channel-management host."""
        host, port = self._management_address
        return {
            "environment": self._setup.environment,
            "host": host,
            "port": port,
            "ssl_context": self._setup.ssl_context,
            # The default transport is rebuilt by the management client with its own proxy.
            "transport": self._transport if self._custom_transport else None,
            "proxy": self._management_proxy,
            "trust_env": False,
            "timeout": self._setup.timeout,
            "limits": Limits(max_connections=1, max_in_flight=self._setup.limits.max_in_flight),
            "retry": self._setup.retry,
            "event_hook": self._event_hook,
        }


def check_broadcast(notification: object) -> None:
    """Refuse anything but a :class:`apnskit.BroadcastNotification` in ``send_broadcast``."""
    from apnskit._model.broadcast import BroadcastNotification

    if not isinstance(notification, BroadcastNotification):
        raise InvalidNotificationError(
            "notification",
            f"{type(notification).__name__} is not an apnskit.BroadcastNotification; "
            "send device notifications with send()",
        )


def _on_done(ticket: Ticket) -> None:
    # Called by the dispatcher (under the sync client's lock). send_many() collects its own
    # tickets in a deque it hands over as the waiter; send() just checks ticket.done.
    waiter = ticket.waiter
    if waiter is not None:
        waiter.append(ticket)
