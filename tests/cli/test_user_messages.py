"""Issue 12: what a user sees. Each test runs the real ``apnskit`` command in a subprocess.

One test (or a parametrized group) per numbered "Messages" item and per "Safety" bullet of
the issue; the item is named in the test's comment.
"""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from cli_support import TOPIC, TokenServer, closed_port
from cryptography import x509
from cryptography.hazmat.primitives.serialization import (
    BestAvailableEncryption,
    load_pem_private_key,
    pkcs12,
)

from apnskit._clients.common import CERTIFICATE_REFUSED
from apnskit.testing import MockApnsServer

TOKEN = "ab" * 32
PASSWORD = "correct horse"


def _command() -> list[str]:
    # The console script the README installs; `python -m apnskit` where it is not there.
    script = Path(sys.executable).with_name("apnskit")
    return [str(script)] if script.exists() else [sys.executable, "-m", "apnskit"]


def apnskit(
    *argv: str, stdin: str = "", env: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """Run ``apnskit ARGV`` as a user would and capture what they see."""
    environ = {k: v for k, v in os.environ.items() if k != "PYTHONWARNINGS"}
    environ.update(env or {})
    return subprocess.run(
        [*_command(), *argv],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=environ,
        check=False,
    )


def one_line(text: str) -> str:
    lines = text.strip().splitlines()
    assert len(lines) == 1, text
    return lines[0]


@pytest.fixture(scope="module")
def cert_servers() -> Iterator[tuple[MockApnsServer, MockApnsServer]]:
    """Two certificate-auth mock servers: each refuses the other's client certificates."""
    with MockApnsServer(auth="certificate") as server, MockApnsServer(auth="certificate") as other:
        yield server, other


def where(server: MockApnsServer, *, ca_file: str | None = None) -> list[str]:
    return [
        "--host",
        server.host,
        "--port",
        str(server.port),
        "--ca-file",
        ca_file if ca_file is not None else server.ca_file,
    ]


def send_and_check(
    creds: list[str],
) -> tuple[subprocess.CompletedProcess[str], subprocess.CompletedProcess[str]]:
    """``apnskit send`` (one attempt) and ``apnskit check --connect`` with the same options."""
    send = apnskit("send", *creds, "--token", TOKEN, "--alert", "hi", "--attempts", "1")
    check = apnskit("check", *creds, "--connect")
    return send, check


def jsonl(path: Path, tokens: list[str], aps: dict[str, object]) -> Path:
    """Write one notification a line (``--from``'s format) for ``tokens``; return ``path``."""
    path.write_text(
        "".join(json.dumps({"token": t, "payload": {"aps": aps}}) + "\n" for t in tokens)
    )
    return path


# -- 1. ports out of range --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (
            ["mock-server", "--port", "65536"],
            "apnskit mock-server: --port: 65536 is not a TCP port number "
            "(0..65535; 0: any free port)",
        ),
        (
            ["mock-server", "--port", "-1"],
            "apnskit mock-server: --port: -1 is not a TCP port number (0..65535",
        ),
        (["mock-server", "--port", "http"], "apnskit mock-server: --port: 'http' is not a port"),
        (
            ["send", "--port", "70000", "--token", TOKEN, "--alert", "hi"],
            "apnskit send: --port: 70000 is not a TCP port number (1..65535)",
        ),
        (
            ["check", "--connect", "--port", "0", "--host", "127.0.0.1"],
            "apnskit check: --port: 0 is not a TCP port number (1..65535)",
        ),
    ],
)
def test_bad_port_is_one_line_and_exit_2(argv: list[str], expected: str) -> None:
    proc = apnskit(*argv)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    line = one_line(proc.stderr)
    assert line.startswith(expected), line
    assert line.endswith("--help')")


# -- 2. a refused client certificate, said the same way by send and check ---------------------


def test_refused_client_certificate_same_words_in_send_and_check(
    cert_servers: tuple[MockApnsServer, MockApnsServer],
) -> None:
    server, other = cert_servers
    cert, key = other.issue_client_certificate([TOPIC])  # signed by a CA `server` does not trust
    send, check = send_and_check(["--cert", cert, "--cert-key", key, *where(server)])
    assert send.returncode == 3
    assert f"ConnectionLostError: {CERTIFICATE_REFUSED}" in send.stdout
    assert "APNs closed the TCP connection" not in send.stdout
    assert check.returncode == 3
    assert f"apnskit check: TLS: {CERTIFICATE_REFUSED}." in check.stderr


# -- 3. a key file that does not exist ----------------------------------------------------------


