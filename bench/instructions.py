"""Workloads for instruction counts under valgrind (deterministic on a loaded machine).

Run each twice, with N and with 0, and divide the difference by N::

    valgrind --tool=callgrind --callgrind-out-file=/dev/null python bench/instructions.py core 3000
    valgrind --tool=callgrind --callgrind-out-file=/dev/null python bench/instructions.py core 0

Workloads: ``core`` (``bench/core.py``'s in-memory encode + decode), ``engine`` (the
dispatcher and the core in memory as ``send_many`` drives them), ``notification``
(``Notification`` construction with a dict payload), ``payload`` (a ``Payload`` with an
``Alert``, then its ``Notification``), ``huffman`` (decoding a Huffman-coded 32-hex-digit
apns-id), ``response`` (the core's ``ResponseReceived`` event for one answer, as
``_complete`` builds it), ``sync`` and ``asyncio`` (the client end to end against nginx, one
connection), ``threads`` and
``tasks`` (50 threads calling ``PushClient.send()``, 1,000 asyncio tasks awaiting
``AsyncPushClient.send()``, as ``throughput.py --callers`` runs them), ``decode`` (the core's
HPACK decoding of nginx's response header block, a new Huffman-coded apns-id each time). Put another
checkout's ``src`` first on ``PYTHONPATH`` to count the code before a change.
"""

from __future__ import annotations

import random
import sys
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))


def engine(count: int) -> None:
    """The dispatcher and the core in memory, as send_many drives them, against core.py's peer.

    Notifications are built before counting starts; no sockets, no TLS, no threads, so the
    count is the same on every run. Minus ``core`` it is roughly the engine's own share.
    """
    from collections import deque

    import apnskit
    import core
    from apnskit._config import Limits, RetryPolicy, Timeout
    from apnskit._engine.dispatcher import Dispatcher

    class _Certificate:
        def token_rejected(self, generation: int) -> None:
            raise AssertionError(generation)

    items = [
        apnskit.Notification(core.TOKEN, {"aps": {"alert": "hi"}}, topic="com.example.app")
    ] * (count + 1000)
    finished: deque[object] = deque()
    dispatcher = Dispatcher(
        authority="api.push.apple.com",
        credentials=_Certificate(),
        limits=Limits(max_connections=1, max_in_flight=1000),
        retry=RetryPolicy(),
        timeout=Timeout(deadline=120),
        random=lambda: 0.5,
        on_done=finished.append,
    )
    peer = core.ScriptedPeer()
    # Before submit_many (issue 13) the client submitted one at a time.
    many = getattr(dispatcher, "submit_many", None)
    taken = results = 0
    conn = None
    while results < count + 1000:
        batch = items[taken : taken + 1000 - dispatcher.outstanding]
        taken += len(batch)
        if many is not None:
            many(batch, 1.0, None)
        else:
            for item in batch:
                dispatcher.submit(item, 1.0)
        if conn is None:
            (conn,) = dispatcher.connections_to_open(0.0)
            dispatcher.connection_established(conn, 0.0)
        dispatcher.tick(1.0)
        dispatcher.receive(conn, peer.respond(conn.core.data_to_send()), 1.0)
        while finished:
            finished.popleft()
            results += 1


def decode_responses(count: int) -> None:
    """``HeaderDecoder.decode`` of nginx's response header block, a new ``apns-id`` each time.

    The block is the one bench/nginx.conf's server sends (a table size update to 0, then
    ``:status``, ``server``, ``date``, ``content-type``, ``content-length`` and a
    Huffman-coded ``apns-id``): the decoder's whole per-response work in the ``sync`` runs.
    """
    from hpack.huffman import HuffmanEncoder
    from hpack.huffman_constants import REQUEST_CODES, REQUEST_CODES_LENGTH

    from apnskit._core.hpack_codec import HeaderDecoder

    huffman = HuffmanEncoder(REQUEST_CODES, REQUEST_CODES_LENGTH).encode

    def string(value: bytes) -> bytes:
        coded = huffman(value)
        return bytes((0x80 | len(coded),)) + coded

    head = (
        b"\x88\x76"
        + string(b"nginx/1.22.1")
        + b"\x61"
        + string(b"Tue, 01 Dec 2026 02:16:50 GMT")
        + b"\x5f"
        + string(b"text/plain")
        + b"\x5c\x010\x40"
        + string(b"apns-id")
    )
    rnd = random.Random(5)
    blocks = [head + string(uuid.UUID(int=rnd.getrandbits(128)).hex.encode()) for _ in range(5000)]
    decoder = HeaderDecoder()
    decoder.decode(b"\x20" + blocks[0])  # nginx's first block: table size 0
    for i in range(count):
        decoder.decode(blocks[i % 5000])


