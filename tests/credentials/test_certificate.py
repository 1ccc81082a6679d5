from __future__ import annotations

import os
import socket
import ssl
import stat
import threading
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import pkcs12

from apnskit import (
    CertificateCredentials,
    CertificateTopic,
    CredentialsError,
    Environment,
)

PASSWORD = "p@ss-w0rd-secret"


def p12(issued: Any, password: bytes | None, *, chain: bool = False) -> bytes:
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(password)
        if password
        else serialization.NoEncryption()
    )
    cas = [issued.ca_certificate] if chain else None
    return pkcs12.serialize_key_and_certificates(
        b"apns", issued.key, issued.certificate, cas, encryption
    )


def assert_clean(text: str, *secrets: bytes | str) -> None:
    assert "BEGIN" not in text
    assert PASSWORD not in text
    for secret in secrets:
        if isinstance(secret, bytes):
            for line in secret.splitlines()[1:-1]:
                if len(line) >= 16 and b":" not in line:
                    assert line.decode() not in text
        else:
            assert secret not in text


# -- loading -----------------------------------------------------------------------------------


def test_from_pem_two_parts(cert_factory: Any) -> None:
    issued = cert_factory(topics=[("com.example.app", ["app"])])
    creds = CertificateCredentials.from_pem(issued.cert_pem, issued.key_pem())
    assert creds.certificate == issued.certificate
    assert creds.subject_uid == "com.example.app"
    assert creds.topics == (CertificateTopic("com.example.app", ("app",)),)
    assert creds.environments == frozenset({Environment.SANDBOX, Environment.PRODUCTION})
    assert creds.not_valid_after == issued.certificate.not_valid_after_utc
    assert creds.info.subject_uid == creds.subject_uid


@pytest.mark.parametrize("key_first", [False, True])
def test_from_pem_one_file_with_chain(cert_factory: Any, key_first: bool) -> None:
    issued = cert_factory(with_ca=True)
    ca_pem = issued.ca_certificate.public_bytes(serialization.Encoding.PEM)
    # the leaf is found by its key, whatever the order of the blocks
    parts = [ca_pem, issued.cert_pem]
    parts.insert(0 if key_first else 2, issued.key_pem())
    creds = CertificateCredentials.from_pem(b"".join(parts))
    assert creds.certificate == issued.certificate
    assert creds._chain == (issued.ca_certificate,)


@pytest.mark.parametrize("password", [PASSWORD, PASSWORD.encode()])
@pytest.mark.parametrize("traditional", [False, True])
def test_from_pem_encrypted_key(cert_factory: Any, password: Any, traditional: bool) -> None:
    issued = cert_factory()
    key_pem = issued.key_pem(PASSWORD.encode(), traditional=traditional)
    creds = CertificateCredentials.from_pem(issued.cert_pem, key_pem, password=password)
    assert creds.certificate == issued.certificate


def test_encrypted_key_without_password(cert_factory: Any) -> None:
    issued = cert_factory()
    key_pem = issued.key_pem(PASSWORD.encode())
    with pytest.raises(
        CredentialsError, match=r"password: the private key is encrypted; pass its password"
    ) as info:
        CertificateCredentials.from_pem(issued.cert_pem, key_pem)
    assert_clean(str(info.value), key_pem)


@pytest.mark.parametrize("traditional", [False, True])
def test_encrypted_key_wrong_password(cert_factory: Any, traditional: bool) -> None:
    issued = cert_factory()
    key_pem = issued.key_pem(PASSWORD.encode(), traditional=traditional)
    with pytest.raises(
        CredentialsError, match=r"password: wrong password for the private key"
    ) as info:
        CertificateCredentials.from_pem(issued.cert_pem, key_pem, password="not-it-at-all")
    assert "not-it-at-all" not in str(info.value)
    assert_clean(str(info.value), key_pem)


def test_password_for_unencrypted_key_is_ignored(cert_factory: Any) -> None:
    issued = cert_factory()
    creds = CertificateCredentials.from_pem(issued.cert_pem, issued.key_pem(), password=PASSWORD)
    assert creds.certificate == issued.certificate


