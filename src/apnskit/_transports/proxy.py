"""Proxies: an HTTP CONNECT or SOCKS5 tunnel under the TLS session to APNs.

Theory of operation
-------------------
A proxy only changes how the TCP byte stream to APNs is obtained. The transports ask this
module for a tunnel (:func:`open_tunnel` for the socket transport, :func:`open_tunnel_async`
for the anyio one) and run the very same TLS handshake inside it: same ``SSLContext``, same
``server_hostname``, so the APNs certificate is checked end to end exactly as without a proxy.
The proxy sees the host name and port and nothing else.

The two handshakes are written once, as generators that yield the bytes to write or the
number of bytes they are ready to read and receive what was read (the same sans-I/O idea as
the core); a sync and an async driver run them over a socket or an anyio stream. They never
read past the end of the proxy's answer (SOCKS5 replies are read to their exact length), so
the first byte after it belongs to TLS.

- ``http://`` (RFC 9110 section 9.3.6): ``CONNECT host:port``, Basic credentials (RFC 7617)
  in ``Proxy-Authorization`` when the URL has them; any 2xx opens the tunnel.
- ``socks5://`` and ``socks5h://`` (RFC 1928, username/password per RFC 1929): the APNs host
  name is sent to the proxy, which resolves it (remote DNS) in both spellings: behind a proxy
  the local resolver often cannot see Apple's hosts. The messages are packed and parsed by
  socksio (the ``socks`` extra), which httpx uses too.

Which proxy applies follows httpx: an explicit ``proxy=`` wins; otherwise, unless
``trust_env=False``, ``HTTPS_PROXY`` then ``ALL_PROXY`` (lowercase spellings first, as curl and
urllib read them), skipped for hosts listed in ``NO_PROXY``.

Credentials stay inside :class:`Proxy` (hidden from its repr) and the bytes sent to the proxy;
every message here names the proxy by :attr:`Proxy.display`, which has none.
"""

from __future__ import annotations

import base64
import contextlib
import ipaddress
import os
import socket
import time
from collections.abc import Generator, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote, urlsplit

import anyio
import anyio.abc

from apnskit._errors import ConfigurationError, ConnectError, ConnectTimeoutError, ProxyError
from apnskit._transports.connecting import map_connect_error

__all__ = [
    "Proxy",
    "choose_proxy",
    "open_tunnel_async",
    "open_tunnel",
    "parse_proxy",
    "proxy_from_environment",
]

# Default ports when a proxy URL has none: curl's and httpx's choices.
_SCHEMES = {"http": ("http", 80), "socks5": ("socks5", 1080), "socks5h": ("socks5", 1080)}
# A proxy's answer to CONNECT is a status line and a few headers; more than this is not one.
_MAX_RESPONSE_HEAD = 64 * 1024

# RFC 1928 section 6: the REP field of a SOCKS5 reply.
_SOCKS5_REPLIES = {
    1: "general SOCKS server failure",
    2: "connection not allowed by ruleset",
    3: "network unreachable",
    4: "host unreachable",
    5: "connection refused",
    6: "TTL expired",
    7: "command not supported",
    8: "address type not supported",
}