def main() -> None:
    what, count = sys.argv[1], int(sys.argv[2])
    if what == "core":
        import core

        core.run(50, 50)  # warm: tables built, imports done
        if count:
            core.run(count, 1000)
    elif what == "notification":
        import apnskit

        payload = {"aps": {"alert": {"title": "Hello", "body": "A new message is waiting"}}}
        for _ in range(count + 1):
            apnskit.Notification("a1" * 32, payload, topic="com.example.bench")
    elif what == "payload":
        import apnskit

        for _ in range(count + 1):
            payload = apnskit.Payload(
                alert=apnskit.Alert(title="Hello", body="A new message is waiting"),
                badge=3,
                sound="default",
                thread_id="messages",
            )
            apnskit.Notification("a1" * 32, payload, topic="com.example.bench")
    elif what == "huffman":
        from hpack.huffman import HuffmanEncoder
        from hpack.huffman_constants import REQUEST_CODES, REQUEST_CODES_LENGTH

        from apnskit._core import hpack_codec as _hpack

        encoder = HuffmanEncoder(REQUEST_CODES, REQUEST_CODES_LENGTH)
        rnd = random.Random(5)
        ids = [
            encoder.encode(uuid.UUID(int=rnd.getrandbits(128)).hex.encode()) for _ in range(2000)
        ]
        _hpack._decode_huffman(ids[0])
        for i in range(count):
            _hpack._decode_huffman(ids[i % 2000])
    elif what == "response":
        from apnskit._core import events

        # Before issue 13's fourth pass the core called the dataclass constructor.
        make = getattr(events, "new_response", None)
        headers = [(":status", "200"), ("apns-id", "59052fc55ede4d3431e95a5e6c005d72")]
        for _ in range(count + 1):
            if make is not None:
                make(1, None, 200, headers[1][1], None, None, None, headers, b"", None)
            else:
                events.ResponseReceived(
                    stream_id=1,
                    context=None,
                    status=200,
                    apns_id=headers[1][1],
                    apns_unique_id=None,
                    reason=None,
                    timestamp_ms=None,
                    headers=headers,
                    body=b"",
                    detail=None,
                )
    elif what == "engine":
        engine(count)
    elif what in ("sync", "asyncio"):
        import anyio
        import throughput

        import apnskit

        server = throughput.NginxServer()
        kwargs = throughput.client_kwargs(server)
        try:
            if what == "sync":
                with apnskit.PushClient(server.credentials, **kwargs) as client:  # type: ignore[arg-type]
                    client.send(next(throughput.notifications(1)))
                    for _ in client.send_many(throughput.notifications(count)):
                        pass
            else:

                async def run() -> None:
                    async with apnskit.AsyncPushClient(server.credentials, **kwargs) as client:  # type: ignore[arg-type]
                        await client.send(next(throughput.notifications(1)))
                        async for _ in client.send_many(throughput.notifications(count)):
                            pass

                anyio.run(run)
        finally:
            server.stop()
    elif what in ("threads", "tasks"):
        import throughput

        server = throughput.NginxServer()
        try:
            if what == "threads":
                throughput.run_threads(server, count, 50)
            else:
                throughput.run_tasks(server, count, 1000)
        finally:
            server.stop()
    elif what == "decode":
        decode_responses(count)
    else:
        sys.exit(
            "workloads: core, engine, notification, payload, huffman, response, sync, asyncio, "
            "threads, tasks, decode"
        )


if __name__ == "__main__":
    main()
