"""Client-side cost of the sans-I/O core per notification, in memory (no sockets).

Drives ``ApnsConnection`` for N notifications against a scripted HTTP/2 peer that answers
every request with ``:status 200`` and a Huffman-coded ``apns-id`` (what real servers send)
and prints the client's cost per notification (encode + decode), median of several runs.
The peer's own work is not counted. Also prints the memory cost of N notifications queued in
the core.

    python bench/core.py [--count 100000] [--runs 5] [--window 1000]
"""

from __future__ import annotations

import argparse
import gc
import statistics
import struct
import time
import tracemalloc
import uuid

from hpack.huffman import HuffmanEncoder
from hpack.huffman_constants import REQUEST_CODES, REQUEST_CODES_LENGTH

from apnskit._core.connection import ApnsConnection

_HEADER = struct.Struct(">HBBBL")
TOKEN = "a1" * 32
PAYLOAD = b'{"aps":{"alert":{"title":"Hello","body":"A new message is waiting"},"badge":1}}'
HEADERS = (("apns-push-type", "alert"), ("apns-topic", "com.example.app"))
AUTH = "bearer " + "e" * 150


def _frame(frame_type: int, flags: int, stream_id: int, payload: bytes) -> bytes:
    n = len(payload)
    return _HEADER.pack(n >> 8, n & 0xFF, frame_type, flags, stream_id) + payload


class ScriptedPeer:
    """Just enough of a server: SETTINGS once, then one response per HEADERS it sees."""

    def __init__(self) -> None:
        huffman = HuffmanEncoder(REQUEST_CODES, REQUEST_CODES_LENGTH)
        # :status 200 is static index 8; apns-id is a literal without indexing, literal name,
        # Huffman-coded value (as nginx and other HPACK encoders send it).
        blocks = []
        for _ in range(1024):
            value = huffman.encode(str(uuid.uuid4()).encode())
            blocks.append(b"\x88\x00\x07apns-id" + bytes((0x80 | len(value),)) + value)
        self.blocks = blocks
        self.settings = _frame(0x4, 0, 0, struct.pack(">HL", 3, 1000)) + _frame(0x4, 1, 0, b"")
        self.window_credit = 0
        self.started = False

    def respond(self, data: bytes) -> bytes:
        out = []
        if not self.started:
            self.started = True
            data = data[24:]
            out.append(self.settings)
        pos, end = 0, len(data)
        blocks = self.blocks
        received = 0
        while pos + 9 <= end:
            hi, lo, frame_type, _flags, stream_id = _HEADER.unpack_from(data, pos)
            length = (hi << 8) | lo
            pos += 9 + length
            if frame_type == 0x1:
                out.append(_frame(0x1, 0x5, stream_id, blocks[stream_id & 1023]))
            elif frame_type == 0x0:
                received += length
        if received:
            # Give the connection window back as a real server would.
            out.append(_frame(0x8, 0, 0, struct.pack(">L", received)))
        return b"".join(out)


def run(count: int, window: int) -> float:
    conn = ApnsConnection("api.push.apple.com")
    peer = ScriptedPeer()
    conn.initiate()
    client_time = 0.0
    done = 0
    sent = 0
    perf = time.perf_counter
    path = "/3/device/" + TOKEN
    send = conn.send_request
    gc.disable()
    try:
        while done < count:
            t0 = perf()
            burst = min(window - conn.in_flight, count - sent)
            for i in range(burst):
                send(path, HEADERS, PAYLOAD, sent + i, authorization=AUTH)
            sent += burst
            out = conn.data_to_send()
            client_time += perf() - t0
            reply = peer.respond(out)
            t0 = perf()
            events = conn.receive_data(reply)
            client_time += perf() - t0
            done += sum(1 for e in events if type(e).__name__ == "ResponseReceived")
    finally:
        gc.enable()
    return client_time / count * 1e6


def queued_memory(count: int) -> float:
    conn = ApnsConnection("api.push.apple.com")
    conn.initiate()
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    path = "/3/device/" + TOKEN
    for i in range(count):
        # Distinct body objects, as real notifications would have.
        conn.send_request(path, HEADERS, bytes(PAYLOAD), i, authorization=AUTH)
    used = tracemalloc.get_traced_memory()[0] - base
    tracemalloc.stop()
    assert conn.queued == count - 1  # one stream until the server's SETTINGS
    return used / 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--window", type=int, default=1000, help="requests in flight")
    args = parser.parse_args()
    run(min(args.count, 5000), args.window)  # warm up (Huffman table, caches)
    figures = [run(args.count, args.window) for _ in range(args.runs)]
    print(f"core: {args.count} notifications x {args.runs} runs, {args.window} in flight")
    print("  client cost per notification (us): " + ", ".join(f"{f:.2f}" for f in figures))
    print(f"  median: {statistics.median(figures):.2f} us  (target <= 25 us)")
    mb = queued_memory(args.count)
    print(f"  {args.count} notifications queued in the core: {mb:.1f} MB (target <= 100 MB)")


if __name__ == "__main__":
    main()
