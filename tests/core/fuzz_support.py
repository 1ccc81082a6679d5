"""Feed mutated server byte streams to the core and check the rule of issue 10.

Shared by the bounded fuzz test (``test_core_fuzz.py``, hypothesis) and the long standalone
run (``bench/fuzz_core.py --seconds N``). Seeds are whole server byte streams recorded from
node's ``http2`` module and hypercorn (``bench/fuzz_core.py --record`` wrote
``fuzz_seeds/*.bin``): what the server sent on one connection while the client sent
``REQUESTS`` notifications.

The rule: ``receive_data`` raises nothing, whatever the bytes; when the server broke HTTP/2
the connection ends with our GOAWAY carrying the error's code, never INTERNAL_ERROR (which
would mean a bug in the core); every request ends in exactly one outcome (a response, a
reset, or listed once as unprocessed or abandoned); and the buffers stay bounded.
"""

from __future__ import annotations

import random
import struct
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from apnskit._core.connection import (
    _LOCAL_CONNECTION_WINDOW,
    _LOCAL_STREAM_WINDOW,
    _MAX_HEADER_LIST_SIZE,
    ApnsConnection,
    ErrorCode,
)
from apnskit._core.events import ConnectionTerminated, ResponseReceived, StreamReset

SEED_DIR = Path(__file__).parent / "fuzz_seeds"
#: Notifications the client sent on each recorded connection (streams 1, 3, ... 2n-1).
REQUESTS = 8
TOKENS = [f"{i:064x}" for i in range(REQUESTS)]
BODY = b'{"aps":{"alert":"hello from the fuzz seed recorder"}}'
HEADERS = (("apns-topic", "com.example.app"), ("apns-push-type", "alert"))
_FRAME = struct.Struct(">HBBBL")


def load_seeds() -> dict[str, list[bytes]]:
    """Every recorded server stream, by file name, as the reads the recorder made."""
    return {path.stem: decode_chunks(path.read_bytes()) for path in sorted(SEED_DIR.glob("*.bin"))}


def encode_chunks(chunks: list[bytes]) -> bytes:
    """Reads as stored in a seed file: each a 4-byte length, then its bytes."""
    return b"".join(struct.pack(">L", len(chunk)) + chunk for chunk in chunks)


def decode_chunks(blob: bytes) -> list[bytes]:
    """The inverse of :func:`encode_chunks`."""
    chunks, pos = [], 0
    while pos < len(blob):
        (length,) = struct.unpack_from(">L", blob, pos)
        chunks.append(blob[pos + 4 : pos + 4 + length])
        pos += 4 + length
    return chunks


def frame_offsets(stream: bytes) -> list[int]:
    """Where each frame starts in a well-formed stream (and its end)."""
    offsets = [0]
    pos = 0
    while len(stream) - pos >= 9:
        hi, lo, *_ = _FRAME.unpack_from(stream, pos)
        pos += 9 + ((hi << 8) | lo)
        offsets.append(min(pos, len(stream)))
    return offsets


def client() -> ApnsConnection:
    """A connection that sent what the recorder sent: REQUESTS notifications at once."""
    conn = ApnsConnection("127.0.0.1")
    conn.initiate()
    for i, token in enumerate(TOKENS):
        conn.send_request(f"/3/device/{token}", HEADERS, BODY, i, authorization=None)
    conn.data_to_send()
    return conn


@dataclass
class Outcome:
    """What one run produced, for the checks and for reports."""

    responses: int = 0
    error_code: int | None = None


