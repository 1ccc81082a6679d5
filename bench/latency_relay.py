"""A TCP relay on 127.0.0.1 that delays each direction by half a round-trip time.

netem is not available on these machines, so this stands in for the distance to APNs: every
chunk read from one side is written to the other side ``rtt / 2`` seconds after it was read,
in order, in both directions. Bandwidth is not limited and nothing is dropped; only latency
is added, which is what bounds a flow-controlled HTTP/2 connection (one window per round trip).

Run it on its own (it prints the port it listens on, then relays until stdin closes)::

    python bench/latency_relay.py --rtt-ms 50 --target 127.0.0.1:8443

or from Python, in a child process so its CPU is not counted as the client's::

    relay = LatencyRelay.start(rtt_ms=50, target=("127.0.0.1", 8443))
    ...  # connect to ("127.0.0.1", relay.port)
    relay.stop()
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import os
import subprocess
import sys
import time

_CHUNK = 256 * 1024


async def _pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, delay: float) -> None:
    """Copy reader to writer, each chunk ``delay`` seconds after it arrived."""
    queue: collections.deque[tuple[float, bytes]] = collections.deque()
    arrived = asyncio.Event()
    eof = False

    async def read() -> None:
        nonlocal eof
        try:
            while True:
                data = await reader.read(_CHUNK)
                if not data:
                    break
                queue.append((time.monotonic() + delay, data))
                arrived.set()
        except (ConnectionError, OSError):
            pass
        finally:
            eof = True
            arrived.set()

    reading = asyncio.ensure_future(read())
    try:
        while True:
            if not queue:
                if eof:
                    break
                arrived.clear()
                await arrived.wait()
                continue
            due, _ = queue[0]
            wait = due - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            # Everything already due goes out in one write.
            now = time.monotonic()
            parts = []
            while queue and queue[0][0] <= now:
                parts.append(queue.popleft()[1])
            writer.write(b"".join(parts))
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        reading.cancel()
        try:
            if writer.can_write_eof():
                writer.write_eof()
        except (ConnectionError, OSError):
            pass


async def _serve(rtt_ms: float, target: tuple[str, int], ready: asyncio.Future[int]) -> None:
    delay = rtt_ms / 2000.0

    async def handle(client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter):  # type: ignore[no-untyped-def]
        try:
            server_reader, server_writer = await asyncio.open_connection(*target)
        except OSError:
            client_writer.close()
            return
        await asyncio.gather(
            _pump(client_reader, server_writer, delay),
            _pump(server_reader, client_writer, delay),
        )
        for w in (client_writer, server_writer):
            w.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    ready.set_result(server.sockets[0].getsockname()[1])
    async with server:
        with contextlib.suppress(asyncio.CancelledError):
            await server.serve_forever()


async def _main(rtt_ms: float, target: tuple[str, int]) -> None:
    loop = asyncio.get_running_loop()
    ready: asyncio.Future[int] = loop.create_future()
    serving = asyncio.ensure_future(_serve(rtt_ms, target, ready))
    port = await ready
    print(port, flush=True)
    # Relay until stdin closes (the parent exits or calls stop()).
    await loop.run_in_executor(None, sys.stdin.read)
    # Connections may still be open: end the process without cancelling them one by one.
    serving.cancel()
    sys.stdout.flush()
    os._exit(0)


class LatencyRelay:
    """A relay running in a child process."""

    def __init__(self, proc: subprocess.Popen[str], port: int) -> None:
        self.proc = proc
        self.port = port

    @classmethod
    def start(cls, rtt_ms: float, target: tuple[str, int]) -> LatencyRelay:
        """Start a relay to ``target`` adding ``rtt_ms`` of round trip; returns once listening."""
        proc = subprocess.Popen(
            [
                sys.executable,
                __file__,
                "--rtt-ms",
                str(rtt_ms),
                "--target",
                f"{target[0]}:{target[1]}",
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert proc.stdout is not None
        return cls(proc, int(proc.stdout.readline()))

    def stop(self) -> None:
        """End the relay process."""
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rtt-ms", type=float, required=True)
    parser.add_argument("--target", required=True, help="host:port to relay to")
    args = parser.parse_args()
    host, _, port = args.target.rpartition(":")
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_main(args.rtt_ms, (host, int(port))))
