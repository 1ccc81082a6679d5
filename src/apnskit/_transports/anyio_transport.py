"""The async transport: anyio TCP, TLS in memory, so the async client runs on asyncio and trio."""

from __future__ import annotations

import contextlib
import ssl

import anyio
from anyio.abc import ByteStream

from apnskit._errors import ConnectError, ConnectionLostError
from apnskit._transports.connecting import connect_failure
from apnskit._transports.proxy import Proxy, open_tunnel_async
from apnskit._transports.tls import READ_SIZE, TlsLayer

__all__ = ["AnyioStream", "AnyioTransport", "open_tcp_async", "start_tls_async"]

# What anyio raises when the raw stream is gone (its own errors, and the OS's).
_BROKEN = (
    anyio.BrokenResourceError,
    anyio.BusyResourceError,
    anyio.ClosedResourceError,
    OSError,
    ssl.SSLError,
)


class AnyioStream:
    """An anyio byte stream, with TLS in memory (:class:`TlsLayer`) and errors mapped to apnskit's.

    Not anyio's ``TLSStream``: it returns one TLS record per ``receive()``, a pass through its
    Python code per APNs response; :meth:`read` returns up to 64 whole records a read brought.
    Without ``tls`` the stream carries the bytes as they are (tests).
    """

    def __init__(
        self, stream: ByteStream, write_timeout: float | None = 30.0, tls: TlsLayer | None = None
    ) -> None:
        self._stream = stream
        self._write_timeout = write_timeout
        self._tls = tls
        # The reader task (a TLS 1.3 KeyUpdate answer) and the writer both send: one at a
        # time, each sending everything the TLS session produced so far, in order.
        self._sending = anyio.Lock()

    async def write(self, data: bytes) -> None:
        """Write everything; a server that stops reading for ``write_timeout`` is lost."""
        try:
            with anyio.fail_after(self._write_timeout):
                tls = self._tls
                if tls is None:
                    await self._stream.send(data)
                else:
                    # A memory BIO takes all of it at once (no partial writes).
                    tls.obj.write(data)
                    await self._flush(tls)
        except TimeoutError as e:
            raise ConnectionLostError(
                "timed out writing to APNs (the server stopped reading)"
            ) from e
        except (
            *_BROKEN,
            # The raw stream met the server's end while sending (seen in AsyncPushClient
            # .close() after the server went away, issue 12's tests on trio).
            anyio.EndOfStream,
        ) as e:
            raise ConnectionLostError(f"writing to APNs failed: {e!r}") from e

    async def _flush(self, tls: TlsLayer) -> None:
        async with self._sending:
            data = tls.outgoing.read()
            if data:
                await self._stream.send(data)

    async def read(self) -> bytes:
        """Wait for data; ``b""`` at EOF."""
        try:
            tls = self._tls
            if tls is None:
                return await self._stream.receive(READ_SIZE)
            while True:
                data = tls.decrypt()
                if tls.outgoing.pending:
                    # What reading produced (a TLS 1.3 KeyUpdate answer) goes out now; a
                    # cancellation must not cut it (a partial record breaks the session).
                    with anyio.fail_after(self._write_timeout, shield=True):
                        await self._flush(tls)
                if data is not None:
                    return data
                try:
                    tls.feed(await self._stream.receive(READ_SIZE))
                except anyio.EndOfStream:
                    tls.feed(b"")
        except (anyio.EndOfStream, ssl.SSLZeroReturnError, ssl.SSLEOFError):
            # The end of the stream, with or without TLS close_notify (as ssl.SSLSocket's
            # suppress_ragged_eofs reports it).
            return b""
        except (*_BROKEN, TimeoutError) as e:
            raise ConnectionLostError(f"reading from APNs failed: {e!r}") from e

    async def aclose(self) -> None:
        """Close without raising, without a TLS close_notify (APNs does not need one)."""
        with anyio.move_on_after(1.0, shield=True), contextlib.suppress(Exception):
            await self._stream.aclose()


async def open_tcp_async(host: str, port: int) -> ByteStream:
    """Resolve ``host`` and connect TCP (no TLS yet); the caller bounds the time."""
    return await anyio.connect_tcp(host, port)


async def start_tls_async(
    stream: ByteStream, ssl_context: ssl.SSLContext, server_hostname: str
) -> TlsLayer:
    """Run the TLS handshake over a connected ``stream``; the caller bounds the time.

    Raises the native error (``ssl.SSLError``, anyio's) on failure; the caller checks the
    negotiated ALPN protocol.
    """
    tls = TlsLayer(ssl_context, server_hostname)
    while True:
        done = tls.handshake_step()
        if tls.outgoing.pending:
            await stream.send(tls.outgoing.read())
        if done:
            return tls
        try:
            tls.feed(await stream.receive(READ_SIZE))
        except anyio.EndOfStream:
            tls.feed(b"")  # do_handshake() raises ssl.SSLEOFError


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
                else:
                    # The tunnel: TLS below runs inside it, checked as without a proxy.
                    raw = await open_tunnel_async(self.proxy, host, port)
                tls = await start_tls_async(raw, ssl_context, server_hostname)
        except Exception as error:
            if raw is not None:
                await _close_quietly(raw)
            raise connect_failure(host, port, timeout, error, self.proxy) from error
        if tls.obj.selected_alpn_protocol() != "h2":
            await _close_quietly(raw)
            raise ConnectError(
                f"{host}:{port} did not agree to HTTP/2 (ALPN h2); is it an APNs server?"
            )
        # Like the sync transport: writes may take as long as a connect, 30 s at least.
        return AnyioStream(raw, write_timeout=max(timeout or 0.0, 30.0), tls=tls)


async def _close_quietly(stream: ByteStream) -> None:
    with anyio.move_on_after(1.0, shield=True), contextlib.suppress(Exception):
        await stream.aclose()