def check_stream(chunks: list[bytes]) -> Outcome:
    """Feed ``chunks`` to a fresh client; assert the rule. Returns what happened."""
    conn = client()
    ends: Counter[int] = Counter()
    outcome = Outcome()
    now = 0.0
    for chunk in chunks:
        now += 0.01
        # The rule's first part: nothing escapes receive_data (an exception fails the test).
        events = conn.receive_data(chunk, now)
        out = conn.data_to_send()
        for event in events:
            if isinstance(event, ResponseReceived):
                ends[event.context] += 1
                outcome.responses += 1
                assert 100 <= event.status <= 599
                assert len(event.body) <= _LOCAL_STREAM_WINDOW
            elif isinstance(event, StreamReset):
                ends[event.context] += 1
            elif isinstance(event, ConnectionTerminated):
                for context in [*event.unprocessed, *event.abandoned]:
                    ends[context] += 1
                if event.error is not None:
                    code = event.error.error_code
                    assert code != ErrorCode.INTERNAL_ERROR, repr(event.error.__cause__)
                    assert event.error_code == code
                    # Our GOAWAY with that code is the last frame we wrote.
                    assert _last_goaway_code(out) == code
                    assert conn.finished
                    outcome.error_code = code
        _check_bounds(conn)
        if conn.finished and outcome.error_code is not None:
            assert conn.receive_data(b"\x00" * 9) == []
            break
    # Whatever is still open ends when the transport goes away.
    final = conn.connection_lost()
    for context in [*final.unprocessed, *final.abandoned]:
        ends[context] += 1
    assert set(ends) == set(range(REQUESTS)), ends
    assert all(count == 1 for count in ends.values()), ends
    return outcome


def _last_goaway_code(out: bytes) -> int | None:
    # The error code of the last GOAWAY in what we wrote (section 6.8).
    pos, code = 0, None
    while len(out) - pos >= 9:
        hi, lo, frame_type, _, _ = _FRAME.unpack_from(out, pos)
        length = (hi << 8) | lo
        if frame_type == 0x7:
            code = struct.unpack_from(">L", out, pos + 13)[0]
        pos += 9 + length
    return code


def _check_bounds(conn: ApnsConnection) -> None:
    assert len(conn._inbuf) < 9 + 16_384
    if conn._continuation is not None:
        assert conn._continuation[3] <= _MAX_HEADER_LIST_SIZE
    buffered = 0
    for handle in conn._streams.values():
        assert handle._received <= _LOCAL_STREAM_WINDOW
        assert sum(len(n) + len(v) + 32 for n, v in handle._response_headers) <= (
            _MAX_HEADER_LIST_SIZE
        )
        buffered += sum(len(part) for part in handle._response_body or ())
    assert buffered <= _LOCAL_CONNECTION_WINDOW


# ------------------------------------------------------------------ mutations


def random_frame(rng: random.Random) -> bytes:
    """A frame of any type, flags and stream; mostly with a payload that parses."""
    frame_type = rng.choice([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0x20])
    flags = rng.choice([0, 0, 1, 4, 5, 8, 0x20, 0x25, 0xFF, rng.randrange(256)])
    stream_id = rng.choice([0, 1, 1, 3, 3, 5, 7, 9, 15, 2, 17, 2**31 - 1, rng.randrange(2**32)])
    if rng.random() < 0.3:
        payload = rng.randbytes(rng.choice([0, 1, 4, 5, 6, 8, 9, 12, rng.randrange(64)]))
    else:
        payload = _plausible_payload(frame_type, rng)
    length = len(payload)
    return _FRAME.pack(length >> 8, length & 0xFF, frame_type, flags, stream_id) + payload


# HPACK fragments a server might send: statuses (static table), apns-id literals, a reason.
_HPACK_PIECES = [
    b"\x88",  # :status 200
    b"\x8c",  # :status 400
    b"\x8d",  # :status 404
    b"\x8e",  # :status 500
    b"\x08\x03410",  # :status 410, literal with indexed name
    b"\x08\x03100",  # :status 100
    b"\x00\x07apns-id\x24" + b"0" * 36,
    b"\x40\x07apns-id\x05abcde",  # with incremental indexing
    b"\xbe",  # dynamic index 62 (may not exist)
    b"\x3f\xe1\x1f",  # table size update to 4096
    b"\x20",  # table size update to 0
    b"\x5c\x011",  # content-length: 1, indexed
]


