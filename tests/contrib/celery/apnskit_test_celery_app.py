"""The Celery app the test workers load (``celery -A apnskit_test_celery_app worker``).

Everything comes from the environment the tests give the worker processes: the Redis URL
(broker and result backend), the mock APNs server's address and CA, and the path of the
``.p8`` key, which only the worker reads (the credentials callable), as in production.
The test process imports the same module to enqueue (the producer side).
"""

from __future__ import annotations

import json
import os
from typing import Any

import redis
from celery import Celery

import apnskit
from apnskit.contrib.celery import ApnsTasks

REDIS_URL = os.environ["APNSKIT_TEST_REDIS_URL"]
#: Seconds before Redis hands an unacknowledged message (its worker died) to another worker.
#: Short, so the SIGKILL test does not wait an hour (kombu's default); well above the time a
#: chunk spends in a worker, or live chunks would be redelivered too.
VISIBILITY_TIMEOUT = 15

app = Celery("apnskit_tests", broker=REDIS_URL, backend=REDIS_URL)
app.conf.update(
    broker_transport_options={
        "visibility_timeout": VISIBILITY_TIMEOUT,
        # Look for expired unacknowledged messages every second (default: every 100 s).
        "unacked_restore_interval": 1,
        "unacked_restore_throttle": 1,
    },
    broker_connection_retry_on_startup=True,
    worker_prefetch_multiplier=1,
    task_default_queue="apnskit-tests",
    result_expires=3600,
)


def load_credentials() -> apnskit.TokenCredentials:
    """Read the key the worker was pointed at (a missing file is one of the tests)."""
    return apnskit.TokenCredentials.from_file(
        os.environ["APNSKIT_TEST_KEY_FILE"],
        key_id=os.environ["APNSKIT_TEST_KEY_ID"],
        team_id=os.environ["APNSKIT_TEST_TEAM_ID"],
    )


apns = ApnsTasks(
    app,
    credentials=load_credentials,
    host="127.0.0.1",
    port=int(os.environ.get("APNSKIT_TEST_APNS_PORT", "0")) or None,
    ca_file=os.environ.get("APNSKIT_TEST_CA_FILE"),
    environment="sandbox",
    # One connection per worker process, so the tests can count processes by connections.
    limits=apnskit.Limits(max_connections=1),
    # No retry inside the client: what the mock fails is left to the chunk-level retry,
    # which the partial-failure test watches.
    retry=apnskit.RetryPolicy(max_attempts=1),
    chunk_size=1000,
    max_retries=3,
    retry_delay=0.2,
)


@app.task(name="apnskit_tests.forget_tokens")
def forget_tokens(records: list[dict[str, Any]], key: str) -> int:
    """The invalid-token hook: appends what it receives to a Redis list the test reads.

    Celery puts the records first: ``forget_tokens.s(key)`` is called as
    ``forget_tokens(records, key)``, as a chain passes a result on.
    """
    client = redis.Redis.from_url(REDIS_URL)
    try:
        return int(client.rpush(key, *(json.dumps(record) for record in records)))
    finally:
        client.close()
