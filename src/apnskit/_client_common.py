"""What PushClient and AsyncPushClient share: settling options into one frozen setup.

Both clients call :func:`settle` with the same arguments and then only differ in how they
wait (threads and selectors, or anyio tasks).
"""

from __future__ import annotations

import ssl
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from apnskit._config import (
    DEFAULT_PORT,
    Environment,
    Limits,
    RetryPolicy,
    Timeout,
)
from apnskit._core.dispatch import ClientEvent
from apnskit._errors import ConfigurationError, CredentialsError

__all__ = ["ClientSetup", "Credentials", "EventHook", "build_ssl_context", "settle"]

#: A callable that receives a client's events (for metrics).
EventHook = Callable[[ClientEvent], None]


class Credentials(Protocol):
    """What a client needs from :class:`apnskit.TokenCredentials` or ``CertificateCredentials``."""

    def authorization(self) -> tuple[str, int] | None:
        """``("bearer <jwt>", generation)`` for token auth; None for certificates."""

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


def build_ssl_context(
    credentials: Credentials, ca_file: str | None, ssl_context: ssl.SSLContext | None
) -> ssl.SSLContext:
    """A TLS 1.2+ client context with ALPN ``h2``, the system trust store plus ``ca_file``."""
    if ssl_context is None:
        # Apple: HTTP/2 over TLS 1.2 or later; server certificates chain to a public CA
        # (USERTrust RSA since 2025), which the system store has.
        context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        if ca_file is not None:
            try:
                context.load_verify_locations(cafile=ca_file)
            except (OSError, ssl.SSLError) as error:
                raise ConfigurationError(
                    f"ca_file: cannot load {ca_file!r} as PEM certificates: {error}"
                ) from error
        credentials.configure_ssl_context(context)
    else:
        context = ssl_context
        if ca_file is not None:
            raise ConfigurationError(
                "ca_file: give either ssl_context or ca_file; load the CA into your context"
            )
    # RFC 9113 section 3.2: HTTP/2 over TLS is negotiated with ALPN "h2".
    context.set_alpn_protocols(["h2"])
    return context


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
