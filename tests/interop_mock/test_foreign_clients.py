"""The mock APNs server serves HTTP/2 clients nobody on this project wrote (issue 17).

h2load (nghttp2), node's built-in ``http2`` module and ``curl --http2`` push to it with token
auth, each repeated while other processes keep every core busy. Eager clients open streams
before reading the server's SETTINGS, or as soon as they read a raised limit; RFC 9113 section
6.5.3 lets them, and the mock used to kill such connections with GOAWAY PROTOCOL_ERROR (two
h2load runs in three failed on a busy machine). Every request must be answered, none failed,
and the server must record no protocol error.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
from interop_support import (
    BODY,
    RUN_TIMEOUT,
    TOPIC,
    Target,
    device_path,
    expected_h2load,
    h2load,
    sign_token,
)

HERE = Path(__file__).parent


@pytest.mark.parametrize(
    ("options", "runs"),
    [
        # Four connections per run, each racing the server's SETTINGS at its start.
        (("-n", "1000", "-c", "4", "-m", "100"), 6),
        (("-n", "2000", "-c", "2", "-m", "1000"), 3),
    ],
    ids=["m100", "m1000"],
)
def test_h2load_under_load(
    target: Target, cpu_load: int, options: tuple[str, ...], runs: int
) -> None:
    bearer = target.bearer()
    total = int(options[1])
    outcomes = [h2load(target.url, bearer, target.body_file, *options) for _ in range(runs)]
    assert outcomes == [expected_h2load(total)] * runs
    assert target.server.errors == []
    assert len(target.server.received) == total * runs
    assert {r.status for r in target.server.received} == {200}


def test_node_http2_bursts_under_load(target: Target, cpu_load: int) -> None:
    bursts, size = 4, 150
    command = [
        "node",
        str(HERE / "node_burst.mjs"),
        target.url,
        target.server.ca_file,
        str(target.key.path),
        target.key.key_id,
        target.key.team_id,
        str(bursts),
        str(size),
        str(int(RUN_TIMEOUT)),
    ]
    for _ in range(2):
        run = subprocess.run(
            command, check=False, capture_output=True, text=True, timeout=RUN_TIMEOUT + 30
        )
        assert run.returncode == 0, run.stderr
        report = json.loads(run.stdout)
        # Every request of every burst (two rounds per connection) answered 200.
        assert report["requests"] == bursts * 2 * size
        assert report["statuses"] == {"200": bursts * 2 * size}, report["failures"][:5]
        assert report["failures"] == []
        assert report["goaways"] == []
        assert report["sessionErrors"] == []
        assert "timedOut" not in report
    assert target.server.errors == []
    assert len(target.server.received) == 2 * bursts * 2 * size
    assert target.server.connection_count == 2 * bursts


def test_curl_http2_parallel_under_load(target: Target, cpu_load: int) -> None:
    count = 200
    url = f"{target.url}{device_path()[:-4]}[1000-{1000 + count - 1}]"  # curl's URL glob
    command = [
        "curl",
        "--http2",
        "--silent",
        "--show-error",
        "--parallel",
        "--parallel-max",
        "100",
        "--cacert",
        target.server.ca_file,
        "-H",
        f"authorization: {target.bearer()}",
        "-H",
        f"apns-topic: {TOPIC}",
        "--data-binary",
        f"@{target.body_file}",
        "--output",
        "/dev/null",
        "--write-out",
        "%{http_code} %{http_version}\\n",
        url,
    ]
    for _ in range(3):
        run = subprocess.run(
            command, check=False, capture_output=True, text=True, timeout=RUN_TIMEOUT
        )
        assert run.returncode == 0, run.stderr
        assert Counter(run.stdout.split("\n")[:-1]) == {"200 2": count}
    assert target.server.errors == []
    received = target.server.received
    assert len(received) == 3 * count
    assert {r.status for r in received} == {200}
    assert len({r.device_token for r in received}) == count
    assert all(r.payload == json.loads(BODY) for r in received)


def test_h2load_against_the_mock_server_command(tmp_path: Path, cpu_load: int) -> None:
    # The documented way for another team: `apnskit mock-server`, then sign a provider token
    # with the key it prints (here with ``cryptography``, as a user's script would).
    server = subprocess.Popen(
        [sys.executable, "-m", "apnskit", "mock-server", "--port", "0"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None
        info: dict[str, str] = {}
        for line in server.stdout:
            if "listening on" in line:
                info["address"] = line.rsplit(" ", 1)[1].strip()
            elif line.startswith("  ") and ":" in line:
                name, _, value = line.strip().partition(":")
                info[name] = value.strip()
            if line.startswith("Press Ctrl-C"):
                break
        jwt = sign_token(Path(info["token key"]).read_bytes(), info["key id"], info["team id"])
        body_file = tmp_path / "notification.json"
        body_file.write_bytes(BODY)
        url = f"https://{info['address']}"
        for _ in range(4):
            outcome = h2load(url, f"bearer {jwt}", body_file, "-n", "500", "-c", "2", "-m", "100")
            assert outcome == expected_h2load(500)
    finally:
        server.send_signal(signal.SIGTERM)
        server.communicate(timeout=30)
    assert server.returncode == 0
