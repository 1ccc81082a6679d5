"""What the client writes for a request: HEADERS (+ CONTINUATION) and DATA; HPACK coding."""

from __future__ import annotations

import hpack
from hyperframe.frame import ContinuationFrame, DataFrame, HeadersFrame
from hypothesis import given, settings
from hypothesis import strategies as st
from peer import APNS_HEADERS, AUTHORITY, BODY, PATH, Peer, send, start
from peer import settings as settings_frame

from apnskit._core.connection import ApnsConnection
from apnskit._core.hpack_codec import HeaderDecoder, HeaderEncoder, encode_integer

ALL_APNS_HEADERS = (
    ("apns-push-type", "alert"),
    ("apns-id", "123e4567-e89b-12d3-a456-426614174000"),
    ("apns-expiration", "0"),
    ("apns-priority", "10"),
    ("apns-topic", "com.example.app"),
    ("apns-collapse-id", "news"),
)


def test_headers_and_data_exact() -> None:
    conn, peer, _ = start()
    handle = conn.send_request(
        PATH, ALL_APNS_HEADERS, BODY, "ctx", authorization="bearer abc.def.ghi"
    )
    assert handle.stream_id == 1
    assert "stream_id=1" in repr(handle)
    frames = peer.parse(conn.data_to_send())
    assert [type(f) for f in frames] == [HeadersFrame, DataFrame]
    assert frames[0].flags == {"END_HEADERS"}
    assert frames[1].flags == {"END_STREAM"}
    request = peer.requests[1]
    assert request.headers == [
        (":method", "POST"),
        (":scheme", "https"),
        (":authority", AUTHORITY),
        (":path", PATH),
        ("authorization", "bearer abc.def.ghi"),
        *ALL_APNS_HEADERS,
    ]
    assert request.body == BODY
    assert request.ended


def test_no_authorization_header_without_token_and_custom_scheme() -> None:
    conn, peer, _ = start(ApnsConnection("localhost:2197", scheme="http"))
    send(conn, peer)
    assert peer.requests[1].headers == [
        (":method", "POST"),
        (":scheme", "http"),
        (":authority", "localhost:2197"),
        (":path", PATH),
        *APNS_HEADERS,
    ]


def test_get_without_body_ends_stream_on_headers() -> None:
    conn, peer, _ = start()
    conn.send_request("/1/apps/com.example/all-channels", (), b"", None, method="GET")
    frames = peer.parse(conn.data_to_send())
    assert len(frames) == 1
    assert frames[0].flags == {"END_HEADERS", "END_STREAM"}
    assert peer.requests[1].headers[0] == (":method", "GET")


def test_many_requests_share_dynamic_table_and_decode() -> None:
    conn, peer, _ = start()
    sizes = []
    for i in range(300):
        headers = (
            ("apns-topic", "com.example.app"),
            ("apns-push-type", "alert"),
            ("apns-id", f"00000000-0000-0000-0000-{i:012d}"),
            ("apns-expiration", str(i % 3)),
            ("apns-priority", "10" if i % 2 else "5"),
        )
        handle = conn.send_request(f"/3/device/{i:064x}", headers, b"{}", i, authorization="b x")
        out = conn.data_to_send()
        peer.parse(out)
        sizes.append(len(out))
        expected = [
            (":method", "POST"),
            (":scheme", "https"),
            (":authority", AUTHORITY),
            (":path", f"/3/device/{i:064x}"),
            ("authorization", "b x"),
            *headers,
        ]
        assert peer.requests[handle.stream_id].headers == expected
        conn.receive_data(peer.respond(handle.stream_id))
    # Repeating headers are indexed: later requests are much smaller than the first.
    assert sizes[-1] < sizes[0] - 40