def test_pem_without_key(cert_factory: Any) -> None:
    with pytest.raises(CredentialsError, match=r"no private key found.*key_file="):
        CertificateCredentials.from_pem(cert_factory().cert_pem)


def test_pem_without_certificate(cert_factory: Any) -> None:
    issued = cert_factory()
    with pytest.raises(CredentialsError, match=r"no PEM certificate found"):
        CertificateCredentials.from_pem(issued.key_pem(), issued.key_pem())


def test_key_pem_is_not_a_key(cert_factory: Any) -> None:
    issued = cert_factory()
    with pytest.raises(CredentialsError, match=r"key file: not a PEM private key"):
        CertificateCredentials.from_pem(issued.cert_pem, issued.cert_pem)


def test_damaged_certificate(cert_factory: Any) -> None:
    issued = cert_factory()
    lines = issued.cert_pem.splitlines()
    damaged = b"\n".join([lines[0], b"AAAA" + lines[1][4:], *lines[2:]]) + b"\n"
    with pytest.raises(CredentialsError, match=r"certificate is damaged"):
        CertificateCredentials.from_pem(damaged, issued.key_pem())


def test_certificate_and_key_do_not_match(
    cert_factory: Any, other_rsa_key: Any, key_to_pem: Any
) -> None:
    issued = cert_factory()
    wrong = key_to_pem(other_rsa_key)
    with pytest.raises(CredentialsError, match=r"certificate and key do not match") as info:
        CertificateCredentials.from_pem(issued.cert_pem, wrong)
    assert_clean(str(info.value), wrong)


def test_ec_key_certificates_work(cert_factory: Any, p256_key: Any) -> None:
    issued = cert_factory(key=p256_key)
    creds = CertificateCredentials.from_pem(issued.cert_pem, issued.key_pem())
    creds.configure_ssl_context(ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT))


# -- files -------------------------------------------------------------------------------------


def test_from_file_pem_one_file(cert_factory: Any, tmp_path: Path) -> None:
    issued = cert_factory()
    path = tmp_path / "push.pem"
    path.write_bytes(issued.cert_pem + issued.key_pem())
    assert CertificateCredentials.from_file(path).certificate == issued.certificate
    assert CertificateCredentials.from_file(str(path)).certificate == issued.certificate


def test_from_file_pem_two_files_encrypted(cert_factory: Any, tmp_path: Path) -> None:
    issued = cert_factory()
    cert_path = tmp_path / "cert.pem"
    key_path = tmp_path / "key.pem"
    cert_path.write_bytes(issued.cert_pem)
    key_path.write_bytes(issued.key_pem(PASSWORD.encode()))
    creds = CertificateCredentials.from_file(cert_path, key_file=key_path, password=PASSWORD)
    assert creds.certificate == issued.certificate
    with pytest.raises(CredentialsError, match=r"password: wrong password"):
        CertificateCredentials.from_file(cert_path, key_file=key_path, password="nope")


def test_from_file_missing_files_name_the_path(cert_factory: Any, tmp_path: Path) -> None:
    missing = tmp_path / "nowhere" / "push.pem"
    with pytest.raises(CredentialsError, match=r"certificate file .*: no such file") as info:
        CertificateCredentials.from_file(missing)
    assert str(missing) in str(info.value)
    cert_path = tmp_path / "cert.pem"
    cert_path.write_bytes(cert_factory().cert_pem)
    with pytest.raises(CredentialsError, match=r"key file .*: no such file") as info:
        CertificateCredentials.from_file(cert_path, key_file=tmp_path / "key.pem")
    assert str(tmp_path / "key.pem") in str(info.value)


