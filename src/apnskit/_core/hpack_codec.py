"""HPACK (RFC 7541) tuned for APNs: a cheap encoder and a complete decoder.

Theory of operation
-------------------
h2's generic path costs most of its per-request time Huffman-coding and validating headers.
APNs requests are nearly constant: the same ``:method``, ``:scheme``, ``:authority``,
``apns-topic``, ``apns-push-type`` and ``authorization`` on every request of a connection, and
a few values that change every time (``:path`` carries the device token, ``apns-id``,
``apns-expiration``). So the encoder:

* puts the repeating headers in the dynamic table once (literal with incremental indexing,
  RFC 7541 section 6.2.1) and afterwards sends a one or two byte index (section 6.1);
* sends the per-request values as literals *without* indexing and without Huffman coding
  (section 6.2.2, section 5.2 with H=0): they would only churn the table, and Huffman coding in
  Python costs more than the few bytes it saves on loopback or the Internet.

The decoder must accept anything a server may legally send, Huffman strings and dynamic table
size updates included, because its table has to stay in step with the peer's encoder.
"""

from __future__ import annotations

import contextlib
import types
from collections import deque
from collections.abc import Iterable, Sequence
from typing import Final

from hpack import huffman_table
from hpack.table import HeaderTable

from apnskit._errors import RemoteProtocolError

__all__ = ["DEFAULT_TABLE_SIZE", "HeaderDecoder", "HeaderEncoder", "HpackError", "encode_integer"]

# Module constants are Final: mypyc then reads them as C globals, not through the module
# dictionary (issue 13).
#: RFC 9113 section 6.5.2: SETTINGS_HEADER_TABLE_SIZE starts at 4096.
DEFAULT_TABLE_SIZE: Final = 4096
#: RFC 7541 section 4.1: an entry costs its name and value lengths plus 32.
_ENTRY_OVERHEAD: Final = 32

_STATIC: Final[tuple[tuple[str, str], ...]] = tuple(
    (name.decode("latin-1"), value.decode("latin-1")) for name, value in HeaderTable.STATIC_TABLE
)
_STATIC_LEN: Final = len(_STATIC)  # 61
# First static index for each header name (RFC 7541 Appendix A), for "indexed name" literals.
_STATIC_NAME_INDEX: Final[dict[str, int]] = {}
for _i, (_name, _value) in enumerate(_STATIC, start=1):
    _STATIC_NAME_INDEX.setdefault(_name, _i)
# Most entries HeaderEncoder.encode_request keeps (a batch needs two).
_FRAGMENTS_MAX: Final = 64
_STATIC_FULL_INDEX: Final[dict[tuple[str, str], int]] = {
    pair: i for i, pair in reversed(list(enumerate(_STATIC, start=1)))
}


