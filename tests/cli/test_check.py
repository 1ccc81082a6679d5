"""apnskit check: credentials, and --connect against the loopback mock server only."""

from __future__ import annotations

import socket
import ssl
import threading

import pytest
from cli_support import TOPIC, TokenServer, closed_port

from apnskit.testing import MockApnsServer


def test_token_key_reports_ids(apns: TokenServer, cli) -> None:
    run = cli("check", *apns.auth)
    assert run.code == 0, run.err
    assert f"key id       {apns.key.key_id}" in run.out
    assert f"team id      {apns.key.team_id}" in run.out
    assert "signs ES256 provider tokens: ok" in run.out
    assert "connecting" not in run.out


def test_explicit_key_id_wins_over_file_name(apns: TokenServer, cli) -> None:
    run = cli("check", *apns.auth, "--key-id", "OTHERKEY12")
    assert run.code == 0
    assert "key id       OTHERKEY12" in run.out


def test_damaged_key_exits_2(cli, tmp_path) -> None:
    path = tmp_path / "AuthKey_ABCDEFGHIJ.p8"
    path.write_text("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")
    run = cli("check", "--key", str(path), "--team-id", "TEAM123456")
    assert run.code == 2
    assert "not a private key" in run.err


def test_bad_team_id_exits_2(apns: TokenServer, cli) -> None:
    run = cli("check", "--key", str(apns.key.path), "--team-id", "lower")
    assert run.code == 2
    assert "--team-id: 'lower' is not a valid Apple identifier" in run.err


def test_no_credentials_and_no_connect_exits_2(cli) -> None:
    run = cli("check")
    assert run.code == 2
    assert "credentials: give --key" in run.err


def test_connect_with_token_key(apns: TokenServer, cli) -> None:
    run = cli("check", *apns.args, "--connect")
    assert run.code == 0, run.err
    assert f"connecting to {apns.server.host}:{apns.server.port}" in run.out
    assert "TLSv1.3, ALPN h2" in run.out or "TLSv1.2, ALPN h2" in run.out
    assert "0 subject  CN=localhost" in run.out
    assert "issuer   CN=apnskit mock APNs CA" in run.out
    assert "days left" in run.out
    assert "the server sent its SETTINGS" in run.out
    assert run.out.rstrip().endswith("ok")


def test_connect_without_credentials(apns: TokenServer, cli) -> None:
    run = cli("check", "--connect", *apns.connection)
    assert run.code == 0, run.err
    assert "ALPN h2" in run.out


def test_connect_needs_an_environment_or_host(cli) -> None:
    run = cli("check", "--connect")
    assert run.code == 2
    assert "--sandbox or --production" in run.err


def test_connect_untrusted_certificate_explains_trust_store(apns: TokenServer, cli) -> None:
    s = apns.server
    run = cli("check", "--connect", "--host", s.host, "--port", str(s.port))
    assert run.code == 3
    assert "could not be verified" in run.err
    assert "trust store" in run.err
    assert "proxy" in run.err
    assert "--ca-file" in run.err


def test_connect_refused(cli, apns: TokenServer) -> None:
    run = cli("check", "--connect", "--host", "127.0.0.1", "--port", str(closed_port()))
    assert run.code == 3
    assert "refused" in run.err
    assert "2197" in run.err


def test_connect_dns_failure(cli, monkeypatch) -> None:
    def no_dns(*args, **kwargs):
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    # No real DNS query is made: resolution fails before anything leaves this machine.
    monkeypatch.setattr(socket, "getaddrinfo", no_dns)
    run = cli("check", "--connect", "--production")
    assert run.code == 3
    assert "DNS: cannot resolve api.push.apple.com" in run.err
    assert "proxy" in run.err


def test_connect_timeout(cli, monkeypatch) -> None:
    def slow(*args, **kwargs):
        raise TimeoutError("timed out")

    # The TCP connect itself times out (whatever helper opens the socket).
    monkeypatch.setattr(socket.socket, "connect", slow)
    run = cli("check", "--connect", "--host", "127.0.0.1", "--port", "9", "--timeout", "0.5")
    assert run.code == 3
    assert "no answer from 127.0.0.1:9 within 0.5 s" in run.err
    assert "firewall" in run.err


