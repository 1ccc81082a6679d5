"""Issue 13, item 3: many threads or tasks calling send() at once.

The sync driver batches the wake-ups of the callers its reads finish (they run while it sleeps
in the poller) and holds its writes back while they are on their way, so their next submits
leave together; an asyncio task sleeps on a bare future. None of it may cost a result.
"""

from __future__ import annotations

import gc
import os
import threading
import warnings
from collections.abc import Callable
from typing import Any

import anyio
import pytest
from client_support import FAST_RETRY, Client, echo, notification, token_credentials

import apnskit
from apnskit._clients.sync_driver import FdGate, LockGate, SyncWakeup, WakeBatch, thread_gate
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
    turn = batch.pass_on()  # the driver is about to sleep in the poller
    assert turn is wakeup
    turn.wake()  # once it let go of the client's lock
    assert wakeup.sleep(0)
    assert wakeup.awake()
    assert batch.count == 0


# Each sleeping thread has a gate of its own: these stand for several threads.
GATES = [pytest.param(FdGate, id="fd"), pytest.param(LockGate, id="lock")]


def _held_sleepers(
    batch: WakeBatch, count: int, gate: Callable[[], FdGate | LockGate]
) -> list[SyncWakeup]:
    # ``count`` threads asleep whose notifications the driver's read just finished.
    sleepers = [SyncWakeup(gate()) for _ in range(count)]
    batch.holding = True
    for wakeup in sleepers:
        wakeup.prepare(batch)
    for wakeup in sleepers:
        wakeup.set()
    return sleepers


@pytest.mark.parametrize("gate", GATES)
def test_held_callers_are_woken_one_after_the_other(gate: Callable[[], FdGate | LockGate]) -> None:
    # Woken all at once they would fight for the GIL (a futex wait and two context switches
    # more each); in turn, each woken caller wakes the next just before it sleeps again.
    batch = WakeBatch()
    first, second, third = _held_sleepers(batch, 3, gate)
    assert batch.count == 3
    assert not any(w.sleep(0) for w in (first, second, third))
    turn = batch.pass_on()  # the driver, before it sleeps in the poller
    assert turn is first
    assert batch.pass_on() is None  # the driver looped: still only one on its way
    turn.wake()
    assert first.sleep(0)
    assert not second.sleep(0)
    assert first.awake()  # the first is back under the lock...
    first.prepare(batch)  # ...and goes to sleep again (its next send)
    turn = batch.pass_on()  # passing the turn on
    assert turn is second
    turn.wake()
    assert second.sleep(0)
    assert not third.sleep(0)
    assert second.awake()
    turn = batch.pass_on()  # the second leaves (its send() returns): it passes it on too
    assert turn is third
    turn.wake()
    assert third.sleep(0)
    assert third.awake()
    assert batch.count == 0
    assert not batch.held
    assert batch.pass_on() is None  # nothing left
    assert not first.sleep(0)  # asleep again, nothing for it


@pytest.mark.parametrize("gate", GATES)
def test_a_held_caller_that_wakes_on_its_own_leaves_the_queue(
    gate: Callable[[], FdGate | LockGate],
) -> None:
    # A send_many() caller's recheck timeout (or an interrupt) ends its sleep while it is
    # still held: it must leave the queue, or the turn would be passed to a gate nobody
    # waits on and the count of callers on their way would never match the queue again.
    batch = WakeBatch()
    first, second = _held_sleepers(batch, 2, gate)
    assert second.awake()  # back without its gate opened
    assert list(batch.held) == [first]
    assert batch.count == 1
    turn = batch.pass_on()
    assert turn is first
    turn.wake()
    assert first.sleep(0)
    assert first.awake()
    assert batch.count == 0
    second.prepare(batch)  # sleeps again: no stale signal left behind
    assert not second.sleep(0)


@pytest.mark.parametrize("gate", GATES)
def test_close_wakes_every_held_caller_at_once(
    gate: Callable[[], FdGate | LockGate],
) -> None:
    batch = WakeBatch()
    sleepers = _held_sleepers(batch, 3, gate)
    batch.release()  # close(), or a turn not passed on in time: wake them all
    assert all(w.sleep(0) for w in sleepers)
    assert all(w.awake() for w in sleepers)
    assert batch.count == 0
    assert batch.pass_on() is None


def test_a_thread_keeps_one_gate_and_it_is_closed_when_the_thread_ends() -> None:
    # Each thread that waits gets one descriptor (an eventfd), reused by all its sends, and
    # it must not outlive the thread: a pool of threads that come and go would leak them.
    before = len(os.listdir("/proc/self/fd"))
    seen: list[tuple[bool, bool]] = []

    def waiter() -> None:
        first, second = SyncWakeup(), SyncWakeup()
        first.prepare(WakeBatch())
        second.prepare(WakeBatch())
        seen.append((first._gate is second._gate, isinstance(first._gate, FdGate)))

    threads = [threading.Thread(target=waiter) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    gc.collect()
    assert seen == [(True, True)] * 8
    assert len(os.listdir("/proc/self/fd")) == before


def test_a_wake_up_sleeps_on_the_gate_of_the_thread_that_sleeps() -> None:
    # A send_many() generator started in one thread may be resumed in another: the wake-up
    # it made must wake the thread sleeping now, not the one that made it.
    wakeup = SyncWakeup()  # made here, in the main thread
    seen: list[bool] = []

    def resume() -> None:
        wakeup.prepare(WakeBatch())
        seen.append(wakeup._gate is thread_gate())  # this thread's, not the maker's
        wakeup.set()
        seen.append(wakeup.sleep(30))

    thread = threading.Thread(target=resume)
    thread.start()
    thread.join(30)
    assert seen == [True, True]
    assert not thread_gate().wait(0)  # the main thread's gate was not touched


def test_a_lock_gate_opened_twice_wakes_once() -> None:
    # A late wake-up (passed on outside the lock) may meet the next one: no RuntimeError.
    gate = LockGate()
    gate.open()
    gate.open()
    assert gate.wait(0)
    assert not gate.wait(0)


def test_a_forked_child_does_not_share_its_parents_gate() -> None:
    # Parent and child reading one eventfd could each take the other's wake-up.
    parent_gate = thread_gate()
    read, write = os.pipe()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # fork() with threads around
        pid = os.fork()
    if pid == 0:  # the child: report and leave at once, without pytest's cleanup
        os.write(write, b"1" if thread_gate() is not parent_gate else b"0")
        os._exit(0)
    os.close(write)
    try:
        assert os.read(read, 1) == b"1"
    finally:
        os.close(read)
        os.waitpid(pid, 0)
    assert thread_gate() is parent_gate  # the parent keeps its own


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
    assert batch.pass_on() is None
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
        assert not client._batch.held  # and every turn was passed on
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
    await client.close()