def test_missing_key_file_is_reported_as_missing(tmp_path: Path) -> None:
    missing = tmp_path / "nope.p8"
    proc = apnskit("check", "--key", str(missing), "--team-id", "T")
    assert proc.returncode == 2
    assert one_line(proc.stderr) == f"apnskit check: key file {missing}: no such file"


def test_key_file_name_without_key_id_names_the_flag(apns: TokenServer, tmp_path: Path) -> None:
    renamed = tmp_path / "signing.p8"
    renamed.write_bytes(apns.key.path.read_bytes())
    proc = apnskit("check", "--key", str(renamed), "--team-id", apns.key.team_id)
    assert proc.returncode == 2
    assert one_line(proc.stderr) == (
        "apnskit check: --key-id: not given, and the file name 'signing.p8' is not Apple's "
        "'AuthKey_<KEYID>.p8' to take it from; give --key-id"
    )


# -- 4. a garbage certificate file is not a password problem ---------------------------------


@pytest.mark.parametrize("name", ["garbage.pem", "garbage.p12"])
def test_garbage_certificate_is_not_blamed_on_the_password(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    path.write_bytes(bytes(range(7, 250)) * 3)
    proc = apnskit("check", "--cert", str(path))
    assert proc.returncode == 2
    line = one_line(proc.stderr)
    assert line.startswith(f"apnskit check: certificate file {path}: neither PEM")
    assert "PKCS#12" in line
    assert "password" not in line


# -- 5. messages name the flags, not Python arguments ------------------------------------------


@pytest.fixture
def p12_file(cert_servers: tuple[MockApnsServer, MockApnsServer], tmp_path: Path) -> Path:
    server, _ = cert_servers
    cert_path, key_path = server.issue_client_certificate([TOPIC])
    cert = x509.load_pem_x509_certificate(Path(cert_path).read_bytes())
    key = load_pem_private_key(Path(key_path).read_bytes(), None)
    assert not isinstance(key, type(None))
    path = tmp_path / "push.p12"
    path.write_bytes(
        pkcs12.serialize_key_and_certificates(
            b"push",
            key,  # type: ignore[arg-type]
            cert,
            None,
            BestAvailableEncryption(PASSWORD.encode()),
        )
    )
    return path


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        (
            ["--ca-file", "/nonexistent/ca.pem"],
            "apnskit send: --ca-file: cannot load '/nonexistent/ca.pem' as PEM certificates",
        ),
        (
            ["--connect-timeout", "-1"],
            "apnskit send: --connect-timeout: -1 must be a positive number of seconds",
        ),
        (["--deadline", "0"], "apnskit send: --deadline: 0 must be a positive number of seconds"),
        (["--attempts", "0"], "apnskit send: --attempts: 0 must be at least 1"),
    ],
)
def test_send_messages_name_the_flag(apns: TokenServer, extra: list[str], expected: str) -> None:
    s = apns.server
    base = ["--host", s.host, "--port", str(s.port), "--topic", TOPIC]
    if "--ca-file" not in extra:
        base += ["--ca-file", s.ca_file]
    proc = apnskit("send", *apns.auth, *base, *extra, "--token", TOKEN, "--alert", "hi")
    assert proc.returncode == 2
    line = one_line(proc.stderr)
    assert line.startswith(expected), line
    for python in ("ca_file", "Timeout.", "RetryPolicy.", "max_attempts"):
        assert python not in line


def test_check_ca_file_message_names_the_flag(apns: TokenServer) -> None:
    s = apns.server
    proc = apnskit(
        "check",
        "--connect",
        "--host",
        s.host,
        "--port",
        str(s.port),
        "--ca-file",
        "/nonexistent/ca.pem",
    )
    assert proc.returncode == 2
    assert proc.stderr.startswith(
        "apnskit check: --ca-file: cannot load '/nonexistent/ca.pem' as PEM certificates"
    )
    assert "ca_file" not in proc.stderr


def test_p12_without_password_gives_one_hint_with_the_flags(
    cert_servers: tuple[MockApnsServer, MockApnsServer], p12_file: Path
) -> None:
    server, _ = cert_servers
    proc = apnskit(
        "send", "--cert", str(p12_file), *where(server), "--token", TOKEN, "--alert", "hi"
    )
    assert proc.returncode == 2
    assert one_line(proc.stderr) == (
        f"apnskit send: password: {p12_file} is protected by a password; give "
        "--password-file FILE, --password or $APNSKIT_CERT_PASSWORD"
    )


# -- 6. a CA file that was given but did not sign the server's certificate --------------------


