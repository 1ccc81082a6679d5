"""Apple's request validation, as the mock APNs server applies it.

The rules and reasons follow Apple's "Sending notification requests to APNs" and "Handling
notification responses from APNs" (see ../shared/apns-reference.md). They are written here
independently of the client's own checks in ``apnskit._models``, so a mistake in one is
caught by the other.

Order of checks (the first failing one answers):

1. method is ``POST``, else 405 ``MethodNotAllowed``;
2. path is ``/3/device/<token>``, else 404 ``BadPath``; an empty token is 400
   ``MissingDeviceToken``;
3. no header repeated, else 400 ``DuplicateHeaders``;
4. authentication: token mode checks the provider token (403 ``MissingProviderToken``,
   ``InvalidProviderToken``, ``ExpiredProviderToken``; 429 ``TooManyProviderTokenUpdates``);
   certificate mode checks the certificate's environments (403 ``BadCertificateEnvironment``);
5. device token: hex digits, even length, else 400 ``BadDeviceToken`` (in strict mode also for
   tokens never registered);
6. topic: present (400 ``MissingTopic``; a certificate with one topic supplies it), well formed
   (400 ``BadTopic``), allowed by the certificate or key (400 ``TopicDisallowed``), and the
   topic the token was registered for (400 ``DeviceTokenNotForTopic``);
7. ``apns-push-type`` known and matching the topic suffix, else 400 ``InvalidPushType``;
8. ``apns-priority`` 10, 5 or 1 (and not 10 for ``background``), else 400 ``BadPriority``;
9. ``apns-expiration`` a non-negative integer, else 400 ``BadExpirationDate``;
10. ``apns-collapse-id`` at most 64 bytes, else 400 ``BadCollapseId``;
11. ``apns-id`` a canonical UUID, else 400 ``BadMessageId``;
12. payload not empty (400 ``PayloadEmpty``) and within 4096 bytes, 5120 for VoIP (413
    ``PayloadTooLarge``);
13. payload a JSON object, else 400 ``BadPayload``. Apple documents no reason for malformed
    JSON; this one is the mock's own, so a client must treat it as an unknown reason;
14. token unregistered: 410 ``Unregistered`` with the ``timestamp`` of the unregistration.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from apnskit._config import Environment
from apnskit.testing._server_connection import ReceivedRequest, Reply

__all__ = [
    "MAX_PAYLOAD_SIZE",
    "MAX_VOIP_PAYLOAD_SIZE",
    "PUSH_TYPE_SUFFIXES",
    "TOKEN_MAX_AGE",
    "TOKEN_MIN_REFRESH",
    "DeviceRegistry",
    "ProviderTokenVerifier",
    "RequestValidator",
    "TrustedKey",
]

#: Payload limit for every push type but VoIP (Apple, "Sending notification requests").
MAX_PAYLOAD_SIZE = 4096
#: Payload limit for VoIP notifications.
MAX_VOIP_PAYLOAD_SIZE = 5120
#: A provider token older than this (seconds) is ``ExpiredProviderToken``.
TOKEN_MAX_AGE = 3600.0
#: A connection presenting a new token sooner than this (seconds) is
#: ``TooManyProviderTokenUpdates``.
TOKEN_MIN_REFRESH = 20 * 60.0

#: The topic suffix each push type needs (``None``: the bare bundle ID; ``"*"``: any topic).
PUSH_TYPE_SUFFIXES: dict[str, str | None] = {
    "alert": None,
    "background": None,
    "location": ".location-query",
    "voip": ".voip",
    "complication": ".complication",
    "fileprovider": ".pushkit.fileprovider",
    "mdm": "*",
    "liveactivity": ".push-type.liveactivity",
    "pushtotalk": ".voip-ptt",
    "widgets": ".push-type.widgets",
    "controls": ".push-type.controls",
}
_KNOWN_SUFFIXES = tuple(s for s in PUSH_TYPE_SUFFIXES.values() if s is not None and s != "*")

_DEVICE_PREFIX = "/3/device/"
_HEX_DIGITS = frozenset("0123456789abcdefABCDEF")
_UUID_RE = re.compile(
    r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
)
_TOPIC_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
_PRIORITIES = frozenset({"10", "5", "1"})
_VERIFIED_CACHE_SIZE = 4096


def base_topic(topic: str) -> str:
    """The bundle ID of a topic: ``topic`` without its push-type suffix."""
    for suffix in _KNOWN_SUFFIXES:
        if topic.endswith(suffix):
            return topic[: -len(suffix)]
    return topic


def _b64url_decode(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


@dataclass(frozen=True)
class TrustedKey:
    """A token signing key the server trusts.

    Attributes:
        key_id: The 10-character key ID (the JWT's ``kid``).
        team_id: The team the key belongs to (the JWT's ``iss``).
        public_key: The P-256 public key tokens are verified with.
        topics: When given, the only topics (bundle IDs) the key may push to (Apple's
            topic-specific keys); ``None``: any topic.
        environments: When given, the environments the key is valid in (team-scoped keys).
    """

    key_id: str
    team_id: str
    public_key: ec.EllipticCurvePublicKey
    topics: frozenset[str] | None = None
    environments: frozenset[Environment] | None = None


class ProviderTokenVerifier:
    """Verifies provider tokens (ES256 JWTs) against the keys it was told to trust.

    A verified token is remembered, so each distinct token costs one signature check.
    """

    def __init__(self) -> None:
        self._keys: dict[str, TrustedKey] = {}
        self._verified: dict[str, tuple[TrustedKey, int]] = {}

    def trust(self, key: TrustedKey) -> None:
        """Trust ``key`` (replacing any key with the same ID)."""
        self._keys[key.key_id] = key
        self._verified.clear()

    def forget(self, key_id: str) -> None:
        """Stop trusting the key ``key_id``."""
        self._keys.pop(key_id, None)
        self._verified.clear()

    def verify(self, token: str) -> tuple[TrustedKey, int] | None:
        """The trusted key and ``iat`` of a valid token, or ``None`` if it is not valid."""
        cached = self._verified.get(token)
        if cached is not None:
            return cached
        result = self._verify(token)
        if result is not None:
            if len(self._verified) >= _VERIFIED_CACHE_SIZE:
                self._verified.clear()
            self._verified[token] = result
        return result

    def _verify(self, token: str) -> tuple[TrustedKey, int] | None:
        parts = token.split(".")
        if len(parts) != 3:
            return None
        try:
            header = json.loads(_b64url_decode(parts[0]))
            claims = json.loads(_b64url_decode(parts[1]))
            signature = _b64url_decode(parts[2])
        except (ValueError, binascii.Error):
            return None
        if not isinstance(header, dict) or not isinstance(claims, dict):
            return None
        if header.get("alg") != "ES256":
            return None
        key = self._keys.get(str(header.get("kid")))
        if key is None or claims.get("iss") != key.team_id:
            return None
        issued_at = claims.get("iat")
        if isinstance(issued_at, bool) or not isinstance(issued_at, int):
            return None
        # JWS ES256 signatures are raw r||s, 32 bytes each (RFC 7518 section 3.4), not DER.
        if len(signature) != 64:
            return None
        der = encode_dss_signature(
            int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big")
        )
        signing_input = f"{parts[0]}.{parts[1]}".encode("ascii")
        try:
            key.public_key.verify(der, signing_input, ec.ECDSA(hashes.SHA256()))
        except InvalidSignature:
            return None
        return key, issued_at


class DeviceRegistry:
    """Which device tokens exist, for which topic, and which were unregistered (and when)."""

    def __init__(self) -> None:
        self._topics: dict[str, str] = {}
        self._unregistered: dict[str, int] = {}

    def register(self, device_token: str, topic: str) -> None:
        """Make ``device_token`` a token of ``topic`` (a bundle ID; a suffix is ignored)."""
        token = _check_token_argument(device_token)
        self._topics[token] = base_topic(topic)
        self._unregistered.pop(token, None)

    def unregister(self, device_token: str, since: datetime | None = None) -> None:
        """Make ``device_token`` answer 410 ``Unregistered`` with ``since`` as the timestamp."""
        token = _check_token_argument(device_token)
        moment = since if since is not None else datetime.now(timezone.utc)
        if moment.tzinfo is None:
            raise ValueError("since: must be an aware datetime (e.g. with tzinfo=timezone.utc)")
        self._unregistered[token] = int(moment.timestamp() * 1000)

    def topic_of(self, device_token: str) -> str | None:
        """The bundle ID ``device_token`` was registered for, or ``None``."""
        return self._topics.get(device_token.lower())

    def unregistered_since(self, device_token: str) -> int | None:
        """When ``device_token`` was unregistered (ms since the epoch), or ``None``."""
        return self._unregistered.get(device_token.lower())

    def known(self, device_token: str) -> bool:
        """Whether ``device_token`` was registered or unregistered."""
        token = device_token.lower()
        return token in self._topics or token in self._unregistered


def _check_token_argument(device_token: str) -> str:
    if not device_token or len(device_token) % 2 or not set(device_token) <= _HEX_DIGITS:
        raise ValueError(
            f"device_token: {device_token!r} must be a non-empty, even-length hex string"
        )
    return device_token.lower()


@dataclass(slots=True)
class _TokenState:
    """What a connection presented as provider token, and whether it was rejected as stale."""

    token: str
    since: float
    expired: bool = False


class RequestValidator:
    """Checks one request in Apple's order and builds the reply (see the module docstring).

    Args:
        auth: ``"token"`` or ``"certificate"``.
        environment: The environment the server plays.
        strict: Answer ``BadDeviceToken`` for device tokens that were never registered.
        verifier: The trusted token keys.
        registry: The device tokens.
    """

    def __init__(
        self,
        *,
        auth: str,
        environment: Environment,
        strict: bool,
        verifier: ProviderTokenVerifier,
        registry: DeviceRegistry,
    ) -> None:
        self.auth = auth
        self.environment = environment
        self.strict = strict
        self.verifier = verifier
        self.registry = registry
        self._sandbox = environment is Environment.SANDBOX

    def validate(self, request: ReceivedRequest, now: float) -> tuple[Reply, Any]:
        """Check ``request`` and build the reply.

        Args:
            request: The request.
            now: The server's APNs clock (UNIX seconds), for token ages.

        Returns:
            The reply, and the decoded JSON payload (``None`` when it was not decoded).
        """
        headers = request.headers
        apns_id = headers.get("apns-id")
        if apns_id is None or _UUID_RE.fullmatch(apns_id) is None:
            echo_id = str(uuid.uuid4())
        else:
            echo_id = apns_id
        reason, payload = self._check(request, headers, apns_id, now)
        reply_headers: tuple[tuple[str, str], ...]
        if self._sandbox:
            reply_headers = (("apns-id", echo_id), ("apns-unique-id", str(uuid.uuid4())))
        else:
            reply_headers = (("apns-id", echo_id),)
        if reason is None:
            return Reply(200, reply_headers), payload
        status, name, timestamp = reason
        return Reply(status, reply_headers, name, timestamp), payload

    def expire(self, request: ReceivedRequest) -> None:
        """Note that the connection's token was answered ``ExpiredProviderToken``.

        Renewing a token after that answer is not counted as a too-early update.
        """
        if request.connection is not None:
            state = request.connection.state.get("provider_token")
            if isinstance(state, _TokenState):
                state.expired = True

    # -- the checks -----------------------------------------------------------------------

    def _check(
        self, request: ReceivedRequest, headers: dict[str, str], apns_id: str | None, now: float
    ) -> tuple[tuple[int, str, int | None] | None, Any]:
        if request.method != "POST":
            return (405, "MethodNotAllowed", None), None
        path = request.path
        if not path.startswith(_DEVICE_PREFIX):
            return (404, "BadPath", None), None
        device_token = path[len(_DEVICE_PREFIX) :]
        if not device_token:
            return (400, "MissingDeviceToken", None), None
        if "/" in device_token or "?" in device_token:
            return (404, "BadPath", None), None
        if request.duplicate_headers:
            return (400, "DuplicateHeaders", None), None

        key: TrustedKey | None = None
        cert_info = request.connection.client_certificate_info if request.connection else None
        if self.auth == "token":
            failure, key = self._check_provider_token(request, headers.get("authorization"), now)
            if failure is not None:
                return failure, None
        elif (
            cert_info is not None
            and cert_info.environments
            and self.environment not in cert_info.environments
        ):
            return (403, "BadCertificateEnvironment", None), None

        if len(device_token) % 2 or not set(device_token) <= _HEX_DIGITS:
            return (400, "BadDeviceToken", None), None
        token = device_token.lower()
        if self.strict and not self.registry.known(token):
            return (400, "BadDeviceToken", None), None

        topic = headers.get("apns-topic")
        if topic is None and self.auth == "certificate" and cert_info is not None:
            topic = _default_certificate_topic(cert_info)
        if topic is None:
            return (400, "MissingTopic", None), None
        if _TOPIC_RE.fullmatch(topic) is None:
            return (400, "BadTopic", None), None
        bundle = base_topic(topic)
        if cert_info is not None and not cert_info.allows_topic(topic):
            return (400, "TopicDisallowed", None), None
        if key is not None and key.topics is not None and bundle not in key.topics:
            return (400, "TopicDisallowed", None), None
        registered = self.registry.topic_of(token)
        if registered is not None and registered != bundle:
            return (400, "DeviceTokenNotForTopic", None), None

        push_type = headers.get("apns-push-type")
        if push_type is not None:
            if push_type not in PUSH_TYPE_SUFFIXES:
                return (400, "InvalidPushType", None), None
            suffix = PUSH_TYPE_SUFFIXES[push_type]
            if suffix is None:
                if bundle != topic:
                    return (400, "InvalidPushType", None), None
            elif suffix != "*" and not topic.endswith(suffix):
                return (400, "InvalidPushType", None), None

        priority = headers.get("apns-priority")
        if priority is not None and (
            priority not in _PRIORITIES or (priority == "10" and push_type == "background")
        ):
            # Apple: priority 10 for a background-only notification is an error.
            return (400, "BadPriority", None), None
        expiration = headers.get("apns-expiration")
        if expiration is not None and not (expiration.isascii() and expiration.isdigit()):
            return (400, "BadExpirationDate", None), None
        collapse_id = headers.get("apns-collapse-id")
        if collapse_id is not None and len(collapse_id.encode()) > 64:
            return (400, "BadCollapseId", None), None
        if apns_id is not None and _UUID_RE.fullmatch(apns_id) is None:
            return (400, "BadMessageId", None), None

        body = request.body
        if not body:
            return (400, "PayloadEmpty", None), None
        voip = push_type == "voip" or (push_type is None and topic.endswith(".voip"))
        if len(body) > (MAX_VOIP_PAYLOAD_SIZE if voip else MAX_PAYLOAD_SIZE):
            return (413, "PayloadTooLarge", None), None
        try:
            payload = json.loads(body)
        except (ValueError, UnicodeDecodeError):
            return (400, "BadPayload", None), None
        if not isinstance(payload, dict):
            return (400, "BadPayload", None), payload

        since = self.registry.unregistered_since(token)
        if since is not None:
            return (410, "Unregistered", since), payload
        return None, payload

    def _check_provider_token(
        self, request: ReceivedRequest, authorization: str | None, now: float
    ) -> tuple[tuple[int, str, None] | None, TrustedKey | None]:
        if not authorization:
            return (403, "MissingProviderToken", None), None
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token:
            return (403, "InvalidProviderToken", None), None
        verified = self.verifier.verify(token)
        if verified is None:
            return (403, "InvalidProviderToken", None), None
        key, issued_at = verified
        if key.environments is not None and self.environment not in key.environments:
            return (403, "InvalidProviderToken", None), None
        if now - issued_at > TOKEN_MAX_AGE:
            return (403, "ExpiredProviderToken", None), None
        if request.connection is not None:
            state = request.connection.state.get("provider_token")
            if state is None:
                request.connection.state["provider_token"] = _TokenState(token, now)
            elif state.token != token:
                # Apple: refresh no more often than once every 20 minutes, per connection
                # ("Establishing a token-based connection to APNs").
                if not state.expired and now - state.since < TOKEN_MIN_REFRESH:
                    return (429, "TooManyProviderTokenUpdates", None), None
                request.connection.state["provider_token"] = _TokenState(token, now)
        return None, key


def _default_certificate_topic(cert_info: Any) -> str | None:
    # Apple: without apns-topic, a certificate that names one topic supplies its subject.
    topics: Iterable[Any] = cert_info.topics
    names = {entry.name for entry in topics}
    uid: str | None = cert_info.subject_uid
    if uid is not None:
        names.add(uid)
    if len(names) == 1 and uid is not None:
        return uid
    return None
