"""Certificate authentication: an APNs client certificate (PEM or PKCS#12) for mutual TLS.

The rules come from Apple's "Establishing a certificate-based connection to APNs"; what the
certificate says about itself (environments, topics) is read by
:mod:`apnskit._credentials.certinfo`.

No secret (private key, password, PEM text) is ever put in a repr, a log line or an exception
message.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import ssl
import tempfile
from collections.abc import Sequence
from datetime import datetime, timezone

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, rsa
from cryptography.hazmat.primitives.serialization import pkcs12

from apnskit._config import Environment
from apnskit._credentials.certinfo import CertificateInfo, CertificateTopic, read_certificate_info
from apnskit._credentials.keys import (
    PRIVATE_KEY_LABELS,
    PrivateKey,
    describe_key,
    is_encrypted_block,
    pem_blocks,
    read_file,
)
from apnskit._errors import CredentialsError

__all__ = ["CertificateCredentials"]


def _looks_like_pkcs12(data: bytes) -> bool:
    """Whether ``data`` starts like a PKCS#12 PFX: a DER SEQUENCE whose first item is version 3.

    RFC 7292 section 4: ``PFX ::= SEQUENCE { version INTEGER {v3(3)}, ... }``. Checked so that
    a file that is not PKCS#12 at all is not reported as a password problem.
    """
    if len(data) < 5 or data[0] != 0x30:
        return False
    length_octets = data[1] & 0x7F if data[1] & 0x80 else 0
    start = 2 + length_octets
    return data[start : start + 3] == b"\x02\x01\x03"


def _as_bytes(field: str, value: str | bytes | None) -> bytes | None:
    if value is None or isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode("utf-8")
    raise CredentialsError(f"{field}: must be str or bytes, not {type(value).__name__}")


class CertificateCredentials:
    """Certificate-based authentication with an APNs client certificate.

    Build one with :meth:`from_file` or :meth:`from_pem`. The certificate's own extensions tell
    which environments it is valid for and which topics it may push to.

    Args:
        certificate: The client (leaf) certificate.
        private_key: Its private key.
        chain: Intermediate certificates to send after the leaf.
        now: The current time for the validity check (defaults to the system clock).

    Raises:
        CredentialsError: The key does not match the certificate, or the certificate has
            expired or is not yet valid.
    """

    def __init__(
        self,
        certificate: x509.Certificate,
        private_key: PrivateKey,
        *,
        chain: Sequence[x509.Certificate] = (),
        now: datetime | None = None,
    ) -> None:
        spki = serialization.PublicFormat.SubjectPublicKeyInfo
        der = serialization.Encoding.DER
        if certificate.public_key().public_bytes(
            der, spki
        ) != private_key.public_key().public_bytes(der, spki):
            raise CredentialsError(
                "certificate and key do not match: the private key is not the one the "
                "certificate was issued for"
            )
        self._certificate = certificate
        self._key = private_key
        self._chain = tuple(chain)
        self.info: CertificateInfo = read_certificate_info(certificate)
        """What the certificate says about itself (topics, environments, validity)."""
        now = now or datetime.now(timezone.utc)
        if now > self.info.not_valid_after:
            raise CredentialsError(
                f"certificate{self._for()}: expired on "
                f"{self.info.not_valid_after:%Y-%m-%d %H:%M:%S} UTC; make a new one in the Apple "
                "Developer account"
            )
        if now < self.info.not_valid_before:
            raise CredentialsError(
                f"certificate{self._for()}: not valid before "
                f"{self.info.not_valid_before:%Y-%m-%d %H:%M:%S} UTC (check the system clock)"
            )

    def _for(self) -> str:
        return f" for {self.info.subject_uid!r}" if self.info.subject_uid else ""

    @classmethod
    def from_file(
        cls,
        path: str | os.PathLike[str],
        *,
        key_file: str | os.PathLike[str] | None = None,
        password: str | bytes | None = None,
    ) -> CertificateCredentials:
        """Read a certificate and its key from PEM or PKCS#12 files.

        Args:
            path: A PEM file (certificate, optionally followed by intermediates and the key) or a
                PKCS#12 file (``.p12``/``.pfx``, as Keychain Access exports it).
            key_file: A PEM file with the private key, when it is not in ``path``.
            password: The password of the PKCS#12 file or of an encrypted PEM key.

        Raises:
            CredentialsError: A file is missing or unreadable, the password is missing or wrong,
                or the certificate cannot be used (see the constructor).
        """
        data = read_file("certificate file", path)
        if b"-----BEGIN" not in data:
            if not _looks_like_pkcs12(data):
                # Not a password problem: no password turns this into a certificate.
                raise CredentialsError(
                    f"certificate file {os.fspath(path)}: neither PEM (no '-----BEGIN' line) "
                    "nor PKCS#12 (.p12); export the push certificate with its key from "
                    "Keychain Access as .p12, or give PEM files"
                )
            if key_file is not None:
                raise CredentialsError(
                    f"key_file: {os.fspath(path)} is a PKCS#12 file, which carries its own key; "
                    "leave key_file out"
                )
            return cls._from_pkcs12(data, password, os.fspath(path))
        key_pem = read_file("key file", key_file) if key_file is not None else None
        return cls._from_pem(data, key_pem, password, os.fspath(path))

    @classmethod
    def from_pem(
        cls,
        cert_pem: bytes,
        key_pem: bytes | None = None,
        *,
        password: str | bytes | None = None,
    ) -> CertificateCredentials:
        """Build credentials from PEM bytes.

        Args:
            cert_pem: The certificate (optionally with intermediates, and the key when
                ``key_pem`` is not given).
            key_pem: The private key, when it is not in ``cert_pem``.
            password: The password of an encrypted key.

        Raises:
            CredentialsError: Something is missing, the password is missing or wrong, or the
                certificate cannot be used.
        """
        return cls._from_pem(cert_pem, key_pem, password, "certificate")

    @classmethod
    def _from_pkcs12(
        cls, data: bytes, password: str | bytes | None, source: str
    ) -> CertificateCredentials:
        secret = _as_bytes("password", password)
        # OpenSSL's PKCS12_parse tries both "no password" and the empty password when given
        # none, so only a password given for an unprotected file needs a second attempt.
        attempts: list[bytes | None] = [secret, None] if secret else [None]
        for attempt in attempts:
            try:
                key, cert, extra = pkcs12.load_key_and_certificates(data, attempt)
            except ValueError:
                continue
            break
        else:
            if secret is None:
                raise CredentialsError(
                    f"password: {source} is protected by a password; pass password="
                )
            raise CredentialsError(
                f"password: wrong password for {source} (or the file is damaged)"
            )
        # A certificate without its key comes back among the extra certificates, so the key is
        # checked first to name what is really missing.
        if key is None:
            raise CredentialsError(f"certificate file {source}: the PKCS#12 holds no private key")
        if cert is None:
            raise CredentialsError(f"certificate file {source}: the PKCS#12 holds no certificate")
        if not isinstance(key, _PRIVATE_KEY_TYPES):
            raise CredentialsError(f"certificate file {source}: {describe_key(key)} is not usable")
        return cls(cert, key, chain=tuple(extra))

    @classmethod
    def _from_pem(
        cls,
        cert_pem: bytes,
        key_pem: bytes | None,
        password: str | bytes | None,
        source: str,
    ) -> CertificateCredentials:
        if not isinstance(cert_pem, bytes):
            raise CredentialsError(f"{source}: PEM must be bytes, not {type(cert_pem).__name__}")
        blocks = pem_blocks(cert_pem)
        certs = [block for label, block in blocks if label == b"CERTIFICATE"]
        if not certs:
            raise CredentialsError(f"{source}: no PEM certificate found")
        try:
            loaded = [x509.load_pem_x509_certificate(block) for block in certs]
        except ValueError:
            raise CredentialsError(f"{source}: a PEM certificate is damaged") from None
        if key_pem is None:
            key_blocks = [(lb, b) for lb, b in blocks if lb in PRIVATE_KEY_LABELS]
            if not key_blocks:
                raise CredentialsError(
                    f"{source}: no private key found next to the certificate; pass key_file= "
                    "(or key_pem=)"
                )
        else:
            key_blocks = [(lb, b) for lb, b in pem_blocks(key_pem) if lb in PRIVATE_KEY_LABELS]
            if not key_blocks:
                raise CredentialsError("key file: not a PEM private key")
        key = _load_certificate_key(*key_blocks[0], _as_bytes("password", password))
        # The leaf is the certificate whose public key matches; the others form the chain.
        spki = serialization.PublicFormat.SubjectPublicKeyInfo
        der = serialization.Encoding.DER
        wanted = key.public_key().public_bytes(der, spki)
        leaf = next(
            (c for c in loaded if c.public_key().public_bytes(der, spki) == wanted), loaded[0]
        )
        return cls(leaf, key, chain=[c for c in loaded if c is not leaf])

    @property
    def certificate(self) -> x509.Certificate:
        """The client certificate."""
        return self._certificate

    @property
    def subject_uid(self) -> str | None:
        """The base topic (the subject's UID), if the certificate has one."""
        return self.info.subject_uid

    @property
    def environments(self) -> frozenset[Environment]:
        """The environments the certificate is marked for (empty: not an Apple certificate)."""
        return self.info.environments

    @property
    def topics(self) -> tuple[CertificateTopic, ...]:
        """The topics extension of the certificate."""
        return self.info.topics

    @property
    def not_valid_after(self) -> datetime:
        """When the certificate expires (aware, UTC)."""
        return self.info.not_valid_after

    def authorization(self) -> None:
        """Return ``None``: certificate authentication sends no ``authorization`` header."""
        return None

    def token_rejected(self, generation: int) -> None:
        """Do nothing: there is no token to renew.

        Args:
            generation: Ignored.
        """

    def resolve_environment(self, environment: str | Environment | None) -> Environment:
        """The environment to connect to, checked against the certificate.

        With ``None``, the certificate decides: development-only means sandbox, production-only
        and universal certificates mean production. A certificate without Apple's environment
        extensions (e.g. one made for tests) accepts any environment and defaults to production.

        Args:
            environment: ``"production"``, ``"sandbox"``, an :class:`Environment` or ``None``.

        Raises:
            CredentialsError: The certificate is not valid for the environment asked for.
        """
        marked = self.info.environments
        if environment is None:
            if marked == frozenset({Environment.SANDBOX}):
                return Environment.SANDBOX
            return Environment.PRODUCTION
        chosen = Environment.parse(environment)
        if marked and chosen not in marked:
            only = ", ".join(sorted(str(e) for e in marked))
            raise CredentialsError(
                f"environment: the certificate{self._for()} is valid only for {only}, not for "
                f"{chosen} (APNs would answer BadCertificateEnvironment)"
            )
        return chosen

    def configure_ssl_context(self, context: ssl.SSLContext) -> None:
        """Load the certificate and key into ``context`` as its client certificate.

        ``SSLContext.load_cert_chain`` reads only files, so a PEM is written with 0600
        permissions into a private (0700) temporary directory and removed as soon as it is
        loaded. The private key in it is encrypted (PKCS#8, AES-256) with a random password
        that exists only in this process's memory: a kill between writing and removing leaves
        no usable key on disk.

        Args:
            context: The client TLS context.

        Raises:
            CredentialsError: The TLS library refused the certificate or key.
        """
        secret = secrets.token_bytes(32)
        pem = b"".join(
            [
                self._key.private_bytes(
                    serialization.Encoding.PEM,
                    serialization.PrivateFormat.PKCS8,
                    serialization.BestAvailableEncryption(secret),
                ),
                self._certificate.public_bytes(serialization.Encoding.PEM),
                *(c.public_bytes(serialization.Encoding.PEM) for c in self._chain),
            ]
        )
        directory = tempfile.mkdtemp(prefix="apnskit-")  # created 0700 by mkdtemp
        path = os.path.join(directory, "client.pem")
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as file:
                file.write(pem)
            try:
                context.load_cert_chain(path, password=secret)
            except ssl.SSLError as exc:
                # OpenSSL's reason names the problem; it never contains key material.
                reason = getattr(exc, "reason", None) or exc
                raise CredentialsError(
                    f"certificate{self._for()}: the TLS library refused it ({reason})"
                ) from None
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
            os.rmdir(directory)

    def __repr__(self) -> str:
        environments = sorted(str(e) for e in self.info.environments)
        return (
            f"CertificateCredentials(subject_uid={self.info.subject_uid!r}, "
            f"environments={environments!r}, "
            f"not_valid_after={self.info.not_valid_after.isoformat()!r})"
        )


_PRIVATE_KEY_TYPES = (
    rsa.RSAPrivateKey,
    ec.EllipticCurvePrivateKey,
    dsa.DSAPrivateKey,
    ed25519.Ed25519PrivateKey,
    ed448.Ed448PrivateKey,
)


def _load_certificate_key(label: bytes, block: bytes, password: bytes | None) -> PrivateKey:
    encrypted = is_encrypted_block(label, block)
    if encrypted and password is None:
        raise CredentialsError("password: the private key is encrypted; pass its password=")
    try:
        key = serialization.load_pem_private_key(block, password if encrypted else None)
    except ValueError:
        if encrypted:
            raise CredentialsError("password: wrong password for the private key") from None
        raise CredentialsError("key: the PEM private key is damaged") from None
    except (TypeError, UnsupportedAlgorithm):
        raise CredentialsError("key: the PEM private key is damaged or not supported") from None
    if not isinstance(key, _PRIVATE_KEY_TYPES):
        raise CredentialsError(f"key: {describe_key(key)} cannot be used for TLS")
    return key
