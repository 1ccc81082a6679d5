"""The sync transport: ``socket`` + ``ssl``, non-blocking reads multiplexed with ``selectors``."""

from __future__ import annotations

import contextlib
import ipaddress
import selectors
import socket
import ssl
import threading
import time
from typing import Any

from apnskit._errors import ConnectError, ConnectionLostError
from apnskit._transports.connecting import connect_failure
from apnskit._transports.proxy import Proxy, open_tunnel
from apnskit._transports.tls import READ_SIZE, TlsLayer

__all__ = [
    "SocketPoller",
    "SocketStream",
    "SocketTransport",
    "open_tcp",
    "start_tls",
]


class SocketStream:
    """A TCP socket, non-blocking after the handshake, with TLS in memory (:class:`TlsLayer`).

    Without ``tls`` the socket carries the bytes as they are (tests).
    """

    def __init__(
        self, sock: socket.socket, write_timeout: float | None, tls: TlsLayer | None = None
    ) -> None:
        self.sock = sock
        self._write_timeout = write_timeout
        self._tls = tls
        self._closed = False

    def fileno(self) -> int:
        """The socket's file descriptor."""
        return self.sock.fileno()

    def pending(self) -> bool:
        """True when the next read has what select() cannot see: records or the end, in memory."""
        tls = self._tls
        return tls is not None and (tls.end_pending or tls.more) and not self._closed

    def write(self, data: bytes) -> None:
        """Write everything, waiting for the socket to drain when it is full."""
        tls = self._tls
        try:
            if tls is not None:
                # A memory BIO takes all of it at once (no partial writes).
                tls.obj.write(data)
                data = tls.outgoing.read()
            self._send(data)
        except (OSError, ValueError) as error:  # ssl.SSLError is an OSError
            raise ConnectionLostError(f"writing to APNs failed: {error}") from error

    def _send(self, data: bytes) -> None:
        view = memoryview(data)
        sock = self.sock
        while view:
            try:
                sent = sock.send(view)
            except BlockingIOError:
                self._wait(selectors.EVENT_WRITE)
                continue
            view = view[sent:]

    def _wait(self, events: int) -> None:
        with selectors.DefaultSelector() as selector:
            selector.register(self.sock, events)
            if not selector.select(self._write_timeout):
                raise ConnectionLostError("timed out writing to APNs (the server stopped reading)")

    def read(self) -> bytes | None:
        """What is readable now: ``None`` for nothing, ``b""`` at EOF."""
        tls = self._tls
        try:
            if tls is None:
                return self.sock.recv(READ_SIZE)
            return self._read_tls(tls)
        except BlockingIOError:
            return None
        except (ssl.SSLZeroReturnError, ssl.SSLEOFError):
            # The end of the stream, with or without TLS close_notify (as ssl.SSLSocket's
            # suppress_ragged_eofs reports it).
            return b""
        except (OSError, ValueError) as error:
            raise ConnectionLostError(f"reading from APNs failed: {error}") from error

    def _read_tls(self, tls: TlsLayer) -> bytes | None:
        # The whole records in memory, up to 64 (the driver feeds them to the dispatcher in
        # one pass); the socket is read, once, only when no whole record is left (raises
        # BlockingIOError when it has nothing either).
        data = tls.decrypt()
        if data is None:
            tls.feed(self.sock.recv(READ_SIZE))
            data = tls.decrypt()
        if tls.outgoing.pending:
            # What reading produced (a TLS 1.3 KeyUpdate answer) goes out now.
            self._send(tls.outgoing.read())
        return data

    def close(self) -> None:
        """Close without raising."""
        if self._closed:
            return
        self._closed = True
        with contextlib.suppress(OSError):
            self.sock.close()


class SocketPoller:
    """``selectors`` over the streams, with a socketpair to wake it from other threads."""

    def __init__(self) -> None:
        self._selector = selectors.DefaultSelector()
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._selector.register(self._wake_r, selectors.EVENT_READ, None)
        self._streams: list[SocketStream] = []

    def register(self, stream: SocketStream) -> None:
        """Watch ``stream`` for readability."""
        self._selector.register(stream.sock, selectors.EVENT_READ, stream)
        self._streams.append(stream)

    def unregister(self, stream: SocketStream) -> None:
        """Stop watching ``stream``."""
        with contextlib.suppress(KeyError, ValueError, OSError):
            self._selector.unregister(stream.sock)
        with contextlib.suppress(ValueError):
            self._streams.remove(stream)

    def wait(self, timeout: float | None) -> list[SocketStream]:
        """Streams that may be readable (TLS-buffered ones first, without waiting)."""
        buffered = [s for s in self._streams if s.pending()]
        if buffered:
            return buffered
        ready: list[SocketStream] = []
        for key, _ in self._selector.select(timeout):
            if key.data is None:
                with contextlib.suppress(OSError):
                    while self._wake_r.recv(4096):
                        pass
            else:
                ready.append(key.data)
        return ready

    def wake(self) -> None:
        """Interrupt :meth:`wait` (thread-safe)."""
        with contextlib.suppress(OSError):
            self._wake_w.send(b"\0")

    def close(self) -> None:
        """Release the selector and wake-up sockets."""
        with contextlib.suppress(OSError):
            self._selector.close()
        for sock in (self._wake_r, self._wake_w):
            with contextlib.suppress(OSError):
                sock.close()


