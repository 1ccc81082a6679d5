"""Factories for Apple-like signing keys and push certificates, made with ``cryptography``."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from cryptography.x509.oid import NameOID

from apnskit._credentials.certinfo import (
    DEVELOPMENT_OID,
    PRODUCTION_OID,
    TOPICS_OID,
    encode_topics_extension,
)

# Key generation is the slow part of these tests: make each kind once per session.
_RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
_OTHER_RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
_P256_KEY = ec.generate_private_key(ec.SECP256R1())
_P384_KEY = ec.generate_private_key(ec.SECP384R1())

BUNDLE_ID = "com.example.app"
KEY_ID = "ABCDE12345"
TEAM_ID = "TEAM987654"


def pem_private_key(key: Any, password: bytes | None = None, *, traditional: bool = False) -> bytes:
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(password)
        if password
        else serialization.NoEncryption()
    )
    fmt = (
        serialization.PrivateFormat.TraditionalOpenSSL
        if traditional
        else serialization.PrivateFormat.PKCS8
    )
    return key.private_bytes(serialization.Encoding.PEM, fmt, encryption)  # type: ignore[no-any-return]


@dataclass
class Issued:
    """A certificate, its key and (when made) the CA that signed it."""

    certificate: x509.Certificate
    key: Any
    ca_certificate: x509.Certificate | None = None

    @property
    def cert_pem(self) -> bytes:
        return self.certificate.public_bytes(serialization.Encoding.PEM)

    def key_pem(self, password: bytes | None = None, *, traditional: bool = False) -> bytes:
        return pem_private_key(self.key, password, traditional=traditional)


def make_certificate(
    *,
    uid: str | None = BUNDLE_ID,
    environments: Sequence[str] = ("development", "production"),
    topics: Sequence[tuple[str, Sequence[str]]] | None = None,
    key: Any = None,
    not_before: datetime | None = None,
    not_after: datetime | None = None,
    with_ca: bool = False,
) -> Issued:
    """An Apple-like APNs client certificate.

    ``environments`` picks the development / production marker extensions; ``topics`` adds the
    topics extension (None: none). ``with_ca`` signs it with a fresh CA instead of itself.
    """
    key = key if key is not None else _RSA_KEY
    now = datetime.now(timezone.utc)
    attributes = [x509.NameAttribute(NameOID.COMMON_NAME, f"Apple Push Services: {uid}")]
    if uid is not None:
        attributes.insert(0, x509.NameAttribute(NameOID.USER_ID, uid))
    subject = x509.Name(attributes)
    issuer_name = subject
    issuer_key = key
    ca_cert = None
    if with_ca:
        issuer_key = _P256_KEY
        issuer_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Test WWDR CA")])
        ca_cert = (
            x509.CertificateBuilder()
            .subject_name(issuer_name)
            .issuer_name(issuer_name)
            .public_key(issuer_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(days=1))
            .not_valid_after(now + timedelta(days=3650))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(issuer_key, hashes.SHA256())
        )
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before or now - timedelta(days=1))
        .not_valid_after(not_after or now + timedelta(days=365))
    )
    if "development" in environments:
        # Apple's marker extensions carry an ASN.1 NULL (05 00).
        builder = builder.add_extension(
            x509.UnrecognizedExtension(DEVELOPMENT_OID, b"\x05\x00"), critical=False
        )
    if "production" in environments:
        builder = builder.add_extension(
            x509.UnrecognizedExtension(PRODUCTION_OID, b"\x05\x00"), critical=False
        )
    if topics is not None:
        builder = builder.add_extension(
            x509.UnrecognizedExtension(TOPICS_OID, encode_topics_extension(topics)),
            critical=False,
        )
    return Issued(builder.sign(issuer_key, hashes.SHA256()), key, ca_cert)


@pytest.fixture
def cert_factory() -> Callable[..., Issued]:
    return make_certificate


@pytest.fixture
def rsa_key() -> rsa.RSAPrivateKey:
    return _RSA_KEY


@pytest.fixture
def other_rsa_key() -> rsa.RSAPrivateKey:
    return _OTHER_RSA_KEY


@pytest.fixture
def p256_key() -> ec.EllipticCurvePrivateKey:
    return _P256_KEY


@pytest.fixture
def p384_key() -> ec.EllipticCurvePrivateKey:
    return _P384_KEY


@pytest.fixture
def p8_pem() -> bytes:
    """The text of an Apple ``.p8`` signing key: unencrypted PKCS#8 EC P-256."""
    return pem_private_key(_P256_KEY)


class FakeClock:
    """A clock the test moves by hand."""

    def __init__(self, now: float = 1_750_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def verify_jwt(
    token: str, public_key: ec.EllipticCurvePublicKey
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Check an ES256 JWT without the library's code; return (header, claims).

    Raises cryptography's InvalidSignature when the signature does not verify.
    """
    header_b64, claims_b64, signature_b64 = token.split(".")
    for part in (header_b64, claims_b64, signature_b64):
        assert "=" not in part, "JWS parts are base64url without padding"
    raw = b64url_decode(signature_b64)
    assert len(raw) == 64, "ES256 signatures are raw r||s, 64 bytes"
    r = int.from_bytes(raw[:32], "big")
    s = int.from_bytes(raw[32:], "big")
    public_key.verify(
        encode_dss_signature(r, s),
        f"{header_b64}.{claims_b64}".encode("ascii"),
        ec.ECDSA(hashes.SHA256()),
    )
    return json.loads(b64url_decode(header_b64)), json.loads(b64url_decode(claims_b64))


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def jwt_verifier() -> Callable[
    [str, ec.EllipticCurvePublicKey], tuple[dict[str, Any], dict[str, Any]]
]:
    return verify_jwt


@pytest.fixture
def key_to_pem() -> Callable[..., bytes]:
    return pem_private_key