@pytest.mark.parametrize("suffix", [".p12", ".pfx"])
def test_pkcs12_with_password(cert_factory: Any, tmp_path: Path, suffix: str) -> None:
    issued = cert_factory(environments=("production",))
    path = tmp_path / f"push{suffix}"
    path.write_bytes(p12(issued, PASSWORD.encode()))
    creds = CertificateCredentials.from_file(path, password=PASSWORD)
    assert creds.certificate == issued.certificate
    assert creds.environments == frozenset({Environment.PRODUCTION})
    assert (
        CertificateCredentials.from_file(path, password=PASSWORD.encode()).certificate
        == issued.certificate
    )


def test_pkcs12_without_password(cert_factory: Any, tmp_path: Path) -> None:
    issued = cert_factory()
    path = tmp_path / "push.p12"
    path.write_bytes(p12(issued, None))
    assert CertificateCredentials.from_file(path).certificate == issued.certificate
    # a password given for an unprotected file does not stand in the way
    assert CertificateCredentials.from_file(path, password="x").certificate == issued.certificate


def test_pkcs12_wrong_password(cert_factory: Any, tmp_path: Path) -> None:
    path = tmp_path / "push.p12"
    path.write_bytes(p12(cert_factory(), PASSWORD.encode()))
    with pytest.raises(CredentialsError, match=r"password: wrong password for .*push.p12") as info:
        CertificateCredentials.from_file(path, password="guess-123")
    assert "guess-123" not in str(info.value)
    assert_clean(str(info.value))


def test_pkcs12_missing_password(cert_factory: Any, tmp_path: Path) -> None:
    path = tmp_path / "push.p12"
    path.write_bytes(p12(cert_factory(), PASSWORD.encode()))
    with pytest.raises(
        CredentialsError, match=r"password: .*push.p12 is protected by a password; pass password="
    ):
        CertificateCredentials.from_file(path)


def test_pkcs12_with_chain(cert_factory: Any, tmp_path: Path) -> None:
    issued = cert_factory(with_ca=True)
    path = tmp_path / "push.p12"
    path.write_bytes(p12(issued, PASSWORD.encode(), chain=True))
    creds = CertificateCredentials.from_file(path, password=PASSWORD)
    assert creds._chain == (issued.ca_certificate,)


def test_pkcs12_with_key_file_is_refused(cert_factory: Any, tmp_path: Path) -> None:
    path = tmp_path / "push.p12"
    path.write_bytes(p12(cert_factory(), None))
    with pytest.raises(
        CredentialsError, match=r"key_file: .*PKCS#12 file, which carries its own key"
    ):
        CertificateCredentials.from_file(path, key_file=tmp_path / "key.pem")


def test_pkcs12_without_key_or_certificate(cert_factory: Any, tmp_path: Path) -> None:
    issued = cert_factory()
    only_cert = tmp_path / "cert-only.p12"
    only_cert.write_bytes(
        pkcs12.serialize_key_and_certificates(
            b"x", None, issued.certificate, None, serialization.NoEncryption()
        )
    )
    with pytest.raises(CredentialsError, match=r"PKCS#12 holds no private key"):
        CertificateCredentials.from_file(only_cert)
    only_key = tmp_path / "key-only.p12"
    only_key.write_bytes(
        pkcs12.serialize_key_and_certificates(
            b"x", issued.key, None, None, serialization.NoEncryption()
        )
    )
    with pytest.raises(CredentialsError, match=r"PKCS#12 holds no certificate"):
        CertificateCredentials.from_file(only_key)


def test_neither_pem_nor_pkcs12(tmp_path: Path) -> None:
    path = tmp_path / "junk.bin"
    path.write_bytes(b"\x00\x01\x02 not a certificate")
    with pytest.raises(CredentialsError, match=r"junk.bin: neither PEM .* nor PKCS#12") as info:
        CertificateCredentials.from_file(path)
    # Not blamed on a password: none would help.
    assert "password" not in str(info.value)


@pytest.mark.parametrize("password", [None, "secret"])
def test_garbage_is_not_blamed_on_the_password(tmp_path: Path, password: str | None) -> None:
    path = tmp_path / "push.p12"
    path.write_bytes(bytes(range(256)) * 2)
    with pytest.raises(CredentialsError, match=r"push.p12: neither PEM .* nor PKCS#12"):
        CertificateCredentials.from_file(path, password=password)