def test_continuation_when_block_exceeds_peer_max_frame_size() -> None:
    conn, peer, _ = start()
    big = "x" * 40_000
    conn.send_request(PATH, (("apns-topic", "t"), ("x-big", big)), BODY, None)
    frames = peer.parse(conn.data_to_send())
    kinds = [type(f) for f in frames]
    assert kinds == [HeadersFrame, ContinuationFrame, ContinuationFrame, DataFrame]
    assert frames[0].flags == set()
    assert frames[1].flags == set()
    assert frames[2].flags == {"END_HEADERS"}
    assert all(len(f.data) <= 16_384 for f in frames[:3])
    assert len(frames[0].data) == 16_384
    assert peer.requests[1].headers[-1] == ("x-big", big)
    assert peer.requests[1].body == BODY


def test_continuation_of_bodyless_request_keeps_end_stream_on_headers() -> None:
    conn, peer, _ = start(server_settings=settings_frame(MAX_FRAME_SIZE=20_000))
    big = "y" * 30_000
    conn.send_request("/x", (("x-big", big),), b"", None, method="DELETE")
    frames = peer.parse(conn.data_to_send())
    assert [type(f) for f in frames] == [HeadersFrame, ContinuationFrame]
    assert frames[0].flags == {"END_STREAM"}
    assert frames[1].flags == {"END_HEADERS"}
    assert len(frames[0].data) == 20_000
    assert peer.requests[1].ended
    assert peer.requests[1].headers[-1] == ("x-big", big)


# ------------------------------------------------------------------- HPACK round trips

_NAMES = st.sampled_from(
    [
        ":path",
        ":method",
        "authorization",
        "apns-topic",
        "apns-id",
        "apns-push-type",
        "apns-expiration",
        "content-type",
        "x-custom",
        "user-agent",
    ]
) | st.text(alphabet="abcdefghijklmnopqrstuvwxyz-", min_size=1, max_size=20)
_VALUES = st.text(
    alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=200
) | st.sampled_from(["POST", "https", "alert", "10", "5", "0", ""])
_HEADER_LISTS = st.lists(st.tuples(_NAMES, _VALUES), max_size=12)
_INDEXABLE = frozenset({":method", "authorization", "apns-topic", "apns-push-type", "x-custom"})


@settings(max_examples=150, deadline=None)
@given(
    blocks=st.lists(_HEADER_LISTS, min_size=1, max_size=8),
    table_sizes=st.lists(st.none() | st.integers(0, 5000), min_size=8, max_size=8),
)
def test_encoder_round_trips_through_hpack_decoder(
    blocks: list[list[tuple[str, str]]], table_sizes: list[int | None]
) -> None:
    encoder = HeaderEncoder()
    decoder = hpack.Decoder()
    decoder.max_header_list_size = 1 << 30
    for block, size in zip(blocks, table_sizes[: len(blocks)], strict=True):
        if size is not None:
            # The peer's SETTINGS_HEADER_TABLE_SIZE: its decoder accepts no more than that.
            encoder.set_max_table_size(size)
            decoder.max_allowed_table_size = min(size, 4096)
        encoded = encoder.encode(block, _INDEXABLE)
        assert [(n, v) for n, v in decoder.decode(encoded)] == block
        assert encoder.table_size <= decoder.header_table_size


@settings(max_examples=150, deadline=None)
@given(
    blocks=st.lists(
        st.tuples(_HEADER_LISTS, st.booleans(), st.none() | st.integers(0, 4096)),
        min_size=1,
        max_size=8,
    )
)
def test_hpack_encoder_round_trips_through_header_decoder(
    blocks: list[tuple[list[tuple[str, str]], bool, int | None]],
) -> None:
    encoder = hpack.Encoder()
    decoder = HeaderDecoder()
    for header_list, huffman, size in blocks:
        if size is not None:
            encoder.header_table_size = size
        encoded = encoder.encode(header_list, huffman=huffman)
        assert decoder.decode(encoded) == header_list


@settings(max_examples=60, deadline=None)
@given(st.lists(st.binary(min_size=0, max_size=60).map(lambda b: b.hex()), min_size=1))
def test_never_indexed_and_sensitive_headers_decode(values: list[str]) -> None:
    encoder = hpack.Encoder()
    decoder = HeaderDecoder()
    header_list = [hpack.NeverIndexedHeaderTuple("authorization", v) for v in values]
    assert decoder.decode(encoder.encode(header_list)) == [("authorization", v) for v in values]