def test_bad_timeout_exits_2(cli) -> None:
    run = cli("check", "--connect", "--sandbox", "--timeout", "0")
    assert run.code == 2


@pytest.fixture
def http11_tls_server(tmp_path):
    """A loopback TLS server that negotiates no ALPN (what a TLS-terminating proxy may do)."""
    with MockApnsServer() as mock:  # borrow its CA and server certificate files
        ca = mock.ca_file
        cert = mock._certfile  # the generated server certificate for localhost/127.0.0.1
        key = mock._keyfile
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(str(cert), str(key))
        listener = socket.create_server(("127.0.0.1", 0))
        port = listener.getsockname()[1]

        def serve() -> None:
            conn, _ = listener.accept()
            try:
                with context.wrap_socket(conn, server_side=True) as tls:
                    tls.recv(1)
            except (OSError, ssl.SSLError):
                pass

        thread = threading.Thread(target=serve, daemon=True)
        thread.start()
        yield port, ca
        listener.close()
        thread.join(5)


def test_connect_without_h2_alpn(cli, http11_tls_server) -> None:
    port, ca = http11_tls_server
    run = cli("check", "--connect", "--host", "127.0.0.1", "--port", str(port), "--ca-file", ca)
    assert run.code == 3
    assert "ALPN (none)" in run.out
    assert "did not agree to HTTP/2" in run.err


# -- certificates -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def cert_mock():
    with MockApnsServer(auth="certificate") as server:
        yield server


def test_certificate_report(cert_mock: MockApnsServer, cli) -> None:
    cert, key = cert_mock.issue_client_certificate(
        [TOPIC, (f"{TOPIC}.voip", ["voip"])], environments=["sandbox", "production"], days=90
    )
    run = cli("check", "--cert", cert, "--cert-key", key)
    assert run.code == 0, run.err
    assert f"subject UID  {TOPIC}" in run.out
    assert "environments production, sandbox" in run.out
    assert f"topics       {TOPIC} (" in run.out
    assert f"{TOPIC}.voip (voip)" in run.out
    assert "(89 days left)" in run.out or "(90 days left)" in run.out
    assert "environment  production (picked from the certificate)" in run.out
    assert "warning" not in run.out


def test_certificate_close_to_expiry_warns(cert_mock: MockApnsServer, cli) -> None:
    cert, key = cert_mock.issue_client_certificate([TOPIC], days=10)
    run = cli("check", "--cert", cert, "--cert-key", key)
    assert run.code == 0
    assert "environment  sandbox (picked from the certificate)" in run.out
    assert "warning      expires in" in run.out


def test_certificate_key_mismatch_exits_2(cert_mock: MockApnsServer, cli) -> None:
    cert, _ = cert_mock.issue_client_certificate([TOPIC])
    _, other_key = cert_mock.issue_client_certificate([TOPIC])
    run = cli("check", "--cert", cert, "--cert-key", other_key)
    assert run.code == 2
    assert "do not match" in run.err


def test_certificate_connect(cert_mock: MockApnsServer, cli) -> None:
    cert, key = cert_mock.issue_client_certificate([TOPIC])
    s = cert_mock
    run = cli(
        "check",
        "--cert",
        cert,
        "--cert-key",
        key,
        "--connect",
        "--host",
        s.host,
        "--port",
        str(s.port),
        "--ca-file",
        s.ca_file,
    )
    assert run.code == 0, run.err
    assert "the server sent its SETTINGS" in run.out


def test_certificate_connect_refused_client_certificate(cert_mock: MockApnsServer, cli) -> None:
    # A certificate from another CA: the mock server refuses it during or right after the
    # handshake, and check says so.
    with MockApnsServer(auth="certificate") as other:
        cert, key = other.issue_client_certificate([TOPIC])
        s = cert_mock
        run = cli(
            "check",
            "--cert",
            cert,
            "--cert-key",
            key,
            "--connect",
            "--host",
            s.host,
            "--port",
            str(s.port),
            "--ca-file",
            s.ca_file,
        )
    assert run.code == 3
    assert "refused the client certificate" in run.err
