"""Proxy URLs, the environment (HTTPS_PROXY, ALL_PROXY, NO_PROXY) and the clients' options."""

from __future__ import annotations

import sys
from collections.abc import Iterator

import pytest
from proxy_support import FAST_RETRY

import apnskit
from apnskit._transports.proxy import Proxy, choose_proxy, parse_proxy
from apnskit.testing import FakeTransport, MockApnsServer

HOST = "api.push.apple.com"


# ------------------------------------------------------------------------ URLs


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("http://proxy.corp:3128", Proxy("http", "proxy.corp", 3128)),
        ("HTTP://Proxy.Corp:3128/", Proxy("http", "proxy.corp", 3128)),
        ("http://proxy.corp", Proxy("http", "proxy.corp", 80)),
        ("socks5://10.0.0.1", Proxy("socks5", "10.0.0.1", 1080)),
        ("socks5h://[::1]:1081", Proxy("socks5h", "::1", 1081)),
        # Percent-encoded credentials are decoded (':' and '@' cannot appear raw).
        ("http://al%40ce:p%3Ass%40w@h:1", Proxy("http", "h", 1, "al@ce", "p:ss@w")),
        ("socks5://bob@h:2", Proxy("socks5", "h", 2, "bob", None)),
        ("http://bob:@h:2", Proxy("http", "h", 2, "bob", "")),
    ],
)
def test_parse_proxy(url: str, expected: Proxy) -> None:
    proxy = parse_proxy(url)
    assert proxy == expected
    assert (proxy.username, proxy.password) == (expected.username, expected.password)


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("https://user:pw123@h:1", "proxy: proxy URL has 'https': TLS to the proxy itself"),
        ("socks4://h:1", "proxy: proxy URL has 'socks4': SOCKS4 is not supported"),
        ("ftp://h:1", "proxy: proxy URL has 'ftp': use http://, socks5:// or socks5h://"),
        ("proxy.corp:3128", "proxy: proxy URL has 'proxy.corp'"),
        ("h:3128", "proxy: proxy URL has 'h'"),
        ("//h:3128", "proxy: proxy URL has no scheme"),
        ("http://user:pw123@:3128", "proxy: proxy URL has no host"),
        ("http://user:pw123@h:99999", "proxy: not a usable proxy URL (the port is not a number"),
        ("http://user:pw123@h:port", "proxy: not a usable proxy URL (the port is not a number"),
        ("http://user:pw123@h:0", "proxy: the port is not a number in 1..65535"),
        ("http://user:pw123@h:1/path", "proxy: a proxy URL is scheme://[user:password@]host:port"),
        ("http://user:pw123@h:1?x=1", "proxy: a proxy URL is scheme://[user:password@]host:port"),
        ("http://us%3Aer:pw123@h:1", "proxy: the proxy user name cannot contain ':'"),
        (f"socks5://u:{'p' * 256}@h:1", "proxy: SOCKS5 user names and passwords are at most 255"),
        ("", "proxy: proxy URL has no scheme"),
    ],
)
def test_bad_proxy_urls(url: str, message: str) -> None:
    with pytest.raises(apnskit.ConfigurationError) as caught:
        parse_proxy(url)
    assert str(caught.value).startswith(message)
    assert "pw123" not in str(caught.value)  # credentials are never repeated


def test_proxy_repr_and_str_hide_credentials() -> None:
    proxy = parse_proxy("socks5h://alice:pw123@[2001:db8::1]:1080")
    for text in (repr(proxy), str(proxy), proxy.display):
        assert "alice" not in text
        assert "pw123" not in text
    assert proxy.display == "socks5h://[2001:db8::1]:1080"
    assert repr(proxy) == "Proxy('socks5h://[2001:db8::1]:1080')"


