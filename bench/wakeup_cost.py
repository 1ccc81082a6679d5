"""What waking a waiting caller costs on this machine, and the ceiling it puts on ``--callers``.

A caller of ``PushClient.send()`` blocks until its result arrives, so every ``send()`` from a
thread costs at least one wake-up of that thread and one sleep, whatever the client does;
``AsyncPushClient.send()`` from a task costs at least one task wake-up (a future's result set,
the task scheduled and resumed). This script measures both floors with nothing else running:

- ``threads``: two Python threads passing a turn back and forth through two
  ``threading.Lock`` objects (what ``SyncWakeup`` sleeps on); a round trip is two wake-ups and
  two sleeps, so half of it is what each ``send()`` pays at least. ``pipe``: the same through
  two pipes (``os.read`` / ``os.write`` release the GIL before blocking), to tell the GIL's
  share from the kernel's.
- ``tasks``: 1,000 asyncio tasks each awaiting a fresh future, set in batches of 58 (what one
  read of nginx's responses finishes) by another task.

With ``--bulk-us`` (the CPU per notification that ``throughput.py`` prints for ``send_many``)
it prints the best ratio ``--callers`` could reach if nothing but that floor were added:
``bulk / (bulk + floor)``. Usage::

    python bench/wakeup_cost.py [--bulk-us 26.5] [--runs 5]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import threading
import time
from collections import deque
from collections.abc import Callable

ROUND_TRIPS = 20_000
TASKS = 1_000
TASK_WAKEUPS = 200_000
BATCH = 58


def lock_round_trip() -> tuple[float, float]:
    """(wall, CPU) microseconds per round trip between two threads through two locks."""
    ping, pong = threading.Lock(), threading.Lock()
    ping.acquire()
    pong.acquire()

    def other() -> None:
        for _ in range(ROUND_TRIPS):
            ping.acquire()
            pong.release()

    return _timed_round_trips(other, lambda: (ping.release(), pong.acquire()))


def pipe_round_trip() -> tuple[float, float]:
    """(wall, CPU) microseconds per round trip between two threads through two pipes."""
    ping_r, ping_w = os.pipe()
    pong_r, pong_w = os.pipe()

    def other() -> None:
        for _ in range(ROUND_TRIPS):
            os.read(ping_r, 1)
            os.write(pong_w, b"x")

    try:
        return _timed_round_trips(other, lambda: (os.write(ping_w, b"x"), os.read(pong_r, 1)))
    finally:
        for fd in (ping_r, ping_w, pong_r, pong_w):
            os.close(fd)


def _timed_round_trips(
    other: Callable[[], None], turn: Callable[[], object]
) -> tuple[float, float]:
    thread = threading.Thread(target=other)
    thread.start()
    wall0, cpu0 = time.perf_counter(), time.process_time()
    for _ in range(ROUND_TRIPS):
        turn()
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    thread.join()
    return wall / ROUND_TRIPS * 1e6, cpu / ROUND_TRIPS * 1e6


def task_wakeup() -> float:
    """CPU microseconds per task wake-up: 1,000 tasks, futures set 58 at a time."""

    async def main() -> float:
        loop = asyncio.get_running_loop()
        waiting: deque[asyncio.Future[None]] = deque()
        woken = 0

        async def caller(count: int) -> None:
            nonlocal woken
            for _ in range(count):
                future = loop.create_future()
                waiting.append(future)
                await future
                woken += 1

        async def setter() -> None:
            while woken < TASK_WAKEUPS:
                for _ in range(min(BATCH, len(waiting))):
                    waiting.popleft().set_result(None)
                await asyncio.sleep(0)

        cpu0 = time.process_time()
        await asyncio.gather(setter(), *(caller(TASK_WAKEUPS // TASKS) for _ in range(TASKS)))
        return (time.process_time() - cpu0) / TASK_WAKEUPS * 1e6

    return asyncio.run(main())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument(
        "--bulk-us",
        type=float,
        action="append",
        help="send_many CPU per notification from throughput.py (repeatable)",
    )
    args = parser.parse_args()
    locks = [lock_round_trip() for _ in range(args.runs)]
    pipes = [pipe_round_trip() for _ in range(args.runs)]
    tasks = [task_wakeup() for _ in range(args.runs)]
    lock_wall = statistics.median(w for w, _ in locks)
    lock_cpu = statistics.median(c for _, c in locks)
    pipe_wall = statistics.median(w for w, _ in pipes)
    pipe_cpu = statistics.median(c for _, c in pipes)
    task_cpu = statistics.median(tasks)
    print(f"medians of {args.runs} runs")
    print(
        f"  threads, two locks:  round trip {lock_wall:6.1f} us wall, {lock_cpu:6.1f} us CPU"
        f"  -> a thread's wake-up and sleep: {lock_cpu / 2:5.1f} us CPU"
    )
    print(f"  threads, two pipes:  round trip {pipe_wall:6.1f} us wall, {pipe_cpu:6.1f} us CPU")
    print(f"  asyncio, {TASKS} tasks: a task's wake-up {task_cpu:5.1f} us CPU")
    for bulk in args.bulk_us or [15.0, 20.0, 26.5]:
        threads = bulk / (bulk + lock_cpu / 2)
        tasks_ceiling = bulk / (bulk + task_cpu)
        print(
            f"  bulk {bulk:5.1f} us/notification: ceiling for threads {threads:4.0%},"
            f" for tasks {tasks_ceiling:4.0%} (nothing else added)"
        )


if __name__ == "__main__":
    main()
