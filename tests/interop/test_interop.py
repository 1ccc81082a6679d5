"""Interop (issue 10): both clients against HTTP/2 servers nobody on this project wrote.

Node's built-in ``http2`` module (``node_apns_server.js``) and hypercorn (h2 underneath,
``hypercorn_apns_server.py``) each run in their own process on 127.0.0.1, on a free port, with
TLS. Each is started twice: with its defaults, and with what stresses a client most: a
16-byte initial window (every body is split across many DATA frames and WINDOW_UPDATEs),
MAX_CONCURRENT_STREAMS 1 raised to 100 after the first answer, and a header table size of 0
(our HPACK encoder may not index anything). The server answers 400 BadDeviceToken or 200 by
token, and echoes the apns-id, which is checked for every notification (5,000 in a
``send_many`` against the tight settings, 500 against the defaults).

Found on the way: h2 (so hypercorn) enforces settings given as initial values from its first
SETTINGS frame, before the client can know them (a client's first request then breaks
SETTINGS_HEADER_TABLE_SIZE 0, or a small window, in h2's eyes); the launcher therefore sends
them with ``update_settings``, in force once acknowledged (RFC 9113 section 6.5.3).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import anyio
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from independent_servers import CONFIGS, NODE, make_tls_files, running_server

import apnskit
from apnskit import Reason

# 5,000 against the tight settings (the figure); the defaults, which add stream
# concurrency and a live HPACK table, get 500 to keep the suite's time in check.
COUNT = {"tight": 5000, "default": 500}


@dataclass
class Server:
    port: int
    ca_file: str
    kind: str
    config: str


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    """A self-signed certificate for 127.0.0.1 (its own trust anchor) and its key."""
    return make_tls_files(tmp_path_factory.mktemp("interop-tls"))


@pytest.fixture(
    scope="module",
    params=[(k, c) for k in ("node", "hypercorn") for c in CONFIGS],
    ids=lambda p: f"{p[0]}-{p[1]}",
)
def server(request: pytest.FixtureRequest, tls_files: tuple[str, str]) -> Iterator[Server]:
    kind, config = request.param
    if kind == "node" and NODE is None:
        pytest.fail("node is not installed (.ci/system-packages.txt lists nodejs)")
    with running_server(kind, CONFIGS[config], tls_files) as port:
        yield Server(port, tls_files[0], kind, config)


def _token(i: int) -> str:
    return f"{i:064x}"


def _expected_rejected(token: str) -> bool:
    # The rule both servers apply (see node_apns_server.js).
    return int(token, 16) % 7 == 3


def _notifications(count: int) -> list[apnskit.Notification]:
    return [
        apnskit.Notification(
            _token(i),
            {"aps": {"alert": f"n{i}"}},
            topic="com.example.app",
            apns_id=str(uuid.uuid4()),
        )
        for i in range(count)
    ]


def _client_options(server: Server) -> dict[str, object]:
    return {
        "host": "127.0.0.1",
        "port": server.port,
        "ca_file": server.ca_file,
        "timeout": apnskit.Timeout(connect=20.0, deadline=120.0),
        "retry": apnskit.RetryPolicy(max_attempts=2, backoff_base=0.01, backoff_max=0.05),
    }


def _credentials() -> apnskit.TokenCredentials:
    key = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return apnskit.TokenCredentials(key, key_id="ABCDE12345", team_id="TEAM123456")


def _check(
    results: list[apnskit.PushResult], sent: list[apnskit.Notification], *, mixed: bool = True
) -> None:
    assert len(results) == len(sent)
    by_id = {r.notification.apns_id: r for r in results}
    assert len(by_id) == len(sent), "a notification got two results, another none"
    rejected = 0
    for notification in sent:
        result = by_id[notification.apns_id]
        assert result.notification is notification
        # The apns-id the server echoed is the one the notification was sent with.
        assert result.apns_id == notification.apns_id, result
        assert result.headers.get("apns-id") == notification.apns_id
        if _expected_rejected(notification.device_token):
            rejected += 1
            assert result.status == 400, result
            assert result.reason is Reason.BAD_DEVICE_TOKEN, result
            assert not result.accepted
        else:
            assert result.status == 200, result
            assert result.accepted, result
        assert result.error is None
    if mixed:
        assert 0 < rejected < len(sent)


def test_push_client_send_and_send_many(server: Server) -> None:
    with apnskit.PushClient(_credentials(), **_client_options(server)) as client:
        (one,) = _notifications(4)[3:]  # token 3: rejected
        _check([client.send(one)], [one], mixed=False)
        ok = _notifications(1)
        _check([client.send(ok[0])], ok, mixed=False)
        many = _notifications(COUNT[server.config])
        _check(list(client.send_many(many)), many)


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_async_push_client_send_and_send_many(server: Server, anyio_backend: str) -> None:
    async with apnskit.AsyncPushClient(_credentials(), **_client_options(server)) as client:
        (one,) = _notifications(4)[3:]
        _check([await client.send(one)], [one], mixed=False)
        ok = _notifications(1)
        _check([await client.send(ok[0])], ok, mixed=False)
        many = _notifications(COUNT[server.config])
        with anyio.fail_after(300):  # a hang fails, slowness on a loaded machine does not
            results = [r async for r in client.send_many(many)]
        _check(results, many)
