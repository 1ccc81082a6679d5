"""Worker-side behaviour with real `celery worker` processes: a worker killed with SIGKILL
mid-campaign, a missing credentials file, the threads pool's shared client, shutdown."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import uuid
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pytest
import redis
from celery_support import Worker, wait_for

import apnskit
from apnskit.testing import MockApnsServer

TOPIC = "com.example.app"
_RECEIVED = re.compile(r"Task apnskit\.send_chunk\[[^\]]+\] received")
_ENDED = re.compile(r"Task apnskit\.send_chunk\[[^\]]+\] (succeeded|retry|raised)")


def token(i: int) -> str:
    return f"{i:064x}"


def executing(worker: Worker) -> int:
    """Chunk tasks the node has taken and not finished yet, from its log."""
    log = worker.log()
    return len(_RECEIVED.findall(log)) - len(_ENDED.findall(log))


def test_worker_killed_mid_campaign_loses_nothing_and_reports_duplicates(
    celery_app: ModuleType,
    workers: list[Worker],
    start_worker: Callable[..., Worker],
    mock: MockApnsServer,
) -> None:
    victim = start_worker("w3")
    victim.wait_ready()
    w1 = workers[0]
    total = 8000
    # Every reply comes 0.4 s late, so a chunk spends most of its time with its requests at
    # "APNs": a kill then leaves requests APNs has seen in a chunk nobody acknowledged.
    mock.faults.delay_next(3 * total, 0.4)
    ids = [str(uuid.uuid4()) for _ in range(total)]
    campaign = celery_app.apns.campaign(
        (
            apnskit.Notification(
                token(5_000_000 + i), {"aps": {"alert": "k"}}, topic=TOPIC, apns_id=ids[i]
            )
            for i in range(total)
        ),
        chunk_size=250,
    )
    wait_for(
        lambda: executing(victim) >= 1 and executing(w1) >= 1 and len(mock.received) >= 1500,
        90,
        "w3 and w1 to be sending chunks, well into the campaign",
        interval=0.02,
    )
    # A lost machine: the whole w3 node (main process and pool). Its chunks come back when
    # Redis's visibility timeout expires.
    victim.kill()
    # A pool process dying under w1 (OOM killer): reject_on_worker_lost requeues at once.
    children = w1.pool_pids()
    assert children
    for pid in children:
        with contextlib.suppress(ProcessLookupError):  # it may have just been replaced
            os.kill(pid, signal.SIGKILL)

    summary = campaign.wait(timeout=180, interval=0.25)

    # Nothing lost: every notification has exactly one final outcome, accepted.
    assert summary.errors == {}
    assert (summary.accepted, summary.rejected, summary.failed, summary.pending) == (total, 0, 0, 0)
    reports = list(campaign.chunk_reports())
    assert len(reports) == campaign.chunks == 32
    assert sum(r["accepted"] for r in reports) == total
    received = mock.received
    counts = Counter(r.apns_id for r in received)
    assert set(counts) == set(ids)  # every one reached APNs, with the producer's apns-id
    accepted = {r.apns_id for r in received if r.status == 200}
    assert accepted == set(ids)
    # Duplicates: the same apns-id twice at APNs. Counted by the mock, reported by the
    # campaign as an upper bound (whole redelivered chunks).
    duplicates = sum(n - 1 for n in counts.values())
    redelivered = [r for r in reports if r["redeliveries"]]
    print(
        f"\nSIGKILL test: {total} notifications, {len(received)} requests at the mock, "
        f"{duplicates} duplicates ({sum(1 for n in counts.values() if n > 1)} apns-ids), "
        f"{len(redelivered)} redelivered chunks, "
        f"summary.possible_duplicates={summary.possible_duplicates}, "
        f"summary.redelivered_chunks={summary.redelivered_chunks}"
    )
    assert len(received) == total + duplicates
    assert summary.redelivered_chunks == len(redelivered) >= 1
    # How many a killed chunk had already handed to APNs depends on the moment of the kill
    # (runs here saw 2 to 502); the campaign's count is an upper bound of the real one.
    assert duplicates <= summary.possible_duplicates
    redelivered_ids = {
        ids[int(r["chunk"]) * 250 + k] for r in redelivered for k in range(r["size"])
    }
    assert {i for i, n in counts.items() if n > 1} <= redelivered_ids
    # The node that lost its pool processes replaced them and goes on.
    assert w1.proc.poll() is None


def test_missing_credentials_file_fails_the_task_clearly_without_a_crash_loop(
    celery_app: ModuleType,
    worker_env: dict[str, str],
    start_worker: Callable[..., Worker],
    mock: MockApnsServer,
    redis_client: redis.Redis,
    tmp_path: Path,
) -> None:
    real_key = Path(worker_env["APNSKIT_TEST_KEY_FILE"])
    missing = tmp_path / real_key.name
    queue = "apnskit-nocreds"
    node = start_worker(
        "nocreds", {"APNSKIT_TEST_KEY_FILE": str(missing)}, queues=queue, concurrency=1
    )
    node.wait_ready()
    apns = celery_app.apns
    n = apnskit.Notification(token(6_000_000), {"aps": {"alert": "x"}}, topic=TOPIC)

    result = apns.send.apply_async((n,), queue=queue)
    with pytest.raises(apnskit.CredentialsError) as info:
        result.get(timeout=60)
    message = str(info.value)
    assert "load_credentials() failed in worker process" in message
    assert str(missing) in message
    assert "BEGIN PRIVATE KEY" not in message
    assert result.state == "FAILURE"

    # A campaign chunk on that worker: the summary names the error, counts its notifications
    # as failed, and does not hang.
    campaign = apns.campaign([n, n.with_apns_id(uuid.uuid4())], queue=queue)
    summary = campaign.wait(timeout=60, interval=0.2)
    assert (summary.failed, summary.accepted) == (2, 0)
    assert "CredentialsError" in summary.errors[0]
    assert str(missing) in summary.errors[0]

    # Not a crash loop: each task ran once and was acknowledged; the worker is still up,
    # nothing waits in the queue or in Redis's unacknowledged set.
    log = node.log()
    assert log.count(f"Task apnskit.send[{result.id}] received") == 1
    assert log.count("apnskit.send_chunk[") >= 1
    assert node.proc.poll() is None
    assert redis_client.llen(queue) == 0
    # With late acknowledgement the worker stores a task's result before it acknowledges the
    # message, so the summary can be read a moment before the ack reaches Redis (CI saw 1).
    wait_for(lambda: redis_client.hlen("unacked") == 0, 30, "the worker's acknowledgements")
    assert not [r for r in mock.received if r.device_token == n.device_token]

    # Once the file is there, the same worker sends (the callable runs again per task).
    shutil.copyfile(real_key, missing)
    again = apns.send.apply_async((n,), queue=queue).get(timeout=60)
    assert again.accepted

    # The prefork pool process closes its client on shutdown (worker_process_shutdown).
    node.stop()
    assert "apnskit: closed the APNs client of worker process" in node.log()


def test_threads_pool_shares_one_client_and_closes_it_on_shutdown(
    celery_app: ModuleType,
    start_worker: Callable[..., Worker],
    mock: MockApnsServer,
) -> None:
    queue = "apnskit-threads"
    node = start_worker("threads", queues=queue, pool="threads", concurrency=4)
    node.wait_ready()
    apns = celery_app.apns
    pending = [
        apns.send.apply_async(
            (apnskit.Notification(token(7_000_000 + i), {"aps": {"alert": "t"}}, topic=TOPIC),),
            queue=queue,
        )
        for i in range(40)
    ]
    results = [p.get(timeout=60) for p in pending]
    assert all(r.accepted for r in results)
    mine = {token(7_000_000 + i) for i in range(40)}
    received = [r for r in mock.received if r.device_token in mine]
    assert len(received) == 40
    # One PushClient for the four threads, with one connection (Limits(max_connections=1)):
    # a client per thread would have opened up to four, a client per task forty.
    assert len({r.connection_id for r in received}) == 1
    assert node.log().count("apnskit: opened the APNs client") == 1
    node.stop()
    assert "apnskit: closed the APNs client of worker process" in node.log()
