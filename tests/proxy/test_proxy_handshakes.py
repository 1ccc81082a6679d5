"""The two proxy handshakes, byte for byte, against answers real servers rarely give.

The handshakes are generators (sans-I/O): these tests play the proxy's side with canned bytes,
to reach every rejection path; test_proxy_servers.py runs them against real proxies.
"""

from __future__ import annotations

import base64
import socket

import pytest

import apnskit
from apnskit._transports.proxy import _handshake, parse_proxy


def run(
    url: str, answers: list[bytes], host: str = "api.push.apple.com", port: int = 443
) -> list[bytes]:
    """Drive the handshake: each read gets the next answer (cut to the size asked for, the
    rest kept for the next read); returns what the client wrote."""
    steps = _handshake(parse_proxy(url), host, port)
    pending = list(answers)
    written: list[bytes] = []
    reply = None
    while True:
        try:
            step = steps.send(reply)  # type: ignore[arg-type]
        except StopIteration:
            return written
        if isinstance(step, bytes):
            written.append(step)
            reply = b""
        else:
            chunk = pending.pop(0) if pending else b""
            reply, rest = chunk[:step], chunk[step:]
            if rest:
                pending.insert(0, rest)


# ------------------------------------------------------------------------ HTTP CONNECT


def test_connect_request_with_basic_credentials() -> None:
    written = run("http://al%40ce:p%3Ass@h:1", [b"HTTP/1.1 200 Connection established\r\n\r\n"])
    token = base64.b64encode(b"al@ce:p:ss").decode()
    assert written == [
        b"CONNECT api.push.apple.com:443 HTTP/1.1\r\n"
        b"Host: api.push.apple.com:443\r\n"
        b"Proxy-Authorization: Basic " + token.encode() + b"\r\n\r\n"
    ]


def test_connect_request_to_an_ipv6_address_uses_brackets() -> None:
    written = run("http://h:1", [b"HTTP/1.0 200 OK\r\n\r\n"], host="2001:db8::1", port=2197)
    assert written[0].startswith(
        b"CONNECT [2001:db8::1]:2197 HTTP/1.1\r\nHost: [2001:db8::1]:2197\r\n"
    )
    assert b"Proxy-Authorization" not in written[0]


def test_answer_in_pieces_and_any_2xx() -> None:
    pieces = [b"HTTP/1.1 2", b"04 No Content\r\nX-A: 1\r", b"\n", b"\r\n"]
    assert len(run("http://h:1", pieces)) == 1


@pytest.mark.parametrize(
    ("answers", "message"),
    [
        (
            [b"HTTP/1.1 407 Proxy Authentication Required\r\n\r\n"],
            "proxy http://h:1 answered 407 Proxy Authentication Required (it wants credentials: http://user:password@host:port)",
        ),
        (
            [b"HTTP/1.1 403 Forbidden\r\nContent-Length: 5\r\n\r\nnope!"],
            "proxy http://h:1 refused CONNECT api.push.apple.com:443: 403 Forbidden",
        ),
        (
            [b"HTTP/1.1 502 Bad\x00Gateway\r\n\r\n"],
            "refused CONNECT api.push.apple.com:443: 502 Bad?Gateway",
        ),
        (
            [b"HTTP/1.1 200 OK\r\n\r\n\x16\x03"],
            "proxy http://h:1 sent data after '200 OK' before the TLS handshake",
        ),
        (
            [b"\x05\x00"],
            "proxy http://h:1 closed the connection with an incomplete answer to CONNECT",
        ),
        (
            [],
            "proxy http://h:1 closed the connection with no answer to CONNECT "
            "api.push.apple.com:443",
        ),
        (
            [b"SSH-2.0-OpenSSH\r\n\r\n"],
            "proxy http://h:1 did not answer like an HTTP proxy (first line "
            "'SSH-2.0-OpenSSH'); is it a SOCKS proxy?",
        ),
        ([b"HTTP/1.1 20 OK\r\n\r\n"], "did not answer like an HTTP proxy"),
        (
            [b"HTTP/1.1 200" + b"x" * 70_000],
            "proxy http://h:1 answered CONNECT with more than 64 KiB of headers",
        ),
    ],
)
def test_http_rejections(answers: list[bytes], message: str) -> None:
    with pytest.raises(apnskit.ProxyError) as caught:
        run("http://h:1", answers)
    assert message in str(caught.value)
    assert caught.value.proxy == "http://h:1"


def test_407_with_credentials_blames_them_without_showing_them() -> None:
    with pytest.raises(apnskit.ProxyError) as caught:
        run("http://alice:pw123@h:1", [b"HTTP/1.1 407 Proxy Authentication Required\r\n\r\n"])
    assert str(caught.value) == (
        "proxy http://h:1 answered 407 Proxy Authentication Required "
        "(the proxy refused the user name and password)"
    )


# ------------------------------------------------------------------------ SOCKS5

