"""apnskit send: single and repeated --token, payload options, output, exit codes."""

from __future__ import annotations

import json
import secrets
import sys
from pathlib import Path

import pytest
from cli_support import TOPIC, Run, TokenServer, closed_port
from cryptography.hazmat.primitives import serialization

from apnskit.testing import MockApnsServer

UUID = "0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d"


def send(apns: TokenServer, *extra: str) -> list[str]:
    return ["send", *apns.args, "--topic", TOPIC, *extra]


def test_accepted_notification_prints_result_and_exits_0(apns: TokenServer, cli) -> None:
    token = apns.registered[0]
    run: Run = cli(
        *send(
            apns,
            "--token",
            token,
            "--title",
            "Hello",
            "--body",
            "World",
            "--badge",
            "3",
            "--sound",
            "default",
        )
    )
    assert run.code == 0, run.err
    line = run.out.strip()
    assert line.startswith("accepted")
    assert " 200 " in line
    assert token in line
    received = apns.server.received
    assert len(received) == 1
    assert received[0].payload == {
        "aps": {"alert": {"title": "Hello", "body": "World"}, "badge": 3, "sound": "default"}
    }
    assert received[0].apns_id in line


def test_every_header_option_reaches_the_server(apns: TokenServer, cli) -> None:
    run = cli(
        *send(
            apns,
            "--token",
            apns.registered[0],
            "--alert",
            "Hi",
            "--push-type",
            "alert",
            "--priority",
            "5",
            "--expiration",
            "1700000000",
            "--collapse-id",
            "news",
            "--apns-id",
            UUID,
        )
    )
    assert run.code == 0, run.err
    headers = apns.server.received[0].headers
    assert headers["apns-push-type"] == "alert"
    assert headers["apns-priority"] == "5"
    assert headers["apns-expiration"] == "1700000000"
    assert headers["apns-collapse-id"] == "news"
    assert headers["apns-id"] == UUID
    assert apns.server.received[0].payload == {"aps": {"alert": "Hi"}}
    assert f"apns-id {UUID}" in run.out


def test_some_rejected_exits_1_and_shows_reason_and_timestamp(apns: TokenServer, cli) -> None:
    unknown = secrets.token_hex(32)
    run = cli(
        *send(
            apns,
            "--token",
            apns.registered[1],
            "--token",
            apns.gone,
            "--token",
            unknown,
            "--alert",
            "Hi",
        )
    )
    assert run.code == 1
    lines = {line.split()[2]: line for line in run.out.splitlines()}
    assert lines[apns.registered[1]].startswith("accepted")
    assert lines[apns.gone].startswith("rejected")
    assert " 410 " in lines[apns.gone]
    assert "Unregistered (since 20" in lines[apns.gone]
    assert "BadDeviceToken" in lines[unknown]
    assert " 400 " in lines[unknown]


def test_json_output_is_one_object_per_result(apns: TokenServer, cli) -> None:
    run = cli(
        *send(apns, "--json", "--token", apns.registered[2], "--token", apns.gone, "--alert", "Hi")
    )
    assert run.code == 1
    records = {r["token"]: r for r in map(json.loads, run.out.splitlines())}
    assert len(records) == 2
    ok = records[apns.registered[2]]
    assert ok["outcome"] == "accepted"
    assert ok["status"] == 200
    assert ok["reason"] is None
    assert len(ok["apns_id"]) == 36
    gone = records[apns.gone]
    assert gone["outcome"] == "rejected"
    assert gone["status"] == 410
    assert gone["reason"] == "Unregistered"
    assert gone["timestamp"].endswith("Z")
    assert gone["error"] is None


def test_payload_from_stdin(apns: TokenServer, cli) -> None:
    payload = {"aps": {"alert": {"title": "From stdin"}, "thread-id": "t1"}, "custom": [1, 2]}
    run = cli(
        *send(apns, "--token", apns.registered[0], "--payload", "-"), stdin=json.dumps(payload)
    )
    assert run.code == 0, run.err
    assert apns.server.received[0].payload == payload


