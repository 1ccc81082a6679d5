"""Issue 13, item 3: many threads or tasks calling send() at once.

The sync driver batches the wake-ups of the callers its reads finish (they run while it sleeps
in the poller) and holds its writes back while they are on their way, so their next submits
leave together; an asyncio task sleeps on a bare future. None of it may cost a result.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Callable
from typing import Any

import anyio
import anyio.lowlevel
import pytest
from client_support import FAST_RETRY, Client, echo, notification, token_credentials

import apnskit
from apnskit._clients.async_driver import AsyncWakeup
from apnskit._clients.sync_driver import SyncWakeup, WakeBatch
from apnskit.testing import FakeTransport, Fault

pytestmark = pytest.mark.anyio


# ------------------------------------------------------------------ the sync wake-up, unit


def test_a_held_wake_up_opens_only_when_the_batch_is_released() -> None:
    batch = WakeBatch()
    wakeup = SyncWakeup()
    wakeup.prepare(batch)  # its thread is about to sleep
    batch.holding = True  # the driver is working
    wakeup.set()
    assert wakeup.signalled
    assert batch.count == 1  # on its way, as far as the driver's writes are concerned
    assert not wakeup.sleep(0)  # held: the gate is still shut
    batch.release()  # the driver is about to sleep in the poller
    assert wakeup.sleep(0)
    assert wakeup.awake()
    assert batch.count == 0


def test_a_wake_up_outside_a_driver_session_opens_at_once() -> None:
    batch = WakeBatch()
    wakeup = SyncWakeup()
    wakeup.prepare(batch)
    wakeup.set()  # batch.holding is False: nobody drives (a hand-over, close())
    wakeup.set()  # idempotent: one release, one count
    assert batch.count == 1
    assert wakeup.sleep(0)
    assert not wakeup.sleep(0)


def test_a_caller_back_before_its_held_release_is_not_woken_twice() -> None:
    # The thread woke on its own (a recheck timeout) while its wake-up was still held: it
    # counts as arrived, and the release that comes later must not open a gate it no longer
    # waits on (a later set() would then release an open lock: RuntimeError).
    batch = WakeBatch()
    wakeup = SyncWakeup()
    wakeup.prepare(batch)
    batch.holding = True
    wakeup.set()
    assert wakeup.awake()
    assert batch.count == 0
    wakeup.prepare(batch)  # sleeps again
    batch.release()
    assert not wakeup.sleep(0)
    batch.holding = False
    wakeup.set()
    assert wakeup.sleep(0)


def test_submits_do_not_wake_the_driver_while_woken_callers_are_on_their_way() -> None:
    client = apnskit.PushClient(
        token_credentials(), environment="sandbox", transport=FakeTransport(echo)
    )
    try:
        wakes: list[int] = []
        client._poller.wake = lambda: wakes.append(1)  # type: ignore[method-assign]
        batch = client._batch
        sleeper = SyncWakeup()
        with client._guard:
            client._polling = True  # the driver sleeps in the poller
            sleeper.prepare(batch)
            sleeper.set()  # a read finished its notification: it is on its way
            assert not client._note_work()  # another caller's submit: no wake-up yet
            assert sleeper.awake()  # the woken caller is back under the lock
            assert client._caller_back()  # the last one back wakes the driver, once
            assert not client._note_work()
            assert not client._caller_back()
        with client._guard:
            client._polling = True
            assert client._note_work()  # nobody on the way: the submit wakes it
            assert not client._note_work()  # one wake-up is enough
    finally:
        client.close()


# ------------------------------------------------------------------ the sync client, threads


def test_every_thread_gets_its_results_while_the_driver_role_moves() -> None:
    # Threads send different numbers of notifications, so driving threads keep leaving while
    # others wait; every send still ends with its own result.
    transport = FakeTransport(lambda r: Fault.delay(0.001, echo(r)))
    client = apnskit.PushClient(
        token_credentials(), environment="sandbox", transport=transport, retry=FAST_RETRY
    )
    results: dict[str, list[bool]] = {}
    errors: list[BaseException] = []

    def caller(index: int) -> None:
        try:
            for _ in range(1 + index % 7):
                item = notification()
                result = client.send(item)
                assert result.notification is item
                results.setdefault(f"t{index}", []).append(result.accepted)
        except BaseException as error:  # reported below
            errors.append(error)

    try:
        threads = [threading.Thread(target=caller, args=(i,)) for i in range(40)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        assert not errors
        assert all(not thread.is_alive() for thread in threads)
        assert {name: len(oks) for name, oks in results.items()} == {
            f"t{i}": 1 + i % 7 for i in range(40)
        }
        assert all(all(oks) for oks in results.values())
        assert client._batch.count == 0  # every woken caller came back
        assert client._dispatcher.outstanding == 0
    finally:
        client.close()


def test_close_wakes_every_waiting_thread_with_a_result() -> None:
    transport = FakeTransport(lambda r: Fault.no_reply())
    client = apnskit.PushClient(
        token_credentials(), environment="sandbox", transport=transport, retry=FAST_RETRY
    )
    outcomes: list[Any] = []

    def caller() -> None:
        try:
            outcomes.append(client.send(notification()))
        except apnskit.ClientClosedError as error:
            outcomes.append(error)

    threads = [threading.Thread(target=caller) for _ in range(30)]
    for thread in threads:
        thread.start()
    while client._dispatcher.outstanding < 30:
        threading.Event().wait(0.01)
    client.close()
    for thread in threads:
        thread.join(60)
    assert all(not thread.is_alive() for thread in threads)
    assert len(outcomes) == 30


# ------------------------------------------------------------------ the async client, tasks


@pytest.mark.parametrize("flavor", ["asyncio", "trio"])
async def test_one_cancelled_task_among_many_leaves_the_others_their_results(
    make_client: Callable[..., Client],
) -> None:
    never = notification()
    transport = FakeTransport(
        lambda r: Fault.no_reply() if r.headers["apns-id"] == never.apns_id else echo(r)
    )
    client = make_client(transport)
    results: list[apnskit.PushResult] = []
    cancelled: list[bool] = []
    halfway = anyio.Event()

    async def caller() -> None:
        for _ in range(5):
            results.append(await client.send(notification()))
            if len(results) >= 250:
                halfway.set()

    async def doomed(scope: anyio.CancelScope) -> None:
        with scope:
            await client.send(never)
        cancelled.append(scope.cancelled_caught)

    scope = anyio.CancelScope()
    async with anyio.create_task_group() as group:
        group.start_soon(doomed, scope)
        for _ in range(100):
            group.start_soon(caller)
        await halfway.wait()  # the doomed one waits among the others
        scope.cancel()
    assert cancelled == [True]
    assert len(results) == 500
    assert all(result.accepted for result in results)
    # The cancelled notification was withdrawn (its stream reset): nothing is left waiting.
    assert client.dispatcher.outstanding == 0
    assert not client.inner._waiters  # the cancelled task left the waiters too
    await client.close()


@pytest.mark.parametrize("flavor", ["asyncio", "trio"])
async def test_submits_wake_the_async_driver_once_per_step(
    make_client: Callable[..., Client],
) -> None:
    # With 1,000 tasks calling send(), every submit used to set the driver's event again (two
    # calls into anyio and asyncio each); the first sets it, the rest see a flag. The driver's
    # next step makes a new event, which the next submit must set again, or it would sleep
    # with work waiting.
    client: apnskit.AsyncPushClient = make_client(FakeTransport(echo)).inner
    sets: list[int] = []

    class CountingEvent:
        def __init__(self) -> None:
            self.event = anyio.Event()

        def set(self) -> None:
            sets.append(1)
            self.event.set()

    client._wake = CountingEvent()  # type: ignore[assignment]  # as the driver's step does
    client._kicked = False
    assert not client._note_work()  # nothing left for _wake_driver to do
    assert not client._note_work()
    assert not client._note_work()
    assert len(sets) == 1
    client._wake = CountingEvent()  # type: ignore[assignment]  # the driver's next step
    client._kicked = False
    client._note_work()
    assert len(sets) == 2
    client._wake_driver()  # a reader or a finished connect always sets it
    assert len(sets) == 3
    await client.close()


@pytest.mark.parametrize("flavor", ["asyncio", "trio"])
async def test_a_task_handed_the_driver_role_with_its_work_done_passes_it_on(
    make_client: Callable[..., Client],
) -> None:
    # A driver that steps down after one step ended several tickets (a tick past their
    # deadlines, a lost connection) hands the role to any waiting task, maybe one whose
    # ticket just ended. That task returns at once; it must pass the role on, or a task still
    # waiting sleeps with nobody reading and no deadline timer running. (The soak hung like
    # this under trio, whose scheduler may run the stepping-down driver before the tasks it
    # woke.) Here the hand-over is made to reach the finished task on purpose.
    client: apnskit.AsyncPushClient = make_client(FakeTransport(echo)).inner
    finished = {"a": False, "b": False}
    woken_a, woken_b = AsyncWakeup(), AsyncWakeup()
    returned: list[str] = []

    async def waiter(name: str, wakeup: AsyncWakeup) -> None:
        await client._wait(lambda: finished[name], wakeup)
        returned.append(name)

    client._driving = True  # someone else drives: both tasks wait
    async with anyio.create_task_group() as group:
        group.start_soon(waiter, "a", woken_a)
        group.start_soon(waiter, "b", woken_b)
        with anyio.fail_after(10):
            while len(client._waiters) < 2:
                await anyio.lowlevel.checkpoint()
        # The driver's step ended a's ticket; it steps down and hands the role to a.
        finished["a"] = True
        client._driving = False
        woken_a.set()
        with anyio.fail_after(10):
            while not client._driving:  # b took the role over
                await anyio.lowlevel.checkpoint()
        assert returned == ["a"]
        finished["b"] = True
        client._kick()
    assert returned == ["a", "b"]
    assert not client._driving
    await client.close()


@pytest.mark.parametrize("flavor", ["asyncio", "trio"])
async def test_a_send_woken_with_its_work_done_passes_the_driver_role_on(
    make_client: Callable[..., Client],
) -> None:
    # send() waits without _wait: under asyncio on a bare future it awaits itself, and
    # _settled() tidies up after each wake-up. A task whose ticket ended while nobody drove
    # must hand the role to a task still waiting, or that one sleeps with nobody reading.
    client: apnskit.AsyncPushClient = make_client(FakeTransport(echo)).inner
    assert (await client.send(notification())).accepted  # connected
    submitted: list[Any] = []
    submit = client._submit_waiting

    def recording(item: Any) -> Any:
        ticket = submit(item)
        submitted.append(ticket)
        return ticket

    client._submit_waiting = recording  # type: ignore[method-assign]
    results: dict[str, apnskit.PushResult] = {}

    async def sender(name: str) -> None:
        results[name] = await client.send(notification())

    client._driving = True  # someone else drives: both tasks wait
    async with anyio.create_task_group() as group:
        group.start_soon(sender, "a")
        with anyio.fail_after(10):
            while len(client._waiters) < 1:
                await anyio.lowlevel.checkpoint()
        group.start_soon(sender, "b")
        with anyio.fail_after(10):
            while len(client._waiters) < 2:
                await anyio.lowlevel.checkpoint()
        # The driver steps down, and a's ticket ends (withdrawn) without anyone driving.
        client._driving = False
        client._withdraw([submitted[0]], apnskit.ClientClosedError("gone"))
        with anyio.fail_after(10):
            while "b" not in results:  # a passed the role to b, which sent its own
                await anyio.lowlevel.checkpoint()
    assert isinstance(results["a"].error, apnskit.ClientClosedError)
    assert results["b"].accepted
    assert not client._waiters
    assert all(ticket.waiter is None for ticket in submitted)
    await client.close()


@pytest.mark.parametrize("flavor", ["asyncio", "trio"])
async def test_a_send_handed_the_role_while_it_waits_drives(
    make_client: Callable[..., Client],
) -> None:
    client: apnskit.AsyncPushClient = make_client(FakeTransport(echo)).inner
    assert (await client.send(notification())).accepted  # connected
    results: list[apnskit.PushResult] = []

    async def sender() -> None:
        results.append(await client.send(notification()))

    client._driving = True  # someone else drives: the tasks wait
    async with anyio.create_task_group() as group:
        for _ in range(3):
            group.start_soon(sender)
        with anyio.fail_after(10):
            while len(client._waiters) < 3:
                await anyio.lowlevel.checkpoint()
        client._driving = False  # the driver steps down and hands the role over
        client._hand_over()
        with anyio.fail_after(10):
            while len(results) < 3:
                await anyio.lowlevel.checkpoint()
    assert [result.accepted for result in results] == [True, True, True]
    assert not client._driving
    assert not client._waiters
    await client.close()


# ------------------------------------------------------------------ both clients, garbage


async def test_a_finished_send_leaves_no_reference_cycle(
    make_client: Callable[..., Client],
) -> None:
    # Each send() used to leave its ticket and its waiter pointing at each other (the
    # waiter's deque holds the ticket, the ticket its waiter): a cycle only the garbage
    # collector frees. With many callers that made it run a collection every few dozen
    # sends. Broken, the garbage collector finds no ticket to free.
    from apnskit._engine.tickets import Ticket

    client = make_client(FakeTransport(echo))
    assert (await client.send(notification())).accepted  # connected; setup garbage made
    gc.collect()
    gc.disable()
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        for _ in range(20):
            assert (await client.send(notification())).accepted
        gc.collect()
        cyclic = [item for item in gc.garbage if isinstance(item, Ticket)]
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
        gc.enable()
    assert cyclic == []
