"""Both auth modes, sync and async use (asyncio and trio), CLI, plugin fixtures."""

from __future__ import annotations

import io
import ssl
import threading
import time
from importlib.metadata import entry_points

import anyio
import pytest

from apnskit import ConfigurationError
from apnskit.testing import MockApnsServer
from apnskit.testing._cli import run_mock_server
from support.h2client import TOKEN, H2TestClient
from support.tls import make_tls_files

# -- certificate (mutual TLS) mode ------------------------------------------------------------


@pytest.fixture
def cert_server():
    with MockApnsServer(auth="certificate") as srv:
        yield srv


def test_certificate_mode_allows_the_certificate_topics(
    cert_server: MockApnsServer, connect
) -> None:
    cert = cert_server.issue_client_certificate(["com.example.app"])
    client = connect(cert_server, cert=cert)
    assert client.push(topic="com.example.app").status == 200
    assert (
        client.push(topic="com.example.app.voip", extra=[("apns-push-type", "voip")]).status == 200
    )
    response = client.push(topic="com.example.other")
    assert (response.status, response.reason) == (400, "TopicDisallowed")
    # No authorization header is needed (or checked) with certificates.
    assert "authorization" not in cert_server.received[0].headers


def test_certificate_supplies_the_topic_when_it_has_one(
    cert_server: MockApnsServer, connect
) -> None:
    single = connect(cert_server, cert=cert_server.issue_client_certificate(["com.example.app"]))
    assert single.push(topic=None).status == 200
    several = cert_server.issue_client_certificate(
        [("com.example.app", ["app"]), ("com.example.app.voip", ["voip"])]
    )
    client = connect(cert_server, cert=several)
    assert client.push(topic=None).reason == "MissingTopic"
    assert (
        client.push(topic="com.example.app.voip", extra=[("apns-push-type", "voip")]).status == 200
    )
    assert client.push(topic="com.example.app.complication").reason == "TopicDisallowed"


def test_certificate_for_the_other_environment(cert_server: MockApnsServer, connect) -> None:
    cert = cert_server.issue_client_certificate(["com.example.app"], environments=["production"])
    response = connect(cert_server, cert=cert).push()
    assert (response.status, response.reason) == (403, "BadCertificateEnvironment")
    universal = cert_server.issue_client_certificate(
        ["com.example.app"], environments=["production", "sandbox"]
    )
    assert connect(cert_server, cert=universal).push().status == 200


def test_certificate_mode_requires_a_client_certificate(cert_server: MockApnsServer) -> None:
    # With TLS 1.3 the refusal may come after the handshake: the client sees it on reading.
    with pytest.raises((ssl.SSLError, ConnectionError, TimeoutError, OSError)):
        H2TestClient(cert_server.host, cert_server.port, cert_server.ca_file, timeout=2)
    deadline = time.monotonic() + 2
    while not cert_server.errors and time.monotonic() < deadline:
        time.sleep(0.01)
    assert any("TLS handshake failed" in e for e in cert_server.errors)


def test_client_without_alpn_h2_is_refused(server: MockApnsServer) -> None:
    with pytest.raises((ssl.SSLError, ConnectionError, OSError, TimeoutError)):
        H2TestClient(server.host, server.port, server.ca_file, alpn=("http/1.1",), timeout=2)
    deadline = time.monotonic() + 2
    while not server.errors and time.monotonic() < deadline:
        time.sleep(0.01)
    assert server.errors


def test_issue_client_certificate_needs_a_topic(cert_server: MockApnsServer) -> None:
    with pytest.raises(ValueError, match="topics"):
        cert_server.issue_client_certificate([])


# -- configuration and lifecycle --------------------------------------------------------------


def test_bad_configuration() -> None:
    with pytest.raises(ConfigurationError, match="auth"):
        MockApnsServer(auth="password")
    with pytest.raises(ConfigurationError, match="certfile"):
        MockApnsServer(certfile="server.pem")
    with pytest.raises(ConfigurationError, match="max_concurrent_streams"):
        MockApnsServer(max_concurrent_streams=0)
    with pytest.raises(ConfigurationError, match="environment"):
        MockApnsServer(environment="staging")


