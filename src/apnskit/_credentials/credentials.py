"""Credentials: token (``.p8`` JWT) and certificate (PEM / PKCS#12) authentication.

Both classes offer the same four methods the clients call, so a client never asks which kind it
holds:

- ``authorization()``: the ``authorization`` header value and its generation, or ``None``;
- ``token_rejected(generation)``: APNs answered 403 ``ExpiredProviderToken`` to that token;
- ``resolve_environment(environment)``: the environment to connect to;
- ``configure_ssl_context(context)``: load a client certificate into a TLS context.

Token rules come from Apple's "Establishing a token-based connection to APNs"
(https://developer.apple.com/documentation/usernotifications/establishing-a-token-based-connection-to-apns):
ES256 JWT with header ``{"alg", "kid"}`` and claims ``{"iss", "iat"}``; refresh no more often than
once every 20 minutes and at least once every 60 minutes, or APNs answers 429
``TooManyProviderTokenUpdates`` / 403 ``ExpiredProviderToken``. One token may be shared by every
connection, so one :class:`TokenCredentials` object serves all threads, event loops and clients.

Certificate rules come from "Establishing a certificate-based connection to APNs"; what the
certificate says about itself is read by :mod:`apnskit._credentials.certinfo`.

No secret (key, JWT, password, PEM text) is ever put in a repr, a log line or an exception
message.
"""

from __future__ import annotations

import base64
import contextlib
import json
import logging
import os
import re
import secrets
import ssl
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, TypeAlias

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.hazmat.primitives.serialization import pkcs12

from apnskit._config import Environment
from apnskit._credentials.certinfo import CertificateInfo, CertificateTopic, read_certificate_info
from apnskit._errors import CredentialsError

__all__ = ["CertificateCredentials", "Credentials", "TokenCredentials"]

logger = logging.getLogger("apnskit.credentials")

# Apple: "Refresh your token no more than once every 20 minutes and no less than once every
# 60 minutes." 55 minutes leaves room for clock drift and requests in flight.
MIN_REFRESH_AFTER = 20 * 60.0
MAX_REFRESH_AFTER = 55 * 60.0
DEFAULT_REFRESH_AFTER = 50 * 60.0
#: A token younger than this that APNs calls expired means a clock is wrong, not the token old.
FRESH_TOKEN_AGE = 60.0
#: How many fresh tokens in a row may be rejected as expired before the clock is blamed.
FRESH_REJECTIONS_ALLOWED = 1

_ID_RE = re.compile(r"[A-Z0-9]{10}")
_KEY_FILE_NAME_RE = re.compile(r"AuthKey_([A-Z0-9]{10})\.p8")
_PEM_BLOCK_RE = re.compile(rb"-----BEGIN ([A-Z0-9 ]+)-----\r?\n.*?-----END \1-----", re.DOTALL)
_PRIVATE_KEY_LABELS = frozenset(
    {b"PRIVATE KEY", b"ENCRYPTED PRIVATE KEY", b"RSA PRIVATE KEY", b"EC PRIVATE KEY"}
)

PrivateKey: TypeAlias = (
    rsa.RSAPrivateKey
    | ec.EllipticCurvePrivateKey
    | dsa.DSAPrivateKey
    | ed25519.Ed25519PrivateKey
    | ed448.Ed448PrivateKey
)


def _b64url(data: bytes) -> str:
    # JWS (RFC 7515 section 2) uses base64url without padding.
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _check_id(field: str, value: object) -> str:
    if isinstance(value, str) and _ID_RE.fullmatch(value):
        return value
    # Echo short values only: a long one may be a key pasted into the wrong argument.
    if not isinstance(value, str):
        shown = f"a {type(value).__name__}"
    elif len(value) <= 16:
        shown = repr(value)
    else:
        shown = f"a string of {len(value)} characters"
    raise CredentialsError(
        f"{field}: {shown} is not a valid Apple identifier; it must be 10 characters of A-Z and "
        "0-9 (as shown in the Apple Developer account)"
    )


def _read_file(what: str, path: str | os.PathLike[str]) -> bytes:
    try:
        return Path(path).read_bytes()
    except FileNotFoundError:
        raise CredentialsError(f"{what} {os.fspath(path)}: no such file") from None
    except IsADirectoryError:
        raise CredentialsError(f"{what} {os.fspath(path)}: is a directory, not a file") from None
    except PermissionError:
        raise CredentialsError(f"{what} {os.fspath(path)}: permission denied") from None
    except OSError as exc:
        raise CredentialsError(
            f"{what} {os.fspath(path)}: cannot be read ({exc.strerror or type(exc).__name__})"
        ) from None


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


