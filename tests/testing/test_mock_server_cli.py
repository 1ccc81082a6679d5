"""``apnskit mock-server``: options, a busy port, logging, and a clean stop on SIGTERM."""

from __future__ import annotations

import io
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from apnskit._credentials.token import TokenCredentials
from apnskit.testing._application import ReceivedNotification
from apnskit.testing._cli import format_log_line, run_mock_server
from support.h2client import H2TestClient

REGISTERED = "ab" * 32
OTHER_APP = "cd" * 32
GONE = "ef" * 32


@dataclass
class Running:
    info: dict[str, str]
    out: io.StringIO
    stop: threading.Event
    thread: threading.Thread
    result: list[int]

    @property
    def port(self) -> int:
        return int(self.info["port"])

    def authorization(self) -> str:
        pem = Path(self.info["token key"]).read_bytes()
        creds = TokenCredentials(pem, key_id=self.info["key id"], team_id=self.info["team id"])
        return creds.authorization()[0]

    def finish(self) -> int:
        self.stop.set()
        self.thread.join(10)
        assert not self.thread.is_alive()
        return self.result[0]


def _parse(text: str) -> dict[str, str]:
    info: dict[str, str] = {}
    for line in text.splitlines():
        if "listening on" in line:
            info["port"] = line.rsplit(":", 1)[1].strip()
        elif line.startswith("  ") and ":" in line:
            name, _, value = line.strip().partition(":")
            info[name] = value.strip()
    return info


@pytest.fixture
def start() -> Iterator[object]:
    """Run ``run_mock_server(argv)`` in a thread until the test ends (or calls finish)."""
    started: list[Running] = []

    def run(*argv: str) -> Running:
        out = io.StringIO()
        stop = threading.Event()
        result: list[int] = []
        thread = threading.Thread(
            target=lambda: result.append(
                run_mock_server(["--port", "0", *argv], stop=stop, out=out, err=out)
            )
        )
        thread.start()
        deadline = time.monotonic() + 20
        while "Press Ctrl-C" not in out.getvalue():
            assert thread.is_alive(), out.getvalue()
            assert time.monotonic() < deadline, "the server did not start"
            time.sleep(0.01)
        running = Running(_parse(out.getvalue()), out, stop, thread, result)
        started.append(running)
        return running

    yield run
    for running in started:
        running.stop.set()
        running.thread.join(10)


def test_busy_port_is_one_line_and_exit_2() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        out, err = io.StringIO(), io.StringIO()
        code = run_mock_server(["--port", str(port)], out=out, err=err)
    assert code == 2
    assert err.getvalue() == (
        f"mock-server: cannot listen on 127.0.0.1:{port}: address already in use (try --port 0)\n"
    )
    assert out.getvalue() == ""


def test_busy_port_through_the_apnskit_command(capsys) -> None:
    from apnskit.cli import main

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        code = main(["mock-server", "--port", str(port)])
    captured = capsys.readouterr()
    assert code == 2
    assert captured.err.splitlines() == [
        f"mock-server: cannot listen on 127.0.0.1:{port}: address already in use (try --port 0)"
    ]
    assert "Traceback" not in captured.err


def test_options_register_unregister_strict_and_stream_limit(start) -> None:
    running = start(
        "--strict",
        "--max-concurrent-streams",
        "7",
        "--register",
        REGISTERED,
        "--register",
        f"{OTHER_APP}:com.example.other",
        "--unregister",
        GONE,
    )
    assert running.info["registered"] == "2 device token(s)"
    with H2TestClient(
        "127.0.0.1",
        running.port,
        running.info["CA file"],
        authorization=running.authorization(),
    ) as client:
        assert client.max_streams == 1
        assert client.push(REGISTERED).status == 200
        # Under token auth the limit rises after the first success (apns-reference.md).
        client.read_until(lambda: client.max_streams == 7)
        assert client.max_streams == 7
        wrong_app = client.push(OTHER_APP)
        assert (wrong_app.status, wrong_app.reason) == (400, "DeviceTokenNotForTopic")
        gone = client.push(GONE)
        assert (gone.status, gone.reason) == (410, "Unregistered")
        unknown = client.push("12" * 32)
        assert (unknown.status, unknown.reason) == (400, "BadDeviceToken")
    assert running.finish() == 0


def test_without_strict_unknown_tokens_are_accepted(start) -> None:
    running = start()
    with H2TestClient(
        "127.0.0.1", running.port, running.info["CA file"], authorization=running.authorization()
    ) as client:
        assert client.push("12" * 32).status == 200
        client.read_until(lambda: client.max_streams == 1000)
        assert client.max_streams == 1000


