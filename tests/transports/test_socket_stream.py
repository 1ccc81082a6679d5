"""The sync transport's TLS stream: TLS in memory over one ``recv()`` per batch of records.

``ssl.SSLSocket`` reads each TLS record with two ``read()`` system calls; the stream reads the
socket once and decrypts what came from memory. It must still hand the driver one record at
a time, tell the poller about whole records select() cannot see, and report both kinds of
end of stream as ``b""``.
"""

from __future__ import annotations

import contextlib
import socket
import ssl
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from apnskit._transports.socket_transport import SocketPoller, SocketStream, SocketTransport
from support.tls import make_tls_files


class CountingSocket:
    """A socket that counts its ``recv()`` calls (the stream's only way to read)."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.recvs = 0

    def recv(self, size: int) -> bytes:
        self.recvs += 1
        return self.sock.recv(size)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.sock, name)


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    return make_tls_files(tmp_path_factory.mktemp("stream-tls"))


def serve_once(
    tls_files: tuple[str, str], then: Callable[[ssl.SSLObject, ssl.MemoryBIO, socket.socket], None]
) -> tuple[int, threading.Thread]:
    """A TLS server (ALPN h2) for one connection; ``then`` runs after its handshake."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(*tls_files)
    context.set_alpn_protocols(["h2"])
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    def run() -> None:
        with listener:
            raw, _ = listener.accept()
        with raw:
            raw.settimeout(30)
            incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
            tls = context.wrap_bio(incoming, outgoing, server_side=True)
            while True:
                try:
                    tls.do_handshake()
                    break
                except ssl.SSLWantReadError:
                    if outgoing.pending:
                        raw.sendall(outgoing.read())
                    data = raw.recv(65536)
                    if not data:
                        return
                    incoming.write(data)
            if outgoing.pending:
                raw.sendall(outgoing.read())
            then(tls, outgoing, raw)
            with contextlib.suppress(OSError):
                raw.recv(1)  # until the client hangs up

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return port, thread


@pytest.fixture
def connect(tls_files: tuple[str, str]) -> Iterator[Callable[..., SocketStream]]:
    streams: list[SocketStream] = []
    threads: list[threading.Thread] = []

    def factory(then: Callable[[ssl.SSLObject, ssl.MemoryBIO, socket.socket], None]) -> Any:
        port, thread = serve_once(tls_files, then)
        context = ssl.create_default_context(cafile=tls_files[0])
        context.set_alpn_protocols(["h2"])
        stream = SocketTransport().connect(
            "127.0.0.1", port, ssl_context=context, server_hostname="127.0.0.1", timeout=30
        )
        streams.append(stream)
        threads.append(thread)
        return stream

    yield factory
    for stream in streams:
        stream.close()
    for thread in threads:
        thread.join(30)


def read_all(stream: SocketStream, poller: SocketPoller, wanted: int) -> list[bytes]:
    """Records until ``wanted`` of them (or the end), waiting on the poller between reads."""
    records: list[bytes] = []
    while len(records) < wanted:
        assert poller.wait(30), "no record arrived"
        while (data := stream.read()) is not None:
            records.append(data)
            if not data:
                return records
    return records


def test_a_burst_of_records_is_read_with_one_recv_and_handed_over_one_by_one(
    connect: Callable[..., SocketStream],
) -> None:
    def burst(tls: ssl.SSLObject, outgoing: ssl.MemoryBIO, raw: socket.socket) -> None:
        for i in range(30):
            tls.write(b"record %02d" % i)  # one TLS record each
        raw.sendall(outgoing.read())  # all of them in one TCP write

    stream = connect(burst)
    counting = CountingSocket(stream.sock)
    stream.sock = counting  # type: ignore[assignment]
    poller = SocketPoller()
    try:
        poller.register(stream)
        records = read_all(stream, poller, 30)
        assert records == [b"record %02d" % i for i in range(30)]
        # ssl.SSLSocket made two read() calls per record. The last recv finds nothing
        # (BlockingIOError); a TLS 1.3 session ticket may cost one more before the burst.
        assert counting.recvs <= 4
    finally:
        poller.close()


def test_the_poller_sees_a_record_select_cannot(connect: Callable[..., SocketStream]) -> None:
    def two(tls: ssl.SSLObject, outgoing: ssl.MemoryBIO, raw: socket.socket) -> None:
        tls.write(b"first")
        tls.write(b"second")
        raw.sendall(outgoing.read())

    stream = connect(two)
    poller = SocketPoller()
    try:
        poller.register(stream)
        first: bytes | None = None
        while first is None:
            assert poller.wait(30)
            first = stream.read()
        # The socket is empty now (both records came in one recv); the second waits in
        # memory, and the poller returns the stream at once instead of blocking in select().
        assert first == b"first"
        assert stream.pending()
        assert poller.wait(0) == [stream]
        assert stream.read() == b"second"
        assert not stream.pending()
    finally:
        poller.close()


@pytest.mark.parametrize("close_notify", [True, False], ids=["close_notify", "ragged"])
def test_the_end_of_the_stream_reads_empty(
    connect: Callable[..., SocketStream], close_notify: bool
) -> None:
    def end(tls: ssl.SSLObject, outgoing: ssl.MemoryBIO, raw: socket.socket) -> None:
        tls.write(b"last words")
        if close_notify:
            with contextlib.suppress(ssl.SSLWantReadError):
                tls.unwrap()
        raw.sendall(outgoing.read())
        raw.shutdown(socket.SHUT_WR)

    stream = connect(end)
    poller = SocketPoller()
    try:
        poller.register(stream)
        assert read_all(stream, poller, 3) == [b"last words", b""]
    finally:
        poller.close()
