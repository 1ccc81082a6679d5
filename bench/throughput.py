"""Throughput of PushClient and AsyncPushClient against an HTTP/2 server on loopback.

Sends N notifications through each client over ONE connection and prints notifications per
second (wall clock) and the client's CPU microseconds per notification (process CPU time of
this process only: the server always runs in another process), medians of several runs.

Servers:
  --server mock    the built-in MockApnsServer (default), run in a child process
  --server nginx   Debian's nginx (``apt-get install nginx-light``) with HTTP/2 over TLS,
                   answering POST /3/device/... with 200 and an apns-id header, so the figure
                   is not capped by a Python server (it raises its connection window to
                   2**31 - 1, so flow control never binds)
  --server node    tests/interop/node_apns_server.js on Node's http2 module, which keeps
                   HTTP/2's default 64 KiB connection window (for --rtt-ms; needs node)
  --host/--port/--ca-file  any other HTTP/2 server that answers like APNs

    python bench/throughput.py [--server mock|nginx|node] [--count 50000] [--runs 5]

Distance (a latency relay, bench/latency_relay.py, between client and server; default
``Limits``, so the pool may open several connections): ``--rtt-ms 50`` measures each client
through the relay at 0 ms and at 50 ms of round trip and prints the ratio (200,000
notifications per run unless ``--count`` says otherwise, so the ramp-up of the pool, about
0.4 s at 150 ms, does not weigh on the rate).

Many callers: ``--callers threads:50`` (50 threads each calling ``PushClient.send()``) or
``--callers tasks:1000`` (1,000 asyncio tasks each awaiting ``AsyncPushClient.send()``,
started in an anyio task group; ``gather:1000`` starts them with ``asyncio.gather``),
printed beside bulk ``send_many`` through the same client settings.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from collections.abc import Callable
from pathlib import Path

import anyio
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

import apnskit

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(1, str(Path(__file__).resolve().parents[1] / "tests"))
from latency_relay import LatencyRelay

from support.tls import make_tls_files

TOPIC = "com.example.bench"

_MOCK_CHILD = textwrap.dedent(
    """
    import json, sys, time
    from apnskit.testing import MockApnsServer
    with MockApnsServer() as server:
        key = server.new_token_key()
        print(json.dumps({"host": server.host, "port": server.port, "ca_file": str(server.ca_file),
                          "key": key.private_key_pem.decode(), "key_id": key.key_id,
                          "team_id": key.team_id}), flush=True)
        sys.stdin.read()
    """
)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Server:
    """A server in a child process; ``stop()`` ends it."""

    host = "127.0.0.1"
    port = 0
    ca_file = ""
    credentials: apnskit.TokenCredentials

    def stop(self) -> None:
        raise NotImplementedError


class MockServer(Server):
    def __init__(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", _MOCK_CHILD],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        info = json.loads(self.proc.stdout.readline())
        self.host, self.port, self.ca_file = info["host"], info["port"], info["ca_file"]
        self.credentials = apnskit.TokenCredentials(
            info["key"], key_id=info["key_id"], team_id=info["team_id"]
        )

    def stop(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        self.proc.wait(10)


class NginxServer(Server):
    def __init__(self) -> None:
        nginx = shutil.which("nginx") or "/usr/sbin/nginx"
        if not Path(nginx).exists():
            sys.exit("nginx not found: apt-get install nginx-light (see bench/README.md)")
        self.dir = Path(tempfile.mkdtemp(prefix="apnskit-nginx-"))
        # The tests' self-signed 127.0.0.1 certificate, its own trust anchor.
        cert, key = make_tls_files(self.dir)
        self.port = _free_port()
        self.ca_file = str(cert)
        (self.dir / "nginx.conf").write_text(
            textwrap.dedent(
                f"""
                worker_processes 1;
                daemon off;
                master_process off;
                pid {self.dir}/nginx.pid;
                error_log {self.dir}/error.log warn;
                events {{ worker_connections 1024; }}
                http {{
                    access_log off;
                    client_body_temp_path {self.dir}/body;
                    proxy_temp_path {self.dir}/proxy;
                    fastcgi_temp_path {self.dir}/fastcgi;
                    uwsgi_temp_path {self.dir}/uwsgi;
                    scgi_temp_path {self.dir}/scgi;
                    server {{
                        listen 127.0.0.1:{self.port} ssl http2;
                        ssl_certificate {cert};
                        ssl_certificate_key {key};
                        ssl_protocols TLSv1.2 TLSv1.3;
                        http2_max_concurrent_streams 1000;
                        keepalive_requests 100000000;
                        http2_max_requests 100000000;
                        location /3/device/ {{
                            add_header apns-id $request_id always;
                            return 200;
                        }}
                    }}
                }}
                """
            )
        )
        self.proc = subprocess.Popen(
            [nginx, "-c", str(self.dir / "nginx.conf"), "-e", str(self.dir / "error.log")],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.05)
        else:
            sys.exit("nginx did not start: " + (self.dir / "error.log").read_text())
        key_obj = ec.generate_private_key(ec.SECP256R1())
        pem = key_obj.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        self.credentials = apnskit.TokenCredentials(pem, key_id="BENCHKEY01", team_id="BENCHTEAM1")

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGQUIT)
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        shutil.rmtree(self.dir, ignore_errors=True)


class ExternalServer(Server):
    def __init__(self, host: str, port: int, ca_file: str) -> None:
        self.host, self.port, self.ca_file = host, port, ca_file
        key_obj = ec.generate_private_key(ec.SECP256R1())
        pem = key_obj.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        self.credentials = apnskit.TokenCredentials(pem, key_id="BENCHKEY01", team_id="BENCHTEAM1")

    def stop(self) -> None:
        pass


class NodeServer(ExternalServer):
    """tests/interop/node_apns_server.js on Node's own http2 module, 1,000 streams.

    Unlike nginx, which raises its connection flow-control window to 2**31 - 1 with a
    WINDOW_UPDATE as a connection starts, Node (nghttp2) keeps HTTP/2's default 64 KiB
    window and tops it up as it reads: the server issue 13 item 2 asks for, where one
    connection carries at most one window of request bodies per round trip.
    """

    def __init__(self) -> None:
        node = shutil.which("node")
        if node is None:
            sys.exit("node not found: apt-get install nodejs (see bench/README.md)")
        self.dir = Path(tempfile.mkdtemp(prefix="apnskit-node-"))
        cert, key = make_tls_files(self.dir)
        script = Path(__file__).resolve().parent.parent / "tests/interop/node_apns_server.js"
        options = json.dumps({"maxConcurrentStreams": 1000})
        self.proc = subprocess.Popen(
            [node, str(script), cert, key, options], stdout=subprocess.PIPE, text=True
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()  # "LISTENING <port>" once it listens
        if not line.startswith("LISTENING "):
            sys.exit(f"the node server did not start: {line!r}")
        super().__init__("127.0.0.1", int(line.split()[1]), cert)

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)
        shutil.rmtree(self.dir, ignore_errors=True)


def notifications(count: int):  # type: ignore[no-untyped-def]
    payload = {"aps": {"alert": {"title": "Hello", "body": "A new message is waiting"}}}
    token = "a1" * 32
    for _ in range(count):
        yield apnskit.Notification(token, payload, topic=TOPIC)


ONE_CONNECTION = apnskit.Limits(max_connections=1, max_in_flight=2000)


def client_kwargs(
    server: Server, *, port: int | None = None, limits: apnskit.Limits = ONE_CONNECTION
) -> dict[str, object]:
    return {
        "host": server.host,
        "port": port or server.port,
        "ca_file": server.ca_file,
        "environment": "sandbox",
        "limits": limits,
        "timeout": apnskit.Timeout(deadline=120),
    }


# The kernel's view of the last measured run (user, system, context switches, and the
# collector's time when main() timed it, per notification): set by run_sync, run_async,
# run_threads and run_tasks, printed by --callers.
_last_usage: list[tuple[float, float, float, float, float]] = []

# Seconds the garbage collector has run in this process (a gc.callbacks timer that main()
# installs, so scripts importing this module, such as instructions.py under callgrind, count
# no timer): its share per notification is printed with the rest of the usage (issue 13).
_gc_seconds = [0.0, 0.0]  # total, start of the collection in progress


def _gc_timer(phase: str, info: dict[str, int]) -> None:
    if phase == "start":
        _gc_seconds[1] = time.perf_counter()
    else:
        _gc_seconds[0] += time.perf_counter() - _gc_seconds[1]


class Usage:
    """getrusage() around a measured run: where the CPU went, per notification."""

    def __init__(self) -> None:
        self.start = resource.getrusage(resource.RUSAGE_SELF)
        self.gc_start = _gc_seconds[0]

    def stop(self, count: int) -> None:
        end, start = resource.getrusage(resource.RUSAGE_SELF), self.start
        _last_usage[:] = [
            (
                (end.ru_utime - start.ru_utime) / count * 1e6,
                (end.ru_stime - start.ru_stime) / count * 1e6,
                (end.ru_nvcsw - start.ru_nvcsw) / count,
                (end.ru_nivcsw - start.ru_nivcsw) / count,
                (_gc_seconds[0] - self.gc_start) / count * 1e6,
            )
        ]


def run_sync(
    server: Server, count: int, kwargs: dict[str, object] | None = None
) -> tuple[float, float, int]:
    kwargs = kwargs or client_kwargs(server)
    with apnskit.PushClient(server.credentials, **kwargs) as client:  # type: ignore[arg-type]
        client.send(next(notifications(1)))  # connect, and lift the one-stream hold
        wall0, cpu0, usage = time.perf_counter(), time.process_time(), Usage()
        accepted = sum(r.accepted for r in client.send_many(notifications(count)))
        wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
        usage.stop(count)
    return count / wall, cpu / count * 1e6, accepted


def run_async(
    server: Server, count: int, backend: str, kwargs: dict[str, object] | None = None
) -> tuple[float, float, int]:
    kwargs = kwargs or client_kwargs(server)

    async def main() -> tuple[float, float, int]:
        async with apnskit.AsyncPushClient(server.credentials, **kwargs) as client:  # type: ignore[arg-type]
            await client.send(next(notifications(1)))
            wall0, cpu0, usage = time.perf_counter(), time.process_time(), Usage()
            accepted = 0
            async for result in client.send_many(notifications(count)):
                accepted += result.accepted
            wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
            usage.stop(count)
        return count / wall, cpu / count * 1e6, accepted

    return anyio.run(main, backend=backend)


def run_threads(server: Server, count: int, threads: int) -> tuple[float, float, int]:
    """``threads`` threads each calling ``PushClient.send()`` for its share of ``count``."""
    share = max(1, count // threads)  # at least one send per thread
    accepted = [0] * threads
    with apnskit.PushClient(server.credentials, **client_kwargs(server)) as client:  # type: ignore[arg-type]
        client.send(next(notifications(1)))
        start = threading.Barrier(threads + 1)

        def caller(index: int) -> None:
            items = list(notifications(share))
            start.wait()
            ok = 0
            for item in items:
                ok += client.send(item).accepted
            accepted[index] = ok

        workers = [threading.Thread(target=caller, args=(i,)) for i in range(threads)]
        for worker in workers:
            worker.start()
        start.wait()
        wall0, cpu0, usage = time.perf_counter(), time.process_time(), Usage()
        for worker in workers:
            worker.join()
        wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
        total = share * threads
        usage.stop(total)
    # Notifications are built before the clock starts here (one list per thread), so add the
    # construction cost measured separately to keep the CPU figure comparable with bulk (the
    # user/system split printed beside it leaves construction out).
    return total / wall, cpu / total * 1e6 + _construction_us(), sum(accepted)


def run_tasks(
    server: Server, count: int, tasks: int, gather: bool = False
) -> tuple[float, float, int]:
    """``tasks`` asyncio tasks each awaiting ``AsyncPushClient.send()`` for its share.

    Started in an anyio task group, or with ``gather`` by ``asyncio.gather`` (plain asyncio
    tasks: anyio's task group runs each task's coroutine inside one of its own, a frame more
    on every resume).
    """
    share = max(1, count // tasks)  # at least one send per task

    async def main() -> tuple[float, float, int]:
        async with apnskit.AsyncPushClient(server.credentials, **client_kwargs(server)) as client:  # type: ignore[arg-type]
            await client.send(next(notifications(1)))
            accepted = 0

            async def caller() -> None:
                nonlocal accepted
                for item in notifications(share):
                    # Await first: "accepted += await ..." would read the total before the
                    # await and write back a stale sum after it.
                    result = await client.send(item)
                    accepted += result.accepted

            wall0, cpu0, usage = time.perf_counter(), time.process_time(), Usage()
            if gather:
                await asyncio.gather(*(caller() for _ in range(tasks)))
            else:
                async with anyio.create_task_group() as group:
                    for _ in range(tasks):
                        group.start_soon(caller)
            wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
        total = share * tasks
        usage.stop(total)
        return total / wall, cpu / total * 1e6, accepted

    return anyio.run(main, backend="asyncio")


_construction_cache: list[float] = []


def _construction_us() -> float:
    if not _construction_cache:
        cpu0 = time.process_time()
        for _ in notifications(20_000):
            pass
        _construction_cache.append((time.process_time() - cpu0) / 20_000 * 1e6)
    return _construction_cache[0]


def _report(label: str, rates: list[float], cpus: list[float]) -> float:
    rate = statistics.median(rates)
    print(
        f"  {label:34s} median {rate:8.0f} notifications/s, "
        f"{statistics.median(cpus):6.1f} us CPU/notification   "
        f"(runs: {', '.join(f'{r:.0f}' for r in rates)})",
        flush=True,
    )
    return rate


def _one(name: str, server: Server, count: int, kwargs: dict[str, object]) -> tuple[float, float]:
    if name == "sync":
        rate, cpu, accepted = run_sync(server, count, kwargs)
    else:
        rate, cpu, accepted = run_async(server, count, name, kwargs)
    if accepted != count:
        print(f"  warning: {name}: {count - accepted} not accepted")
    return rate, cpu


def _opened_recorder(opened: list[list[float]]) -> Callable[[apnskit.ClientEvent], None]:
    """An event hook adding the time of each ConnectionOpened to the last list of ``opened``."""

    def hook(event: apnskit.ClientEvent) -> None:
        if isinstance(event, apnskit.ConnectionOpened):
            opened[-1].append(time.perf_counter())

    return hook


def _ramp(opened: list[list[float]]) -> str:
    """Connections each run opened, and how long after the first the last one opened."""
    return ", ".join(f"{len(times)} ({times[-1] - times[0]:.2f} s)" for times in opened if times)


def main_rtt(server: Server, args: argparse.Namespace) -> None:
    """Each client through the relay at 0 ms and at ``--rtt-ms``, default Limits."""
    target = (server.host, server.port)
    print(f"latency relay, default {apnskit.Limits()}")
    for name in args.clients.split(","):
        label = "PushClient" if name == "sync" else f"AsyncPushClient ({name})"
        medians = []
        for rtt in (0.0, args.rtt_ms):
            relay = LatencyRelay.start(rtt, target)
            # Connections each run opened: the pool opens more while the open ones are full.
            opened: list[list[float]] = []
            try:
                kwargs = client_kwargs(server, port=relay.port, limits=apnskit.Limits())
                kwargs["event_hook"] = _opened_recorder(opened)
                rates, cpus = [], []
                for _ in range(args.runs):
                    opened.append([])
                    rate, cpu = _one(name, server, args.count, kwargs)
                    rates.append(rate)
                    cpus.append(cpu)
            finally:
                relay.stop()
            medians.append(_report(f"{label} rtt {rtt:g} ms", rates, cpus))
            # The first connection opens before the clock starts (one notification goes first);
            # the time in brackets is how long after it the last one opened.
            print(f"    connections opened per run (last one after the first): {_ramp(opened)}")
        print(f"  {label}: {args.rtt_ms:g} ms / 0 ms = {medians[1] / medians[0]:.0%}")


def main_callers(server: Server, args: argparse.Namespace) -> None:
    """Many callers of send() against bulk send_many, same client settings."""
    kind, _, number = args.callers.partition(":")
    callers = int(number)
    rates, cpus, bulk_rates, bulk_cpus = [], [], [], []
    usages: list[tuple[float, float, float, float]] = []
    bulk_usages: list[tuple[float, float, float, float]] = []
    for _ in range(args.runs):
        if kind == "threads":
            rate, cpu = _one("sync", server, args.count, client_kwargs(server))
            bulk_usages.extend(_last_usage)
            bulk_rates.append(rate)
            bulk_cpus.append(cpu)
            rate, cpu, accepted = run_threads(server, args.count, callers)
        elif kind in ("tasks", "gather"):
            rate, cpu = _one("asyncio", server, args.count, client_kwargs(server))
            bulk_usages.extend(_last_usage)
            bulk_rates.append(rate)
            bulk_cpus.append(cpu)
            rate, cpu, accepted = run_tasks(server, args.count, callers, kind == "gather")
        else:
            sys.exit("--callers: threads:N, tasks:N or gather:N")
        usages.extend(_last_usage)
        expected = max(1, args.count // callers) * callers
        if accepted != expected:
            print(f"  warning: {expected - accepted} not accepted")
        rates.append(rate)
        cpus.append(cpu)
    client = "PushClient" if kind == "threads" else "AsyncPushClient (asyncio)"
    bulk = _report(f"{client} send_many", bulk_rates, bulk_cpus)
    many = _report(f"{client} send() x {callers} {kind}", rates, cpus)
    # Each run measured bulk, then the callers: the median of those pairs' ratios is less
    # moved by the VM's speed drifting across the runs than the ratio of the two medians.
    pairs = statistics.median(r / b for r, b in zip(rates, bulk_rates, strict=True))
    print(f"  {callers} {kind} / bulk = {many / bulk:.0%} (median of the runs' pairs: {pairs:.0%})")
    # Where the CPU goes (getrusage, medians; construction of the notifications is left out
    # of the callers' figure): Python and TLS in user time, system calls, futex waits and
    # GIL hand-offs in system time and context switches.
    for label, split in (("send_many", bulk_usages), (f"{callers} {kind}", usages)):
        user, system, voluntary, involuntary, collector = (
            statistics.median(f) for f in zip(*split, strict=True)
        )
        print(
            f"  per notification, {label:12s} user {user:6.1f} us, system {system:5.1f} us, "
            f"context switches {voluntary:.2f} voluntary + {involuntary:.2f} involuntary, "
            f"garbage collector {collector:.1f} us"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description="apnskit client throughput on loopback")
    parser.add_argument("--server", choices=["mock", "nginx", "node"], default="mock")
    parser.add_argument("--host")
    parser.add_argument("--port", type=int)
    parser.add_argument("--ca-file")
    parser.add_argument(
        "--count", type=int, help="notifications per run (default 50,000; 200,000 with --rtt-ms)"
    )
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument(
        "--clients", default="sync,asyncio", help="comma list of sync, asyncio, trio"
    )
    parser.add_argument(
        "--rtt-ms", type=float, help="through a latency relay: compare 0 ms with this RTT"
    )
    parser.add_argument(
        "--callers",
        help="threads:N, tasks:N (an anyio task group) or gather:N (asyncio.gather) calling "
        "send() concurrently",
    )
    args = parser.parse_args()
    gc.callbacks.append(_gc_timer)
    if args.host:
        server: Server = ExternalServer(args.host, args.port or 443, args.ca_file)
        label = f"{args.host}:{args.port}"
    elif args.server == "nginx":
        server = NginxServer()
        label = "nginx (HTTP/2 over TLS, 1 worker)"
    elif args.server == "node":
        server = NodeServer()
        label = "node http2 (tests/interop/node_apns_server.js; 64 KiB connection window)"
    else:
        server = MockServer()
        label = "apnskit MockApnsServer (child process)"
    if args.count is None:
        # Through the relay a connect costs two round trips and the pool takes about 0.4 s
        # at 150 ms to open what the load needs: runs of a few seconds measure the rate
        # rather than the ramp (at 60,000/s, 50,000 notifications last less than a second).
        args.count = 200_000 if args.rtt_ms is not None else 50_000
    print(f"server: {label}; {args.count} notifications x {args.runs} runs")
    try:
        if args.rtt_ms is not None:
            main_rtt(server, args)
            return
        if args.callers:
            main_callers(server, args)
            return
        print("one connection")
        for name in args.clients.split(","):
            rates, cpus, usages = [], [], []
            for _ in range(args.runs):
                if name == "sync":
                    rate, cpu, accepted = run_sync(server, args.count)
                else:
                    rate, cpu, accepted = run_async(server, args.count, name)
                if accepted != args.count:
                    print(f"  warning: {name}: {args.count - accepted} not accepted")
                rates.append(rate)
                cpus.append(cpu)
                usages.append(_last_usage[0])
            label = "PushClient" if name == "sync" else f"AsyncPushClient ({name})"
            print(
                f"  {label:28s} median {statistics.median(rates):8.0f} notifications/s, "
                f"{statistics.median(cpus):6.1f} us CPU/notification   "
                f"(runs: {', '.join(f'{r:.0f}' for r in rates)})"
            )
            user, system, voluntary, involuntary, collector = (
                statistics.median(f) for f in zip(*usages, strict=True)
            )
            print(
                f"  {'':28s} user {user:.1f} us + system {system:.1f} us, context switches "
                f"{voluntary:.3f} voluntary + {involuntary:.3f} involuntary per notification"
            )
            print(f"  {'':28s} of which the garbage collector {collector:.2f} us")
    finally:
        server.stop()
    if os.environ.get("APNSKIT_BENCH_TARGETS"):
        print("targets: >= 15,000 notifications/s on one connection, <= 50 us CPU/notification")


if __name__ == "__main__":
    main()
