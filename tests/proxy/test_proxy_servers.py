"""Both clients through real proxies (tinyproxy, dante, pproxy) to the mock APNs server."""

from __future__ import annotations

import contextlib
import logging
import socket
import struct
import threading
import traceback
from collections.abc import Callable, Iterator

import pytest
from proxy_servers import PASSWORD, USER, ProxyServer, free_port
from proxy_support import Client

import apnskit
from apnskit.testing import MockApnsServer

pytestmark = pytest.mark.anyio

TOPIC = "com.example.app"
MANY = 5_000


def note() -> apnskit.Notification:
    return apnskit.Notification("ab" * 32, {"aps": {"alert": "hi"}}, topic=TOPIC)


def connects(proxy: ProxyServer, target: str) -> int:
    """How many tunnels to ``target`` the proxy's own log shows."""
    return proxy.log_text().count(target)


async def _send_many_through(client: Client, apns: MockApnsServer) -> None:
    # 5,000 through each proxy for PushClient and AsyncPushClient on asyncio; trio (the same
    # client on another backend) gets a tenth, to keep the suite's time in bounds.
    many = MANY if client.flavor != "trio" else MANY // 10
    first = await client.send(note())
    assert first.accepted, first.error
    results = await client.send_many(note() for _ in range(many))
    assert len(results) == many
    assert all(r.accepted for r in results), next(r for r in results if not r.accepted)
    assert len(apns.received) == many + 1


# ------------------------------------------------------------------------ send_many of 5,000


async def test_http_connect_with_basic_auth(
    make_client: Callable[..., Client], apns: MockApnsServer, tinyproxy_auth: ProxyServer
) -> None:
    before = connects(tinyproxy_auth, f"CONNECT 127.0.0.1:{apns.port} ")
    client = make_client(proxy=tinyproxy_auth.url(USER, PASSWORD))
    await _send_many_through(client, apns)
    # The proxy's own log proves the connections went through it.
    assert connects(tinyproxy_auth, f"CONNECT 127.0.0.1:{apns.port} ") > before


async def test_http_connect_without_auth(
    make_client: Callable[..., Client], apns: MockApnsServer, tinyproxy_open: ProxyServer
) -> None:
    before = connects(tinyproxy_open, f"CONNECT 127.0.0.1:{apns.port} ")
    client = make_client(proxy=tinyproxy_open.url())
    assert (await client.send(note())).accepted
    assert connects(tinyproxy_open, f"CONNECT 127.0.0.1:{apns.port} ") == before + 1


async def test_socks5_with_username_password(
    make_client: Callable[..., Client], apns: MockApnsServer, pproxy_auth: ProxyServer
) -> None:
    client = make_client(proxy=pproxy_auth.url(USER, PASSWORD))
    await _send_many_through(client, apns)


async def test_socks5_without_auth(
    make_client: Callable[..., Client], apns: MockApnsServer, dante: ProxyServer
) -> None:
    client = make_client(proxy=dante.url())
    await _send_many_through(client, apns)


@pytest.mark.parametrize("scheme", ["socks5", "socks5h"])
async def test_socks5_resolves_names_on_the_proxy(
    make_client: Callable[..., Client], apns: MockApnsServer, pproxy_auth: ProxyServer, scheme: str
) -> None:
    # The name goes to the proxy as is (RFC 1928 ATYP 3): pproxy's log shows the name, not an
    # address we resolved.
    before = connects(pproxy_auth, f"-> localhost:{apns.port}")
    url = pproxy_auth.url(USER, PASSWORD).replace("socks5://", f"{scheme}://")
    client = make_client(host="localhost", proxy=url)
    result = await client.send(note())
    assert result.accepted, result.error
    assert connects(pproxy_auth, f"-> localhost:{apns.port}") == before + 1


async def test_channel_management_goes_through_the_proxy(
    make_client: Callable[..., Client], apns: MockApnsServer, tinyproxy_open: ProxyServer
) -> None:
    # The management client is a second connection: the proxy sees its own CONNECT.
    client = make_client(proxy=tinyproxy_open.url())
    assert (await client.send(note())).accepted
    before = connects(tinyproxy_open, f"CONNECT 127.0.0.1:{apns.port} ")
    channel = await client.create_channel(TOPIC)
    assert channel.channel_id in {c.channel_id for c in apns.channels(TOPIC)}
    assert connects(tinyproxy_open, f"CONNECT 127.0.0.1:{apns.port} ") == before + 1


async def test_certificate_checks_are_unchanged_inside_the_tunnel(
    make_client: Callable[..., Client], tinyproxy_open: ProxyServer
) -> None:
    # Without the mock's CA the TLS session through the tunnel must fail verification.
    client = make_client(proxy=tinyproxy_open.url(), ca_file=None)
    result = await client.send(note())
    assert isinstance(result.error, apnskit.ConnectError)
    assert not isinstance(result.error, apnskit.ProxyError)
    message = str(result.error)
    assert "did not verify" in message
    assert f"through proxy {tinyproxy_open.url()}" in message