def test_untrusted_server_with_a_ca_file_given(
    cert_servers: tuple[MockApnsServer, MockApnsServer],
) -> None:
    server, other = cert_servers
    cert, key = server.issue_client_certificate([TOPIC])
    send, check = send_and_check(
        ["--cert", cert, "--cert-key", key, *where(server, ca_file=other.ca_file)]
    )
    assert send.returncode == 3
    assert "Pass ca_file=" not in send.stdout
    assert "did not verify" in send.stdout
    assert "a --ca-file already given does not hold the CA that signed" in send.stdout
    assert check.returncode == 3
    assert f"It is not signed by the CA in --ca-file {other.ca_file}" in check.stderr
    assert "trust it with --ca-file" not in check.stderr


# -- 7. the cause of failures is printed --------------------------------------------------------


def test_bulk_failures_print_their_cause_on_stderr(apns: TokenServer, tmp_path: Path) -> None:
    source = jsonl(tmp_path / "n.jsonl", [TOKEN] * 50, {})
    port = closed_port()
    proc = apnskit(
        "send",
        *apns.auth,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--ca-file",
        apns.server.ca_file,
        "--topic",
        TOPIC,
        "--from",
        str(source),
        "--attempts",
        "1",
    )
    assert proc.returncode == 3
    assert (
        f"apnskit send: 50 failed: ConnectError: connection to 127.0.0.1:{port} refused"
        in proc.stderr
    )


# -- 9. small ones --------------------------------------------------------------------------


def test_send_help_says_what_each_mode_prints() -> None:
    proc = apnskit("send", "--help")
    text = " ".join(proc.stdout.split())
    assert "With --token every result is printed" in text
    assert "with --from a summary by reason" in text


@pytest.mark.parametrize("command", ["check", "channels"])
def test_check_and_channels_help_do_not_speak_of_notifications(command: str) -> None:
    proc = apnskit(command, "--help")
    assert proc.returncode == 0
    codes = proc.stdout[proc.stdout.index("exit codes:") :]
    assert "notification" not in codes


def test_first_progress_line_shows_no_rate_yet(apns: TokenServer, tmp_path: Path) -> None:
    source = jsonl(tmp_path / "n.jsonl", apns.registered, {"alert": "x"})
    proc = apnskit("send", *apns.args, "--topic", TOPIC, "--from", str(source), "--progress")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stderr.strip().splitlines()
    # The first line comes within a second of the start (mostly connection set-up): no rate.
    assert lines[0].startswith("-/s  sent "), lines
    # The final line always has one.
    assert lines[-1].split("/s")[0].replace(",", "").isdigit(), lines


def test_tracebacks_name_the_public_exception() -> None:
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            "import apnskit; apnskit.TokenCredentials.from_file('nope.p8', team_id='T')",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 1
    last = proc.stderr.strip().splitlines()[-1]
    assert last == "apnskit.CredentialsError: key file nope.p8: no such file"


