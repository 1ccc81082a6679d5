"""The fast paths of the HPACK module agree with the reference implementation (hpack).

The Huffman decoder walks a pre-shifted state table and decides validity by the final state;
the encoder caches the encoded index of each repeating header. Both are checked against
hpack's own decoder on inputs chosen to hit the edges (invalid codes, EOS, padding, table
evictions and size updates).
"""

from __future__ import annotations

import gc
import random
import types
from collections.abc import Callable

import pytest
from hpack import Decoder
from hpack.huffman import HuffmanEncoder
from hpack.huffman_constants import REQUEST_CODES, REQUEST_CODES_LENGTH
from hpack.huffman_table import decode_huffman
from hypothesis import given, settings
from hypothesis import strategies as st

from apnskit._core import hpack_codec
from apnskit._core.hpack_codec import (
    HeaderDecoder,
    HeaderEncoder,
    HpackError,
    _decode_huffman,
    encode_integer,
)

_ENCODER = HuffmanEncoder(REQUEST_CODES, REQUEST_CODES_LENGTH)


def _octets(decode: Callable[[bytes], str]) -> Callable[[bytes], bytes]:
    # The loops give each decoded octet as the character of the same code point.
    return lambda raw: decode(raw).encode("latin-1")


# Both loops run in both builds (each build uses one; see hpack_codec): each by name, and the
# build's own through _decode_huffman.
_DECODERS = pytest.mark.parametrize(
    "decode",
    [
        _octets(hpack_codec._decode_huffman_tuples),
        _octets(hpack_codec._decode_huffman_flat),
        _decode_huffman,
    ],
    ids=["tuples", "flat", "build"],
)


def test_the_build_uses_the_loop_made_for_it() -> None:
    compiled = not isinstance(hpack_codec.HeaderDecoder.decode, types.FunctionType)
    assert hpack_codec._COMPILED is compiled


def test_the_huffman_tables_leave_the_garbage_collectors_lists() -> None:
    # 65,536 entries each: as lists, every full collection of the application walked them
    # (about 1.2 ms a collection); as tuples of untracked items they drop out after one pass.
    hpack_codec._decode_huffman_tuples(_ENCODER.encode(b"warm"))  # both tables built
    tables = hpack_codec._huffman_tables()
    # A tuple is untracked once its items are: a pass may meet the table before its entries.
    gc.collect()
    gc.collect()
    assert not gc.is_tracked(hpack_codec._tuple_table)
    assert not gc.is_tracked(tables.texts)


@_DECODERS
def test_huffman_round_trips_every_byte_value(decode: Callable[[bytes], bytes]) -> None:
    rnd = random.Random(13)
    samples = [bytes(range(256)), b"", b"0123456789abcdef-"]
    samples += [bytes(rnd.randrange(256) for _ in range(rnd.randrange(1, 50))) for _ in range(500)]
    for data in samples:
        assert decode(_ENCODER.encode(data)) == data


@_DECODERS
@settings(max_examples=300, deadline=None)
@given(data=st.binary(max_size=80))
def test_huffman_agrees_with_hpack_on_any_string(
    decode: Callable[[bytes], bytes], data: bytes
) -> None:
    raw = _ENCODER.encode(data)
    assert decode(raw) == decode_huffman(raw) == data


@_DECODERS
@settings(max_examples=300, deadline=None)
@given(raw=st.binary(max_size=12))
def test_huffman_accepts_and_rejects_any_bytes_as_hpack_does(
    decode: Callable[[bytes], bytes], raw: bytes
) -> None:
    try:
        expected: bytes | None = decode_huffman(raw)
    except Exception:
        expected = None
    if expected is None:
        with pytest.raises(HpackError):
            decode(raw)
    else:
        assert decode(raw) == expected


@_DECODERS
def test_huffman_rejects_exactly_what_hpack_rejects(decode: Callable[[bytes], bytes]) -> None:
    rnd = random.Random(7)
    rejected = 0
    for _ in range(5000):
        raw = bytes(rnd.randrange(256) for _ in range(rnd.randrange(0, 6)))
        try:
            expected: bytes | None = decode_huffman(raw)
        except Exception:
            expected = None
        if expected is None:
            rejected += 1
            with pytest.raises(HpackError):
                decode(raw)
        else:
            assert decode(raw) == expected
    assert rejected > 1000  # the sample really exercises the failure paths


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"\xff\xff\xff\xff", "invalid Huffman"),  # EOS inside the string
        (b"\x00", "bad padding"),  # '0' then padding of zeros
        (b"\x1f\xff", "bad padding"),  # padding of 8 or more bits
    ],
)
@_DECODERS
def test_huffman_errors_name_the_rule(
    decode: Callable[[bytes], bytes], raw: bytes, message: str
) -> None:
    with pytest.raises(HpackError, match=message):
        decode(raw)


