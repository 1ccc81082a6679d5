"""Starting the independent HTTP/2 servers of the interop tests (and the fuzz seed recorder).

Used by ``test_interop.py`` and by ``bench/fuzz_core.py --record``.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

from support.tls import make_tls_files

__all__ = ["CONFIGS", "NODE", "TIGHT", "make_tls_files", "running_server"]

HERE = Path(__file__).parent
NODE = shutil.which("node")
#: What stresses a client most: every body split across many DATA frames and WINDOW_UPDATEs,
#: one stream until the first answer, and no HPACK dynamic table at all.
TIGHT = {
    "initialWindowSize": 16,
    "maxConcurrentStreams": 1,
    "raiseStreamsTo": 100,
    "headerTableSize": 0,
}
CONFIGS: dict[str, dict[str, int]] = {"default": {}, "tight": TIGHT}


@contextlib.contextmanager
def running_server(kind: str, options: dict[str, int], tls: tuple[str, str]) -> Iterator[int]:
    """Run the ``"node"`` or ``"hypercorn"`` server on 127.0.0.1; yields its port."""
    if kind == "node":
        assert NODE is not None, "node is not installed"
        command = [NODE, str(HERE / "node_apns_server.js")]
    else:
        command = [sys.executable, str(HERE / "hypercorn_apns_server.py")]
    process = subprocess.Popen(
        [*command, *tls, json.dumps(options)],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()  # the server prints its port once listening
        assert line.startswith("LISTENING "), f"{kind} server did not start: {line!r}"
        yield int(line.split()[1])
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if process.stdout is not None:
            process.stdout.close()
