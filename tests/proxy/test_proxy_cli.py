"""``apnskit send --proxy`` and ``apnskit check --connect --proxy``, run as subprocesses."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys

import pytest
from proxy_servers import PASSWORD, USER, ProxyServer

from apnskit.testing import MockApnsServer, TokenKey

TOPIC = "com.example.app"
WRONG = "Wrong-Pass.99"


@pytest.fixture(scope="module")
def key(_mock: MockApnsServer) -> TokenKey:
    return _mock.new_token_key()


def apnskit_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")}
    return subprocess.run(
        [sys.executable, "-m", "apnskit", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**base, **(env or {})},
        check=False,
    )


def where(apns: MockApnsServer) -> list[str]:
    return ["--host", apns.host, "--port", str(apns.port), "--ca-file", str(apns.ca_file)]


@pytest.fixture
def send_args(apns: MockApnsServer, key: TokenKey) -> list[str]:
    return [
        "send",
        "--key",
        str(key.path),
        "--team-id",
        key.team_id,
        *where(apns),
        "--topic",
        TOPIC,
        "--token",
        secrets.token_hex(32),
        "--alert",
        "through the proxy",
    ]


@pytest.mark.parametrize("which", ["tinyproxy_auth", "pproxy_auth"])
def test_send_through_a_proxy(
    request: pytest.FixtureRequest, apns: MockApnsServer, send_args: list[str], which: str
) -> None:
    proxy: ProxyServer = request.getfixturevalue(which)
    proc = apnskit_cli(*send_args, "--proxy", proxy.url(USER, PASSWORD))
    assert proc.returncode == 0, proc.stderr
    assert len(apns.received) == 1
    assert apns.received[0].status == 200
    assert PASSWORD not in proc.stdout + proc.stderr


def test_send_through_the_environment_s_proxy(
    apns: MockApnsServer, send_args: list[str], tinyproxy_auth: ProxyServer
) -> None:
    target = f"CONNECT 127.0.0.1:{apns.port} "
    before = tinyproxy_auth.log_text().count(target)
    proc = apnskit_cli(*send_args, env={"HTTPS_PROXY": tinyproxy_auth.url(USER, PASSWORD)})
    assert proc.returncode == 0, proc.stderr
    assert tinyproxy_auth.log_text().count(target) == before + 1


def test_send_with_wrong_proxy_password_exits_3(
    apns: MockApnsServer, send_args: list[str], tinyproxy_auth: ProxyServer
) -> None:
    proc = apnskit_cli(*send_args, "--proxy", tinyproxy_auth.url(USER, WRONG))
    assert proc.returncode == 3
    assert f"proxy {tinyproxy_auth.url()} answered 401 Unauthorized" in proc.stdout + proc.stderr
    assert WRONG not in proc.stdout + proc.stderr
    assert apns.received == []


def test_send_with_a_bad_proxy_url_exits_2(send_args: list[str]) -> None:
    proc = apnskit_cli(*send_args, "--proxy", f"ftp://{USER}:{WRONG}@127.0.0.1:1")
    assert proc.returncode == 2
    assert "--proxy: proxy URL has 'ftp'" in proc.stderr
    assert WRONG not in proc.stdout + proc.stderr


@pytest.mark.parametrize("which", ["tinyproxy_auth", "pproxy_auth", "dante"])
def test_check_connect_through_a_proxy(
    request: pytest.FixtureRequest, apns: MockApnsServer, which: str
) -> None:
    proxy: ProxyServer = request.getfixturevalue(which)
    url = proxy.url() if which == "dante" else proxy.url(USER, PASSWORD)
    proc = apnskit_cli("check", "--connect", *where(apns), "--proxy", url)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0] == f"connecting to 127.0.0.1:{apns.port}"
    assert lines[1].startswith(f"  proxy        {proxy.url()}: tunnel open in ")
    assert any(line.startswith("  TLS          TLSv1.") for line in lines)
    assert "  HTTP/2       the server sent its SETTINGS: ready for notifications" in lines
    assert lines[-1] == "ok"
    assert PASSWORD not in proc.stdout + proc.stderr


def test_check_connect_through_a_refusing_proxy_exits_3(
    apns: MockApnsServer, tinyproxy_auth: ProxyServer
) -> None:
    proc = apnskit_cli("check", "--connect", *where(apns), "--proxy", tinyproxy_auth.url())
    assert proc.returncode == 3
    assert proc.stderr.strip() == (
        f"apnskit check: proxy: proxy {tinyproxy_auth.url()} answered 407 Proxy Authentication "
        "Required (it wants credentials: http://user:password@host:port)"
    )


def test_check_connect_honours_no_proxy(apns: MockApnsServer) -> None:
    # HTTPS_PROXY points nowhere; NO_PROXY lists the host, so check connects directly.
    env = {"HTTPS_PROXY": "http://127.0.0.1:9", "NO_PROXY": "127.0.0.1"}
    proc = apnskit_cli("check", "--connect", *where(apns), env=env)
    assert proc.returncode == 0, proc.stderr
    assert "  TCP          connected in" in proc.stdout
    assert "proxy" not in proc.stdout


def test_channels_and_broadcast_through_a_proxy(
    apns: MockApnsServer, key: TokenKey, tinyproxy_open: ProxyServer
) -> None:
    auth = ["--key", str(key.path), "--team-id", key.team_id, *where(apns)]
    proxy = ["--proxy", tinyproxy_open.url()]
    target = f"CONNECT 127.0.0.1:{apns.port} "
    before = tinyproxy_open.log_text().count(target)
    created = apnskit_cli("channels", "create", *auth, *proxy, "--bundle-id", TOPIC)
    assert created.returncode == 0, created.stderr
    channel = created.stdout.strip()
    assert channel in {c.channel_id for c in apns.channels(TOPIC)}
    sent = apnskit_cli(
        "broadcast",
        *auth,
        *proxy,
        "--bundle-id",
        TOPIC,
        "--channel",
        channel,
        "--content-state",
        '{"score": "1 - 0"}',
    )
    assert sent.returncode == 0, sent.stderr
    assert sent.stdout.split()[0] == "accepted"
    # One tunnel per command: the proxy's log shows both.
    assert tinyproxy_open.log_text().count(target) == before + 2
