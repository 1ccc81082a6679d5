"""How a failed connect is reported: native errors mapped to apnskit's, the same in every transport.

Both transports (socket and anyio) and the proxy tunnels meet the same failures (DNS, refused,
timeout, TLS verification, a proxy in the way) as different native exceptions. They all hand
them to :func:`connect_failure` or :func:`map_connect_error`, so a cause reads the same words
whichever client met it, and no native exception leaks past the network seam.
"""

from __future__ import annotations

import socket
import ssl
from typing import TYPE_CHECKING

from apnskit._errors import ApnsError, ConnectError, ConnectTimeoutError, ProxyError

if TYPE_CHECKING:
    from apnskit._transports.proxy import Proxy

__all__ = ["connect_failure", "connect_timeout_error", "map_connect_error", "with_proxy"]


def map_connect_error(host: str, port: int, error: BaseException) -> ConnectError:
    """Turn a native connect/handshake error into apnskit's, with a hint at the cause."""
    where = f"{host}:{port}"
    if isinstance(error, ConnectError):
        return error
    cause = error.__cause__
    if type(error) is OSError and error.errno is None and isinstance(cause, BaseException):
        # anyio.connect_tcp reports a bare "All connection attempts failed" with the real
        # error (or an exception group of them, one per address) as the cause: name that
        # instead, so "refused" or the TLS hint reaches the caller.
        nested = getattr(cause, "exceptions", None)
        return map_connect_error(host, port, nested[0] if nested else cause)
    if isinstance(error, (socket.timeout, TimeoutError)):
        return ConnectTimeoutError(f"connecting to {where} timed out")
    if isinstance(error, socket.gaierror):
        return ConnectError(f"cannot resolve {host!r} (DNS): {error.strerror or error}")
    if isinstance(error, ssl.SSLCertVerificationError):
        # The client may or may not have been given a ca_file; the text fits both cases.
        return ConnectError(
            f"TLS certificate of {where} did not verify ({error.verify_message or error}): "
            "no CA this client trusts signed it. A private CA (a TLS-intercepting proxy's, "
            "the mock server's) must be given as ca_file=, and a ca_file= already given does "
            "not hold the CA that signed this server's certificate."
        )
    if isinstance(error, ssl.SSLError):
        return ConnectError(f"TLS handshake with {where} failed: {error.reason or error}")
    if isinstance(error, ConnectionRefusedError):
        return ConnectError(f"connection to {where} refused")
    if isinstance(error, OSError):
        return ConnectError(f"cannot connect to {where}: {error.strerror or _text(error)}")
    return ConnectError(f"cannot connect to {where}: {_text(error)}")


def _text(error: BaseException) -> str:
    # Some errors (a peer closing mid-handshake under anyio) have an empty message: the
    # type name is then the most useful thing to show.
    return str(error) or type(error).__name__


def connect_timeout_error(host: str, port: int, timeout: float | None) -> ConnectTimeoutError:
    """The error both clients report when ``Timeout.connect`` runs out (same words in each)."""
    return ConnectTimeoutError(
        f"connecting to {host}:{port} timed out: no HTTP/2 over TLS connection within "
        f"{timeout:g} s (Timeout.connect covers DNS, TCP and the TLS handshake together)"
    )


def with_proxy(error: ConnectError, proxy: Proxy) -> ConnectError:
    """``error`` (from TLS inside the tunnel) with the proxy named, same type."""
    if isinstance(error, ProxyError):
        return error
    try:
        annotated = type(error)(f"{error} (through proxy {proxy.display})")
    except TypeError:
        return error
    annotated.__cause__ = error.__cause__
    return annotated


def connect_failure(
    host: str, port: int, timeout: float | None, error: BaseException, proxy: Proxy | None
) -> ConnectError:
    """The one error a failed connect raises, in both transports: same cause, same words."""
    if isinstance(error, TimeoutError) and not isinstance(error, ApnsError):
        mapped: ConnectError = connect_timeout_error(host, port, timeout)
    else:
        mapped = map_connect_error(host, port, error)
    return mapped if proxy is None else with_proxy(mapped, proxy)