# ------------------------------------------------------------------------ what proxies say


WRONG = "Wrong-Pass.99"


@pytest.mark.parametrize(
    ("which", "user", "password", "said"),
    [
        ("tinyproxy_auth", USER, WRONG, "answered 401 Unauthorized (the proxy refused the user"),
        ("tinyproxy_auth", None, None, "answered 407 Proxy Authentication Required"),
        ("pproxy_auth", USER, WRONG, "it refused the user name and password"),
        ("pproxy_auth", None, None, "does it want a user name and password?"),
    ],
)
async def test_wrong_or_missing_credentials(
    make_client: Callable[..., Client],
    request: pytest.FixtureRequest,
    caplog: pytest.LogCaptureFixture,
    which: str,
    user: str | None,
    password: str | None,
    said: str,
) -> None:
    proxy: ProxyServer = request.getfixturevalue(which)
    events: list[object] = []
    caplog.set_level(logging.DEBUG)
    client = make_client(proxy=proxy.url(user, password), event_hook=events.append)
    result = await client.send(note())
    error = result.error
    assert isinstance(error, apnskit.ProxyError)
    assert result.status is None
    assert said in str(error)
    assert error.proxy == proxy.url()
    assert str(error).startswith(f"proxy {proxy.url()} ")
    _assert_no_secret(WRONG, client, result, events, caplog)


async def test_credentials_never_shown(
    make_client: Callable[..., Client],
    tinyproxy_auth: ProxyServer,
    caplog: pytest.LogCaptureFixture,
    blocked_port: int,
) -> None:
    # A good password on a failing connection (the port is not allowed): still never shown.
    events: list[object] = []
    caplog.set_level(logging.DEBUG)
    client = make_client(
        port=blocked_port, proxy=tinyproxy_auth.url(USER, PASSWORD), event_hook=events.append
    )
    result = await client.send(note())
    assert isinstance(result.error, apnskit.ProxyError)
    assert "403" in str(result.error)
    assert repr(client.inner).endswith(f"via {tinyproxy_auth.url()}>")
    _assert_no_secret(PASSWORD, client, result, events, caplog)


def _assert_no_secret(
    secret: str,
    client: Client,
    result: apnskit.PushResult,
    events: list[object],
    caplog: pytest.LogCaptureFixture,
) -> None:
    assert events  # the hook saw the failed connection
    assert result.error is not None
    shown = [
        repr(client.inner),
        str(client.inner),
        repr(result),
        str(result.error),
        repr(result.error),
        "".join(traceback.format_exception(result.error)),
        caplog.text,
        *(repr(e) for e in events),
    ]
    with pytest.raises(apnskit.PushRejectedError) as caught:
        result.raise_for_status()
    shown.append(str(caught.value))
    for text in shown:
        assert secret not in text
        assert USER not in text


@pytest.mark.parametrize(
    ("which", "said"),
    [
        ("tinyproxy_open", "refused CONNECT 127.0.0.1:{port}: 403 Access violation"),
        ("dante", "could not connect to 127.0.0.1:{port}: SOCKS5 reply 2 "),
    ],
)
async def test_proxy_refuses_the_destination(
    make_client: Callable[..., Client],
    request: pytest.FixtureRequest,
    blocked_port: int,
    which: str,
    said: str,
) -> None:
    proxy: ProxyServer = request.getfixturevalue(which)
    client = make_client(port=blocked_port, proxy=proxy.url())
    result = await client.send(note())
    assert isinstance(result.error, apnskit.ProxyError)
    assert said.format(port=blocked_port) in str(result.error)


async def test_socks5_reply_connection_refused(
    make_client: Callable[..., Client], dante: ProxyServer
) -> None:
    port = free_port()  # nothing listens there: dante's connect is refused
    result = await (make_client(port=port, proxy=dante.url())).send(note())
    assert isinstance(result.error, apnskit.ProxyError)
    assert "SOCKS5 reply 5 (connection refused)" in str(result.error)


@pytest.mark.parametrize("scheme", ["http", "socks5"])
async def test_proxy_not_listening(make_client: Callable[..., Client], scheme: str) -> None:
    port = free_port()
    result = await (make_client(proxy=f"{scheme}://{USER}:{PASSWORD}@127.0.0.1:{port}")).send(
        note()
    )
    assert isinstance(result.error, apnskit.ProxyError)
    assert str(result.error) == (
        f"cannot reach proxy {scheme}://127.0.0.1:{port}: connection to 127.0.0.1:{port} refused"
    )


