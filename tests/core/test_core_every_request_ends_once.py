"""Property: whatever the server does, every request ends in exactly one outcome."""

from __future__ import annotations

from collections import Counter
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from peer import AUTHORITY, Peer, goaway, rst_stream, send
from peer import settings as settings_frame

from apnskit._core.connection import ApnsConnection, RequestHandle
from apnskit._core.events import ConnectionTerminated, Event, ResponseReceived, StreamReset

ACTIONS = st.sampled_from(
    [
        "send",
        "send",
        "send",
        "respond",
        "respond",
        "reset",
        "settings",
        "cancel",
        "goaway",
        "deliver",
        "ping",
        "end",
    ]
)


def _collect(events: list[Event], outcomes: Counter[Any]) -> None:
    for event in events:
        if isinstance(event, (ResponseReceived, StreamReset)):
            outcomes[event.context] += 1
        elif isinstance(event, ConnectionTerminated):
            for context in (*event.unprocessed, *event.abandoned):
                outcomes[context] += 1


@settings(max_examples=250, deadline=None)
@given(st.data(), st.booleans())
def test_every_request_ends_exactly_once(data: st.DataObject, hold: bool) -> None:
    conn = ApnsConnection(AUTHORITY, hold_until_success=hold)
    peer = Peer()
    conn.initiate()
    peer.parse(conn.data_to_send())
    outcomes: Counter[Any] = Counter()
    handles: list[RequestHandle] = []
    answered: set[int] = set()
    pending = b""  # server bytes not yet delivered: responses can be batched and split
    sent = 0
    for _ in range(data.draw(st.integers(1, 40))):
        action = data.draw(ACTIONS)
        if action == "send":
            if not conn.accepting or conn.finished:
                continue
            for handle in send(conn, peer, data.draw(st.integers(1, 4)), context=None):
                handles.append(handle)
            for i, handle in enumerate(handles[sent:], start=sent):
                handle.context = i  # unique contexts, set before any event can carry them
            sent = len(handles)
        elif action in {"respond", "reset"}:
            candidates = sorted(set(peer.requests) - answered)
            if not candidates:
                continue
            sid = data.draw(st.sampled_from(candidates))
            answered.add(sid)
            if action == "respond":
                status = data.draw(st.sampled_from([200, 400, 410, 503]))
                body = b'{"reason":"X"}' if status != 200 else b""
                pending += peer.respond(sid, status, body=body)
            else:
                pending += rst_stream(sid, data.draw(st.sampled_from([0, 2, 7, 8])))
        elif action == "settings":
            pending += settings_frame(MAX_CONCURRENT_STREAMS=data.draw(st.integers(0, 5)))
        elif action == "goaway":
            last = data.draw(st.sampled_from([0, *sorted(peer.requests), 2**31 - 1]))
            pending += goaway(last, data.draw(st.sampled_from([0, 2])))
        elif action == "cancel":
            live = [h for h in handles if not h.done]
            if live:
                handle = data.draw(st.sampled_from(live))
                conn.cancel(handle)
                outcomes[handle.context] += 1
        elif action == "ping":
            conn.send_ping(now=0.0)
        elif action == "deliver" and pending:
            cut = data.draw(st.integers(0, len(pending)))
            _collect(conn.receive_data(pending[:cut]), outcomes)
            pending = pending[cut:]
        elif action == "end":
            break
        peer.parse(conn.data_to_send())
    _collect(conn.receive_data(pending), outcomes)
    if data.draw(st.booleans()):
        _collect([conn.close()], outcomes)
    else:
        _collect([conn.connection_lost()], outcomes)
    assert conn.finished
    assert all(h.done for h in handles)
    assert outcomes == Counter(range(len(handles)))
    # Never more streams open at the server than the client had allowed itself.
    assert len(peer.requests) <= len(handles)