def test_port_before_start_and_cleanup() -> None:
    server = MockApnsServer()
    with pytest.raises(RuntimeError, match="not started"):
        _ = server.port
    with server:
        ca_file = server.ca_file
        assert server.port > 0
        assert "127.0.0.1" in repr(server)
        with pytest.raises(RuntimeError, match="already running"):
            server.__enter__()
    assert "not started" in repr(server)
    import os

    assert not os.path.exists(ca_file)


def test_server_can_be_restarted(connect) -> None:
    server = MockApnsServer()
    for _ in range(2):
        with server:
            key = server.new_token_key()
            from apnskit._credentials.token import TokenCredentials
            from support.h2client import bearer  # noqa: F401 - the key is the server's own

            creds = TokenCredentials(key.private_key_pem, key_id=key.key_id, team_id=key.team_id)
            assert connect(server, authorization=creds.authorization()[0]).push().status == 200


def test_given_server_certificate_is_used(tmp_path, connect) -> None:
    with MockApnsServer() as first:
        directory = first._tmpdir
        assert directory is not None
        for name in ("server.pem", "server.key", "ca.pem"):
            (tmp_path / name).write_bytes((directory / name).read_bytes())
    with MockApnsServer(
        certfile=tmp_path / "server.pem",
        keyfile=tmp_path / "server.key",
        ca_file=tmp_path / "ca.pem",
    ) as server:
        assert server.ca_file == str(tmp_path / "ca.pem")
        creds = server.apns_token_credentials()
        assert connect(server, authorization=creds.authorization()[0]).push().status == 200


def test_given_certificate_without_its_ca_is_refused(tmp_path) -> None:
    # Before: ca_file silently named a freshly generated CA that never signed the certificate.
    with pytest.raises(ConfigurationError) as caught:
        MockApnsServer(certfile=tmp_path / "server.pem", keyfile=tmp_path / "server.key")
    assert str(caught.value) == (
        "ca_file: give the CA that signed certfile (for a self-signed certificate, the "
        "certificate file itself)"
    )
    with pytest.raises(ConfigurationError, match="ca_file: only with certfile"):
        MockApnsServer(ca_file=tmp_path / "ca.pem")


def test_self_signed_certificate_is_its_own_ca_file(tmp_path, connect) -> None:
    certfile, keyfile = make_tls_files(tmp_path)
    with MockApnsServer(certfile=certfile, keyfile=keyfile, ca_file=certfile) as server:
        creds = server.apns_token_credentials()
        assert connect(server, authorization=creds.authorization()[0]).push().status == 200


def test_token_credentials_from_the_server(server: MockApnsServer, connect) -> None:
    creds = server.apns_token_credentials()
    client = connect(authorization=creds.authorization()[0])
    assert client.push().status == 200
    # The credentials follow the server's clock: after an hour they renew by themselves.
    server.advance_clock(3601)
    renewed, generation = creds.authorization()
    assert generation == 2
    assert connect(authorization=renewed).push().status == 200


def test_records_and_reprs_hide_the_provider_token(
    server: MockApnsServer, client: H2TestClient
) -> None:
    client.push()
    record = server.received[0]
    token = record.headers["authorization"].split(" ")[1]
    assert token not in repr(record)
    assert "<redacted>" in repr(record)
    key = server.new_token_key()
    assert b"PRIVATE" not in repr(key).encode()
    server.clear_received()
    assert server.received == []


def test_key_files_are_private(server: MockApnsServer) -> None:
    key = server.new_token_key(key_id="ABCDEFGHIJ", team_id="TEAM000001")
    assert key.path.name == "AuthKey_ABCDEFGHIJ.p8"
    assert key.path.stat().st_mode & 0o077 == 0
    assert key.path.read_bytes() == key.private_key_pem