def test_socks_without_socksio_says_which_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "socksio", None)  # import socksio now raises ImportError
    with pytest.raises(apnskit.ConfigurationError) as caught:
        parse_proxy("socks5://h:1080")
    assert str(caught.value) == (
        "proxy: SOCKS proxies need the socksio package: pip install 'apnskit[socks]'"
    )
    assert parse_proxy("http://h:3128").kind == "http"  # HTTP CONNECT needs no extra


# ------------------------------------------------------------------------ the environment


def choose(env: dict[str, str], host: str = HOST, port: int = 443) -> str | None:
    proxy = choose_proxy(None, True, host, port, env)
    return None if proxy is None else proxy.display


def test_https_proxy_then_all_proxy() -> None:
    assert choose({}) is None
    assert choose({"HTTPS_PROXY": "http://a:1"}) == "http://a:1"
    assert choose({"ALL_PROXY": "socks5://b:2"}) == "socks5://b:2"
    assert choose({"HTTPS_PROXY": "http://a:1", "ALL_PROXY": "socks5://b:2"}) == "http://a:1"
    # HTTP_PROXY is for plain http:// URLs; APNs is https (as in httpx, curl).
    assert choose({"HTTP_PROXY": "http://c:3"}) is None


def test_lowercase_wins_and_empty_means_unset() -> None:
    assert choose({"https_proxy": "http://low:1", "HTTPS_PROXY": "http://up:2"}) == "http://low:1"
    assert choose({"https_proxy": "", "HTTPS_PROXY": "http://up:2"}) is None
    assert choose({"HTTPS_PROXY": "  "}) is None


def test_environment_value_without_scheme_is_http() -> None:
    assert choose({"HTTPS_PROXY": "proxy.corp:3128"}) == "http://proxy.corp:3128"


def test_bad_environment_value_names_the_variable() -> None:
    with pytest.raises(apnskit.ConfigurationError) as caught:
        choose({"https_proxy": "ftp://user:pw123@h:1"})
    assert str(caught.value).startswith("$https_proxy: proxy URL has 'ftp'")
    assert "pw123" not in str(caught.value)
    with pytest.raises(apnskit.ConfigurationError, match=r"^\$ALL_PROXY: "):
        choose({"ALL_PROXY": "socks4://h:1"})


@pytest.mark.parametrize(
    ("no_proxy", "host", "port", "bypassed"),
    [
        ("*", HOST, 443, True),
        ("apple.com", HOST, 443, True),  # a domain covers its subdomains
        (".apple.com", HOST, 443, True),
        ("*.apple.com", HOST, 443, True),
        ("push.apple.com", HOST, 443, True),
        ("api.push.apple.com", HOST, 443, True),
        ("API.Push.Apple.com.", HOST, 443, True),
        ("le.com", HOST, 443, False),  # not a suffix at a dot
        ("xapple.com", "apple.com", 443, False),
        ("example.com, apple.com", HOST, 443, True),
        ("example.com,,", HOST, 443, False),
        ("apple.com:443", HOST, 443, True),
        ("apple.com:2197", HOST, 443, False),
        ("127.0.0.1", "127.0.0.1", 443, True),
        ("127.0.0.0/8", "127.0.0.2", 443, True),
        ("10.0.0.0/8", "127.0.0.1", 443, False),
        ("::1", "::1", 443, True),
        ("[::1]:443", "::1", 443, True),
        ("[::1]:80", "::1", 443, False),
        ("fd00::/8", "fd12::1", 443, True),
        ("localhost", "localhost", 443, True),
        ("localhost", "127.0.0.1", 443, False),  # names are not resolved to compare
    ],
)
def test_no_proxy(no_proxy: str, host: str, port: int, bypassed: bool) -> None:
    env = {"HTTPS_PROXY": "http://p:1", "NO_PROXY": no_proxy}
    assert (choose(env, host, port) is None) is bypassed


def test_no_proxy_lowercase_spelling() -> None:
    assert choose({"HTTPS_PROXY": "http://p:1", "no_proxy": "apple.com"}) is None