def test_damaged_pkcs12_with_a_password_names_both_causes(
    cert_factory: Any, tmp_path: Path
) -> None:
    data = bytearray(p12(cert_factory(), PASSWORD.encode()))
    data[-40:] = bytes(40)  # the MAC at the end no longer matches
    path = tmp_path / "push.p12"
    path.write_bytes(bytes(data))
    with pytest.raises(CredentialsError, match=r"wrong password for .*push.p12 \(or the file is"):
        CertificateCredentials.from_file(path, password=PASSWORD)


# -- validity ----------------------------------------------------------------------------------


def test_expired_certificate_gives_the_date(cert_factory: Any) -> None:
    expired_on = datetime(2024, 3, 4, 5, 6, 7, tzinfo=timezone.utc)
    issued = cert_factory(not_before=expired_on - timedelta(days=365), not_after=expired_on)
    with pytest.raises(
        CredentialsError,
        match=r"certificate for 'com.example.app': expired on 2024-03-04 05:06:07 UTC",
    ):
        CertificateCredentials.from_pem(issued.cert_pem, issued.key_pem())


def test_not_yet_valid_certificate(cert_factory: Any) -> None:
    start = datetime.now(timezone.utc) + timedelta(days=2)
    issued = cert_factory(not_before=start, not_after=start + timedelta(days=365))
    with pytest.raises(CredentialsError, match=r"not valid before"):
        CertificateCredentials.from_pem(issued.cert_pem, issued.key_pem())


def test_validity_checked_against_given_time(cert_factory: Any) -> None:
    issued = cert_factory()
    later = issued.certificate.not_valid_after_utc + timedelta(seconds=1)
    CertificateCredentials(issued.certificate, issued.key)
    with pytest.raises(CredentialsError, match=r"expired on"):
        CertificateCredentials(issued.certificate, issued.key, now=later)


# -- environment -------------------------------------------------------------------------------


def creds_for(cert_factory: Any, environments: tuple[str, ...]) -> CertificateCredentials:
    issued = cert_factory(environments=environments)
    return CertificateCredentials(issued.certificate, issued.key)


def test_development_only_certificate(cert_factory: Any) -> None:
    creds = creds_for(cert_factory, ("development",))
    assert creds.resolve_environment(None) is Environment.SANDBOX
    assert creds.resolve_environment("sandbox") is Environment.SANDBOX
    assert creds.resolve_environment("development") is Environment.SANDBOX
    with pytest.raises(
        CredentialsError,
        match=r"environment: the certificate for 'com.example.app' is valid only for sandbox, "
        r"not for production",
    ):
        creds.resolve_environment("production")


def test_production_only_certificate(cert_factory: Any) -> None:
    creds = creds_for(cert_factory, ("production",))
    assert creds.resolve_environment(None) is Environment.PRODUCTION
    assert creds.resolve_environment(Environment.PRODUCTION) is Environment.PRODUCTION
    with pytest.raises(CredentialsError, match=r"valid only for production, not for sandbox"):
        creds.resolve_environment(Environment.SANDBOX)


def test_universal_certificate(cert_factory: Any) -> None:
    creds = creds_for(cert_factory, ("development", "production"))
    assert creds.resolve_environment(None) is Environment.PRODUCTION
    assert creds.resolve_environment("sandbox") is Environment.SANDBOX
    assert creds.resolve_environment("production") is Environment.PRODUCTION


def test_certificate_without_apple_markers(cert_factory: Any) -> None:
    creds = creds_for(cert_factory, ())
    assert creds.environments == frozenset()
    assert creds.resolve_environment(None) is Environment.PRODUCTION
    assert creds.resolve_environment("sandbox") is Environment.SANDBOX


