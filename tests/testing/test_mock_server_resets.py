"""A client that resets its TCP connection must not stop the mock server."""

from __future__ import annotations

import socket
import ssl
import struct
import time

import anyio

import apnskit
from apnskit.testing import MockApnsServer


def _reset_connection(server: MockApnsServer) -> None:
    context = ssl.create_default_context(cafile=str(server.ca_file))
    context.set_alpn_protocols(["h2"])
    raw = socket.create_connection((server.host, server.port))
    sock = context.wrap_socket(raw, server_hostname=server.host)
    # Preface and an empty SETTINGS, so the server is inside its per-connection task group.
    sock.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00")
    time.sleep(0.05)
    # SO_LINGER 0: close() sends RST instead of FIN.
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


def _send_one(server: MockApnsServer) -> apnskit.PushResult:
    credentials = server.apns_token_credentials()
    with apnskit.PushClient(
        credentials, host=server.host, port=server.port, ca_file=str(server.ca_file)
    ) as client:
        return client.send(
            apnskit.Notification("ab" * 32, {"aps": {"alert": "x"}}, topic="com.example.app")
        )


def test_server_keeps_serving_after_client_resets() -> None:
    with MockApnsServer() as server:
        for _ in range(3):
            _reset_connection(server)
        time.sleep(0.1)
        result = _send_one(server)
        assert result.accepted


def test_goaway_still_delivers_delayed_replies_of_processed_streams() -> None:
    # RFC 9113 section 6.8: streams up to the GOAWAY's last stream id were processed; their
    # answers must arrive, or the client sends a processed notification again.
    with MockApnsServer() as server:
        credentials = server.apns_token_credentials()
        with apnskit.PushClient(
            credentials,
            host=server.host,
            port=server.port,
            ca_file=str(server.ca_file),
            limits=apnskit.Limits(max_connections=1),
        ) as client:
            assert client.send(_notification()).accepted  # lifts the one-stream hold
            server.clear_received()
            server.faults.delay_next(1, 0.5)  # the next request is answered late...
            server.faults.goaway_after(1)  # ...and the one after it meets a GOAWAY
            results = list(client.send_many([_notification(), _notification()]))
        assert all(r.accepted for r in results)
        delayed_id = server.received[0].apns_id
        # The delayed request was answered on its own connection, never sent twice.
        assert [r.apns_id for r in server.received].count(delayed_id) == 1


def _notification() -> apnskit.Notification:
    import uuid

    return apnskit.Notification(
        "ab" * 32, {"aps": {"alert": "x"}}, topic="com.example.app", apns_id=str(uuid.uuid4())
    )


def test_server_keeps_serving_after_a_peer_leaves_mid_write(monkeypatch) -> None:
    # anyio's TLSStream.send raises EndOfStream when the peer closed its TLS session while a
    # reply was going out. That once stopped the whole server (every later client refused).
    # Timing a real close into the middle of a write is a race, so the first write fails so.
    from apnskit.testing import _mock_server

    real_flush = _mock_server._Link.flush
    failed: list[bool] = []

    async def flush_once_gone(self: _mock_server._Link) -> None:
        if not failed:
            failed.append(True)
            raise anyio.EndOfStream
        await real_flush(self)

    monkeypatch.setattr(_mock_server._Link, "flush", flush_once_gone)
    with MockApnsServer() as server:
        result = _send_one(server)
        assert failed
        assert result.accepted, result