def _pem_blocks(data: bytes) -> list[tuple[bytes, bytes]]:
    """The (label, block) pairs of the PEM ``data``, in order."""
    return [(m.group(1), m.group(0)) for m in _PEM_BLOCK_RE.finditer(data)]


def _is_encrypted_block(label: bytes, block: bytes) -> bool:
    # PKCS#8 "ENCRYPTED PRIVATE KEY", or the traditional OpenSSL "Proc-Type: 4,ENCRYPTED" header.
    return label == b"ENCRYPTED PRIVATE KEY" or b"Proc-Type: 4,ENCRYPTED" in block


_NIST_CURVE_NAMES = {"secp256r1": "P-256", "secp384r1": "P-384", "secp521r1": "P-521"}


def _describe_key(key: object) -> str:
    if isinstance(key, rsa.RSAPrivateKey):
        return f"an RSA private key ({key.key_size} bits)"
    if isinstance(key, ec.EllipticCurvePrivateKey):
        nist = _NIST_CURVE_NAMES.get(key.curve.name)
        named = f"{nist} ({key.curve.name})" if nist else key.curve.name
        return f"an EC {named} private key"
    if isinstance(key, dsa.DSAPrivateKey):
        return "a DSA private key"
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return "an Ed25519 private key"
    if isinstance(key, ed448.Ed448PrivateKey):
        return "an Ed448 private key"
    return f"a {type(key).__name__}"


def _as_bytes(field: str, value: str | bytes | None) -> bytes | None:
    if value is None or isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode("utf-8")
    raise CredentialsError(f"{field}: must be str or bytes, not {type(value).__name__}")


# -- token authentication ------------------------------------------------------------------------