class HpackError(RemoteProtocolError):
    """The peer's header block cannot be decoded (RFC 9113 section 4.3: COMPRESSION_ERROR)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, error_code=0x9)


def encode_integer(value: int, prefix_bits: int, flags: int) -> bytes:
    """Encode an HPACK integer (RFC 7541 section 5.1) with ``flags`` in the first byte."""
    max_prefix = (1 << prefix_bits) - 1
    if value < max_prefix:
        return bytes((flags | value,))
    out = bytearray((flags | max_prefix,))
    value -= max_prefix
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _encode_string(value: str) -> bytes:
    # H=0: no Huffman coding (see the module docstring for why).
    raw = value.encode("utf-8")
    length = len(raw)
    if length < 0x7F:
        return bytes((length,)) + raw
    return encode_integer(length, 7, 0) + raw


class HeaderEncoder:
    """Encodes header lists, indexing only the headers named as repeating.

    The table never grows beyond the peer's SETTINGS_HEADER_TABLE_SIZE (nor 4096 bytes).
    """

    __slots__ = (
        "_entries",
        "_fragments",
        "_index",
        "_indexed",
        "_inserted",
        "_literal_prefix",
        "_max_size",
        "_pending_updates",
        "_size",
        "_table_changes",
    )

    def __init__(self) -> None:
        # Oldest entry on the left; each is (name, value, size, insertion number).
        self._entries: deque[tuple[str, str, int, int]] = deque()
        self._index: dict[tuple[str, str], int] = {}
        self._inserted = 0
        self._size = 0
        self._max_size = DEFAULT_TABLE_SIZE
        self._pending_updates: list[int] = []
        # Cached "literal without indexing" prefixes (the name part) per header name.
        self._literal_prefix: dict[str, bytes] = {}
        # The encoded index (section 6.1) of each repeating header already in a table, so a
        # request's constant headers cost one dict lookup each. A dynamic index depends on
        # how many entries were inserted since, so every insertion or eviction clears it;
        # it holds at most the table's entries plus the static ones used.
        self._indexed: dict[tuple[str, str], bytes] = {}
        # encode_request's cache: the encoded block before and after ``:path`` (the pseudo-
        # headers, then authorization and the APNs headers), keyed by what they encode. Like
        # _indexed, valid only while the table is unchanged, so cleared with it.
        self._fragments: dict[object, bytes] = {}
        # Counts table changes (insertions, evictions, size changes): an encoding made while
        # it stays the same referenced only entries that still have the same index.
        self._table_changes = 0

    @property
    def table_size(self) -> int:
        """Bytes of dynamic table in use (RFC 7541 section 4.1 accounting)."""
        return self._size

    def set_max_table_size(self, peer_value: int) -> None:
        """Apply the peer's SETTINGS_HEADER_TABLE_SIZE.

        RFC 7541 section 4.2: a change must be signalled at the start of the next header block.
        """
        new_size = min(peer_value, DEFAULT_TABLE_SIZE)
        if new_size == self._max_size:
            return
        self._max_size = new_size
        # Section 4.2: after several changes, signal the smallest, then the final size; an
        # intermediate value may exceed what the peer allows now.
        pending = self._pending_updates
        smallest = min(pending[0], new_size) if pending else new_size
        self._pending_updates = [smallest] if smallest == new_size else [smallest, new_size]
        self._evict(0)

    def _evict(self, room: int) -> None:
        self._indexed.clear()
        self._fragments.clear()
        self._table_changes += 1
        limit = self._max_size - room
        entries = self._entries
        while entries and self._size > limit:
            name, value, size, number = entries.popleft()
            self._size -= size
            if self._index.get((name, value)) == number:
                del self._index[(name, value)]

    def encode(self, headers: Iterable[tuple[str, str]], indexable: frozenset[str]) -> bytes:
        """Encode ``headers`` into one header block.

        Args:
            headers: (name, value) pairs; names must already be lowercase.
            indexable: names whose values repeat across requests and are worth a table entry.
        """
        parts: list[bytes] = []
        if self._pending_updates:
            # RFC 7541 section 6.3: dynamic table size update, 001xxxxx.
            parts.extend(encode_integer(size, 5, 0x20) for size in self._pending_updates)
            self._pending_updates.clear()
        index = self._index
        indexed = self._indexed
        append = parts.append
        for header in headers:
            encoded = indexed.get(header)
            if encoded is not None:
                append(encoded)
                continue
            name, value = header
            if name in indexable:
                static = _STATIC_FULL_INDEX.get((name, value))
                if static is not None:
                    encoded = indexed[(name, value)] = encode_integer(static, 7, 0x80)
                    append(encoded)
                    continue
                number = index.get((name, value))
                if number is not None:
                    position = _STATIC_LEN + self._inserted - number
                    encoded = indexed[(name, value)] = encode_integer(position, 7, 0x80)
                    append(encoded)
                    continue
                append(self._insert(name, value))
                continue
            prefix = self._literal_prefix.get(name)
            if prefix is None:
                name_index = _STATIC_NAME_INDEX.get(name)
                if name_index is not None:
                    # RFC 7541 section 6.2.2, literal without indexing, indexed name: 0000xxxx.
                    prefix = encode_integer(name_index, 4, 0x00)
                else:
                    prefix = b"\x00" + _encode_string(name)
                self._literal_prefix[name] = prefix
            append(prefix)
            append(_encode_string(value))
        return b"".join(parts)

    def encode_request(
        self,
        head: tuple[tuple[str, str], ...],
        path: str,
        authorization: str | None,
        headers: Sequence[tuple[str, str]],
        indexable: frozenset[str],
    ) -> bytes:
        """Encode ``head``, ``:path``, ``authorization`` (if any) and ``headers``, in that order.

        The same block as :meth:`encode` of those headers. Across a batch only the path
        (the device token) changes: once the repeating headers are in the table, the parts
        before and after the path are the same bytes every time (section 6.1 indices), so
        they are reused while the table does not change.
        """
        fragments = self._fragments
        try:
            tail = fragments.get((authorization, headers))
        except TypeError:  # headers given as a list: not hashable, so not cached
            tail = None
        start = fragments.get(head)
        if start is None or tail is None:
            return self._encode_request_parts(head, path, authorization, headers, indexable)
        return start + self._path_literal(path) + tail

    def _encode_request_parts(
        self,
        head: tuple[tuple[str, str], ...],
        path: str,
        authorization: str | None,
        headers: Sequence[tuple[str, str]],
        indexable: frozenset[str],
    ) -> bytes:
        fragments = self._fragments
        if len(fragments) >= _FRAGMENTS_MAX:
            # Bounded: a header that changes on every request (an apns-id, say) would
            # otherwise add an entry per request.
            fragments.clear()
        cacheable = not self._pending_updates
        changes = self._table_changes
        start = self.encode(head, indexable)
        if cacheable and changes == self._table_changes:
            fragments[head] = start
        changes = self._table_changes
        tail_headers = list(headers)
        if authorization is not None:
            tail_headers.insert(0, ("authorization", authorization))
        tail = self.encode(tail_headers, indexable)
        if changes == self._table_changes:
            with contextlib.suppress(TypeError):  # unhashable headers: not cached
                fragments[(authorization, headers)] = tail
        return start + self._path_literal(path) + tail

    def _path_literal(self, path: str) -> bytes:
        # RFC 7541 section 6.2.2: literal without indexing, static name 4 (:path).
        return b"\x04" + _encode_string(path)

    def _insert(self, name: str, value: str) -> bytes:
        # RFC 7541 section 6.2.1: literal with incremental indexing, 01xxxxxx.
        name_index = _STATIC_NAME_INDEX.get(name)
        if name_index is not None:
            encoded = encode_integer(name_index, 6, 0x40) + _encode_string(value)
        else:
            encoded = b"\x40" + _encode_string(name) + _encode_string(value)
        size = len(name.encode("utf-8")) + len(value.encode("utf-8")) + _ENTRY_OVERHEAD
        if size > self._max_size:
            # Section 4.4: an entry larger than the table empties it and is not added. Send it
            # without indexing instead so we never reference an entry that does not exist.
            self._evict(self._max_size)
            return (
                encode_integer(name_index or 0, 4, 0x00)
                + (b"" if name_index else _encode_string(name))
                + _encode_string(value)
            )
        self._evict(size)  # also forgets the cached indices, which this insertion shifts
        number = self._inserted
        self._inserted += 1
        self._entries.append((name, value, size, number))
        self._index[(name, value)] = number
        self._size += size
        return encoded


class HeaderDecoder:
    """A complete HPACK decoder (RFC 7541 section 3) with a bounded dynamic table."""

    __slots__ = ("_entries", "_max_size", "_settings_max", "_size")

    def __init__(self, max_table_size: int = DEFAULT_TABLE_SIZE) -> None:
        # Newest entry on the left, so dynamic index 62 is _entries[0].
        self._entries: deque[tuple[str, str, int]] = deque()
        self._size = 0
        self._max_size = max_table_size
        # The most the peer may ask for: our own SETTINGS_HEADER_TABLE_SIZE.
        self._settings_max = max_table_size

    def _lookup(self, index: int) -> tuple[str, str]:
        if 0 < index <= _STATIC_LEN:
            return _STATIC[index - 1]
        position = index - _STATIC_LEN - 1
        if index <= 0 or position >= len(self._entries):
            raise HpackError(f"header block refers to index {index}, which does not exist")
        name, value, _ = self._entries[position]
        return name, value

    def _add(self, name: str, value: str) -> None:
        # Section 4.1 counts octets; APNs headers are ASCII, where len() is that count.
        if name.isascii() and value.isascii():
            size = len(name) + len(value) + _ENTRY_OVERHEAD
        else:
            size = _octets(name) + _octets(value) + _ENTRY_OVERHEAD
        if size > self._max_size:
            self._entries.clear()
            self._size = 0
            return
        self._entries.appendleft((name, value, size))
        self._size += size
        if self._size > self._max_size:
            self._shrink()

    def _shrink(self) -> None:
        while self._size > self._max_size:
            _, _, size = self._entries.pop()
            self._size -= size

    def _size_update(self, block: bytes, pos: int) -> int:
        size, pos = _decode_integer(block, pos, 5)
        if size > self._settings_max:
            raise HpackError(
                f"dynamic table size update to {size} exceeds our "
                f"SETTINGS_HEADER_TABLE_SIZE of {self._settings_max}"
            )
        self._max_size = size
        self._shrink()
        return pos

    def decode(self, block: bytes) -> list[tuple[str, str]]:
        """Decode one complete header block into (name, value) pairs.

        Strings are decoded as UTF-8 (APNs sends ASCII); undecodable octets are kept as
        surrogate escapes, so nothing a server sends makes decoding fail.
        """
        # Runs for every response: the one-byte integer forms (all APNs needs) are inlined.
        # No bound-method locals: mypyc calls headers.append and dict.get directly.
        headers: list[tuple[str, str]] = []
        pos = 0
        end = len(block)
        allow_size_update = True
        try:
            while pos < end:
                first = block[pos]
                if first & 0x80:
                    # Indexed header field (section 6.1).
                    index = first & 0x7F
                    if index < 0x7F:
                        pos += 1
                    else:
                        index, pos = _decode_integer(block, pos, 7)
                    headers.append(
                        _STATIC[index - 1] if 0 < index <= _STATIC_LEN else self._lookup(index)
                    )
                    allow_size_update = False
                    continue
                if first & 0x40:
                    # Literal with incremental indexing (section 6.2.1).
                    indexing = True
                    index = first & 0x3F
                    if index < 0x3F:
                        pos += 1
                    else:
                        index, pos = _decode_integer(block, pos, 6)
                elif first & 0x20:
                    # Dynamic table size update (section 6.3): only at the start of a block.
                    if not allow_size_update:
                        raise HpackError("dynamic table size update after a header field")
                    pos = self._size_update(block, pos)
                    continue
                else:
                    # Literal without indexing / never indexed (sections 6.2.2, 6.2.3).
                    indexing = False
                    index = first & 0x0F
                    if index < 0x0F:
                        pos += 1
                    else:
                        index, pos = _decode_integer(block, pos, 4)
                allow_size_update = False
                if index:
                    name = _STATIC[index - 1][0] if index <= _STATIC_LEN else self._lookup(index)[0]
                else:
                    name, pos = _decode_string(block, pos)
                # The value, inlined for the short strings (length below 127) every response
                # has; _decode_string does the rest (section 5.2).
                first = block[pos]
                length = first & 0x7F
                if length == 0x7F:
                    value, pos = _decode_string(block, pos)
                else:
                    pos += 1
                    stop = pos + length
                    if stop > end:
                        raise HpackError("HPACK string runs past the end of the header block")
                    raw = block[pos:stop]
                    pos = stop
                    if first & 0x80:
                        value = _huffman_cache.get(raw) or _decode_huffman_text(raw)
                    else:
                        value = raw.decode("utf-8", "surrogateescape")
                if indexing and self._max_size:
                    # With a table size of 0 (nginx asks for it) every entry is larger than
                    # the table, and adding one leaves the already empty table empty (4.4).
                    self._add(name, value)
                headers.append((name, value))
        except IndexError:
            raise HpackError("header block ends in the middle of a field") from None
        return headers


def _decode_integer(block: bytes, pos: int, prefix_bits: int) -> tuple[int, int]:
    max_prefix = (1 << prefix_bits) - 1
    value = block[pos] & max_prefix
    pos += 1
    if value < max_prefix:
        return value, pos
    shift = 0
    while True:
        byte = block[pos]
        pos += 1
        value += (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
        shift += 7
        if shift > 28:
            # Nothing legitimate in APNs traffic needs an integer beyond 2**28.
            raise HpackError("HPACK integer is too large")


def _decode_string(block: bytes, pos: int) -> tuple[str, int]:
    first = block[pos]
    length = first & 0x7F
    if length < 0x7F:
        pos += 1
    else:
        length, pos = _decode_integer(block, pos, 7)
    stop = pos + length
    if stop > len(block):
        raise HpackError("HPACK string runs past the end of the header block")
    raw = block[pos:stop]
    if first & 0x80:
        return _huffman_cache.get(raw) or _decode_huffman_text(raw), stop
    return raw.decode("utf-8", "surrogateescape"), stop


def _decode_huffman_text(raw: bytes) -> str:
    """Decode a Huffman-coded string (section 5.2) that is not in the cache, and cache it."""
    text = _decode_huffman_flat(raw) if _COMPILED else _decode_huffman_tuples(raw)
    if not text.isascii():
        # The decoders give each octet as the character of the same code point: the octets
        # back, then as UTF-8 like every other string (see HeaderDecoder.decode).
        text = text.encode("latin-1").decode("utf-8", "surrogateescape")
    # Most Huffman strings repeat (server, date, content-type, reason headers...); only the
    # apns-id is new on every response. Remember recent ones, bounded in entries and in
    # entry size, so a hostile server cannot make the cache big. (An empty string is never
    # looked up twice: ``get(raw) or ...`` decodes it again, which costs nothing.)
    if len(raw) <= _HUFFMAN_CACHE_MAX_LEN:
        if len(_huffman_cache) >= _HUFFMAN_CACHE_SIZE:
            _huffman_cache.clear()
        _huffman_cache[raw] = text
    return text


def _octets(text: str) -> int:
    return len(text) if text.isascii() else len(text.encode("utf-8", "surrogateescape"))


_HUFFMAN_CACHE_SIZE: Final = 4096
_HUFFMAN_CACHE_MAX_LEN: Final = 64
_huffman_cache: Final[dict[bytes, str]] = {}


# Huffman decoding (RFC 7541 section 5.2, Appendix B). hpack walks its state machine a nibble
# at a time; we fold two of its steps into one table indexed by (state, byte), which halves
# the loop iterations for the apns-id a server sends on every response. The tables (65,536
# entries) are built on first use from hpack's, so both agree by construction. Whether the
# string ended on valid padding is a property of the final state. The symbols come out as
# the characters of the same code points (latin-1): APNs headers are ASCII, where that is
# already the text, so no bytes are built and decoded (_decode_huffman_text does the rest).
#
# Two loops walk the same transitions, each the fastest for its build (callgrind, issue 13):
# - interpreted, a list of (next state << 8, symbols emitted) tuples, failures leading to an
#   absorbing state so the body has no branch: one lookup, one unpack, one append per byte
#   (the loop over flat tables below costs twice as much there);
# - compiled (mypyc), flat ``bytes`` tables, a list of strings and ``int`` locals, which mypyc
#   turns into a C loop of byte loads and list appends, several times cheaper than the tuple
#   loop there.
# Final: mypyc makes these C constants rather than module dictionary lookups.
_FAIL: Final = huffman_table.HUFFMAN_FAIL
_FAIL_STATE: Final = 256 << 8


class _HuffmanTables:
    """The folded transitions: entry ``state << 8 | byte`` of each table."""

    __slots__ = ("accepting", "failed", "nexts", "shifted_accepting", "texts")

    def __init__(self) -> None:
        nibble_table = huffman_table.HUFFMAN_TABLE
        emit = huffman_table.HUFFMAN_EMIT_SYMBOL
        complete = huffman_table.HUFFMAN_COMPLETE
        nexts = bytearray(65536)
        failed = bytearray(65536)  # 1: this (state, byte) reaches EOS or an impossible code
        texts: list[str] = []
        shared: dict[str, str] = {}  # one object per distinct emitted text
        accepting = bytearray(256)
        accepting[0] = 1
        for index in range(65536):
            state, byte = index >> 8, index & 0xFF
            first_state, first_flags, first_out = nibble_table[state * 16 + (byte >> 4)]
            second_state, second_flags, second_out = nibble_table[first_state * 16 + (byte & 0xF)]
            if (first_flags | second_flags) & _FAIL:
                failed[index] = 1
                texts.append("")
                continue
            text = chr(first_out) if first_flags & emit else ""
            if second_flags & emit:
                text += chr(second_out)
            texts.append(shared.setdefault(text, text))
            nexts[index] = second_state
            if second_flags & complete:
                # Section 5.2: ends here only on padding shorter than 8 bits of EOS prefix.
                accepting[second_state] = 1
        self.nexts = bytes(nexts)
        self.failed = bytes(failed)
        # Tuples, not lists: a tuple of untracked items leaves the garbage collector's lists
        # after its first pass, while a list of 65,536 entries is walked by every full
        # collection of the application's (about 1.2 ms each here, issue 13).
        self.texts = tuple(texts)
        self.accepting = bytes(accepting)
        self.shifted_accepting = frozenset(s << 8 for s in range(256) if accepting[s])

    def tuples(self) -> tuple[tuple[int, str], ...]:
        """The interpreted loop's table: (next state << 8, text emitted) per entry."""
        failed = (_FAIL_STATE, "")
        table = [
            failed if self.failed[index] else (self.nexts[index] << 8, self.texts[index])
            for index in range(65536)
        ]
        table.extend([failed] * 256)  # the absorbing state 256
        return tuple(table)  # indexed as fast as a list; see texts above