def test_payload_from_file(apns: TokenServer, cli, tmp_path) -> None:
    path = tmp_path / "payload.json"
    path.write_text('{"aps": {"content-available": 1}}')
    run = cli(*send(apns, "--token", apns.registered[0], "--payload", str(path)))
    assert run.code == 0, run.err
    received = apns.server.received[0]
    assert received.push_type == "background"
    assert received.headers["apns-priority"] == "5"


@pytest.mark.parametrize(
    ("content", "message"),
    [("{not json", "is not valid JSON"), ("[1, 2]", "holds a JSON list, not an object")],
)
def test_bad_payload_file_exits_2(apns: TokenServer, cli, tmp_path, content, message) -> None:
    path = tmp_path / "payload.json"
    path.write_text(content)
    run = cli(*send(apns, "--token", apns.registered[0], "--payload", str(path)))
    assert run.code == 2
    assert "--payload" in run.err
    assert message in run.err
    assert apns.server.received == []


def test_missing_payload_file_exits_2(apns: TokenServer, cli, tmp_path) -> None:
    run = cli(*send(apns, "--token", apns.registered[0], "--payload", str(tmp_path / "no.json")))
    assert run.code == 2
    assert "cannot read" in run.err


def test_invalid_notification_exits_2_before_sending(apns: TokenServer, cli) -> None:
    run = cli(*send(apns, "--token", apns.registered[0], "--token", "xyz", "--alert", "Hi"))
    assert run.code == 2
    assert "device_token" in run.err
    assert "hex digits" in run.err
    assert apns.server.received == []  # the good one was not sent either


def test_topic_suffix_mismatch_is_invalid(apns: TokenServer, cli) -> None:
    run = cli(*send(apns, "--token", apns.registered[0], "--push-type", "voip", "--alert", "x"))
    assert run.code == 2
    assert "topic" in run.err
    assert ".voip" in run.err


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ([], "payload: give --payload"),
        (["--alert", "a", "--title", "t"], "--alert: give either"),
        (["--alert", "a", "--payload", "-"], "--payload: give either"),
        (
            ["--alert", "a", "--apns-id", UUID, "--token", "ab" * 32],
            "--apns-id: only with a single",
        ),
        (["--alert", "a", "--failed-out", "x.jsonl"], "--failed-out: only with --from"),
        (["--alert", "a", "--from", "x.jsonl"], "--from and --token"),
        (["--alert", "a", "--attempts", "0"], "--attempts: 0 must be at least 1"),
    ],
)
def test_usage_errors_exit_2(apns: TokenServer, cli, extra, message) -> None:
    run = cli(*send(apns, "--token", apns.registered[0], *extra))
    assert run.code == 2
    assert message in run.err
    assert apns.server.received == []


def test_no_token_exits_2(apns: TokenServer, cli) -> None:
    run = cli(*send(apns, "--alert", "Hi"))
    assert run.code == 2
    assert "--token: give at least one" in run.err


def test_topic_required_with_token_auth(apns: TokenServer, cli) -> None:
    run = cli("send", *apns.args, "--token", apns.registered[0], "--alert", "Hi")
    assert run.code == 2
    assert "--topic: required" in run.err


def test_environment_required_with_token_auth_without_host(apns: TokenServer, cli) -> None:
    run = cli("send", *apns.auth, "--topic", TOPIC, "--token", apns.registered[0], "--alert", "x")
    assert run.code == 2
    assert "--sandbox or --production" in run.err


def test_sandbox_and_production_are_exclusive(apns: TokenServer, cli) -> None:
    run = cli(*send(apns, "--sandbox", "--production", "--token", "ab" * 32, "--alert", "x"))
    assert run.code == 2
    assert "not allowed with argument" in run.err


