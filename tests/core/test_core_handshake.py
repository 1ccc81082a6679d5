"""Connection start-up, SETTINGS, PING and the no-I/O rule of the core."""

from __future__ import annotations

import ast
import pathlib

import pytest
from hyperframe.frame import PingFrame, SettingsFrame, WindowUpdateFrame
from peer import (
    AUTHORITY,
    HEADER_TABLE_SIZE,
    MAX_CONCURRENT_STREAMS,
    PREFACE,
    Peer,
    ping,
    raw_frame,
    send,
    settings,
    start,
)

import apnskit._core
from apnskit._core.connection import ApnsConnection, ErrorCode
from apnskit._core.events import PingAcknowledged, SettingsReceived
from apnskit._errors import LocalProtocolError
from support.imports import FORBIDDEN_IO, imported_roots


def test_initiate_writes_preface_settings_and_window_update() -> None:
    conn = ApnsConnection(AUTHORITY)
    assert conn.data_to_send() == b""
    conn.initiate()
    out = conn.data_to_send()
    assert out.startswith(PREFACE)
    peer = Peer()
    frames = peer.parse(out)
    assert [type(f) for f in frames] == [SettingsFrame, WindowUpdateFrame]
    ours = frames[0]
    assert "ACK" not in ours.flags
    assert ours.settings[SettingsFrame.ENABLE_PUSH] == 0
    assert ours.settings[SettingsFrame.INITIAL_WINDOW_SIZE] == 1 << 20
    update = frames[1]
    assert update.stream_id == 0
    # The connection window is raised from the default 65,535 to 16 MiB.
    assert update.window_increment == (1 << 24) - 65_535
    assert conn.data_to_send() == b""


def test_initiate_twice_is_local_error() -> None:
    conn = ApnsConnection(AUTHORITY)
    conn.initiate()
    with pytest.raises(LocalProtocolError, match="already"):
        conn.initiate()


def test_send_request_before_initiate_is_local_error() -> None:
    conn = ApnsConnection(AUTHORITY)
    with pytest.raises(LocalProtocolError, match="initiate"):
        conn.send_request("/3/device/aa", (), b"{}", None)


def test_peer_settings_are_acknowledged_and_reported() -> None:
    conn = ApnsConnection(AUTHORITY)
    conn.initiate()
    conn.data_to_send()
    assert not conn.settings_received
    events = conn.receive_data(settings(MAX_CONCURRENT_STREAMS=7, MAX_FRAME_SIZE=20_000))
    assert conn.settings_received
    assert len(events) == 1
    event = events[0]
    assert isinstance(event, SettingsReceived)
    assert event.changes == {MAX_CONCURRENT_STREAMS: 7, 5: 20_000}
    assert event.max_concurrent_streams == 7
    assert conn.max_concurrent_streams == 7
    assert conn.peer_max_frame_size == 20_000
    peer = Peer()
    peer.preface_seen = True
    frames = peer.parse(conn.data_to_send())
    assert len(frames) == 1
    assert isinstance(frames[0], SettingsFrame)
    assert "ACK" in frames[0].flags
    assert frames[0].settings == {}


def test_settings_ack_from_peer_produces_nothing() -> None:
    conn, _peer, _ = start()
    assert conn.receive_data(settings(ack=True)) == []
    assert conn.data_to_send() == b""


def test_unknown_settings_and_advisory_ones_are_ignored() -> None:
    conn, _peer, events = start(
        server_settings=settings(MAX_HEADER_LIST_SIZE=100, ENABLE_CONNECT_PROTOCOL=1)
    )
    assert isinstance(events[0], SettingsReceived)
    assert not conn.finished


def test_header_table_size_setting_is_honoured_by_encoder() -> None:
    conn, peer, _ = start(server_settings=settings(HEADER_TABLE_SIZE=0))
    peer.decoder.max_allowed_table_size = 0
    send(conn, peer, 3)
    # hpack's decoder rejects any table use beyond the size we announced to it.
    assert len(peer.requests) == 3
    assert peer.decoder.header_table_size == 0
    assert HEADER_TABLE_SIZE == 1


def test_peer_ping_is_answered_with_same_payload() -> None:
    conn, peer, _ = start()
    assert conn.receive_data(ping(b"12345678")) == []
    frames = peer.parse(conn.data_to_send())
    assert len(frames) == 1
    assert isinstance(frames[0], PingFrame)
    assert "ACK" in frames[0].flags
    assert frames[0].opaque_data == b"12345678"