@dataclass(frozen=True, slots=True)
class Proxy:
    """A parsed proxy URL.

    Attributes:
        scheme: ``"http"``, ``"socks5"`` or ``"socks5h"``, as written.
        host: The proxy's host name or address (IPv6 without brackets).
        port: The proxy's port.
        username: The user name from the URL, or None.
        password: The password from the URL, or None; never shown.
    """

    scheme: str
    host: str
    port: int
    username: str | None = field(default=None, repr=False)
    password: str | None = field(default=None, repr=False)

    @property
    def kind(self) -> str:
        """``"http"`` or ``"socks5"`` (``socks5h`` is the same protocol)."""
        return _SCHEMES[self.scheme][0]

    @property
    def display(self) -> str:
        """``scheme://host:port``: how messages name the proxy, without credentials."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}:{self.port}"

    def __repr__(self) -> str:
        return f"Proxy({self.display!r})"

    def __str__(self) -> str:
        return self.display


def parse_proxy(url: str, *, source: str = "proxy") -> Proxy:
    """Parse ``scheme://[user:password@]host[:port]``.

    Args:
        url: The proxy URL.
        source: The option or environment variable it came from, for messages.

    Raises:
        ConfigurationError: The URL cannot be used; the message never repeats credentials.
    """
    if not isinstance(url, str):
        raise ConfigurationError(
            f"{source}: expected a URL string such as 'http://host:port' or "
            f"'socks5://host:port', got {type(url).__name__}"
        )
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError as error:
        # urllib's messages can quote the netloc, credentials included: say what, not it.
        reason = (
            "the port is not a number in 1..65535" if "port" in str(error).lower() else "malformed"
        )
        raise ConfigurationError(f"{source}: not a usable proxy URL ({reason})") from None
    scheme = parts.scheme.lower()
    if scheme not in _SCHEMES:
        if scheme == "https":
            hint = "TLS to the proxy itself is not supported; use http:// (the tunnel is TLS)"
        elif scheme in ("socks4", "socks4a"):
            hint = "SOCKS4 is not supported; use socks5://"
        else:
            hint = "use http://, socks5:// or socks5h://"
        shown = f"{scheme!r}" if scheme else "no scheme"
        raise ConfigurationError(f"{source}: proxy URL has {shown}: {hint}")
    host = parts.hostname
    if not host:
        raise ConfigurationError(f"{source}: proxy URL has no host ({scheme}://host:port)")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ConfigurationError(
            f"{source}: a proxy URL is scheme://[user:password@]host:port, without a path"
        )
    if port == 0:
        raise ConfigurationError(f"{source}: the port is not a number in 1..65535")
    username = unquote(parts.username) if parts.username is not None else None
    password = unquote(parts.password) if parts.password is not None else None
    if username is not None and ":" in username:
        # RFC 7617 section 2: the user-id cannot contain a colon.
        raise ConfigurationError(f"{source}: the proxy user name cannot contain ':'")
    if scheme != "http" and (
        len((username or "").encode()) > 255 or len((password or "").encode()) > 255
    ):
        # RFC 1929 section 2: one length byte each.
        raise ConfigurationError(f"{source}: SOCKS5 user names and passwords are at most 255 bytes")
    if scheme != "http":
        _require_socksio(source)
    return Proxy(
        scheme=scheme,
        host=host,
        port=port if port is not None else _SCHEMES[scheme][1],
        username=username,
        password=password if username is not None else None,
    )


def _require_socksio(source: str) -> None:
    try:
        import socksio  # noqa: F401
    except ImportError:
        raise ConfigurationError(
            f"{source}: SOCKS proxies need the socksio package: pip install 'apnskit[socks]'"
        ) from None


def choose_proxy(
    proxy: object,
    trust_env: object,
    host: str,
    port: int,
    environ: Mapping[str, str] | None = None,
) -> Proxy | None:
    """The proxy for connections to ``host:port``, or None to connect directly.

    Args:
        proxy: The ``proxy=`` option: a URL, a :class:`Proxy`, or None.
        trust_env: The ``trust_env=`` option.
        host: The host the client connects to.
        port: Its port.
        environ: The environment (default ``os.environ``).

    Raises:
        ConfigurationError: ``proxy`` or the environment's proxy URL cannot be used.
    """
    if not isinstance(trust_env, bool):
        raise ConfigurationError(f"trust_env: must be True or False, got {trust_env!r}")
    if isinstance(proxy, Proxy):
        return proxy
    if proxy is not None:
        return parse_proxy(proxy, source="proxy")  # type: ignore[arg-type]
    if not trust_env:
        return None
    return proxy_from_environment(host, port, os.environ if environ is None else environ)


def proxy_from_environment(host: str, port: int, environ: Mapping[str, str]) -> Proxy | None:
    """``HTTPS_PROXY`` or ``ALL_PROXY`` unless ``NO_PROXY`` lists ``host``; None without one.

    Args:
        host: The host the client connects to.
        port: Its port.
        environ: The environment variables.
    """
    # APNs is https: HTTP_PROXY (for plain http:// URLs) does not apply, as in httpx.
    for name in ("https_proxy", "all_proxy"):
        source, value = _getenv(environ, name)
        if value:
            break
    else:
        return None
    if _no_proxy(host, port, _getenv(environ, "no_proxy")[1]):
        return None
    if "://" not in value:
        # Environment variables are often written "host:port": http is meant (httpx, curl).
        value = f"http://{value}"
    return parse_proxy(value, source=f"${source}")


def _getenv(environ: Mapping[str, str], name: str) -> tuple[str, str]:
    # The lowercase spelling wins when both are set, as in curl and urllib.
    if name in environ:
        return name, environ[name].strip()
    upper = name.upper()
    return upper, environ.get(upper, "").strip()


def _no_proxy(host: str, port: int, no_proxy: str) -> bool:
    """Whether ``NO_PROXY`` lists ``host``.

    Entries: ``*``, a domain (and its subdomains), an address or a CIDR block, each
    optionally with ``:port``.
    """
    host = host.strip("[]").rstrip(".").lower()
    try:
        address: ipaddress.IPv4Address | ipaddress.IPv6Address | None = ipaddress.ip_address(host)
    except ValueError:
        address = None
    for raw in no_proxy.split(","):
        entry = raw.strip().lower()
        if not entry:
            continue
        if entry == "*":
            return True
        entry_host, entry_port = _split_entry(entry)
        if entry_port is not None and entry_port != port:
            continue
        try:
            network = ipaddress.ip_network(entry_host, strict=False)
        except ValueError:
            domain = entry_host.lstrip("*").lstrip(".").rstrip(".")
            if domain and (host == domain or host.endswith(f".{domain}")):
                return True
        else:
            if address is not None and address in network:
                return True
    return False


def _split_entry(entry: str) -> tuple[str, int | None]:
    if entry.startswith("["):
        host, _, rest = entry[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else ""
    elif entry.count(":") == 1:
        host, _, port = entry.partition(":")
    else:
        host, port = entry, ""
    return host, int(port) if port.isdigit() else None


# ------------------------------------------------------------------------------- handshakes

# A handshake yields bytes to write (the driver answers b"") or the most it wants to read
# (the driver answers with 1..n bytes, or b"" at EOF).
_Handshake = Generator[bytes | int, bytes, None]


def _authority(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _http_connect(proxy: Proxy, host: str, port: int) -> _Handshake:
    """RFC 9110 section 9.3.6: ``CONNECT host:port``, then the proxy's status line."""
    target = _authority(host, port)
    lines = [f"CONNECT {target} HTTP/1.1", f"Host: {target}"]
    if proxy.username is not None:
        # RFC 7617: Basic credentials, UTF-8 (what curl and httpx send for non-ASCII).
        secret = f"{proxy.username}:{proxy.password or ''}".encode()
        lines.append(f"Proxy-Authorization: Basic {base64.b64encode(secret).decode('ascii')}")
    yield ("\r\n".join(lines) + "\r\n\r\n").encode()
    head = b""
    while b"\r\n\r\n" not in head:
        if len(head) > _MAX_RESPONSE_HEAD:
            raise ProxyError(
                f"proxy {proxy.display} answered CONNECT with more than "
                f"{_MAX_RESPONSE_HEAD // 1024} KiB of headers",
                proxy=proxy.display,
            )
        chunk = yield 4096
        if not chunk:
            what = "an incomplete answer" if head else "no answer"
            raise ProxyError(
                f"proxy {proxy.display} closed the connection with {what} to CONNECT {target}",
                proxy=proxy.display,
            )
        head += chunk
    head, _, extra = head.partition(b"\r\n\r\n")
    status_line = head.split(b"\r\n", 1)[0].decode("latin-1")
    version, _, rest = status_line.partition(" ")
    code, _, reason = rest.partition(" ")
    if not version.startswith("HTTP/1.") or len(code) != 3 or not code.isdigit():
        raise ProxyError(
            f"proxy {proxy.display} did not answer like an HTTP proxy "
            f"(first line {_printable(status_line)!r}); is it a SOCKS proxy?",
            proxy=proxy.display,
        )
    status = int(code)
    said = f"{status} {_printable(reason)}".rstrip()
    # 407 is the standard answer (RFC 9110 section 15.5.8); some proxies (tinyproxy) answer
    # wrong credentials with 401.
    if status == 407 or (status == 401 and proxy.username is not None):
        hint = (
            "the proxy refused the user name and password"
            if proxy.username is not None
            else "it wants credentials: http://user:password@host:port"
        )
        raise ProxyError(f"proxy {proxy.display} answered {said} ({hint})", proxy=proxy.display)
    if not 200 <= status < 300:
        raise ProxyError(
            f"proxy {proxy.display} refused CONNECT {target}: {said}", proxy=proxy.display
        )
    if extra:
        # Nothing may come before our TLS ClientHello: the server speaks second.
        raise ProxyError(
            f"proxy {proxy.display} sent data after '{said}' before the TLS handshake",
            proxy=proxy.display,
        )