_tables: _HuffmanTables | None = None
_tuple_table: tuple[tuple[int, str], ...] | None = None
_shifted_accepting: frozenset[int] = frozenset()


def _huffman_tables() -> _HuffmanTables:
    global _tables
    if _tables is None:
        _tables = _HuffmanTables()
    return _tables


def _huffman_error(failed: bool) -> HpackError:
    if failed:
        return HpackError("invalid Huffman-coded string in a header block")
    return HpackError("Huffman-coded string ends with bad padding (RFC 7541 section 5.2)")


def _decode_huffman_tuples(raw: bytes) -> str:
    """The interpreted build's Huffman decoder (see above); symbols as latin-1 characters."""
    global _tuple_table, _shifted_accepting
    table = _tuple_table
    if table is None:
        table = _tuple_table = _huffman_tables().tuples()
        _shifted_accepting = _huffman_tables().shifted_accepting
    state = 0
    parts: list[str] = []
    append = parts.append
    for byte in raw:
        state, emitted = table[state | byte]
        append(emitted)
    if state not in _shifted_accepting:
        raise _huffman_error(state == _FAIL_STATE)
    return "".join(parts)


def _decode_huffman_flat(raw: bytes) -> str:
    """The compiled build's Huffman decoder (see above); symbols as latin-1 characters."""
    tables = _huffman_tables()
    nexts = tables.nexts
    failed = tables.failed
    texts = tables.texts
    state = 0
    # One slot per byte, filled in place: no list growth. By position: mypyc reads raw[i]
    # as a C integer, while ``for byte in raw`` boxes each.
    parts = [""] * len(raw)
    for position in range(len(raw)):
        index = (state << 8) | raw[position]
        if failed[index]:
            raise _huffman_error(True)
        parts[position] = texts[index]
        state = nexts[index]
    if not tables.accepting[state]:
        raise _huffman_error(False)
    return "".join(parts)


# mypyc compiles functions into native callables; an interpreted one is a FunctionType.
_COMPILED: Final = not isinstance(_decode_huffman_tuples, types.FunctionType)


def _decode_huffman(raw: bytes) -> bytes:
    """The octets of a Huffman-coded string (RFC 7541 section 5.2), with this build's loop."""
    text = _decode_huffman_flat(raw) if _COMPILED else _decode_huffman_tuples(raw)
    return text.encode("latin-1")