def test_own_ping_ack_reports_round_trip() -> None:
    conn, peer, _ = start()
    first = conn.send_ping(now=100.0)
    second = conn.send_ping(now=101.0)
    assert first != second
    assert len(first) == 8
    frames = peer.parse(conn.data_to_send())
    assert [f.opaque_data for f in frames] == [first, second]
    assert all("ACK" not in f.flags for f in frames)
    events = conn.receive_data(ping(second, ack=True), now=101.25)
    assert events == [PingAcknowledged(payload=second, round_trip=0.25)]
    events = conn.receive_data(ping(first, ack=True), now=103.5)
    assert events == [PingAcknowledged(payload=first, round_trip=3.5)]
    # A PING ack never answered with a PING of our own.
    assert conn.data_to_send() == b""


def test_ping_ack_without_times_has_no_round_trip() -> None:
    conn, _peer, _ = start()
    sent = conn.send_ping()
    events = conn.receive_data(ping(sent, ack=True), now=5.0)
    assert events == [PingAcknowledged(payload=sent, round_trip=None)]
    sent = conn.send_ping(now=1.0)
    assert conn.receive_data(ping(sent, ack=True)) == [
        PingAcknowledged(payload=sent, round_trip=None)
    ]


def test_unsolicited_or_repeated_ping_ack_is_ignored() -> None:
    conn, _peer, _ = start()
    assert conn.receive_data(ping(b"\x00" * 8, ack=True)) == []
    sent = conn.send_ping(now=0.0)
    assert len(conn.receive_data(ping(sent, ack=True), now=1.0)) == 1
    assert conn.receive_data(ping(sent, ack=True), now=2.0) == []


def test_frames_split_across_reads_are_reassembled() -> None:
    conn = ApnsConnection(AUTHORITY)
    conn.initiate()
    stream = settings(MAX_CONCURRENT_STREAMS=3) + ping(b"abcdefgh")
    events = []
    for i in range(len(stream)):
        events.extend(conn.receive_data(stream[i : i + 1]))
    assert len(events) == 1
    assert conn.max_concurrent_streams == 3
    assert conn.data_to_send().endswith(ping(b"abcdefgh", ack=True))


def test_unknown_frame_types_and_stream_priority_are_ignored() -> None:
    conn, peer, _ = start()
    send(conn, peer)
    blob = raw_frame(0xEE, 0xFF, 0, b"anything") + raw_frame(2, 0, 1, b"\x00\x00\x00\x00\x10")
    assert conn.receive_data(blob) == []
    assert not conn.finished
    assert conn.open_streams == 1


def test_close_writes_goaway_no_error_by_default() -> None:
    conn, peer, _ = start()
    event = conn.close()
    assert event.error_code == ErrorCode.NO_ERROR
    assert not event.remote
    frames = peer.parse(conn.data_to_send())
    assert len(frames) == 1
    assert frames[0].error_code == 0
    assert frames[0].last_stream_id == 0
    assert conn.finished
    assert conn.receive_data(ping(b"12345678")) == []
    assert conn.data_to_send() == b""


def test_close_with_code_and_before_initiate() -> None:
    conn, peer, _ = start()
    event = conn.close(ErrorCode.INTERNAL_ERROR)
    assert event.error_code == ErrorCode.INTERNAL_ERROR
    assert peer.parse(conn.data_to_send())[0].error_code == ErrorCode.INTERNAL_ERROR
    # A second close writes nothing more.
    conn.close()
    assert conn.data_to_send() == b""
    fresh = ApnsConnection(AUTHORITY)
    fresh.close()
    assert fresh.data_to_send() == b""
    assert fresh.finished


def test_core_imports_no_io_or_clock() -> None:
    package = pathlib.Path(apnskit._core.__file__).parent
    modules = sorted(package.rglob("*.py"))
    assert {m.name for m in modules} >= {"connection.py", "events.py", "hpack_codec.py"}
    for module in modules:
        roots = imported_roots(ast.parse(module.read_text(encoding="utf-8")))
        assert not roots & (FORBIDDEN_IO | {"__import__"}), (module.name, roots & FORBIDDEN_IO)
        assert "importlib" not in roots, module.name


def test_import_checker_catches_forbidden_imports() -> None:
    # The checker itself must see every spelling of an import.
    for source in (
        "import time",
        "import os, socket",
        "from ssl import SSLContext",
        "from anyio.abc import X",
        "import selectors as s",
        "__import__('trio')",
    ):
        roots = imported_roots(ast.parse(source))
        assert roots & (FORBIDDEN_IO | {"__import__"}), source
