"""A campaign through Celery workers beside single-process ``send_many``, in the same run.

Sends N notifications (default 200,000) two ways against the same HTTP/2 server on loopback:

- **single process**: one ``PushClient.send_many`` over a generator, as ``apnskit send --from``
  does;
- **celery**: ``ApnsTasks.campaign`` over the same generator, enqueued in chunks on a real
  Redis broker (Debian's redis-server, started here) and sent by real ``celery worker``
  processes (prefork) started here, timed from the first enqueue until the campaign summary
  says every chunk is done (enqueue time is printed too).

Both use one connection per sending process (``Limits(max_connections=1)``) and the app
module of the Celery tests (tests/contrib/celery/apnskit_test_celery_app.py). The server is
nginx (HTTP/2 over TLS, answering 200 with an apns-id; ``apt-get install nginx-light``), as
``bench/throughput.py --server nginx`` runs it, so the figure is not capped by a Python
server. Prints medians of ``--runs`` runs; the machine's other load shows in the spread.

    python bench/celery_campaign.py [--count 200000] [--workers 1] [--concurrency 2]
                                    [--chunk-size 1000] [--runs 3]
"""

from __future__ import annotations

import argparse
import importlib
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

HERE = Path(__file__).resolve().parent
TESTS = HERE.parent / "tests" / "contrib" / "celery"
sys.path.insert(0, str(TESTS))

from celery_support import RedisServer, Worker  # noqa: E402
from throughput import NginxServer  # noqa: E402

import apnskit  # noqa: E402

TOPIC = "com.example.bench"
PAYLOAD = {"aps": {"alert": {"title": "Hello", "body": "A new message is waiting"}}}


def notifications(count: int) -> Iterator[apnskit.Notification]:
    for i in range(count):
        yield apnskit.Notification(f"{i:064x}", PAYLOAD, topic=TOPIC)


_TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU time of these processes so far (from /proc)."""
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except FileNotFoundError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / _TICK


def single_process(server: NginxServer, key_file: Path, count: int) -> tuple[float, float]:
    credentials = apnskit.TokenCredentials.from_file(key_file, team_id="BENCHTEAM1")
    with apnskit.PushClient(
        credentials,
        host=server.host,
        port=server.port,
        ca_file=server.ca_file,
        environment="sandbox",
        limits=apnskit.Limits(max_connections=1),
    ) as client:
        client.send(next(notifications(1)))  # connect, and lift the one-stream hold
        start, cpu = time.perf_counter(), time.process_time()
        accepted = sum(r.accepted for r in client.send_many(notifications(count)))
        elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
    if accepted != count:
        print(f"  warning: single process: {count - accepted} not accepted")
    return count / elapsed, cpu / count * 1e6


def celery_campaign(
    app_module: object, count: int, chunk_size: int, pids: list[int]
) -> tuple[float, float, float]:
    """Rate, enqueue seconds, and CPU us per notification of producer + workers + Redis."""
    apns = app_module.apns  # type: ignore[attr-defined]
    start, cpu, others = time.perf_counter(), time.process_time(), cpu_seconds(pids)
    campaign = apns.campaign(notifications(count), chunk_size=chunk_size)
    enqueued = time.perf_counter() - start
    summary = campaign.wait(timeout=3600, interval=0.2)
    elapsed = time.perf_counter() - start
    spent = time.process_time() - cpu + cpu_seconds(pids) - others
    if summary.accepted != count:
        print(f"  warning: celery: {count - summary.accepted} not accepted ({summary})")
    return count / elapsed, enqueued, spent / count * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=200_000)
    parser.add_argument("--workers", type=int, default=1, help="celery worker nodes")
    parser.add_argument("--concurrency", type=int, default=2, help="pool processes per node")
    parser.add_argument("--chunk-size", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="apnskit-celery-bench-"))
    server = NginxServer()
    redis_server = RedisServer(workdir)
    key = ec.generate_private_key(ec.SECP256R1())
    key_file = workdir / "AuthKey_BENCHKEY01.p8"
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    key_file.chmod(0o600)
    env = {
        "APNSKIT_TEST_REDIS_URL": redis_server.url,
        "APNSKIT_TEST_APNS_PORT": str(server.port),
        "APNSKIT_TEST_CA_FILE": server.ca_file,
        "APNSKIT_TEST_KEY_FILE": str(key_file),
        "APNSKIT_TEST_KEY_ID": "BENCHKEY01",
        "APNSKIT_TEST_TEAM_ID": "BENCHTEAM1",
    }
    os.environ.update(env)
    app_module = importlib.import_module("apnskit_test_celery_app")
    nodes = [
        Worker(f"bench{i}", workdir, env, concurrency=args.concurrency) for i in range(args.workers)
    ]
    processes = args.workers * args.concurrency
    print(
        f"{args.count:,} notifications x {args.runs} runs; server: nginx (HTTP/2 over TLS); "
        f"celery: {args.workers} node(s) x {args.concurrency} prefork processes, "
        f"chunks of {args.chunk_size}, Redis broker + result backend; "
        f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}"
    )
    try:
        for node in nodes:
            node.wait_ready()
        # Warm up every pool process (its client connects on its first chunk), as the
        # single-process client is warmed up by one send.
        app_module.apns.campaign(notifications(processes * 50), chunk_size=50).wait(timeout=120)
        # Every worker process (nodes and their pool processes) and redis-server: the CPU
        # the queue path costs, beside the single process's own.
        pids = [redis_server.proc.pid]
        for node in nodes:
            pids += [node.proc.pid, *node.pool_pids()]
        singles, single_cpus, queued, enqueues, queue_cpus = [], [], [], [], []
        for _ in range(args.runs):
            rate, cpu = single_process(server, key_file, args.count)
            singles.append(rate)
            single_cpus.append(cpu)
            rate, enqueued, cpu = celery_campaign(app_module, args.count, args.chunk_size, pids)
            queued.append(rate)
            enqueues.append(enqueued)
            queue_cpus.append(cpu)
        single, queue = statistics.median(singles), statistics.median(queued)
        print(
            f"  single process send_many   median {single:8,.0f} notifications/s, "
            f"{statistics.median(single_cpus):5.0f} us CPU/notification   "
            f"(runs: {', '.join(f'{r:,.0f}' for r in singles)})"
        )
        print(
            f"  celery, {processes} processes       median {queue:8,.0f} notifications/s, "
            f"{statistics.median(queue_cpus):5.0f} us CPU/notification   "
            f"(runs: {', '.join(f'{r:,.0f}' for r in queued)}; enqueue took "
            f"{statistics.median(enqueues):.1f} s)"
        )
        print(
            f"  celery / single process: {queue / single:.2f} of the rate, "
            f"{statistics.median(queue_cpus) / statistics.median(single_cpus):.2f}x the CPU "
            "(producer + workers + redis-server, nginx excluded in both)"
        )
    finally:
        for node in nodes:
            node.stop()
        redis_server.stop()
        server.stop()


if __name__ == "__main__":
    main()
