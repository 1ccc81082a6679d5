"""Round trips against h2's server-side H2Connection: an independent HTTP/2 implementation."""

from __future__ import annotations

import json

from h2.config import H2Configuration
from h2.connection import H2Connection
from h2.events import DataReceived, RequestReceived, StreamEnded
from h2.settings import SettingCodes, Settings
from peer import APNS_HEADERS, AUTHORITY

from apnskit._core.connection import ApnsConnection
from apnskit._core.events import (
    ConnectionTerminated,
    Event,
    PingAcknowledged,
    ResponseReceived,
    SettingsReceived,
)

STATUSES = (200, 400, 410, 200, 429, 503, 200, 403)
REASONS = {
    400: "BadDeviceToken",
    410: "Unregistered",
    429: "TooManyRequests",
    503: "Shutdown",
    403: "ExpiredProviderToken",
}


def _text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value


class H2Server:
    """h2 answering every request by a status chosen from the token in its path."""

    def __init__(self, max_streams: int = 100) -> None:
        self.h2 = H2Connection(config=H2Configuration(client_side=False))
        # Before initiate_connection, so the limit is in h2's first SETTINGS frame.
        self.h2.local_settings = Settings(
            client=False, initial_values={SettingCodes.MAX_CONCURRENT_STREAMS: max_streams}
        )
        self.h2.initiate_connection()
        self.requests: dict[int, tuple[dict[str, str], bytearray]] = {}
        self.seen: list[tuple[dict[str, str], bytes]] = []
        self.max_open = 0
        self.open_now = 0
        self.answer = True

    def feed(self, data: bytes) -> bytes:
        for event in self.h2.receive_data(data):
            if isinstance(event, RequestReceived):
                headers = {_text(k): _text(v) for k, v in event.headers}
                self.requests[event.stream_id] = (headers, bytearray())
                self.open_now += 1
                self.max_open = max(self.max_open, self.open_now)
            elif isinstance(event, DataReceived):
                self.requests[event.stream_id][1].extend(event.data)
                self.h2.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
            elif isinstance(event, StreamEnded) and self.answer:
                self._answer(event.stream_id)
        return self.h2.data_to_send()

    def _answer(self, stream_id: int) -> None:
        headers, body = self.requests.pop(stream_id)
        self.seen.append((headers, bytes(body)))
        self.open_now -= 1
        index = int(headers[":path"].rsplit("/", 1)[1], 16)
        status = STATUSES[index % len(STATUSES)]
        response = [(":status", str(status)), ("apns-id", headers["apns-id"])]
        if status == 200:
            self.h2.send_headers(stream_id, response, end_stream=True)
            return
        document: dict[str, object] = {"reason": REASONS[status]}
        if status == 410:
            document["timestamp"] = 1_600_000_000_000 + index
        self.h2.send_headers(stream_id, response)
        self.h2.send_data(stream_id, json.dumps(document).encode(), end_stream=True)


def _pump(conn: ApnsConnection, server: H2Server) -> list[Event]:
    events: list[Event] = []
    while True:
        out = conn.data_to_send()
        if not out:
            return events
        events.extend(conn.receive_data(server.feed(out), now=0.0))


def test_many_requests_round_trip_through_h2() -> None:
    conn = ApnsConnection(AUTHORITY, hold_until_success=True)
    server = H2Server(max_streams=10)
    conn.initiate()
    count = 500
    body = b'{"aps":{"alert":"' + b"m" * 2000 + b'"}}'  # 500 x 2 KB: past the 64 KB window
    for i in range(count):
        headers = (*APNS_HEADERS, ("apns-id", f"00000000-0000-0000-0000-{i:012x}"))
        conn.send_request(f"/3/device/{i:064x}", headers, body, i, authorization="bearer t")
    events = _pump(conn, server)
    assert isinstance(events[0], SettingsReceived)
    responses = [e for e in events if isinstance(e, ResponseReceived)]
    assert sorted(e.context for e in responses) == list(range(count))
    for event in responses:
        i = event.context
        status = STATUSES[i % len(STATUSES)]
        assert event.status == status
        assert event.apns_id == f"00000000-0000-0000-0000-{i:012x}"
        assert event.reason == REASONS.get(status)
        assert event.timestamp_ms == (1_600_000_000_000 + i if status == 410 else None)
    assert len(server.seen) == count
    for headers, received in server.seen:
        assert received == body
        assert headers["authorization"] == "bearer t"
        assert headers[":authority"] == AUTHORITY
        assert headers[":method"] == "POST"
        assert headers["apns-topic"] == "com.example.app"
    assert server.max_open <= 10
    assert conn.in_flight == 0
    assert not conn.finished


def test_ping_through_h2() -> None:
    conn = ApnsConnection(AUTHORITY)
    server = H2Server()
    conn.initiate()
    _pump(conn, server)
    payload = conn.send_ping(now=10.0)
    events = conn.receive_data(server.feed(conn.data_to_send()), now=10.5)
    assert events == [PingAcknowledged(payload=payload, round_trip=0.5)]


def test_goaway_from_h2_splits_requests() -> None:
    conn = ApnsConnection(AUTHORITY)
    server = H2Server(max_streams=100)
    conn.initiate()
    _pump(conn, server)
    server.answer = False
    for i in range(6):
        conn.send_request(f"/3/device/{i:064x}", APNS_HEADERS, b"{}", i)
    assert _pump(conn, server) == []
    assert sorted(server.requests) == [1, 3, 5, 7, 9, 11]
    # h2 answers the streams it will keep, then goes away; the client reads the GOAWAY first.
    for sid in (1, 3, 5):
        server.h2.send_headers(sid, [(":status", "200"), ("apns-id", "x")], end_stream=True)
    responses = server.h2.data_to_send()
    server.h2.close_connection(
        error_code=0, additional_data=b'{"reason":"Shutdown"}', last_stream_id=5
    )
    events = conn.receive_data(server.h2.data_to_send())
    assert len(events) == 1
    event = events[0]
    assert isinstance(event, ConnectionTerminated)
    assert event.remote
    assert event.reason == "Shutdown"
    assert event.last_stream_id == 5
    assert event.unprocessed == [3, 4, 5]
    assert conn.in_flight == 3
    assert not conn.finished
    done = conn.receive_data(responses)
    assert [e.context for e in done if isinstance(e, ResponseReceived)] == [0, 1, 2]
    assert conn.finished