def _socks5_connect(proxy: Proxy, host: str, port: int) -> _Handshake:
    """RFC 1928 (and RFC 1929 for credentials), with the host name sent as is: remote DNS."""
    from socksio import ProtocolError as SocksProtocolError
    from socksio import socks5

    conn = socks5.SOCKS5Connection()
    target = _authority(host, port)
    methods = [socks5.SOCKS5AuthMethod.NO_AUTH_REQUIRED]
    if proxy.username is not None:
        methods.append(socks5.SOCKS5AuthMethod.USERNAME_PASSWORD)
    try:
        conn.send(socks5.SOCKS5AuthMethodsRequest(methods))
        yield conn.data_to_send()
        method = conn.receive_data((yield from _read_exactly(proxy, 2, "greeting")))
        assert isinstance(method, socks5.SOCKS5AuthReply)
        if method.method == socks5.SOCKS5AuthMethod.USERNAME_PASSWORD:
            if proxy.username is None:
                raise ProxyError(
                    f"proxy {proxy.display} wants a user name and password "
                    "(socks5://user:password@host:port)",
                    proxy=proxy.display,
                )
            conn.send(
                socks5.SOCKS5UsernamePasswordRequest(
                    proxy.username.encode(), (proxy.password or "").encode()
                )
            )
            yield conn.data_to_send()
            auth = conn.receive_data((yield from _read_exactly(proxy, 2, "authentication")))
            assert isinstance(auth, socks5.SOCKS5UsernamePasswordReply)
            if not auth.success:
                raise ProxyError(
                    f"proxy {proxy.display} refused the user name and password "
                    "(SOCKS5 authentication failed)",
                    proxy=proxy.display,
                )
        elif method.method != socks5.SOCKS5AuthMethod.NO_AUTH_REQUIRED:
            wanted = "" if proxy.username is not None else "; does it want credentials?"
            raise ProxyError(
                f"proxy {proxy.display} accepts none of our SOCKS5 authentication methods "
                f"(no authentication, user name and password){wanted}",
                proxy=proxy.display,
            )
        conn.send(
            socks5.SOCKS5CommandRequest.from_address(socks5.SOCKS5Command.CONNECT, (host, port))
        )
        yield conn.data_to_send()
        head = yield from _read_exactly(proxy, 5, "reply")
        if head[0] != 5 or head[3] not in (1, 3, 4):
            raise SocksProtocolError(f"reply {head.hex(' ')}...")
        if head[1] != 0:
            name = _SOCKS5_REPLIES.get(head[1], "unassigned code")
            raise ProxyError(
                f"proxy {proxy.display} could not connect to {target}: SOCKS5 reply "
                f"{head[1]} ({name})",
                proxy=proxy.display,
            )
        # The bound address: IPv4 (4 bytes), a name (its length is head[4]) or IPv6 (16),
        # then the port; head already holds its first byte.
        rest = {1: 4 - 1, 3: head[4], 4: 16 - 1}[head[3]] + 2
        reply = conn.receive_data(head + (yield from _read_exactly(proxy, rest, "reply")))
        assert isinstance(reply, socks5.SOCKS5Reply)
    except SocksProtocolError as error:
        raise ProxyError(
            f"proxy {proxy.display} did not answer like a SOCKS5 proxy ({error}); "
            "is it an HTTP proxy?",
            proxy=proxy.display,
        ) from None