def test_demo_killed_by_sigterm_removes_its_temporary_folder(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONWARNINGS"}
    env["TMPDIR"] = str(tmp_path)  # the mock server's folder (with private keys) goes here
    with subprocess.Popen(
        # Enough notifications that the demo is still busy when the signal comes.
        [*_command(), "demo", "--count", "200000"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    ) as proc:
        try:
            assert proc.stdout is not None
            for line in proc.stdout:
                if "signing key" in line:  # printed once the folder and the key exist
                    break
            assert any(tmp_path.iterdir()), "the demo's mock server made no temporary folder"
            proc.send_signal(signal.SIGTERM)
            code = proc.wait(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert code == 128 + signal.SIGTERM
    assert list(tmp_path.iterdir()) == []


# -- Safety -------------------------------------------------------------------------------


def bulk_with_one_rejection(apns: TokenServer, tmp_path: Path) -> Path:
    return jsonl(tmp_path / "n.jsonl", [apns.gone], {"alert": "x"})


def bulk_all_accepted(apns: TokenServer, tmp_path: Path) -> Path:
    return jsonl(tmp_path / "ok.jsonl", [apns.registered[0]], {"alert": "x"})


def send_with_failed_out(apns: TokenServer, source: Path, failed: Path, *, code: int) -> None:
    """``apnskit send --from SOURCE --failed-out FAILED``, which must exit with ``code``."""
    proc = apnskit(
        "send", *apns.args, "--topic", TOPIC, "--from", str(source), "--failed-out", str(failed)
    )
    assert proc.returncode == code, proc.stderr


def test_failed_out_is_created_owner_only(apns: TokenServer, tmp_path: Path) -> None:
    failed = tmp_path / "failed.jsonl"
    send_with_failed_out(apns, bulk_with_one_rejection(apns, tmp_path), failed, code=1)
    assert stat.S_IMODE(failed.stat().st_mode) == 0o600
    assert json.loads(failed.read_text())["reason"] == "Unregistered"


def test_failed_out_replacing_an_old_readable_file_is_owner_only(
    apns: TokenServer, tmp_path: Path
) -> None:
    failed = tmp_path / "failed.jsonl"
    failed.write_text("from an earlier run\n")
    failed.chmod(0o644)
    send_with_failed_out(apns, bulk_with_one_rejection(apns, tmp_path), failed, code=1)
    assert stat.S_IMODE(failed.stat().st_mode) == 0o600
    assert "earlier run" not in failed.read_text()


def test_failed_out_stale_regular_file_is_removed_when_nothing_failed(
    apns: TokenServer, tmp_path: Path
) -> None:
    failed = tmp_path / "failed.jsonl"
    failed.write_text("from an earlier run\n")
    send_with_failed_out(apns, bulk_all_accepted(apns, tmp_path), failed, code=0)
    assert not failed.exists()


def _special_file(tmp_path: Path) -> tuple[Path, int]:
    """A character device like /dev/null (as root), else a symlink to /dev/null."""
    path = tmp_path / "null"
    if os.geteuid() == 0:
        os.mknod(path, stat.S_IFCHR | 0o666, os.makedev(1, 3))  # Linux's /dev/null numbers
        return path, stat.S_IFCHR
    path.symlink_to("/dev/null")
    return path, stat.S_IFLNK


@pytest.mark.parametrize(
    ("bulk", "code"),
    [(bulk_all_accepted, 0), (bulk_with_one_rejection, 1)],
    ids=["nothing-failed", "with-failures"],
)
def test_failed_out_that_is_not_a_regular_file_is_never_removed(
    apns: TokenServer, tmp_path: Path, bulk: Callable[[TokenServer, Path], Path], code: int
) -> None:
    # `--failed-out /dev/null` as root must not delete /dev/null: the same case, on a device
    # node made for the test (or a symlink to /dev/null when not root). With failures, they
    # are written to it and it is kept.
    special, kind = _special_file(tmp_path)
    send_with_failed_out(apns, bulk(apns, tmp_path), special, code=code)
    assert stat.S_IFMT(os.lstat(special).st_mode) == kind


def test_password_file(
    cert_servers: tuple[MockApnsServer, MockApnsServer], p12_file: Path, tmp_path: Path
) -> None:
    server, _ = cert_servers
    secret = tmp_path / "password"
    secret.write_text(PASSWORD + "\n")
    proc = apnskit(
        "send",
        "--cert",
        str(p12_file),
        "--password-file",
        str(secret),
        *where(server),
        "--token",
        TOKEN,
        "--alert",
        "hi",
    )
    # The certificate loaded (the password was right) and the notification reached APNs.
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("accepted")


def test_password_file_problems_are_one_line(p12_file: Path, tmp_path: Path) -> None:
    missing = apnskit("check", "--cert", str(p12_file), "--password-file", str(tmp_path / "no"))
    assert missing.returncode == 2
    assert "--password-file: cannot read" in missing.stderr
    wrong = tmp_path / "wrong"
    wrong.write_text("not it\n")
    proc = apnskit("check", "--cert", str(p12_file), "--password-file", str(wrong))
    assert proc.returncode == 2
    assert proc.stderr.startswith(f"apnskit check: password: wrong password for {p12_file}")
    assert "not it" not in proc.stderr


def test_password_from_the_environment(p12_file: Path) -> None:
    proc = apnskit("check", "--cert", str(p12_file), env={"APNSKIT_CERT_PASSWORD": PASSWORD})
    assert proc.returncode == 0, proc.stderr
    assert f"subject UID  {TOPIC}" in proc.stdout


def test_help_warns_that_password_shows_in_the_process_list() -> None:
    text = " ".join(apnskit("send", "--help").stdout.split())
    assert "--password-file FILE" in text
    assert "process list" in text
    assert "$APNSKIT_CERT_PASSWORD" in text


# -- broadcast expiration (the CLI and the builder agree with the mock) -------------------------


def test_broadcast_without_expiration_is_accepted_on_a_no_storage_channel(
    apns: TokenServer,
) -> None:
    bundle = "com.example.bcast"
    apns.server.set_broadcast_enabled(bundle, True)
    channel = apns.server.create_channel(bundle, 0)
    proc = apnskit(
        "broadcast",
        *apns.args,
        "--sandbox",
        "--bundle-id",
        bundle,
        "--channel",
        channel,
        "--content-state",
        '{"score": 1}',
    )
    assert proc.returncode == 0, proc.stderr + proc.stdout
    assert apns.server.received[-1].headers["apns-expiration"] == "0"
