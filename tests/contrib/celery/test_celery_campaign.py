"""Campaigns through real Celery workers (prefork, Redis broker), the mock playing APNs."""

from __future__ import annotations

import json
import uuid
from collections import Counter
from collections.abc import Iterator
from types import ModuleType

import anyio
import redis
from celery_support import Worker, wait_for

import apnskit
from apnskit.testing import MockApnsServer

TOPIC = "com.example.app"


def token(i: int) -> str:
    return f"{i:064x}"


def test_campaign_of_20000_through_two_workers(
    celery_app: ModuleType,
    workers: list[Worker],
    strict_mock: MockApnsServer,
    redis_client: redis.Redis,
) -> None:
    total = 20_000
    unregistered = {token(i) for i in range(7, total, 997)}  # 410 Unregistered
    unknown = {token(i) for i in range(11, total, 1499)}  # 400 BadDeviceToken (never registered)
    for i in range(total):
        t = token(i)
        if t not in unknown:
            strict_mock.register(t, TOPIC)
    for t in unregistered:
        strict_mock.unregister(t)
    produced: list[str] = []

    def notifications() -> Iterator[apnskit.Notification]:
        # A generator: the campaign reads it chunk by chunk. Half carry their own apns-id.
        for i in range(total):
            apns_id = str(uuid.uuid4()) if i % 2 else None
            if apns_id:
                produced.append(apns_id)
            yield apnskit.Notification(
                token(i), {"aps": {"alert": f"n{i}"}}, topic=TOPIC, apns_id=apns_id
            )

    apns = celery_app.apns
    hook_key = f"forgotten-{uuid.uuid4().hex}"
    campaign = apns.campaign(
        notifications(), chunk_size=1000, on_invalid_tokens=celery_app.forget_tokens.s(hook_key)
    )
    assert campaign.chunks == 20
    summary = campaign.wait(timeout=240)

    bad = unregistered | unknown
    assert summary.notifications == total
    assert summary.errors == {}
    assert summary.failed == 0
    assert summary.invalid == 0
    assert summary.pending == 0
    assert summary.rejected == len(bad)
    assert summary.accepted == total - len(bad)
    assert summary.redelivered_chunks == 0
    assert summary.possible_duplicates == 0
    # Anyone who knows the campaign id can read the same summary from the result backend.
    assert apns.restore_campaign(campaign.campaign_id).poll() == summary

    # Exactly one final outcome per notification, chunk by chunk.
    reports = list(campaign.chunk_reports())
    assert sorted(r["chunk"] for r in reports) == list(range(20))
    for report in reports:
        assert report["accepted"] + report["rejected"] + report["failed"] == report["size"]
        assert report["attempts"] == 1
    rejected = {rec["device_token"]: rec for r in reports for rec in r["rejections"]}
    assert set(rejected) == bad
    for t in unregistered:
        assert (rejected[t]["status"], rejected[t]["reason"]) == (410, "Unregistered")
        assert rejected[t]["timestamp"] is not None
    for t in unknown:
        assert (rejected[t]["status"], rejected[t]["reason"]) == (400, "BadDeviceToken")

    # The mock received each notification once, with the apns-id it was given at enqueue.
    received = strict_mock.received
    assert len(received) == total
    ids = Counter(r.apns_id for r in received)
    assert len(ids) == total
    assert set(produced) <= set(ids)
    assert {r.device_token for r in received} == {token(i) for i in range(total)}
    # One client per worker process (max_connections=1), not one per task: 20 chunks over
    # at most 4 pool processes.
    assert len({r.connection_id for r in received}) <= 4

    # The hook (a Celery signature) got every invalid token, once each.
    def hooked() -> list[dict[str, object]]:
        return [json.loads(x) for x in redis_client.lrange(hook_key, 0, -1)]

    wait_for(lambda: len(hooked()) >= len(bad), 60, "the invalid-token hook")
    records = hooked()
    assert sorted(r["device_token"] for r in records) == sorted(bad)
    assert all(r["token_invalid"] for r in records)


def test_single_send_returns_a_push_result(
    celery_app: ModuleType, workers: list[Worker], mock: MockApnsServer
) -> None:
    apns = celery_app.apns
    # Tokens of their own: the mock remembers unregistered tokens across tests.
    one, two = token(1_000_001), token(1_000_002)
    mock.unregister(two)
    # No apns-id given: one is assigned at enqueue, so the result and the mock agree on it.
    accepted = apns.send.delay(apnskit.Notification(one, {"aps": {"alert": "hi"}}, topic=TOPIC))
    gone = apns.send.delay(apnskit.Notification(two, {"aps": {"alert": "hi"}}, topic=TOPIC))
    first = accepted.get(timeout=60)
    second = gone.get(timeout=60)
    assert isinstance(first, apnskit.PushResult)
    assert first.accepted
    assert first.notification.apns_id is not None
    assert first.apns_id == first.notification.apns_id
    assert (second.status, second.reason, second.token_invalid) == (
        410,
        apnskit.Reason.UNREGISTERED,
        True,
    )
    assert second.timestamp is not None
    by_token = {r.device_token: r for r in mock.received}
    assert by_token[one].apns_id == first.apns_id
    assert by_token[two].status == 410