@pytest.mark.parametrize(
    ("flags", "fatal"), [((), False), (("--strict-stream-limit",), True)], ids=["refuse", "strict"]
)
def test_stream_beyond_the_limit_refused_or_strict(start, flags, fatal) -> None:
    running = start("--max-concurrent-streams", "1", *flags)
    with H2TestClient(
        "127.0.0.1", running.port, running.info["CA file"], authorization=running.authorization()
    ) as client:
        first, second = client.send_past_the_limit(2)
        client.wait([first, second])
        assert client.responses[first].status == 200
        if fatal:
            client.read_until(lambda: client.goaway is not None)
            assert client.goaway is not None
            assert client.goaway.error_code == 1  # PROTOCOL_ERROR
            assert client.responses[second].status is None
        else:
            assert client.responses[second].reset_code == 7  # REFUSED_STREAM
            assert client.goaway is None
            assert client.push().status == 200
    assert running.finish() == 0


def test_log_prints_one_line_per_request_without_the_token(start) -> None:
    running = start("--log", "--unregister", GONE)
    authorization = running.authorization()
    with H2TestClient(
        "127.0.0.1", running.port, running.info["CA file"], authorization=authorization
    ) as client:
        client.push(REGISTERED)
        client.push(GONE)
    assert running.finish() == 0
    after = running.out.getvalue().split("Press Ctrl-C to stop.\n", 1)[1]
    assert after.splitlines() == [
        f"POST /3/device/{REGISTERED} 200",
        f"POST /3/device/{GONE} 410 Unregistered",
        "stopping",
    ]
    jwt = authorization.split(" ", 1)[1]
    assert jwt not in running.out.getvalue()
    assert "bearer" not in running.out.getvalue()


def test_no_log_lines_without_log(start) -> None:
    running = start()
    with H2TestClient(
        "127.0.0.1", running.port, running.info["CA file"], authorization=running.authorization()
    ) as client:
        assert client.push(REGISTERED).status == 200
    assert running.finish() == 0
    assert "/3/device/" not in running.out.getvalue()


def _record(status: int | None, reason: str | None, outcome: str) -> ReceivedNotification:
    return ReceivedNotification(
        REGISTERED,
        {"authorization": "bearer secret.jwt.value"},
        None,
        b"",
        status,
        reason,
        None,
        outcome,
        1,
        1,
        "POST",
        f"/3/device/{REGISTERED}",
    )


@pytest.mark.parametrize(
    ("status", "reason", "outcome", "expected"),
    [
        (200, None, "reply", "200"),
        (503, "ServiceUnavailable", "reply", "503 ServiceUnavailable"),
        (200, None, "delayed", "200 (delayed)"),
        (None, None, "reset", "- reset"),
        (None, None, "goaway", "- goaway"),
    ],
)
def test_log_line_format(status, reason, outcome, expected) -> None:
    line = format_log_line(_record(status, reason, outcome))
    assert line == f"POST /3/device/{REGISTERED} {expected}"
    assert "secret" not in line


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--register", "xyz"], "--register: 'xyz' is not a hex device token"),
        (["--register", f"{REGISTERED}:bad topic"], "is not a bundle ID"),
        (["--unregister", "nothex"], "--unregister: 'nothex' is not a hex device token"),
        (["--max-concurrent-streams", "0"], "--max-concurrent-streams: 0 must be >= 1"),
        (["--max-concurrent-streams", "many"], "'many' is not an integer"),
    ],
)
def test_bad_options_exit_2(capsys, argv, message) -> None:
    with pytest.raises(SystemExit) as exit_:
        run_mock_server(argv)
    assert exit_.value.code == 2
    assert message in capsys.readouterr().err


def test_help_lists_the_options(capsys) -> None:
    with pytest.raises(SystemExit):
        run_mock_server(["--help"])
    out = capsys.readouterr().out
    for option in ("--strict", "--max-concurrent-streams", "--register", "--unregister", "--log"):
        assert option in out


def test_sigterm_stops_cleanly_and_removes_the_private_keys() -> None:
    env = dict(os.environ)
    env.pop("PYTHONWARNINGS", None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "apnskit", "mock-server", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert proc.stdout is not None
        lines = []
        for line in proc.stdout:
            lines.append(line)
            if "Ctrl-C" in line:
                break
        info = _parse("".join(lines))
        key = Path(info["token key"])
        directory = key.parent
        assert key.exists()
        assert directory.name.startswith("apnskit-mock-")
        proc.send_signal(signal.SIGTERM)
        rest, err = proc.communicate(timeout=15)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err
    assert rest == "stopping\n"
    assert err == ""
    assert not directory.exists()
