"""Token authentication: an APNs signing key (``.p8``) and the JWTs made with it.

The rules come from Apple's "Establishing a token-based connection to APNs"
(https://developer.apple.com/documentation/usernotifications/establishing-a-token-based-connection-to-apns):
ES256 JWT with header ``{"alg", "kid"}`` and claims ``{"iss", "iat"}``; refresh no more often than
once every 20 minutes and at least once every 60 minutes, or APNs answers 429
``TooManyProviderTokenUpdates`` / 403 ``ExpiredProviderToken``. One token may be shared by every
connection, so one :class:`TokenCredentials` object serves all threads, event loops and clients.

No secret (key, JWT) is ever put in a repr, a log line or an exception message.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import re
import ssl
import threading
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from apnskit._config import Environment
from apnskit._credentials.keys import (
    PRIVATE_KEY_LABELS,
    describe_key,
    is_encrypted_block,
    pem_blocks,
    read_file,
)
from apnskit._errors import CredentialsError

__all__ = ["TokenCredentials"]

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
        data = read_file("key file", path)
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
    blocks = pem_blocks(data)
    if not blocks:
        hint = ""
        if len(data) < 300 and (data.endswith(b".p8") or b"/" in data or b"\\" in data):
            hint = " (it looks like a path: use TokenCredentials.from_file)"
        raise CredentialsError(f"key: not a PEM private key{hint}")
    keys = [(label, block) for label, block in blocks if label in PRIVATE_KEY_LABELS]
    if not keys:
        found = ", ".join(sorted({label.decode() for label, _ in blocks}))
        raise CredentialsError(f"key: the PEM holds {found}, not a private key")
    label, block = keys[0]
    if is_encrypted_block(label, block):
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
            f"key: {describe_key(loaded)}; APNs token authentication needs an EC P-256 "
            "(secp256r1) key, the kind Apple issues as the .p8 file"
        )
    return loaded