def _read_exactly(proxy: Proxy, size: int, what: str) -> Generator[int, bytes, bytes]:
    data = b""
    while len(data) < size:
        chunk = yield size - len(data)
        if not chunk:
            # Some servers (pproxy) hang up on a client that offers no acceptable method.
            hint = ""
            if what == "greeting" and proxy.username is None:
                hint = " (does it want a user name and password?)"
            elif what == "authentication":
                hint = ": it refused the user name and password"
            raise ProxyError(
                f"proxy {proxy.display} closed the connection during the SOCKS5 {what}{hint}",
                proxy=proxy.display,
            )
        data += chunk
    return data


def _handshake(proxy: Proxy, host: str, port: int) -> _Handshake:
    if proxy.kind == "http":
        return _http_connect(proxy, host, port)
    return _socks5_connect(proxy, host, port)


def _printable(text: str) -> str:
    # What a proxy says is shown, but kept short and free of control characters.
    return "".join(c if c.isprintable() else "?" for c in text.strip())[:200]


def _unreachable(proxy: Proxy, error: BaseException) -> ConnectError:
    """The proxy itself could not be reached: say so, naming it."""
    mapped = map_connect_error(proxy.host, proxy.port, error)
    message = f"cannot reach proxy {proxy.display}: {mapped}"
    if isinstance(mapped, ConnectTimeoutError):
        return ConnectTimeoutError(message)
    return ProxyError(message, proxy=proxy.display)