@pytest.fixture
def silent_proxy() -> Iterator[int]:
    """A port that accepts TCP connections and then never says a word."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)
        yield int(listener.getsockname()[1])


@pytest.mark.parametrize("scheme", ["http", "socks5"])
async def test_a_silent_proxy_times_out_within_timeout_connect(
    make_client: Callable[..., Client], silent_proxy: int, scheme: str
) -> None:
    # Timeout.connect bounds the proxy handshake: the result is a connect timeout, long
    # before the notification's 60 s deadline would end it.
    client = make_client(
        proxy=f"{scheme}://127.0.0.1:{silent_proxy}",
        timeout=apnskit.Timeout(connect=0.3, deadline=60.0),
        retry=apnskit.RetryPolicy(max_attempts=1),
    )
    result = await client.send(note())
    assert isinstance(result.error, apnskit.ConnectTimeoutError)
    assert f"{scheme}://127.0.0.1:{silent_proxy}" in str(result.error)


@pytest.fixture
def resetting_proxy() -> Iterator[int]:
    """A port that reads the client's first bytes and answers with a TCP reset."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    listener.settimeout(0.2)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except (TimeoutError, OSError):
                continue
            with conn:
                conn.settimeout(5)
                with contextlib.suppress(OSError):
                    conn.recv(4096)
                # SO_LINGER with a zero timeout: close() sends RST instead of FIN.
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield int(listener.getsockname()[1])
    stop.set()
    thread.join(5)
    listener.close()


@pytest.mark.parametrize("scheme", ["http", "socks5"])
async def test_a_proxy_resetting_the_connection(
    make_client: Callable[..., Client], resetting_proxy: int, scheme: str
) -> None:
    client = make_client(proxy=f"{scheme}://{USER}:{PASSWORD}@127.0.0.1:{resetting_proxy}")
    result = await client.send(note())
    assert isinstance(result.error, apnskit.ProxyError)
    assert str(result.error).startswith(
        f"proxy {scheme}://127.0.0.1:{resetting_proxy} broke the connection while opening a "
        "tunnel to 127.0.0.1:"
    )
    assert PASSWORD not in str(result.error)


# ------------------------------------------------------------------------ the environment


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in ("HTTPS_PROXY", "ALL_PROXY", "NO_PROXY", "HTTP_PROXY"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)
    return monkeypatch


async def test_https_proxy_from_the_environment(
    make_client: Callable[..., Client],
    apns: MockApnsServer,
    tinyproxy_auth: ProxyServer,
    env: pytest.MonkeyPatch,
) -> None:
    env.setenv("HTTPS_PROXY", tinyproxy_auth.url(USER, PASSWORD))
    before = connects(tinyproxy_auth, f"CONNECT 127.0.0.1:{apns.port} ")
    client = make_client()
    assert repr(client.inner).endswith(f"via {tinyproxy_auth.url()}>")
    assert (await client.send(note())).accepted
    assert connects(tinyproxy_auth, f"CONNECT 127.0.0.1:{apns.port} ") == before + 1


async def test_all_proxy_socks5_from_the_environment(
    make_client: Callable[..., Client], dante: ProxyServer, env: pytest.MonkeyPatch
) -> None:
    env.setenv("all_proxy", dante.url())
    client = make_client()
    assert repr(client.inner).endswith(f"via {dante.url()}>")
    assert (await client.send(note())).accepted


async def test_environment_proxy_that_is_down_fails_naming_the_variable_s_proxy(
    make_client: Callable[..., Client], env: pytest.MonkeyPatch
) -> None:
    port = free_port()
    env.setenv("HTTPS_PROXY", f"127.0.0.1:{port}")  # no scheme: http is meant
    result = await make_client().send(note())
    assert isinstance(result.error, apnskit.ProxyError)
    assert result.error.proxy == f"http://127.0.0.1:{port}"


@pytest.mark.parametrize(
    "bypass",
    [
        {"NO_PROXY": "127.0.0.1"},
        {"no_proxy": "example.com, 127.0.0.0/8"},
        {"NO_PROXY": "*"},
        "trust_env=False",
        "explicit proxy",
    ],
)
async def test_environment_proxy_bypassed(
    make_client: Callable[..., Client],
    env: pytest.MonkeyPatch,
    dante: ProxyServer,
    bypass: object,
) -> None:
    env.setenv("HTTPS_PROXY", f"http://127.0.0.1:{free_port()}")  # down: using it would fail
    kwargs: dict[str, object] = {}
    if isinstance(bypass, dict):
        for name, value in bypass.items():
            env.setenv(name, value)
    elif bypass == "trust_env=False":
        kwargs["trust_env"] = False
    else:
        kwargs["proxy"] = dante.url()  # an explicit proxy wins over the environment
    client = make_client(**kwargs)
    result = await client.send(note())
    assert result.accepted, result.error


async def test_no_proxy_is_checked_per_host_push_and_management(
    make_client: Callable[..., Client], apns: MockApnsServer, env: pytest.MonkeyPatch
) -> None:
    # The management host (here "localhost", the same mock server) is in NO_PROXY, the push
    # host (127.0.0.1) is not: channel requests go direct, notifications to the dead proxy.
    env.setenv("HTTPS_PROXY", f"http://127.0.0.1:{free_port()}")
    env.setenv("NO_PROXY", "localhost")
    client = make_client(management_host="localhost", management_port=apns.port)
    channel = await client.create_channel(TOPIC)
    assert channel.channel_id
    result = await client.send(note())
    assert isinstance(result.error, apnskit.ProxyError)