@settings(max_examples=200, deadline=None)
@given(value=st.binary(max_size=40) | st.text(max_size=20).map(str.encode))
def test_huffman_values_decode_as_utf8_with_escapes(value: bytes) -> None:
    # Huffman-coded values take a separate path (latin-1 characters, then UTF-8 only when
    # not ASCII): the same text as an uncoded value, undecodable octets surrogate-escaped.
    huffman = _ENCODER.encode(value)
    block = b"\x00\x01x" + encode_integer(len(huffman), 7, 0x80) + huffman
    plain = b"\x00\x01x" + encode_integer(len(value), 7, 0) + value
    expected = [("x", value.decode("utf-8", "surrogateescape"))]
    assert HeaderDecoder().decode(block) == expected
    assert HeaderDecoder().decode(plain) == expected
    assert HeaderDecoder().decode(block) == expected  # a second time, from the cache


def test_encoder_index_cache_follows_insertions_and_evictions() -> None:
    # A small table forces evictions; repeating headers change now and then (a new token),
    # so cached indices go stale unless the cache is cleared on every table change.
    indexable = frozenset({"authorization", "apns-topic"})
    encoder = HeaderEncoder()
    decoder = Decoder()
    rnd = random.Random(3)
    topics = [f"com.example.app{i}" for i in range(6)]
    tokens = ["bearer " + "t" * 200 + str(i) for i in range(4)]
    for step in range(400):
        if step == 150:
            encoder.set_max_table_size(512)
            decoder.header_table_size = 512
        headers = [
            (":path", f"/3/device/{step:064x}"),
            ("authorization", rnd.choice(tokens)),
            ("apns-topic", rnd.choice(topics)),
        ]
        assert decoder.decode(encoder.encode(headers, indexable)) == headers


def test_encode_request_is_encode_of_the_same_list_across_table_changes() -> None:
    # encode_request reuses the bytes before and after :path while the table is unchanged.
    # Against a reference encoder fed the same header lists through encode(): a stale reuse
    # after an insertion, an eviction or a size change would give different bytes (or
    # indices the peer's decoder does not have).
    indexable = frozenset({":method", ":scheme", ":authority", "authorization", "apns-topic"})
    cached, reference = HeaderEncoder(), HeaderEncoder()
    decoder = Decoder()
    rnd = random.Random(11)
    heads = [((":method", m), (":scheme", "https"), (":authority", "h")) for m in ("POST", "GET")]
    tokens = [None, "bearer " + "t" * 300, "bearer " + "u" * 300]
    topics = [f"com.example.app{i}" for i in range(5)]
    hits = 0
    for step in range(600):
        if step in (200, 400):
            size = 700 if step == 200 else 4096
            cached.set_max_table_size(size)
            reference.set_max_table_size(size)
            decoder.max_allowed_table_size = size
        head = rnd.choice(heads)
        authorization = rnd.choice(tokens)
        headers: tuple[tuple[str, str], ...] | list[tuple[str, str]] = (
            ("apns-push-type", "alert"),
            ("apns-topic", rnd.choice(topics)),
        )
        if step % 7 == 0:
            headers = list(headers)  # a list is not hashable: encoded without the cache
        path = f"/3/device/{step:064x}"
        full = [*head, (":path", path)]
        if authorization is not None:
            full.append(("authorization", authorization))
        full.extend(headers)
        hits += bool(cached._fragments.get((authorization, headers) if step % 7 else head))
        block = cached.encode_request(head, path, authorization, headers, indexable)
        assert block == reference.encode(full, indexable), step
        assert decoder.decode(block) == full
    assert hits > 200  # the cache really was used


def test_encode_request_cache_is_bounded() -> None:
    encoder = HeaderEncoder()
    head = ((":method", "POST"),)
    for i in range(1000):
        # A header that changes on every request (literal, not indexed): a new key each time.
        headers = (("apns-id", f"{i:032x}"),)
        encoder.encode_request(head, "/3/device/00", None, headers, frozenset({":method"}))
        assert len(encoder._fragments) <= 64


def test_decoder_adds_nothing_to_a_table_of_size_zero() -> None:
    # nginx sets its table size to 0 and still sends literals with incremental indexing
    # (RFC 7541 section 4.4: an entry larger than the table leaves it empty).
    decoder = HeaderDecoder()
    server = b"\x76\x05nginx"  # literal with incremental indexing, static name 54 (server)
    assert decoder.decode(b"\x20" + server + server) == [("server", "nginx")] * 2
    # Back to 4096 (encoded 31 + 4065), then the first dynamic index: there is no entry.
    with pytest.raises(HpackError, match="index 62, which does not exist"):
        decoder.decode(b"\x3f\xe1\x1f\xbe")
    # With room again, an insertion is kept and index 62 finds it.
    assert decoder.decode(server + b"\xbe") == [("server", "nginx")] * 2


@pytest.mark.parametrize(
    "block",
    [
        b"\x40\x01a\x05ab",  # raw value shorter than its length
        b"\x40\x01a\x85\xff",  # Huffman value shorter than its length
        b"\x40\x01a",  # no value at all
        b"\x40\x01a\x7f\x05ab",  # a long value (multi-byte length) cut short
    ],
)
def test_truncated_values_are_compression_errors(block: bytes) -> None:
    with pytest.raises(HpackError, match=r"runs past the end|ends in the middle"):
        HeaderDecoder().decode(block)