OK_IPV4 = b"\x05\x00\x00\x01\x7f\x00\x00\x01\x04\x38"
OK_NAME = b"\x05\x00\x00\x03\x09localhost\x04\x38"
OK_IPV6 = b"\x05\x00\x00\x04" + socket.inet_pton(socket.AF_INET6, "::1") + b"\x04\x38"


@pytest.mark.parametrize("scheme", ["socks5", "socks5h"])
def test_socks5_sends_the_name_for_remote_dns(scheme: str) -> None:
    written = run(f"{scheme}://h:1", [b"\x05\x00", OK_IPV4])
    assert written == [
        b"\x05\x01\x00",  # one method: no authentication
        # RFC 1928 section 4: CONNECT, ATYP 3 (a domain name, resolved by the proxy).
        b"\x05\x01\x00\x03\x12api.push.apple.com\x01\xbb",
    ]


@pytest.mark.parametrize("bound", [OK_IPV4, OK_NAME, OK_IPV6])
def test_socks5_reads_the_reply_to_its_exact_length(bound: bytes) -> None:
    # The bound address has three sizes; the handshake asks for exactly what is left, so it
    # never reads into the TLS bytes that follow.
    steps = _handshake(parse_proxy("socks5://h:1"), "localhost", 1080)
    assert next(steps) == b"\x05\x01\x00"
    assert steps.send(b"") == 2
    assert isinstance(steps.send(b"\x05\x00"), bytes)  # the CONNECT request
    size = steps.send(b"")
    assert size == 5
    rest = steps.send(bound[:5])
    assert rest == len(bound) - 5
    with pytest.raises(StopIteration):
        steps.send(bound[5:])


def test_socks5_username_password() -> None:
    written = run("socks5://alice:pw123@h:1", [b"\x05\x02", b"\x01\x00", OK_IPV4])
    assert written[0] == b"\x05\x02\x00\x02"  # offers no-auth and username/password
    assert written[1] == b"\x01\x05alice\x05pw123"  # RFC 1929
    assert written[2].startswith(b"\x05\x01\x00\x03")


@pytest.mark.parametrize(
    ("code", "name"),
    [
        (1, "general SOCKS server failure"),
        (2, "connection not allowed by ruleset"),
        (3, "network unreachable"),
        (4, "host unreachable"),
        (5, "connection refused"),
        (6, "TTL expired"),
        (7, "command not supported"),
        (8, "address type not supported"),
        (9, "unassigned code"),
    ],
)
def test_socks5_reply_codes(code: int, name: str) -> None:
    reply = b"\x05" + bytes([code]) + OK_IPV4[2:]
    with pytest.raises(apnskit.ProxyError) as caught:
        run("socks5://h:1", [b"\x05\x00", reply])
    assert str(caught.value) == (
        f"proxy socks5://h:1 could not connect to api.push.apple.com:443: "
        f"SOCKS5 reply {code} ({name})"
    )


@pytest.mark.parametrize(
    ("url", "answers", "message"),
    [
        (
            "socks5://alice:pw123@h:1",
            [b"\x05\x02", b"\x01\x01"],
            "proxy socks5://h:1 refused the user name and password (SOCKS5 authentication failed)",
        ),
        (
            "socks5://h:1",
            [b"\x05\xff"],
            "accepts none of our SOCKS5 authentication methods (no authentication, user name "
            "and password); does it want credentials?",
        ),
        (
            "socks5://h:1",
            [b"\x05\x02"],
            "proxy socks5://h:1 wants a user name and password (socks5://user:password@host:port)",
        ),
        ("socks5://h:1", [b"\x05\x01"], "accepts none of our SOCKS5 authentication methods"),
        (
            "socks5://h:1",
            [b"HTTP/1.1 400 Bad Request\r\n\r\n"],
            "proxy socks5://h:1 did not answer like a SOCKS5 proxy",
        ),
        (
            "socks5://h:1",
            [b"\x05\x00", b"\x04\x00\x00\x01" + b"\x00" * 6],
            "did not answer like a SOCKS5 proxy",
        ),
        (
            "socks5://h:1",
            [b"\x05\x00", b"\x05\x00\x00\x07\x00"],
            "did not answer like a SOCKS5 proxy",
        ),
        (
            "socks5://h:1",
            [],
            "proxy socks5://h:1 closed the connection during the SOCKS5 greeting "
            "(does it want a user name and password?)",
        ),
        (
            "socks5://alice:pw123@h:1",
            [b"\x05\x02"],
            "closed the connection during the SOCKS5 authentication: it refused the user "
            "name and password",
        ),
        (
            "socks5://h:1",
            [b"\x05\x00", b"\x05\x00\x00"],
            "closed the connection during the SOCKS5 reply",
        ),
    ],
)
def test_socks5_rejections(url: str, answers: list[bytes], message: str) -> None:
    with pytest.raises(apnskit.ProxyError) as caught:
        run(url, answers)
    assert message in str(caught.value)
    assert "pw123" not in str(caught.value)
    assert "alice" not in str(caught.value)