def _plausible_payload(frame_type: int, rng: random.Random) -> bytes:
    if frame_type in (1, 9):  # HEADERS, CONTINUATION
        return b"".join(rng.choice(_HPACK_PIECES) for _ in range(rng.randrange(1, 4)))
    if frame_type == 0:  # DATA
        return rng.choice([b"", b'{"reason":"BadDeviceToken"}', b"{", rng.randbytes(20)])
    if frame_type == 2:  # PRIORITY
        return rng.randbytes(5)
    if frame_type == 3:  # RST_STREAM
        return struct.pack(">L", rng.choice([0, 1, 2, 7, 8, 0xB, rng.randrange(2**32)]))
    if frame_type == 4:  # SETTINGS
        count = rng.randrange(4)
        return b"".join(
            struct.pack(">HL", rng.randrange(1, 8), rng.choice([0, 1, 100, 16_384, 2**31]))
            for _ in range(count)
        )
    if frame_type == 6:  # PING
        return rng.randbytes(8)
    if frame_type == 7:  # GOAWAY
        last = rng.choice([0, 1, 3, 5, 2**31 - 1])
        return struct.pack(">LL", last, rng.choice([0, 1, 2, 0xB])) + rng.choice(
            [b"", b'{"reason":"Shutdown"}', b"x"]
        )
    if frame_type == 8:  # WINDOW_UPDATE
        return struct.pack(">L", rng.choice([0, 1, 1000, 2**31 - 1]))
    return rng.randbytes(rng.randrange(12))


def mutate(chunks: list[bytes], rng: random.Random, others: list[bytes]) -> list[bytes]:
    """Apply a few random byte- and frame-level mutations to some reads of a recording.

    The reads keep their boundaries (mostly): the client opens streams between reads, when
    the server's SETTINGS allow, as on the real connection.
    """
    chunks = list(chunks)
    for _ in range(rng.randrange(1, 4)):
        i = rng.randrange(len(chunks))
        if i == 0 and rng.random() < 0.8:
            i = rng.randrange(len(chunks))  # the first read (the SETTINGS) less often
        chunks[i] = mutate_bytes(chunks[i], rng, others)
    if rng.random() < 0.1:
        chunks = [b"".join(chunks)]  # everything in one read
    elif len(chunks) > 1 and rng.random() < 0.2:
        i = rng.randrange(len(chunks) - 1)
        chunks[i : i + 2] = [chunks[i] + chunks[i + 1]]
    return chunks


def mutate_bytes(chunk: bytes, rng: random.Random, others: list[bytes]) -> bytes:
    """A few random byte- and frame-level mutations of one read."""
    data = bytearray(chunk)
    for _ in range(rng.randrange(1, 6)):
        op = rng.randrange(9)
        pos = rng.randrange(len(data) + 1)
        if op == 0 and data:  # flip bits in one byte
            data[min(pos, len(data) - 1)] ^= 1 << rng.randrange(8)
        elif op == 1 and data:  # set a byte to a boundary value
            data[min(pos, len(data) - 1)] = rng.choice([0, 1, 0x7F, 0x80, 0xFF])
        elif op == 2:  # insert random bytes
            data[pos:pos] = rng.randbytes(rng.randrange(1, 16))
        elif op == 3:  # delete a range
            del data[pos : pos + rng.randrange(1, 32)]
        elif op == 4:  # duplicate a range
            end = min(len(data), pos + rng.randrange(1, 64))
            data[end:end] = data[pos:end]
        elif op == 5 and others:  # splice in part of another recording
            other = rng.choice(others)
            start = rng.randrange(len(other))
            data[pos:pos] = other[start : start + rng.randrange(1, 200)]
        else:  # insert, repeat or drop whole frames at frame boundaries
            offsets = frame_offsets(bytes(data))
            at = rng.choice(offsets)
            choice = rng.randrange(3)
            if choice == 0:
                data[at:at] = random_frame(rng)
            elif choice == 1 and len(offsets) > 1:
                i = rng.randrange(len(offsets) - 1)
                data[at:at] = data[offsets[i] : offsets[i + 1]] * rng.randrange(1, 4)
            elif len(offsets) > 1:
                i = rng.randrange(len(offsets) - 1)
                del data[offsets[i] : offsets[i + 1]]
    return bytes(data)


def split(chunks: list[bytes], rng: random.Random) -> list[bytes]:
    """Cut reads further as a network may: not at all, into 1-byte pieces, or anywhere."""
    kind = rng.randrange(4)
    if kind == 0:
        return chunks
    out: list[bytes] = []
    for chunk in chunks:
        if kind == 1:
            out.extend(chunk[i : i + 1] for i in range(len(chunk)))
        elif len(chunk) < 2 or rng.random() < 0.5:
            out.append(chunk)
        else:
            count = min(len(chunk) - 1, rng.randrange(1, 4))
            cuts = sorted(rng.sample(range(1, len(chunk)), count))
            out.extend(chunk[a:b] for a, b in zip([0, *cuts], [*cuts, len(chunk)], strict=True))
    return out
