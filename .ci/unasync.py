#!/usr/bin/env python3
"""Write the sync client's public layer from the async one (the idea of httpcore's unasync).

``PushClient`` and ``AsyncPushClient`` have the same public methods with the same bodies once
``async`` and ``await`` are gone. They are written once, in
``src/apnskit/_clients/async_client.py``; this script derives ``sync_client.py`` from it with a
token map and a short list of phrases where the two really say different things (how a call
is interrupted, what may be iterated). What differs by design, how a call waits (anyio tasks
or threads and a poller), lives in the hand-written drivers beside them, not here.

Usage (from anywhere; paths are relative to the repository)::

    python .ci/unasync.py            # rewrite the generated file(s)
    python .ci/unasync.py --check    # exit 1 and name each generated file that differs

``--root DIR`` runs on a copy of the tree (the test suite uses it to prove the check bites).
CI runs ``--check`` (``.ci/run``, ``nox -s lint``) and so does the test suite
(``tests/clients/test_clients_generated.py``): a hand edit to the generated file, or an edit to
the async one without regenerating, fails both.
"""

from __future__ import annotations

import argparse
import difflib
import re
import sys
from pathlib import Path

# (async source, generated sync file), relative to the repository root.
FILES = [("src/apnskit/_clients/async_client.py", "src/apnskit/_clients/sync_client.py")]

# Where the twins really differ in words: exact text of the async source -> the sync text.
# Applied first, in this order; each must match at least once (a stale entry is an error,
# so an edit to the async wording cannot silently leave the sync wording behind).
PHRASES: list[tuple[str, str]] = [
    # module docstring
    ("over the anyio driver.", "over the threaded driver."),
    ("(tasks here, threads there)", "(threads here, tasks there)"),
    # imports: the sync module needs no async ABCs, and its driver sorts after common
    (
        "from collections.abc import AsyncIterable, AsyncIterator, Iterable\n",
        "from collections.abc import Iterable, Iterator\n",
    ),
    (
        "from apnskit._clients.async_driver import AsyncDriver, AsyncSource, AsyncWakeup\n"
        "from apnskit._clients.common import check_broadcast\n",
        "from apnskit._clients.common import check_broadcast\n"
        "from apnskit._clients.sync_driver import SyncDriver, SyncSource, SyncWakeup\n",
    ),
    # class docstring
    (
        "from async code (asyncio or trio, through anyio).",
        "from blocking code (scripts, Django, Flask, threads).",
    ),
    (
        "It runs synchronously in the task doing the I/O:",
        "It runs synchronously in the thread doing the I/O, under the client's lock:",
    ),
    # send(): a thread is not cancelled, it is interrupted
    (
        "Cancelling the call (a timeout around it) withdraws the notification:",
        "If the wait is interrupted (KeyboardInterrupt, an exception from a signal handler),\n"
        "        the notification is withdrawn:",
    ),
    # send_many(): async iterables only for the async client
    ("Iterable[Any] | AsyncIterable[Any]", "Iterable[Any]"),
    ("may be any iterable or async iterable,", "may be any iterable,"),
    (
        "Leaving the loop early cancels what is still pending\n"
        "        (close the iterator, e.g. with ``contextlib.aclosing``, "
        "for that to happen at once).",
        "Leaving the loop early (``break``, an exception) cancels what is still pending.",
    ),
    ("(break, an exception, cancellation)", "(break, an exception)"),
    # close(): threads may call it from anywhere
    (
        "Safe to call more than once.\n",
        "Safe to call more than once, and from any thread: a thread blocked in ``send()``\n"
        "        returns with a failed result.\n",
    ),
]

# The token map, applied after the phrases to whole words (regular expressions). Entries may
# go unused. The public layer uses no anyio name: what anyio does belongs to the driver, and
# a generated file that still mentions anyio is refused (see LEFTOVERS).
TOKENS: list[tuple[str, str]] = [
    (r"async def\b", "def"),
    (r"async with\b", "with"),
    (r"async for\b", "for"),
    (r"await ", ""),
    (r"__aenter__", "__enter__"),
    (r"__aexit__", "__exit__"),
    (r"__aiter__", "__iter__"),
    (r"__anext__", "__next__"),
    (r"StopAsyncIteration", "StopIteration"),
    (r"aclosing", "closing"),
    (r"AsyncIterator", "Iterator"),
    (r"AsyncIterable", "Iterable"),
    (r"AsyncPushClient", "PushClient"),
    (r"AsyncDriver", "SyncDriver"),
    (r"AsyncSource", "SyncSource"),
    (r"AsyncWakeup", "SyncWakeup"),
    (r"async_driver", "sync_driver"),
]
_COMPILED = [(re.compile(rf"\b{pattern}"), sync) for pattern, sync in TOKENS]

# What must not survive into a sync file: an async construct the map missed, or anyio.
LEFTOVERS = re.compile(r"\b(?:async (?:def|with|for)\b|await [\w(]|anyio\b|Async[A-Z]\w*)")


class UnasyncError(Exception):
    """The source cannot be turned into its sync twin (stale phrase, leftover async)."""


def header(source: str) -> str:
    """The comment that opens a generated file."""
    return (
        f"# Generated by .ci/unasync.py from {source}: do not edit.\n"
        f"# Edit {Path(source).name} and run `python .ci/unasync.py` (CI runs it with --check).\n"
    )


def unasync(text: str, source: str) -> str:
    """The sync twin of the async module ``text`` (read from ``source``, for the header)."""
    for async_text, sync_text in PHRASES:
        if async_text not in text:
            raise UnasyncError(f"{source}: phrase not found (update PHRASES): {async_text!r}")
        text = text.replace(async_text, sync_text)
    for pattern, sync_text in _COMPILED:
        text = pattern.sub(sync_text, text)
    for number, line in enumerate(text.splitlines(), start=1):
        found = LEFTOVERS.search(line)
        if found:
            raise UnasyncError(
                f"{source}: line {number} of the sync output still says {found.group()!r} "
                f"(add it to TOKENS or PHRASES): {line.strip()}"
            )
    return header(source) + text


def main(argv: list[str] | None = None) -> int:
    """Generate (or with ``--check`` compare) every file of :data:`FILES`; the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare only; exit 1 on drift")
    parser.add_argument(
        "--root",
        type=Path,
        default=Path(__file__).resolve().parent.parent,
        help="repository root (default: the one holding this script)",
    )
    args = parser.parse_args(argv)
    status = 0
    for source, target in FILES:
        try:
            wanted = unasync((args.root / source).read_text(encoding="utf-8"), source)
        except UnasyncError as error:
            print(f"unasync: {error}", file=sys.stderr)
            return 2
        path = args.root / target
        current = path.read_text(encoding="utf-8") if path.exists() else ""
        if current == wanted:
            continue
        if args.check:
            status = 1
            print(
                f"unasync: {target} differs from what .ci/unasync.py generates from {source}; "
                "run `python .ci/unasync.py` (and edit the async file, never the generated one)",
                file=sys.stderr,
            )
            diff = difflib.unified_diff(
                current.splitlines(keepends=True),
                wanted.splitlines(keepends=True),
                fromfile=f"{target} (on disk)",
                tofile=f"{target} (generated)",
                n=1,
            )
            sys.stderr.writelines(list(diff)[:60])
        else:
            path.write_text(wanted, encoding="utf-8")
            print(f"unasync: wrote {target}")
    return status


if __name__ == "__main__":
    sys.exit(main())