def test_explicit_proxy_wins_and_trust_env_false_ignores_the_environment() -> None:
    env = {"HTTPS_PROXY": "http://env:1", "NO_PROXY": "*"}
    chosen = choose_proxy("socks5://explicit:2", True, HOST, 443, env)
    assert chosen is not None
    assert chosen.display == "socks5://explicit:2"  # NO_PROXY is for the environment's proxy
    assert choose_proxy(None, False, HOST, 443, {"HTTPS_PROXY": "http://env:1"}) is None


# ------------------------------------------------------------------------ client options


@pytest.fixture(params=[apnskit.PushClient, apnskit.AsyncPushClient])
def client_class(request: pytest.FixtureRequest) -> type[apnskit.PushClient]:
    return request.param  # type: ignore[no-any-return]


def test_bad_proxy_option_fails_at_construction(
    client_class: type[apnskit.PushClient], mock: MockApnsServer
) -> None:
    with pytest.raises(apnskit.ConfigurationError, match=r"^proxy: proxy URL has 'https'"):
        client_class(mock.apns_token_credentials(), environment="sandbox", proxy="https://h:1")
    with pytest.raises(apnskit.ConfigurationError, match=r"^proxy: expected a URL string"):
        client_class(mock.apns_token_credentials(), environment="sandbox", proxy=3128)  # type: ignore[arg-type]
    with pytest.raises(apnskit.ConfigurationError, match=r"^trust_env: must be True or False"):
        client_class(mock.apns_token_credentials(), environment="sandbox", trust_env="no")  # type: ignore[arg-type]


def test_bad_environment_proxy_fails_at_construction(
    client_class: type[apnskit.PushClient],
    mock: MockApnsServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("https_proxy", raising=False)
    monkeypatch.setenv("HTTPS_PROXY", "socks4://h:1")
    with pytest.raises(apnskit.ConfigurationError, match=r"^\$HTTPS_PROXY: "):
        client_class(mock.apns_token_credentials(), environment="sandbox")
    _dispose(client_class(mock.apns_token_credentials(), environment="sandbox", trust_env=False))


def test_proxy_and_custom_transport_exclude_each_other(
    client_class: type[apnskit.PushClient], mock: MockApnsServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(apnskit.ConfigurationError, match=r"^proxy: a custom transport"):
        client_class(
            mock.apns_token_credentials(),
            environment="sandbox",
            transport=FakeTransport(),
            proxy="http://h:1",
        )
    # The environment's proxy is not forced on a custom transport.
    monkeypatch.setenv("HTTPS_PROXY", "http://h:1")
    client = client_class(
        mock.apns_token_credentials(), environment="sandbox", transport=FakeTransport()
    )
    assert " via " not in repr(client)
    _dispose(client)


def test_repr_names_the_proxy_without_credentials(
    client_class: type[apnskit.PushClient], mock: MockApnsServer
) -> None:
    client = client_class(
        mock.apns_token_credentials(),
        environment="sandbox",
        proxy="http://alice:pw123@proxy.corp:3128",
        retry=FAST_RETRY,
    )
    assert repr(client) == "<{} sandbox api.sandbox.push.apple.com:443 via {}>".format(
        client_class.__name__, "http://proxy.corp:3128"
    )
    _dispose(client)


def test_proxy_error_survives_pickling() -> None:
    import pickle

    error = apnskit.ProxyError("proxy http://h:1 answered 407", proxy="http://h:1")
    copy = pickle.loads(pickle.dumps(error))
    assert isinstance(copy, apnskit.ProxyError)
    assert isinstance(copy, apnskit.ConnectError)
    assert (str(copy), copy.proxy) == (str(error), error.proxy)


def _dispose(client: object) -> None:
    # A PushClient holds its poller's sockets from the start; an AsyncPushClient that never
    # connected holds nothing (and its close() is a coroutine).
    if isinstance(client, apnskit.PushClient):
        client.close()


@pytest.fixture(scope="module")
def mock() -> Iterator[MockApnsServer]:
    with MockApnsServer() as server:
        yield server