def _remaining(deadline: float | None) -> float | None:
    if deadline is None:
        return None
    left = deadline - time.monotonic()
    if left <= 0:
        raise TimeoutError("connect deadline passed")
    return left


def _resolve(host: str, port: int, deadline: float | None) -> list[Any]:
    """``getaddrinfo`` bounded by ``deadline``.

    The C call cannot be interrupted, so it runs in a daemon thread that is left behind if it
    takes too long.
    """
    try:
        ipaddress.ip_address(host)
    except ValueError:
        pass
    else:  # a literal address needs no lookup
        return socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_NUMERICHOST)
    if deadline is None:
        return socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    outcome: list[Any] = []
    done = threading.Event()

    def resolve() -> None:
        try:
            outcome.append(socket.getaddrinfo(host, port, type=socket.SOCK_STREAM))
        except BaseException as error:  # handed to the waiting thread
            outcome.append(error)
        done.set()

    threading.Thread(target=resolve, name="apnskit-dns", daemon=True).start()
    left = _remaining(deadline)
    if not done.wait(left):
        raise TimeoutError(f"resolving {host!r} (DNS) timed out")
    result = outcome[0]
    if isinstance(result, BaseException):
        raise result
    return list(result)


def open_tcp(host: str, port: int, deadline: float | None) -> socket.socket:
    """Resolve ``host`` and connect TCP to its first address that answers, by ``deadline``.

    ``deadline`` is a ``time.monotonic()`` value (None: no limit) shared with the TLS step.
    Raises the native error (``OSError``, ``socket.timeout``);
    :func:`~apnskit._transports.connecting.map_connect_error` maps it.
    """
    last: OSError | None = None
    for family, kind, proto, _, address in _resolve(host, port, deadline):
        sock = socket.socket(family, kind, proto)
        try:
            sock.settimeout(_remaining(deadline))
            sock.connect(address)
        except OSError as error:
            sock.close()
            if isinstance(error, socket.timeout):
                raise
            last = error
            continue
        # Small frames must not wait for Nagle: APNs answers each request separately.
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return sock
    raise last or OSError(f"no address found for {host!r}")


def start_tls(
    sock: socket.socket, ssl_context: ssl.SSLContext, server_hostname: str, deadline: float | None
) -> TlsLayer:
    """Run the TLS handshake over a connected ``sock`` by ``deadline``; returns its TLS layer.

    Raises the native error (``ssl.SSLError``, ``socket.timeout``) on failure; the caller
    checks the negotiated ALPN protocol.
    """
    tls = TlsLayer(ssl_context, server_hostname)
    while True:
        done = tls.handshake_step()
        if tls.outgoing.pending:
            sock.settimeout(_remaining(deadline))
            sock.sendall(tls.outgoing.read())
        if done:
            return tls
        sock.settimeout(_remaining(deadline))
        tls.feed(sock.recv(READ_SIZE))  # at the end, do_handshake() raises ssl.SSLEOFError


class SocketTransport:
    """The default sync transport: TCP with ``TCP_NODELAY``, TLS 1.2+, ALPN ``h2``.

    Args:
        proxy: Open every connection through this proxy (the TLS session runs inside).
    """

    def __init__(self, proxy: Proxy | None = None) -> None:
        self.proxy = proxy

    def connect(
        self,
        host: str,
        port: int,
        *,
        ssl_context: ssl.SSLContext,
        server_hostname: str,
        timeout: float | None,
    ) -> SocketStream:
        """Connect and handshake within ``timeout`` in all (DNS, TCP and TLS together).

        Raises:
            ConnectError: Any failure (:class:`apnskit.ConnectTimeoutError` for the timeout).
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        raw: socket.socket | None = None
        try:
            if self.proxy is None:
                raw = open_tcp(host, port, deadline)
            else:
                # The tunnel: TLS below runs inside it, checked as without a proxy. The
                # proxy's connect and handshake share the one connect deadline.
                raw = open_tunnel(self.proxy, host, port, _remaining(deadline))
            tls = start_tls(raw, ssl_context, server_hostname, deadline)
        except Exception as error:
            if raw is not None:
                raw.close()
            raise connect_failure(host, port, timeout, error, self.proxy) from error
        if tls.obj.selected_alpn_protocol() != "h2":
            raw.close()
            raise ConnectError(
                f"{host}:{port} did not agree to HTTP/2 (ALPN h2); is it an APNs server?"
            )
        raw.setblocking(False)
        return SocketStream(raw, write_timeout=max(timeout or 0.0, 30.0), tls=tls)

    def poller(self) -> SocketPoller:
        """A new :class:`SocketPoller`."""
        return SocketPoller()