def test_partial_chunk_failure_retries_only_the_retryable_remainder(
    celery_app: ModuleType, workers: list[Worker], mock: MockApnsServer
) -> None:
    apns = celery_app.apns
    # The next 30 requests get 503 ServiceUnavailable. The workers' clients do not retry
    # (RetryPolicy(max_attempts=1)), so the chunk task must retry those 30, and only those.
    mock.faults.fail_next(30, 503)
    campaign = apns.campaign(
        (
            apnskit.Notification(token(i), {"aps": {"alert": "x"}}, topic=TOPIC)
            for i in range(2_000_000, 2_000_100)
        ),
        chunk_size=100,
    )
    summary = anyio.run(campaign.wait_async, 0.2)
    assert (summary.accepted, summary.rejected, summary.failed) == (100, 0, 0)
    (report,) = campaign.chunk_reports()
    assert report["size"] == 100
    assert report["attempts"] == 2
    assert report["failures"] == []
    received = mock.received
    assert len(received) == 130
    unavailable = [r.apns_id for r in received if r.status == 503]
    assert len(unavailable) == 30
    counts = Counter(r.apns_id for r in received)
    assert {i for i, n in counts.items() if n == 2} == set(unavailable)
    assert all(n in (1, 2) for n in counts.values())
    # Each resent notification ended accepted, with the id it had the first time.
    finals = {r.apns_id: r.status for r in received}  # later records win
    assert set(finals.values()) == {200}


def test_retries_run_out_failures_are_reported_with_the_notification(
    celery_app: ModuleType, workers: list[Worker], mock: MockApnsServer
) -> None:
    apns = celery_app.apns
    # 1 + max_retries (3) runs of the same 5 notifications, all answered 500.
    mock.faults.fail_next(5 * 4, 500)
    campaign = apns.campaign(
        (
            apnskit.Notification(token(i), {"aps": {"alert": "x"}}, topic=TOPIC)
            for i in range(3_000_000, 3_000_005)
        ),
        chunk_size=5,
    )
    summary = campaign.wait(timeout=120, interval=0.2)
    assert (summary.accepted, summary.rejected, summary.failed) == (0, 0, 5)
    (report,) = campaign.chunk_reports()
    assert report["attempts"] == 4
    assert len(report["failures"]) == 5
    for record in report["failures"]:
        assert (record["status"], record["reason"]) == (500, "InternalServerError")
        again = apnskit.Notification.from_dict(record["notification"])
        assert again.apns_id == record["apns_id"]
    assert len(mock.received) == 20


def test_chunk_with_invalid_items_reports_each_once(
    celery_app: ModuleType, workers: list[Worker], mock: MockApnsServer
) -> None:
    # Chunks written by another producer (or tampered with): every item still ends in
    # exactly one outcome; a bad one is "invalid", named with its field, and not sent.
    apns = celery_app.apns
    good = [{"device_token": token(4_000_000 + i), "apns_id": str(uuid.uuid4())} for i in range(3)]
    shared = {"payload": {"aps": {"alert": "s"}}, "topic": TOPIC}
    items = [*good, {"device_token": "zz", "apns_id": str(uuid.uuid4())}, "not a dict"]
    report = apns.send_chunk.apply_async(args=("foreign", 0, items), kwargs={"shared": shared}).get(
        timeout=60
    )
    assert (report["size"], report["accepted"], report["invalid"]) == (5, 3, 2)
    errors = [f["error"] for f in report["failures"]]
    assert errors[0].startswith("InvalidNotificationError: device_token: ")
    assert errors[1] == "InvalidNotificationError: notification: str is not a dict"
    assert {r.apns_id for r in mock.received} == {g["apns_id"] for g in good}
    # Without shared fields: each item is a whole notification dict.
    whole = [
        {**shared, "device_token": token(4_000_010)},
        {**shared, "device_token": token(4_000_011), "priority": 7},
    ]
    report = apns.send_chunk.apply_async(args=("foreign", 1, whole)).get(timeout=60)
    assert (report["accepted"], report["invalid"]) == (1, 1)
    assert report["failures"][0]["error"].startswith("InvalidNotificationError: priority: ")
    assert report["failures"][0]["notification"]["priority"] == 7
