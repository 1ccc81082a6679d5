"""The async transport: anyio TCP + TLS, so the async client runs on asyncio and on trio."""

from __future__ import annotations

import contextlib
import ssl

import anyio
from anyio.abc import ByteStream
from anyio.streams.tls import TLSAttribute, TLSStream

from apnskit._errors import ConnectError, ConnectionLostError
from apnskit._transports.connecting import connect_failure
from apnskit._transports.proxy import Proxy, connect_tls_async

__all__ = ["AnyioStream", "AnyioTransport", "open_tcp_async", "start_tls_async"]

_READ_SIZE = 256 * 1024


class AnyioStream:
    """An anyio byte stream with errors mapped to apnskit's."""

    def __init__(self, stream: ByteStream, write_timeout: float | None = 30.0) -> None:
        self._stream = stream
        self._write_timeout = write_timeout

    async def write(self, data: bytes) -> None:
        """Write everything; a server that stops reading for ``write_timeout`` is lost."""
        try:
            with anyio.fail_after(self._write_timeout):
                await self._stream.send(data)
        except TimeoutError as e:
            raise ConnectionLostError(
                "timed out writing to APNs (the server stopped reading)"
            ) from e
        except (
            anyio.BrokenResourceError,
            anyio.BusyResourceError,
            anyio.ClosedResourceError,
            # A TLS write may need to read (a TLS 1.3 key update, an alert) and meet the
            # server's EOF: anyio raises EndOfStream from send() then, seen in AsyncPushClient
            # .close() after the server went away (issue 12's tests on trio).
            anyio.EndOfStream,
            OSError,
            ssl.SSLError,
        ) as e:
            raise ConnectionLostError(f"writing to APNs failed: {e!r}") from e

    async def read(self) -> bytes:
        """Wait for data; ``b""`` at EOF."""
        try:
            return await self._stream.receive(_READ_SIZE)
        except anyio.EndOfStream:
            return b""
        except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError, ssl.SSLError) as e:
            raise ConnectionLostError(f"reading from APNs failed: {e!r}") from e

    async def aclose(self) -> None:
        """Close without raising (and without waiting long for a TLS close_notify)."""
        with anyio.move_on_after(1.0, shield=True), contextlib.suppress(Exception):
            await self._stream.aclose()


async def open_tcp_async(host: str, port: int) -> ByteStream:
    """Resolve ``host`` and connect TCP (no TLS yet); the caller bounds the time."""
    return await anyio.connect_tcp(host, port)


async def start_tls_async(
    stream: ByteStream, ssl_context: ssl.SSLContext, server_hostname: str
) -> TLSStream:
    """Run the TLS handshake over a connected ``stream``; the caller bounds the time."""
    return await TLSStream.wrap(
        stream,
        hostname=server_hostname,
        ssl_context=ssl_context,
        # APNs does not need close_notify; skipping it keeps close() quick.
        standard_compatible=False,
    )


class AnyioTransport:
    """The default async transport.

    Args:
        proxy: Open every connection through this proxy (the TLS session runs inside).
    """

    def __init__(self, proxy: Proxy | None = None) -> None:
        self.proxy = proxy

    async def connect_async(
        self,
        host: str,
        port: int,
        *,
        ssl_context: ssl.SSLContext,
        server_hostname: str,
        timeout: float | None,
    ) -> AnyioStream:
        """Connect and handshake within ``timeout`` in all (DNS, TCP and TLS together).

        Raises:
            ConnectError: Any failure (:class:`apnskit.ConnectTimeoutError` for the timeout).
        """
        raw: ByteStream | None = None
        try:
            with anyio.fail_after(timeout):
                if self.proxy is None:
                    raw = await open_tcp_async(host, port)
                    stream = await start_tls_async(raw, ssl_context, server_hostname)
                else:
                    # The tunnel and the TLS session inside it, within the same budget.
                    stream = await connect_tls_async(
                        self.proxy,
                        host,
                        port,
                        ssl_context=ssl_context,
                        server_hostname=server_hostname,
                    )
        except Exception as error:
            if raw is not None:
                await _close_quietly(raw)
            raise connect_failure(host, port, timeout, error, self.proxy) from error
        if stream.extra(TLSAttribute.alpn_protocol, None) != "h2":
            await _close_quietly(stream)
            raise ConnectError(
                f"{host}:{port} did not agree to HTTP/2 (ALPN h2); is it an APNs server?"
            )
        # Like the sync transport: writes may take as long as a connect, 30 s at least.
        return AnyioStream(stream, write_timeout=max(timeout or 0.0, 30.0))


async def _close_quietly(stream: ByteStream) -> None:
    with anyio.move_on_after(1.0, shield=True), contextlib.suppress(Exception):
        await stream.aclose()