@pytest.mark.parametrize(
    ("auth", "message"),
    [
        (
            ["--key", "/nonexistent/AuthKey_ABCDEFGHIJ.p8", "--team-id", "TEAM123456"],
            "no such file",
        ),
        (["--key", "/tmp/key.p8", "--team-id", "TEAM123456"], "/tmp/key.p8: no such file"),
        (["--key", "/tmp/AuthKey_ABCDEFGHIJ.p8"], "--team-id: required"),
        (["--key", "k.p8", "--cert", "c.pem"], "give one, not both"),
        ([], "credentials: give --key"),
        (["--cert", "/nonexistent/cert.pem"], "no such file"),
    ],
)
def test_bad_credentials_exit_2(apns: TokenServer, cli, auth, message) -> None:
    run = cli(
        "send", *auth, *apns.connection, "--topic", TOPIC, "--token", "ab" * 32, "--alert", "x"
    )
    assert run.code == 2
    assert message in run.err


def test_key_file_that_is_not_a_key_exits_2(apns: TokenServer, cli, tmp_path) -> None:
    path = tmp_path / "AuthKey_ABCDEFGHIJ.p8"
    path.write_text("hello")
    run = cli(
        "send",
        "--key",
        str(path),
        "--team-id",
        "TEAM123456",
        *apns.connection,
        "--topic",
        TOPIC,
        "--token",
        "ab" * 32,
        "--alert",
        "x",
    )
    assert run.code == 2
    assert "not a PEM private key" in run.err


def test_untrusted_key_is_rejected_by_the_server(apns: TokenServer, cli, tmp_path) -> None:
    other = tmp_path / "AuthKey_ZZZZZZZZZZ.p8"
    other.write_bytes(apns.key.private_key_pem)  # same key, a key id the server never trusted
    run = cli(
        "send",
        "--key",
        str(other),
        "--team-id",
        apns.key.team_id,
        *apns.connection,
        "--topic",
        TOPIC,
        "--token",
        apns.registered[0],
        "--alert",
        "x",
    )
    assert run.code == 1
    assert "InvalidProviderToken" in run.out


def test_connection_refused_exits_3(apns: TokenServer, cli) -> None:
    run = cli(
        "send",
        *apns.auth,
        "--host",
        "127.0.0.1",
        "--port",
        str(closed_port()),
        "--ca-file",
        apns.server.ca_file,
        "--topic",
        TOPIC,
        "--token",
        "ab" * 32,
        "--alert",
        "x",
        "--attempts",
        "1",
        "--json",
    )
    assert run.code == 3
    record = json.loads(run.out)
    assert record["outcome"] == "failed"
    assert record["status"] is None
    assert record["error"].startswith("Connect")


def test_untrusted_server_certificate_exits_3(apns: TokenServer, cli) -> None:
    s = apns.server
    run = cli(
        "send",
        *apns.auth,
        "--host",
        s.host,
        "--port",
        str(s.port),
        "--topic",
        TOPIC,
        "--token",
        apns.registered[0],
        "--alert",
        "x",
        "--attempts",
        "1",
    )
    assert run.code == 3
    assert run.out.startswith("failed")


def test_bad_ca_file_exits_2(apns: TokenServer, cli, tmp_path) -> None:
    bad = tmp_path / "ca.pem"
    bad.write_text("nope")
    s = apns.server
    run = cli(
        "send",
        *apns.auth,
        "--host",
        s.host,
        "--port",
        str(s.port),
        "--ca-file",
        str(bad),
        "--topic",
        TOPIC,
        "--token",
        apns.registered[0],
        "--alert",
        "x",
    )
    assert run.code == 2
    assert "ca_file" in run.err


def test_help_documents_exit_codes(cli) -> None:
    run = cli("send", "--help")
    assert run.code == 0
    for text in (
        "exit codes:",
        "0  every notification was accepted",
        "1  APNs rejected",
        "2  usage or input error",
        "3  connection or transport error",
        "--from",
        "--failed-out",
        "--json",
    ):
        assert text in run.out


def test_unknown_option_exits_2(cli) -> None:
    run = cli("send", "--no-such-option")
    assert run.code == 2
    assert "unrecognized arguments" in run.err


def test_no_command_exits_2(cli) -> None:
    run = cli()
    assert run.code == 2
    assert "COMMAND" in run.err


# -- certificate authentication ---------------------------------------------------------------