class TokenCredentials:
    """Token-based authentication with an APNs signing key (the ``.p8`` file).

    One object makes one JWT at a time and shares it between every connection, thread, event
    loop and client using it. The token is renewed ``refresh_after`` seconds after it was made,
    and when APNs rejects it as expired; many callers asking at the same moment cause a single
    signing.

    Args:
        key: The PEM text (or bytes) of the ``.p8`` file: an unencrypted PKCS#8 EC P-256 key.
        key_id: The 10-character key ID Apple shows for the key.
        team_id: The 10-character team ID (the JWT's issuer).
        refresh_after: Seconds after which a token is renewed, within 1200..3300 (20 to 55
            minutes; Apple allows renewals once per 20 minutes at most, and a token older than
            60 minutes is rejected).
        clock: Returns the wall-clock time as UNIX seconds, used only for the token's ``iat``;
            injectable for tests.
        monotonic: Returns monotonic seconds, used for the renewal schedule (a wall-clock
            step must not renew tokens early or late). Defaults to ``time.monotonic``, or to
            ``clock`` when only a (test's fake) ``clock`` is given, so one fake drives both.

    Raises:
        CredentialsError: The key, an ID or ``refresh_after`` is not usable; the message says
            which and why.
    """

    def __init__(
        self,
        key: str | bytes,
        *,
        key_id: str,
        team_id: str,
        refresh_after: float = DEFAULT_REFRESH_AFTER,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] | None = None,
    ) -> None:
        self.key_id: str = _check_id("key_id", key_id)
        """The key ID (the JWT header's ``kid``)."""
        self.team_id: str = _check_id("team_id", team_id)
        """The team ID (the JWT's ``iss`` claim)."""
        if (
            isinstance(refresh_after, bool)
            or not isinstance(refresh_after, (int, float))
            or not MIN_REFRESH_AFTER <= refresh_after <= MAX_REFRESH_AFTER
        ):
            raise CredentialsError(
                f"refresh_after: {refresh_after!r} must be a number of seconds within "
                f"{MIN_REFRESH_AFTER:.0f}..{MAX_REFRESH_AFTER:.0f} (20 to 55 minutes): Apple "
                "rejects renewals more often than every 20 minutes and tokens older than 60"
            )
        self.refresh_after: float = float(refresh_after)
        """Seconds after which the token is renewed."""
        self._key = _load_signing_key(key)
        self._clock = clock
        if monotonic is None:
            monotonic = time.monotonic if clock is time.time else clock
        self._monotonic = monotonic
        # The header never changes, so its encoded form is made once.
        header = json.dumps({"alg": "ES256", "kid": self.key_id}, separators=(",", ":"))
        self._header_b64 = _b64url(header.encode("ascii"))
        self._lock = threading.Lock()
        # _current and _renew_at are each replaced by one assignment, so the lock-free read in
        # authorization() always sees a complete (bearer, generation) pair.
        self._current: tuple[str, int] = ("", 0)
        self._renew_at = float("-inf")  # monotonic
        self._issued_at = float("-inf")  # wall clock (the iat), for messages
        self._made_at = float("-inf")  # monotonic
        self._fresh_rejections = 0

    @classmethod
    def from_file(
        cls,
        path: str | os.PathLike[str],
        *,
        team_id: str,
        key_id: str | None = None,
        **kwargs: Any,
    ) -> TokenCredentials:
        """Read the key from a ``.p8`` file.

        Args:
            path: The ``.p8`` file Apple let you download.
            team_id: The 10-character team ID.
            key_id: The key ID; when omitted it is taken from Apple's file name
                ``AuthKey_<KEYID>.p8``.
            **kwargs: ``refresh_after``, ``clock`` and ``monotonic``, as for the constructor.

        Raises:
            CredentialsError: The file is missing or unreadable, the key ID cannot be found, or
                the key is not usable.
        """
        # Read first: a missing file is the problem to report, not its name.
        data = _read_file("key file", path)
        if key_id is None:
            match = _KEY_FILE_NAME_RE.fullmatch(Path(path).name)
            if match is None:
                raise CredentialsError(
                    f"key_id: not given, and the file name {Path(path).name!r} is not Apple's "
                    "'AuthKey_<KEYID>.p8' to take it from; pass key_id="
                )
            key_id = match.group(1)
        return cls(data, key_id=key_id, team_id=team_id, **kwargs)

    @property
    def public_key(self) -> ec.EllipticCurvePublicKey:
        """The public half of the signing key (what APNs verifies tokens with)."""
        return self._key.public_key()

    @property
    def generation(self) -> int:
        """How many tokens have been made so far (0 before the first one)."""
        return self._current[1]

    def authorization(self) -> tuple[str, int]:
        """The ``authorization`` header value for the next request, and its generation.

        Cheap when the token is fresh (one clock call and two attribute reads, no lock); it
        signs a new token when the current one is due for renewal. Safe to call from any thread
        and from async code: signing takes well under a millisecond.

        Returns:
            ``("bearer <jwt>", generation)``; pass the generation to :meth:`token_rejected` if
            APNs answers ``ExpiredProviderToken``.
        """
        if self._monotonic() < self._renew_at:
            return self._current
        with self._lock:
            # Single-flight: whoever waited on the lock finds the token already renewed.
            if self._monotonic() >= self._renew_at:
                # A scheduled renewal ends any streak of fresh tokens rejected as expired.
                self._fresh_rejections = 0
                self._renew()
            return self._current

    def token_rejected(self, generation: int) -> None:
        """Tell the credentials that APNs answered 403 ``ExpiredProviderToken`` to a token.

        The token of that generation is renewed once: later calls with the same (or an older)
        generation do nothing, so a burst of rejections causes one renewal.

        Args:
            generation: The generation :meth:`authorization` returned with the rejected token.

        Raises:
            CredentialsError: Freshly made tokens keep being rejected as expired, which means
                the system clock is wrong.
        """
        with self._lock:
            # Only the current token can be renewed; 0 means no token was ever handed out.
            if generation != self._current[1] or generation == 0:
                return
            age = self._monotonic() - self._made_at
            if age < FRESH_TOKEN_AGE:
                self._fresh_rejections += 1
                if self._fresh_rejections > FRESH_REJECTIONS_ALLOWED:
                    issued = datetime.fromtimestamp(self._issued_at, tz=timezone.utc)
                    raise CredentialsError(
                        "the provider token was rejected as expired (ExpiredProviderToken) right "
                        f"after it was made ({age:.0f} s old, iat {issued:%Y-%m-%d %H:%M:%S} UTC): "
                        "check the system clock; APNs rejects tokens whose iat is more than an "
                        "hour away from its own time"
                    )
            else:
                self._fresh_rejections = 0
            logger.info(
                "APNs rejected provider token %d (key_id %s) as expired; renewing it",
                generation,
                self.key_id,
            )
            self._renew()

    def resolve_environment(self, environment: str | Environment | None) -> Environment:
        """The environment to connect to; it must be given for token authentication.

        Args:
            environment: ``"production"``, ``"sandbox"`` or an :class:`Environment`.

        Raises:
            CredentialsError: ``environment`` is ``None``: a signing key does not say which
                environment it is for.
        """
        if environment is None:
            raise CredentialsError(
                "environment: must be given with token credentials ('production' or 'sandbox'); "
                "a signing key does not tell which environment the app's device tokens belong to"
            )
        return Environment.parse(environment)

    def configure_ssl_context(self, context: ssl.SSLContext) -> None:
        """Do nothing: token authentication uses no client certificate.

        Args:
            context: The TLS context of a connection (left as it is).
        """

    def __repr__(self) -> str:
        return f"TokenCredentials(key_id={self.key_id!r}, team_id={self.team_id!r})"

    def _renew(self) -> None:
        """Make a new token (the caller holds the lock)."""
        # Only the iat needs wall time (APNs compares it with its own clock); the schedule
        # runs on the monotonic clock, so a clock step causes no storm of renewals (and no
        # TooManyProviderTokenUpdates) and no token kept past its hour.
        now = self._clock()
        made_at = self._monotonic()
        bearer = "bearer " + self._sign(int(now))
        generation = self._current[1] + 1
        self._issued_at = now
        self._made_at = made_at
        # Publish the token before the new deadline, so a lock-free reader that sees the new
        # deadline also sees the new token.
        self._current = (bearer, generation)
        # refresh_after >= 20 minutes, so proactive renewals never come more often than Apple
        # allows.
        self._renew_at = made_at + self.refresh_after
        logger.debug("made provider token %d for key_id %s", generation, self.key_id)

    def _sign(self, issued_at: int) -> str:
        """Build and sign one JWT (ES256, RFC 7518 section 3.4)."""
        claims = json.dumps({"iss": self.team_id, "iat": issued_at}, separators=(",", ":"))
        signing_input = f"{self._header_b64}.{_b64url(claims.encode('ascii'))}"
        der = self._key.sign(signing_input.encode("ascii"), ec.ECDSA(hashes.SHA256()))
        # JWS wants r || s as two 32-byte big-endian integers, not cryptography's DER.
        r, s = decode_dss_signature(der)
        return f"{signing_input}.{_b64url(r.to_bytes(32, 'big') + s.to_bytes(32, 'big'))}"


