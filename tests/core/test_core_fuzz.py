"""Bounded fuzz of the core's receive path (issue 10); ``bench/fuzz_core.py`` runs it longer.

Server byte streams recorded from node's ``http2`` module and hypercorn are mutated (bytes
flipped, inserted, deleted, duplicated, spliced from another recording; random frames of
any type inserted, frames repeated or dropped) and cut into reads of any size, then fed to a
client with requests open. ``fuzz_support.check_stream`` asserts the rule: nothing escapes
``receive_data``, a violation ends the connection with our GOAWAY and its code (never
INTERNAL_ERROR), every request ends in exactly one outcome, and buffers stay bounded.
"""

from __future__ import annotations

import random

import fuzz_support
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

SEEDS = fuzz_support.load_seeds()
STREAMS = [b"".join(chunks) for chunks in SEEDS.values()]


def test_seeds_recorded_from_both_servers_replay_cleanly() -> None:
    assert sorted(SEEDS) == [
        "hypercorn-default",
        "hypercorn-tight",
        "node-default",
        "node-tight",
    ]
    for name, chunks in SEEDS.items():
        outcome = fuzz_support.check_stream(chunks)
        assert outcome.error_code is None, name
        assert outcome.responses == fuzz_support.REQUESTS, name


@pytest.mark.parametrize("name", sorted(SEEDS))
def test_seed_in_one_byte_reads_replays_cleanly(name: str) -> None:
    chunks = SEEDS[name]
    # Each recorded read split into single bytes: every frame crosses reads.
    outcome = fuzz_support.check_stream([c[i : i + 1] for c in chunks for i in range(len(c))])
    assert outcome.error_code is None
    assert outcome.responses == fuzz_support.REQUESTS


@settings(
    deadline=None,
    max_examples=1000,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(name=st.sampled_from(sorted(SEEDS)), case=st.integers(min_value=0, max_value=2**64))
def test_mutated_server_streams_keep_the_rule(name: str, case: int) -> None:
    # The mutations draw from random.Random(case), as bench/fuzz_core.py does: hypothesis's
    # own biased draws (zeros, first choices) found a planted double-outcome bug far less
    # often than uniform ones. A failure prints ``case``, which replays it exactly.
    rng = random.Random(case)
    chunks = fuzz_support.split(fuzz_support.mutate(SEEDS[name], rng, STREAMS), rng)
    fuzz_support.check_stream(chunks)


@settings(deadline=None, max_examples=300, database=None)
@given(
    name=st.sampled_from(sorted(SEEDS)),
    extra=st.lists(st.binary(max_size=64), min_size=1, max_size=6),
    at=st.integers(min_value=0),
)
def test_arbitrary_bytes_after_a_recorded_prefix_keep_the_rule(
    name: str, extra: list[bytes], at: int
) -> None:
    # Raw hypothesis bytes (shrinks well) appended after a prefix of real reads.
    chunks = SEEDS[name]
    cut = at % (len(chunks) + 1)
    fuzz_support.check_stream([*chunks[:cut], *extra])