def test_no_token_for_certificates(cert_factory: Any) -> None:
    creds = creds_for(cert_factory, ("production",))
    assert creds.authorization() is None  # type: ignore[func-returns-value]
    creds.token_rejected(1)
    assert creds.authorization() is None  # type: ignore[func-returns-value]


# -- the TLS context ---------------------------------------------------------------------------


def test_key_file_is_private_and_removed(
    cert_factory: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    issued = cert_factory(with_ca=True)
    creds = CertificateCredentials.from_pem(
        issued.cert_pem + issued.ca_certificate.public_bytes(serialization.Encoding.PEM),
        issued.key_pem(PASSWORD.encode()),
        password=PASSWORD,
    )
    seen: list[dict[str, Any]] = []
    real = ssl.SSLContext.load_cert_chain

    def spy(self: ssl.SSLContext, certfile: Any, keyfile: Any = None, password: Any = None) -> None:
        path = Path(certfile)
        seen.append(
            {
                "path": path,
                "file_mode": stat.S_IMODE(path.stat().st_mode),
                "dir_mode": stat.S_IMODE(path.parent.stat().st_mode),
                "content": path.read_bytes(),
                "keyfile": keyfile,
                "password": password,
            }
        )
        real(self, certfile, keyfile, password)

    monkeypatch.setattr(ssl.SSLContext, "load_cert_chain", spy)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    creds.configure_ssl_context(context)
    assert len(seen) == 1
    call = seen[0]
    assert call["file_mode"] == 0o600
    assert call["dir_mode"] == 0o700
    assert not call["path"].exists()
    assert not call["path"].parent.exists()
    content = call["content"]
    assert content.count(b"-----BEGIN CERTIFICATE-----") == 2
    # The key is never on disk in plain text: encrypted with a random in-memory password.
    assert b"-----BEGIN PRIVATE KEY-----" not in content
    assert b"-----BEGIN ENCRYPTED PRIVATE KEY-----" in content
    assert isinstance(call["password"], bytes)
    assert len(call["password"]) >= 16
    key_block = content[: content.index(b"-----END ENCRYPTED PRIVATE KEY-----") + 36]
    with pytest.raises((TypeError, ValueError)):
        serialization.load_pem_private_key(key_block, None)
    serialization.load_pem_private_key(key_block, call["password"])


def test_key_file_removed_when_loading_fails(
    cert_factory: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    issued = cert_factory()
    creds = CertificateCredentials(issued.certificate, issued.key)
    paths: list[Path] = []

    def failing(
        self: ssl.SSLContext, certfile: Any, keyfile: Any = None, password: Any = None
    ) -> None:
        paths.append(Path(certfile))
        raise ssl.SSLError(1, "[SSL] boom")

    monkeypatch.setattr(ssl.SSLContext, "load_cert_chain", failing)
    with pytest.raises(CredentialsError, match=r"the TLS library refused it") as info:
        creds.configure_ssl_context(ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT))
    assert_clean(str(info.value), issued.key_pem())
    assert len(paths) == 1
    assert not paths[0].exists()
    assert not paths[0].parent.exists()


def test_client_certificate_is_presented_in_a_handshake(cert_factory: Any, tmp_path: Path) -> None:
    client = cert_factory(uid="com.example.app")
    server = cert_factory(uid=None, environments=())
    server_pem = tmp_path / "server.pem"
    server_pem.write_bytes(server.cert_pem + server.key_pem())
    os.chmod(server_pem, 0o600)

    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(server_pem)
    server_ctx.verify_mode = ssl.CERT_REQUIRED
    server_ctx.load_verify_locations(cadata=client.cert_pem.decode())
    client_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    client_ctx.check_hostname = False
    client_ctx.verify_mode = ssl.CERT_NONE
    CertificateCredentials(client.certificate, client.key).configure_ssl_context(client_ctx)

    left, right = socket.socketpair()
    left.settimeout(10)
    right.settimeout(10)
    peer: list[bytes | None] = []
    errors: list[BaseException] = []

    def serve() -> None:
        try:
            with server_ctx.wrap_socket(right, server_side=True) as tls:
                peer.append(tls.getpeercert(binary_form=True))
                tls.sendall(b"ok")
        except BaseException as exc:  # reported below
            errors.append(exc)

    thread = threading.Thread(target=serve)
    thread.start()
    with client_ctx.wrap_socket(left) as tls:
        assert tls.recv(2) == b"ok"
    thread.join()
    assert errors == []
    assert peer == [client.certificate.public_bytes(serialization.Encoding.DER)]


# -- secrets -----------------------------------------------------------------------------------


def test_repr_and_str_free_of_secrets(cert_factory: Any) -> None:
    issued = cert_factory(environments=("development",))
    key_pem = issued.key_pem(PASSWORD.encode())
    creds = CertificateCredentials.from_pem(issued.cert_pem, key_pem, password=PASSWORD)
    expected_after = issued.certificate.not_valid_after_utc.isoformat()
    for text in (repr(creds), str(creds)):
        assert text == (
            "CertificateCredentials(subject_uid='com.example.app', environments=['sandbox'], "
            f"not_valid_after={expected_after!r})"
        )
        assert_clean(text, key_pem, issued.key_pem())


def test_repr_of_certificate_info_free_of_key(cert_factory: Any) -> None:
    issued = cert_factory(topics=[("com.example.app", ["app"])])
    creds = CertificateCredentials(issued.certificate, issued.key)
    assert_clean(repr(creds.info), issued.key_pem())
    assert isinstance(creds.certificate, x509.Certificate)


def test_damaged_unencrypted_key(cert_factory: Any) -> None:
    issued = cert_factory()
    lines = issued.key_pem().splitlines()
    damaged = b"\n".join([lines[0], b"AAAA" + lines[1][4:], *lines[2:]]) + b"\n"
    with pytest.raises(CredentialsError, match=r"key: the PEM private key is damaged") as info:
        CertificateCredentials.from_pem(issued.cert_pem, damaged)
    assert_clean(str(info.value), damaged)


def test_key_type_unusable_for_tls(cert_factory: Any, key_to_pem: Any) -> None:
    from cryptography.hazmat.primitives.asymmetric import x25519

    with pytest.raises(CredentialsError, match=r"key: a X25519PrivateKey cannot be used for TLS"):
        CertificateCredentials.from_pem(
            cert_factory().cert_pem, key_to_pem(x25519.X25519PrivateKey.generate())
        )


def test_wrong_argument_types(cert_factory: Any) -> None:
    issued = cert_factory()
    with pytest.raises(CredentialsError, match=r"PEM must be bytes, not str"):
        CertificateCredentials.from_pem(issued.cert_pem.decode(), issued.key_pem())
    with pytest.raises(CredentialsError, match=r"password: must be str or bytes, not int"):
        CertificateCredentials.from_pem(issued.cert_pem, issued.key_pem(), password=1234)  # type: ignore[arg-type]


def test_pkcs12_key_is_never_written_in_plain_text(
    cert_factory: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Issue 12: a kill between writing the temporary file and removing it must not leave the
    # .p12's private key readable on disk.
    path = tmp_path / "push.p12"
    path.write_bytes(p12(cert_factory(), PASSWORD.encode()))
    creds = CertificateCredentials.from_file(path, password=PASSWORD)
    on_disk: list[bytes] = []
    real = ssl.SSLContext.load_cert_chain

    def spy(self: ssl.SSLContext, certfile: Any, keyfile: Any = None, password: Any = None) -> None:
        on_disk.append(Path(certfile).read_bytes())
        real(self, certfile, keyfile, password)

    monkeypatch.setattr(ssl.SSLContext, "load_cert_chain", spy)
    creds.configure_ssl_context(ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT))
    assert len(on_disk) == 1
    plain = creds._key.private_bytes(
        serialization.Encoding.DER,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    assert b"-----BEGIN PRIVATE KEY-----" not in on_disk[0]
    assert b"ENCRYPTED PRIVATE KEY" in on_disk[0]
    assert plain not in on_disk[0]
