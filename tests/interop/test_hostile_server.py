"""Issue 10 item 1, end to end: a server answering ``:status: ²²²`` over real TLS.

The core used to let ``ValueError`` out of ``str.isdigit()``-approved statuses: ``send()``
raised it, the async client raised an ``ExceptionGroup``, and the other notifications on the
connection were orphaned. Now each notification ends in exactly one ``PushResult``.
A tiny hand-written HTTP/2 server (a thread with a TLS socket) answers tokens ending in
``00`` properly and every other one with the bad status.
"""

from __future__ import annotations

import contextlib
import socket
import ssl
import struct
import threading
import uuid
from collections.abc import Iterator

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from independent_servers import make_tls_files

import apnskit

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
FRAME = struct.Struct(">HBBBL")
# :status 200 (static index 8); :status "²²²" (literal, indexed name 8, UTF-8 value).
GOOD = b"\x88"
BAD = b"\x08\x06" + "²²²".encode()


def _frame(frame_type: int, flags: int, stream_id: int, payload: bytes) -> bytes:
    n = len(payload)
    return FRAME.pack(n >> 8, n & 0xFF, frame_type, flags, stream_id) + payload


def _serve_one(conn: ssl.SSLSocket) -> None:
    # The client ends the connection (GOAWAY PROTOCOL_ERROR, then close) as soon as it reads
    # the bad status, so any write here may meet a closed socket: that ends this thread
    # quietly instead of surfacing as an unhandled thread exception.
    with conn, contextlib.suppress(OSError):
        _serve_frames(conn)


def _serve_frames(conn: ssl.SSLSocket) -> None:
    buf = b""
    paths: dict[int, bytes] = {}
    conn.sendall(_frame(0x4, 0, 0, b""))  # SETTINGS
    while True:
        data = conn.recv(65536)
        if not data:
            return
        buf += data
        if buf.startswith(PREFACE):
            buf = buf[len(PREFACE) :]
        while len(buf) >= 9:
            hi, lo, frame_type, flags, stream_id = FRAME.unpack_from(buf)
            length = (hi << 8) | lo
            if len(buf) < 9 + length:
                break
            payload, buf = buf[9 : 9 + length], buf[9 + length :]
            if frame_type == 0x4 and not flags & 1:
                conn.sendall(_frame(0x4, 1, 0, b""))
            elif frame_type == 0x1:
                paths[stream_id] = payload  # the token's hex is in here, uncompressed
            elif frame_type == 0x0 and flags & 1:
                block = GOOD if b"00" * 32 in paths.get(stream_id, b"")[:400] else BAD
                conn.sendall(_frame(0x1, 0x5, stream_id, block))


@pytest.fixture(scope="module")
def hostile(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, str]]:
    certfile, keyfile = make_tls_files(tmp_path_factory.mktemp("hostile-tls"))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(certfile, keyfile)
    context.set_alpn_protocols(["h2"])
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.2)
    stop = threading.Event()

    def accept_loop() -> None:
        while not stop.is_set():
            try:
                raw, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            try:
                tls = context.wrap_socket(raw, server_side=True)
            except (OSError, ssl.SSLError):
                raw.close()
                continue
            threading.Thread(target=_serve_one, args=(tls,), daemon=True).start()

    thread = threading.Thread(target=accept_loop, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1], certfile
    finally:
        stop.set()
        thread.join(timeout=5)
        listener.close()


def _client_options(port: int, ca_file: str) -> dict[str, object]:
    key = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return {
        "credentials": apnskit.TokenCredentials(key, key_id="ABCDE12345", team_id="TEAM123456"),
        "host": "127.0.0.1",
        "port": port,
        "ca_file": ca_file,
        "timeout": apnskit.Timeout(connect=20.0, deadline=60.0),
        "retry": apnskit.RetryPolicy(max_attempts=2, backoff_base=0.01, backoff_max=0.02),
    }


def _notifications() -> list[apnskit.Notification]:
    tokens = ["00" * 32, "ab" * 32, "00" * 32, "cd" * 32, "ef" * 32, "00" * 32]
    return [
        apnskit.Notification(t, {"aps": {"alert": "x"}}, topic="t.e", apns_id=str(uuid.uuid4()))
        for t in tokens
    ]


def _check(results: list[apnskit.PushResult], sent: list[apnskit.Notification]) -> None:
    assert sorted(id(r.notification) for r in results) == sorted(id(n) for n in sent)
    for result in results:
        if result.notification.device_token != "00" * 32:
            # Never an accepted notification, never an exception: a failed attempt.
            assert result.status is None, result
            assert isinstance(result.error, apnskit.ApnsError), result
        elif result.status is not None:
            assert result.accepted, result


def test_push_client_gets_a_result_for_every_notification(hostile: tuple[int, str]) -> None:
    options = _client_options(*hostile)
    with apnskit.PushClient(options.pop("credentials"), **options) as client:  # type: ignore[arg-type]
        good, bad = _notifications()[:2]
        assert client.send(good).accepted
        result = client.send(bad)  # used to raise ValueError
        _check([result], [bad])
        many = _notifications()
        _check(list(client.send_many(many)), many)


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_async_push_client_gets_a_result_for_every_notification(
    hostile: tuple[int, str], anyio_backend: str
) -> None:
    options = _client_options(*hostile)
    async with apnskit.AsyncPushClient(options.pop("credentials"), **options) as client:  # type: ignore[arg-type]
        good, bad = _notifications()[:2]
        assert (await client.send(good)).accepted
        result = await client.send(bad)  # used to raise an ExceptionGroup
        _check([result], [bad])
        many = _notifications()
        _check([r async for r in client.send_many(many)], many)
