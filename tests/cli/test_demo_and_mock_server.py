"""apnskit demo, apnskit mock-server, python -m apnskit."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest
from cli_support import TOPIC

import apnskit
from apnskit.cli import main


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env.pop("PYTHONWARNINGS", None)
    return env


def test_demo_as_a_subprocess() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "apnskit", "demo", "--count", "200"],
        capture_output=True,
        text=True,
        timeout=60,
        env=_env(),
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "InvalidNotificationError: device_token" in out
    assert "196 to registered devices, 2 to the unregistered token, 2 to a token" in out
    header = next(line for line in out.splitlines() if line.split()[:1] == ["PushClient"])
    assert header.split() == ["PushClient", "AsyncPushClient"]
    rows = {line.split()[0]: line.split()[1:] for line in out.splitlines() if line.startswith("  ")}
    assert rows["accepted"] == ["196", "196"]
    assert rows["rejected"] == ["4", "4"]
    assert rows["failed"] == ["0", "0"]
    assert "410 Unregistered" in out
    assert "400 BadDeviceToken" in out
    assert rows["throughput"][1] == "/s"
    assert rows["elapsed"][1] == "s"
    assert "Every notification got the answer it should." in out
    assert proc.stderr == ""


def test_demo_in_process_counts(cli) -> None:
    run = cli("demo", "--count", "50")
    assert run.code == 0, run.err
    table = [line.split() for line in run.out.splitlines()]
    assert ["410", "Unregistered", "1", "1"] in table
    assert ["400", "BadDeviceToken", "1", "1"] in table
    assert ["accepted", "48", "48"] in table


def test_demo_count_too_small_exits_2(cli) -> None:
    run = cli("demo", "--count", "3")
    assert run.code == 2
    assert "--count" in run.err


def test_mock_server_delegates_its_arguments(cli, monkeypatch) -> None:
    seen: list[list[str]] = []

    def fake_run(argv, *, stop=None, out=None, err=None) -> int:
        seen.append(argv)
        return 0

    monkeypatch.setattr("apnskit.testing._cli.run_mock_server", fake_run)
    assert cli("mock-server", "--port", "0", "--strict").code == 0
    assert seen == [["--port", "0", "--strict"]]


def test_mock_server_help(cli) -> None:
    run = cli("mock-server", "--help")
    assert run.code == 0
    assert "--auth" in run.out


def test_mock_server_bad_argument_exits_2(cli) -> None:
    assert cli("mock-server", "--auth", "nope").code == 2


def test_standalone_mock_server_serves_send(cli) -> None:
    # A test run started in the background of a non-interactive shell ignores SIGINT, and an
    # ignored signal stays ignored across exec: the server would never see the Ctrl-C below.
    # With a handler in place while it starts, the child starts with the default instead.
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        proc = subprocess.Popen(
            [sys.executable, "-m", "apnskit", "mock-server", "--port", "0"],
            stdout=subprocess.PIPE,
            text=True,
            env=_env(),
        )
    finally:
        signal.signal(signal.SIGINT, previous)
    try:
        info: dict[str, str] = {}
        assert proc.stdout is not None
        for line in proc.stdout:
            if "listening on" in line:
                info["port"] = line.rsplit(":", 1)[1].strip()
            elif ":" in line:
                name, _, value = line.strip().partition(":")
                info[name] = value.strip()
            if "Ctrl-C" in line:
                break
        run = cli(
            "send",
            "--key",
            info["token key"],
            "--team-id",
            info["team id"],
            "--host",
            "127.0.0.1",
            "--port",
            info["port"],
            "--ca-file",
            info["CA file"],
            "--topic",
            TOPIC,
            "--token",
            "ab" * 32,
            "--alert",
            "Hi",
        )
        assert run.code == 0, run.err
        assert run.out.startswith("accepted")
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=10)
        if proc.stdout is not None:
            proc.stdout.close()
    assert proc.returncode == 0


def test_python_dash_m_version() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "apnskit", "--version"],
        capture_output=True,
        text=True,
        timeout=30,
        env=_env(),
        check=False,
    )
    assert proc.returncode == 0
    assert proc.stdout.strip() == f"apnskit {apnskit.__version__}"


def test_top_level_help_lists_commands_and_exit_codes(cli) -> None:
    run = cli("--help")
    assert run.code == 0
    for text in ("send", "check", "demo", "mock-server", "exit codes:", "apnskit demo"):
        assert text in run.out


@pytest.mark.parametrize("command", ["send", "check", "demo"])
def test_every_command_has_help(cli, command) -> None:
    run = cli(command, "--help")
    assert run.code == 0
    assert "exit codes:" in run.out


def test_main_defaults_to_sys_argv(monkeypatch, capsys) -> None:
    monkeypatch.setattr(sys, "argv", ["apnskit", "demo", "--count", "2"])
    assert main() == 2
    assert "--count" in capsys.readouterr().err


def test_demo_help_shows_percent_signs_once(cli) -> None:
    run = cli("demo", "--help")
    assert run.code == 0
    text = " ".join(run.out.split())
    assert "(1% to an unregistered token and 1% to an unknown one)" in text


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["send"],
        ["broadcast"],
        ["channels"],
        ["channels", "create"],
        ["check"],
        ["demo"],
        ["mock-server"],
    ],
)
def test_no_help_text_shows_a_doubled_percent_sign(cli, argv) -> None:
    run = cli(*argv, "--help")
    assert run.code == 0
    assert "%%" not in run.out