@pytest.fixture(scope="module")
def cert_server():
    with MockApnsServer(auth="certificate", strict=True) as server:
        cert, key = server.issue_client_certificate([TOPIC])
        token = secrets.token_hex(32)
        server.register(token, TOPIC)
        yield server, cert, key, token


def _encrypted_key(key_path: str, tmp_path, password: bytes) -> str:
    key = serialization.load_pem_private_key(Path(key_path).read_bytes(), None)
    out = tmp_path / "encrypted.key"
    out.write_bytes(
        key.private_bytes(  # type: ignore[union-attr]
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(password),
        )
    )
    return str(out)


def _cert_send(server: MockApnsServer, *auth: str, token: str) -> list[str]:
    return [
        "send",
        *auth,
        "--host",
        server.host,
        "--port",
        str(server.port),
        "--ca-file",
        server.ca_file,
        "--token",
        token,
        "--alert",
        "Hi",
        "--json",
    ]


def test_certificate_auth_send_takes_topic_and_environment_from_certificate(cert_server, cli):
    server, cert, key, token = cert_server
    server.clear_received()
    run = cli(*_cert_send(server, "--cert", cert, "--cert-key", key, token=token))
    assert run.code == 0, run.err
    assert json.loads(run.out)["status"] == 200
    received = server.received[-1]
    assert received.topic == TOPIC
    assert "authorization" not in received.headers


def test_certificate_for_other_environment_exits_2(cert_server, cli):
    server, cert, key, token = cert_server
    run = cli(*_cert_send(server, "--cert", cert, "--cert-key", key, "--production", token=token))
    assert run.code == 2
    assert "valid only for sandbox" in run.err


def test_certificate_password_from_environment(cert_server, cli, tmp_path, monkeypatch):
    server, cert, key, token = cert_server
    encrypted = _encrypted_key(key, tmp_path, b"s3cret-pw")
    monkeypatch.setenv("APNSKIT_CERT_PASSWORD", "s3cret-pw")
    run = cli(*_cert_send(server, "--cert", cert, "--cert-key", encrypted, token=token))
    assert run.code == 0, run.err
    assert "s3cret-pw" not in run.out + run.err


def test_certificate_wrong_password_exits_2(cert_server, cli, tmp_path):
    server, cert, key, token = cert_server
    encrypted = _encrypted_key(key, tmp_path, b"s3cret-pw")
    run = cli(
        *_cert_send(
            server, "--cert", cert, "--cert-key", encrypted, "--password", "wrong-pw", token=token
        )
    )
    assert run.code == 2
    assert "wrong password" in run.err
    assert "wrong-pw" not in run.err


def test_certificate_password_missing_without_terminal_exits_2(
    cert_server, cli, tmp_path, monkeypatch
):
    server, cert, key, token = cert_server
    encrypted = _encrypted_key(key, tmp_path, b"s3cret-pw")
    monkeypatch.delenv("APNSKIT_CERT_PASSWORD", raising=False)
    run = cli(*_cert_send(server, "--cert", cert, "--cert-key", encrypted, token=token), stdin="")
    assert run.code == 2
    assert "APNSKIT_CERT_PASSWORD" in run.err


def test_certificate_password_prompt_on_a_terminal(cert_server, cli, tmp_path, monkeypatch):
    server, cert, key, token = cert_server
    encrypted = _encrypted_key(key, tmp_path, b"s3cret-pw")
    monkeypatch.delenv("APNSKIT_CERT_PASSWORD", raising=False)

    class Terminal:
        def isatty(self) -> bool:
            return True

    prompts: list[str] = []

    def fake_getpass(prompt: str, stream=None) -> str:
        prompts.append(prompt)
        return "s3cret-pw"

    monkeypatch.setattr(sys, "stdin", Terminal())
    monkeypatch.setattr("getpass.getpass", fake_getpass)
    run = cli(*_cert_send(server, "--cert", cert, "--cert-key", encrypted, token=token))
    assert run.code == 0, run.err
    assert len(prompts) == 1
    assert "password for" in prompts[0]
