"""The fast paths of the HPACK module agree with the reference implementation (hpack).

The Huffman decoder walks a pre-shifted state table and decides validity by the final state;
the encoder caches the encoded index of each repeating header. Both are checked against
hpack's own decoder on inputs chosen to hit the edges (invalid codes, EOS, padding, table
evictions and size updates).
"""

from __future__ import annotations

import random

import pytest
from hpack import Decoder
from hpack.huffman import HuffmanEncoder
from hpack.huffman_constants import REQUEST_CODES, REQUEST_CODES_LENGTH
from hpack.huffman_table import decode_huffman

from apnskit._core.hpack_codec import HeaderEncoder, HpackError, _decode_huffman

_ENCODER = HuffmanEncoder(REQUEST_CODES, REQUEST_CODES_LENGTH)


def test_huffman_round_trips_every_byte_value() -> None:
    rnd = random.Random(13)
    samples = [bytes(range(256)), b"", b"0123456789abcdef-"]
    samples += [bytes(rnd.randrange(256) for _ in range(rnd.randrange(1, 50))) for _ in range(500)]
    for data in samples:
        assert _decode_huffman(_ENCODER.encode(data)) == data


def test_huffman_rejects_exactly_what_hpack_rejects() -> None:
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
                _decode_huffman(raw)
        else:
            assert _decode_huffman(raw) == expected
    assert rejected > 1000  # the sample really exercises the failure paths


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"\xff\xff\xff\xff", "invalid Huffman"),  # EOS inside the string
        (b"\x00", "bad padding"),  # '0' then padding of zeros
        (b"\x1f\xff", "bad padding"),  # padding of 8 or more bits
    ],
)
def test_huffman_errors_name_the_rule(raw: bytes, message: str) -> None:
    with pytest.raises(HpackError, match=message):
        _decode_huffman(raw)


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
