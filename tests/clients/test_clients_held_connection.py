"""A first request that never gets an answer must not hold every other notification hostage.

Under token auth APNs allows one stream until a request succeeds. If that first request
hangs, the pool opens another connection once the PING timeout has passed instead of letting
everything else wait for its deadline.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from client_support import Client, echo, notification

import apnskit
from apnskit.testing import FakeTransport, Fault, ReceivedRequest, Reply

pytestmark = pytest.mark.anyio


async def test_stuck_first_request_does_not_stall_the_rest(
    make_client: Callable[..., Client],
) -> None:
    seen: list[int] = []

    def handler(request: ReceivedRequest) -> Reply | Fault:
        seen.append(request.connection_id)
        if len(seen) == 1:
            return Fault.no_reply()  # the first request on the first connection hangs
        return echo(request)

    transport = FakeTransport(handler, hold_streams_until_success=True)
    client = make_client(
        transport,
        timeout=apnskit.Timeout(deadline=1.0, ping_timeout=0.2),
        limits=apnskit.Limits(max_connections=2),
    )
    results = await client.send_many([notification() for _ in range(20)])
    accepted = [r for r in results if r.accepted]
    failed = [r for r in results if r.failed]
    assert len(accepted) == 19
    assert len(failed) == 1
    assert isinstance(failed[0].error, apnskit.DeadlineExceededError)
    assert transport.connections == 2
    # Everything after the stuck request went over the second connection.
    assert set(seen[1:]) == {2}
