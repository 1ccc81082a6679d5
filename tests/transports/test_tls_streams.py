"""Both transports' TLS streams: TLS in memory (``_transports/tls.py``), one raw read per burst.

``ssl.SSLSocket`` reads each TLS record with two ``read()`` system calls, and anyio's
``TLSStream`` returns one record per ``receive()``; the streams read the socket once and
decrypt what came from memory, up to 64 whole records in one ``read()`` (one dispatcher pass
per 64 responses, not per record; the rest waits in memory, where the poller finds it). They
must keep the records' order, report both kinds of end of stream as ``b""`` (after the
records that came before it, even in the same ``recv()``), and tell the poller about records
or an end in memory, which select() cannot see.
"""

from __future__ import annotations

import contextlib
import socket
import ssl
import threading
from collections.abc import Callable, Iterator
from typing import Any, NamedTuple

import anyio
import pytest

from apnskit import ConnectError
from apnskit._transports.anyio_transport import AnyioStream, AnyioTransport
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


class ServerEnd(NamedTuple):
    """The server's side of the connection, after its handshake."""

    tls: ssl.SSLObject
    incoming: ssl.MemoryBIO
    outgoing: ssl.MemoryBIO
    raw: socket.socket


def serve_once(
    tls_files: tuple[str, str], then: Callable[[ServerEnd], None]
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
            then(ServerEnd(tls, incoming, outgoing, raw))
            with contextlib.suppress(OSError):
                raw.recv(1)  # until the client hangs up

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return port, thread


@pytest.fixture
def connect(tls_files: tuple[str, str]) -> Iterator[Callable[..., SocketStream]]:
    streams: list[SocketStream] = []
    threads: list[threading.Thread] = []

    def factory(then: Callable[[ServerEnd], None]) -> Any:
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


def burst_of(count: int) -> Callable[[ServerEnd], None]:
    """A server end that sends ``count`` records (``record 000``...), all in one TCP write."""

    def burst(end: ServerEnd) -> None:
        for i in range(count):
            end.tls.write(b"record %03d" % i)  # one TLS record each
        end.raw.sendall(end.outgoing.read())

    return burst


@pytest.mark.parametrize("count", [30, 150])
def test_a_burst_comes_from_one_recv_at_most_64_records_a_read(
    connect: Callable[..., SocketStream], count: int
) -> None:
    stream = connect(burst_of(count))
    counting = CountingSocket(stream.sock)
    stream.sock = counting  # type: ignore[assignment]
    poller = SocketPoller()
    expected = b"".join(b"record %03d" % i for i in range(count))
    try:
        poller.register(stream)
        reads: list[bytes] = []
        while len(b"".join(reads)) < len(expected):
            assert poller.wait(30), "no record arrived"
            if data := stream.read():
                reads.append(data)
        assert b"".join(reads) == expected
        # 64 records a read, the rest in one more (ssl.SSLSocket made two read() system
        # calls per record): what was left in memory was found without select(), which would
        # have blocked, the socket being empty after the first recv() (a TLS 1.3 session
        # ticket may cost one read and one recv before the burst).
        assert [len(r) for r in reads].count(64 * len(b"record 000")) == count // 64
        assert len(reads) <= count // 64 + 2
        assert counting.recvs <= 4
        assert not stream.pending()
    finally:
        poller.close()


def test_records_and_the_end_in_one_recv_read_as_records_then_end(
    connect: Callable[..., SocketStream],
) -> None:
    def two_and_out(end: ServerEnd) -> None:
        tls, outgoing, raw = end.tls, end.outgoing, end.raw
        tls.write(b"first")
        tls.write(b"second")
        with contextlib.suppress(ssl.SSLWantReadError):
            tls.unwrap()  # close_notify, in the same TCP write as the records
        raw.sendall(outgoing.read())

    stream = connect(two_and_out)
    poller = SocketPoller()
    try:
        poller.register(stream)
        first: bytes | None = None
        while not first:
            assert poller.wait(30)
            first = stream.read()
            assert first != b"", "the end was reported before the records"
        assert first == b"firstsecond"
        # The socket is empty now (all of it came in one recv); the end waits in memory, and
        # the poller returns the stream at once instead of blocking in select().
        assert stream.pending()
        assert poller.wait(0) == [stream]
        assert stream.read() == b""
    finally:
        poller.close()


@pytest.mark.parametrize("close_notify", [True, False], ids=["close_notify", "ragged"])
def test_the_end_of_the_stream_reads_empty(
    connect: Callable[..., SocketStream], close_notify: bool
) -> None:
    def finish(end: ServerEnd) -> None:
        tls, outgoing, raw = end.tls, end.outgoing, end.raw
        tls.write(b"last words")
        if close_notify:
            with contextlib.suppress(ssl.SSLWantReadError):
                tls.unwrap()
        raw.sendall(outgoing.read())
        raw.shutdown(socket.SHUT_WR)

    stream = connect(finish)
    poller = SocketPoller()
    try:
        poller.register(stream)
        assert read_all(stream, poller, 3) == [b"last words", b""]
    finally:
        poller.close()


# ------------------------------------------------------------------ the anyio transport


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> Any:
    return request.param


async def connect_async(
    tls_files: tuple[str, str], then: Callable[[ServerEnd], None]
) -> tuple[AnyioStream, threading.Thread]:
    port, thread = serve_once(tls_files, then)
    context = ssl.create_default_context(cafile=tls_files[0])
    context.set_alpn_protocols(["h2"])
    stream = await AnyioTransport().connect_async(
        "127.0.0.1", port, ssl_context=context, server_hostname="127.0.0.1", timeout=30
    )
    return stream, thread


async def read_until_end(stream: AnyioStream) -> list[bytes]:
    reads: list[bytes] = []
    with anyio.fail_after(30):
        while data := await stream.read():
            reads.append(data)
    return [*reads, b""]


@pytest.mark.anyio
@pytest.mark.parametrize("count", [30, 150])
async def test_async_a_burst_is_read_at_most_64_records_at_a_time(
    tls_files: tuple[str, str], count: int
) -> None:
    def burst(end: ServerEnd) -> None:
        burst_of(count)(end)
        end.raw.shutdown(socket.SHUT_WR)

    stream, thread = await connect_async(tls_files, burst)
    try:
        reads = await read_until_end(stream)
    finally:
        await stream.aclose()
        thread.join(30)
    assert b"".join(reads) == b"".join(b"record %03d" % i for i in range(count))
    # anyio's TLSStream gave one read per record; now 64 a read, the rest in one more, and
    # the end (a TLS 1.3 session ticket may come apart).
    assert [len(r) for r in reads].count(64 * len(b"record 000")) == count // 64
    assert len(reads) <= count // 64 + 3


@pytest.mark.anyio
@pytest.mark.parametrize("close_notify", [True, False], ids=["close_notify", "ragged"])
async def test_async_records_then_the_end(tls_files: tuple[str, str], close_notify: bool) -> None:
    def finish(end: ServerEnd) -> None:
        tls, outgoing, raw = end.tls, end.outgoing, end.raw
        tls.write(b"first")
        tls.write(b"second")
        if close_notify:
            with contextlib.suppress(ssl.SSLWantReadError):
                tls.unwrap()  # in the same TCP write as the records
        raw.sendall(outgoing.read())
        raw.shutdown(socket.SHUT_WR)

    stream, thread = await connect_async(tls_files, finish)
    try:
        reads = await read_until_end(stream)
        # After the end, reading again says so again (the driver may ask twice).
        assert await stream.read() == b""
    finally:
        await stream.aclose()
        thread.join(30)
    assert b"".join(reads) == b"firstsecond"
    assert reads[-1] == b""


@pytest.mark.anyio
async def test_async_what_is_written_arrives_decrypted(tls_files: tuple[str, str]) -> None:
    received: list[bytes] = []

    def echo_back(end: ServerEnd) -> None:
        while len(b"".join(received)) < 3 * 70_000:
            data = end.raw.recv(65536)
            if not data:
                break
            end.incoming.write(data)
            with contextlib.suppress(ssl.SSLWantReadError):
                while chunk := end.tls.read(65536):
                    received.append(chunk)
        end.tls.write(b"got it")
        end.raw.sendall(end.outgoing.read())
        end.raw.shutdown(socket.SHUT_WR)

    stream, thread = await connect_async(tls_files, echo_back)
    try:
        for letter in b"abc":
            await stream.write(bytes([letter]) * 70_000)  # more than one TLS record each
        reads = await read_until_end(stream)
    finally:
        await stream.aclose()
        thread.join(30)
    assert b"".join(received) == b"a" * 70_000 + b"b" * 70_000 + b"c" * 70_000
    assert reads == [b"got it", b""]


@pytest.mark.anyio
async def test_async_a_server_without_h2_is_refused(tls_files: tuple[str, str]) -> None:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(*tls_files)  # no ALPN
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    def accept() -> None:
        with listener:
            raw, _ = listener.accept()
        with context.wrap_socket(raw, server_side=True) as conn:
            with contextlib.suppress(OSError):
                conn.recv(1)

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    client_context = ssl.create_default_context(cafile=tls_files[0])
    client_context.set_alpn_protocols(["h2"])
    with pytest.raises(ConnectError, match="ALPN h2"):
        await AnyioTransport().connect_async(
            "127.0.0.1", port, ssl_context=client_context, server_hostname="127.0.0.1", timeout=30
        )
    thread.join(30)