def test_encoder_signals_smallest_then_final_table_size() -> None:
    # RFC 7541 section 4.2: several changes between blocks -> smallest, then final.
    indexable = frozenset({"apns-topic"})
    encoder = HeaderEncoder()
    decoder = hpack.Decoder()
    decoder.decode(encoder.encode([("apns-topic", "a" * 100)], indexable))
    encoder.set_max_table_size(2000)
    encoder.set_max_table_size(1000)
    encoder.set_max_table_size(3000)
    decoder.max_allowed_table_size = 3000
    block = encoder.encode([("apns-topic", "a" * 100)], indexable)
    assert block.startswith(encode_integer(1000, 5, 0x20) + encode_integer(3000, 5, 0x20))
    assert decoder.decode(block) == [("apns-topic", "a" * 100)]
    assert decoder.header_table_size == 3000


def test_encoder_never_signals_more_than_the_current_setting() -> None:
    # Lowered twice: an update to the first, larger value would exceed what the peer allows.
    encoder = HeaderEncoder()
    decoder = hpack.Decoder()
    encoder.set_max_table_size(2000)
    encoder.set_max_table_size(1000)
    decoder.max_allowed_table_size = 1000
    block = encoder.encode([("apns-topic", "t")], frozenset({"apns-topic"}))
    assert block.startswith(encode_integer(1000, 5, 0x20) + b"\x40")
    assert decoder.decode(block) == [("apns-topic", "t")]
    assert decoder.header_table_size == 1000


def test_oversized_entry_is_sent_without_indexing() -> None:
    encoder = HeaderEncoder()
    encoder.set_max_table_size(50)
    decoder = hpack.Decoder()
    decoder.max_allowed_table_size = 50
    indexable = frozenset({"apns-topic", "x-long"})
    for _ in range(2):
        block = encoder.encode(
            [("apns-topic", "a" * 40), ("x-long", "b" * 40), ("apns-topic", "c")], indexable
        )
        assert decoder.decode(block) == [
            ("apns-topic", "a" * 40),
            ("x-long", "b" * 40),
            ("apns-topic", "c"),
        ]
    assert encoder.table_size == len("apns-topic") + 1 + 32


def test_long_values_and_large_indexes_use_multibyte_integers() -> None:
    encoder = HeaderEncoder()
    decoder = hpack.Decoder()
    indexable = frozenset({"x-a"})
    # 80 entries push the oldest past dynamic index 127 (a multi-byte index).
    header_list = [("x-a", str(i)) for i in range(80)] + [("x-long", "v" * 300)]
    assert decoder.decode(encoder.encode(header_list, indexable)) == header_list
    again = [("x-a", "0"), ("x-a", "79")]
    block = encoder.encode(again, indexable)
    assert len(block) == 3  # one two-byte index, one one-byte index
    assert decoder.decode(block) == again


def test_unicode_header_values_round_trip() -> None:
    encoder = HeaderEncoder()
    decoder = HeaderDecoder()
    header_list = [("x-note", "café ✓"), ("apns-topic", "ünï")]
    assert decoder.decode(encoder.encode(header_list, frozenset({"apns-topic"}))) == header_list


def test_peer_is_fresh() -> None:
    assert Peer().requests == {}


def test_many_distinct_huffman_values_decode_correctly() -> None:
    # More distinct Huffman strings than the decoder remembers: every one still decodes right,
    # and a repeated one decodes the same the second time.
    encoder = hpack.Encoder()
    decoder = HeaderDecoder()
    for i in range(5000):
        header_list = [("apns-id", f"{i:08x}-0000-4000-8000-000000000000")]
        assert decoder.decode(encoder.encode(header_list, huffman=True)) == header_list
    again = [("apns-id", "00000001-0000-4000-8000-000000000000")]
    fresh = hpack.Encoder()
    assert decoder.decode(fresh.encode(again)) == again