# -- async use --------------------------------------------------------------------------------


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.mark.anyio
async def test_async_context_manager(anyio_backend: str) -> None:
    async with MockApnsServer() as server:
        creds = server.apns_token_credentials()

        def use() -> list[int | None]:
            with H2TestClient(
                server.host, server.port, server.ca_file, authorization=creds.authorization()[0]
            ) as client:
                first = client.push()
                client.read_until(lambda: client.max_streams > 1, 2)
                server.faults.fail_next(1, status=500)
                return [first.status, client.push().status, client.push().status]

        statuses = await anyio.to_thread.run_sync(use)
        assert statuses == [200, 500, 200]
        assert server.open_connections == 0 or server.connection_count == 1
    with pytest.raises(RuntimeError, match="not started"):
        _ = server.port


@pytest.mark.anyio
async def test_async_faults_needing_the_loop(anyio_backend: str) -> None:
    async with MockApnsServer(auth="certificate") as server:
        cert = server.issue_client_certificate(["com.example.app"])
        ready = threading.Event()
        result: dict[str, object] = {}

        def use() -> None:
            with H2TestClient(server.host, server.port, server.ca_file, cert=cert) as client:
                assert client.push().status == 200
                ready.set()
                client.read_until(lambda: client.max_streams == 3, 3)
                result["max"] = client.max_streams
                server.faults.delay_next(1, 0.05)
                result["delayed"] = client.push().status

        async with anyio.create_task_group() as group:
            group.start_soon(anyio.to_thread.run_sync, use)
            await anyio.to_thread.run_sync(ready.wait)
            # Called in the loop thread, as async tests do.
            server.faults.set_max_concurrent_streams(3)
        assert result == {"max": 3, "delayed": 200}


# -- CLI --------------------------------------------------------------------------------------


def test_cli_prints_how_to_connect_and_stops(connect) -> None:
    out = io.StringIO()
    stop = threading.Event()
    thread = threading.Thread(
        target=run_mock_server,
        args=(["--port", "0", "--environment", "production"],),
        kwargs={"stop": stop, "out": out},
    )
    thread.start()
    try:
        deadline = time.monotonic() + 5
        while "Ctrl-C" not in out.getvalue() and time.monotonic() < deadline:
            time.sleep(0.01)
        text = out.getvalue()
        fields = dict(
            (part.strip() for part in line.split(": ", 1))
            for line in text.splitlines()[1:]
            if ": " in line
        )
        port = int(text.splitlines()[0].rsplit(":", 1)[1])
        from apnskit._credentials.token import TokenCredentials

        creds = TokenCredentials.from_file(fields["token key"], team_id=fields["team id"])
        assert creds.key_id == fields["key id"]
        client = H2TestClient(
            "127.0.0.1", port, fields["CA file"], authorization=creds.authorization()[0]
        )
        response = client.push(TOKEN)
        client.close()
        assert response.status == 200
        assert "apns-unique-id" not in response.headers
    finally:
        stop.set()
        thread.join(5)
    assert not thread.is_alive()


def test_cli_certificate_mode_prints_a_client_certificate() -> None:
    out = io.StringIO()
    stop = threading.Event()
    stop.set()
    assert (
        run_mock_server(["--port", "0", "--auth", "certificate", "--strict"], stop=stop, out=out)
        == 0
    )
    assert "client cert:" in out.getvalue()
    assert "token key" not in out.getvalue()


# -- pytest plugin ----------------------------------------------------------------------------


def test_plugin_is_registered_as_pytest11_entry_point() -> None:
    plugins = {ep.name: ep.value for ep in entry_points(group="pytest11")}
    assert plugins.get("apnskit") == "apnskit.testing.pytest_plugin"


def test_plugin_fixtures(apns_server: MockApnsServer, apns_credentials) -> None:
    client = H2TestClient(
        apns_server.host,
        apns_server.port,
        apns_server.ca_file,
        authorization=apns_credentials.authorization()[0],
    )
    try:
        assert client.push().status == 200
    finally:
        client.close()
    assert apns_server.received[0].status == 200