def _load_signing_key(key: object) -> ec.EllipticCurvePrivateKey:
    if isinstance(key, str):
        data = key.encode("utf-8", "replace")
    elif isinstance(key, (bytes, bytearray, memoryview)):
        data = bytes(key)
    else:
        raise CredentialsError(
            f"key: must be the PEM text (str or bytes) of the .p8 file, not {type(key).__name__}"
        )
    blocks = _pem_blocks(data)
    if not blocks:
        hint = ""
        if len(data) < 300 and (data.endswith(b".p8") or b"/" in data or b"\\" in data):
            hint = " (it looks like a path: use TokenCredentials.from_file)"
        raise CredentialsError(f"key: not a PEM private key{hint}")
    keys = [(label, block) for label, block in blocks if label in _PRIVATE_KEY_LABELS]
    if not keys:
        found = ", ".join(sorted({label.decode() for label, _ in blocks}))
        raise CredentialsError(f"key: the PEM holds {found}, not a private key")
    label, block = keys[0]
    if _is_encrypted_block(label, block):
        raise CredentialsError(
            "key: the private key is encrypted; Apple's .p8 keys are not, so decrypt it first "
            "(e.g. openssl pkcs8 -in key.p8 -out AuthKey_KEYID.p8 -nocrypt)"
        )
    try:
        loaded = serialization.load_pem_private_key(block, password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        raise CredentialsError("key: the PEM private key is damaged or not supported") from None
    if not isinstance(loaded, ec.EllipticCurvePrivateKey) or not isinstance(
        loaded.curve, ec.SECP256R1
    ):
        raise CredentialsError(
            f"key: {_describe_key(loaded)}; APNs token authentication needs an EC P-256 "
            "(secp256r1) key, the kind Apple issues as the .p8 file"
        )
    return loaded


# -- certificate authentication ------------------------------------------------------------------


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
        data = _read_file("certificate file", path)
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
        key_pem = _read_file("key file", key_file) if key_file is not None else None
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
            raise CredentialsError(f"certificate file {source}: {_describe_key(key)} is not usable")
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
        blocks = _pem_blocks(cert_pem)
        certs = [block for label, block in blocks if label == b"CERTIFICATE"]
        if not certs:
            raise CredentialsError(f"{source}: no PEM certificate found")
        try:
            loaded = [x509.load_pem_x509_certificate(block) for block in certs]
        except ValueError:
            raise CredentialsError(f"{source}: a PEM certificate is damaged") from None
        if key_pem is None:
            key_blocks = [(lb, b) for lb, b in blocks if lb in _PRIVATE_KEY_LABELS]
            if not key_blocks:
                raise CredentialsError(
                    f"{source}: no private key found next to the certificate; pass key_file= "
                    "(or key_pem=)"
                )
        else:
            key_blocks = [(lb, b) for lb, b in _pem_blocks(key_pem) if lb in _PRIVATE_KEY_LABELS]
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
    encrypted = _is_encrypted_block(label, block)
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
        raise CredentialsError(f"key: {_describe_key(key)} cannot be used for TLS")
    return key


#: Either kind of credentials; the clients accept both.
Credentials: TypeAlias = TokenCredentials | CertificateCredentials