# ------------------------------------------------------------------------------- drivers


def open_tunnel(proxy: Proxy, host: str, port: int, timeout: float | None) -> socket.socket:
    """A blocking TCP socket to ``host:port`` through ``proxy``, ready for TLS.

    The proxy's TCP connect and handshake share ``timeout``; the socket comes back with
    what is left of it as its timeout, for the TLS handshake that follows.

    Raises:
        ProxyError: The proxy is unreachable, refused, or failed.
        ConnectTimeoutError: ``timeout`` ran out.
    """
    deadline = None if timeout is None else time.monotonic() + timeout
    try:
        sock = socket.create_connection((proxy.host, proxy.port), timeout=timeout)
    except OSError as error:
        raise _unreachable(proxy, error) from error
    try:
        # Small frames must not wait for Nagle: APNs answers each request separately.
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        steps = _handshake(proxy, host, port)
        step = next(steps)
        while True:
            sock.settimeout(_left(deadline))
            if isinstance(step, bytes):
                sock.sendall(step)
                reply = b""
            else:
                reply = sock.recv(step)
            try:
                step = steps.send(reply)
            except StopIteration:
                break
        sock.settimeout(_left(deadline))
    except TimeoutError as error:
        sock.close()
        raise ConnectTimeoutError(
            f"proxy {proxy.display} did not open a tunnel to {_authority(host, port)} within "
            f"{timeout:g} s"
        ) from error
    except OSError as error:
        sock.close()
        raise ProxyError(
            f"proxy {proxy.display} broke the connection while opening a tunnel to "
            f"{_authority(host, port)}: {error.strerror or type(error).__name__}",
            proxy=proxy.display,
        ) from error
    except BaseException:
        sock.close()
        raise
    return sock


def _left(deadline: float | None) -> float | None:
    if deadline is None:
        return None
    left = deadline - time.monotonic()
    if left <= 0:
        raise TimeoutError
    return left


async def open_tunnel_async(proxy: Proxy, host: str, port: int) -> anyio.abc.SocketStream:
    """A TCP tunnel to ``host:port`` through ``proxy`` (the caller bounds it in time).

    The caller runs the TLS handshake inside it, as without a proxy.

    Raises:
        ProxyError: The proxy is unreachable, refused, or failed.
    """
    try:
        stream: anyio.abc.SocketStream = await anyio.connect_tcp(proxy.host, proxy.port)
    except OSError as error:
        raise _unreachable(proxy, error) from error
    try:
        steps = _handshake(proxy, host, port)
        step = next(steps)
        while True:
            if isinstance(step, bytes):
                await stream.send(step)
                reply = b""
            else:
                try:
                    reply = await stream.receive(step)
                except anyio.EndOfStream:
                    reply = b""
            try:
                step = steps.send(reply)
            except StopIteration:
                break
    except (anyio.BrokenResourceError, OSError) as error:
        await _close(stream)
        raise ProxyError(
            f"proxy {proxy.display} broke the connection while opening a tunnel to "
            f"{_authority(host, port)}: {_reason(error)}",
            proxy=proxy.display,
        ) from error
    except BaseException:
        await _close(stream)
        raise
    return stream


def _reason(error: BaseException) -> str:
    strerror = getattr(error, "strerror", None)
    return strerror if isinstance(strerror, str) else str(error) or type(error).__name__


async def _close(stream: Any) -> None:
    with anyio.move_on_after(1.0, shield=True), contextlib.suppress(Exception):
        await stream.aclose()
