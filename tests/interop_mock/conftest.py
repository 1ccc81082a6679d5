"""Fixtures for driving the mock APNs server with HTTP/2 clients nobody on this project wrote.

``cpu_load`` keeps every core busy in other processes while a client runs, which makes eager
clients' frames race the server's (issue 17).
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from interop_support import BODY, Target

from apnskit.testing import MockApnsServer

# One busy loop per core, up to four: enough to starve the server's thread now and then.
_BUSY_LOOPS = min(os.cpu_count() or 1, 4)


@pytest.fixture
def target(tmp_path: Path) -> Iterator[Target]:
    body_file = tmp_path / "notification.json"
    body_file.write_bytes(BODY)
    with MockApnsServer() as server:
        yield Target(server, server.new_token_key(), body_file)


@pytest.fixture
def cpu_load() -> Iterator[int]:
    """Busy loops in other processes for the length of the test; yields how many."""
    loops = [
        subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(_BUSY_LOOPS)
    ]
    try:
        yield len(loops)
    finally:
        for loop in loops:
            loop.kill()
        for loop in loops:
            loop.wait(10)
