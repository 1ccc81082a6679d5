"""Apple's request validation, as the mock APNs server applies it.

The rules and reasons follow Apple's "Sending notification requests to APNs" and "Handling
notification responses from APNs" (see ../shared/apns-reference.md). They are written here
independently of the client's own checks in ``apnskit._model`` (its rule tables), so a mistake
in one is caught by the other.

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

Broadcast pushes (``/4/broadcasts/apps/<bundle id>``) and channel management
(``/1/apps/<bundle id>/channels``, ``/1/apps/<bundle id>/all-channels``) are answered by
:class:`BroadcastValidator` (see the comment above it for its order of checks).
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import uuid
from collections.abc import Callable, Iterable
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
    "CHANNEL_PUSH_TYPE",
    "MAX_CHANNELS",
    "MAX_PAYLOAD_SIZE",
    "MAX_VOIP_PAYLOAD_SIZE",
    "PUSH_TYPE_SUFFIXES",
    "TOKEN_MAX_AGE",
    "TOKEN_MIN_REFRESH",
    "BroadcastValidator",
    "ChannelStore",
    "DeviceRegistry",
    "ProviderTokenVerifier",
    "RequestValidator",
    "StoredChannel",
    "TrustedKey",
    "base_topic",
    "echoed_id",
    "is_broadcast_path",
    "is_management_path",
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


def echoed_id(value: str | None) -> str:
    """The id a reply carries: the request's ``apns-id`` (or ``apns-request-id``), or a new one.

    Apple ("Handling notification responses from APNs", and the broadcast pages for
    ``apns-request-id``): APNs echoes the request's id, and makes a UUID when the request has
    none. The mock also makes one when the request's is not a canonical UUID (that request is
    answered ``BadMessageId``).
    """
    if value is None or _UUID_RE.fullmatch(value) is None:
        return str(uuid.uuid4())
    return value


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


def _push_type_mismatch(push_type: str, _: str | None, topic: str) -> bool:
    if push_type not in PUSH_TYPE_SUFFIXES:
        return True
    suffix = PUSH_TYPE_SUFFIXES[push_type]
    if suffix is None:  # the bare bundle ID
        return base_topic(topic) != topic
    return suffix != "*" and not topic.endswith(suffix)


# The header rules of steps 7 to 11 (see the module docstring), checked in this order once the
# topic is known: (header, broken(value, apns-push-type, topic), reason), each answering 400.
# A header that is absent breaks none of them.
_HEADER_RULES: tuple[tuple[str, Callable[[str, str | None, str], bool], str], ...] = (
    ("apns-push-type", _push_type_mismatch, "InvalidPushType"),
    # Apple: priority 10 for a background-only notification is an error.
    (
        "apns-priority",
        lambda v, push_type, _: v not in _PRIORITIES or (v == "10" and push_type == "background"),
        "BadPriority",
    ),
    ("apns-expiration", lambda v, _, __: not (v.isascii() and v.isdigit()), "BadExpirationDate"),
    ("apns-collapse-id", lambda v, _, __: len(v.encode()) > 64, "BadCollapseId"),
    ("apns-id", lambda v, _, __: _UUID_RE.fullmatch(v) is None, "BadMessageId"),
)


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
        echo_id = echoed_id(headers.get("apns-id"))
        reason, payload = self._check(request, headers, now)
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
        self, request: ReceivedRequest, headers: dict[str, str], now: float
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
        failure, key = self.authenticate(request, now)
        if failure is not None:
            return failure, None

        if len(device_token) % 2 or not set(device_token) <= _HEX_DIGITS:
            return (400, "BadDeviceToken", None), None
        token = device_token.lower()
        if self.strict and not self.registry.known(token):
            return (400, "BadDeviceToken", None), None
        topic = headers.get("apns-topic")
        cert_info = request.connection.client_certificate_info if request.connection else None
        if topic is None and self.auth == "certificate" and cert_info is not None:
            topic = _default_certificate_topic(cert_info)
        if topic is None:
            return (400, "MissingTopic", None), None
        problem = self._topic_problem(topic, token, key, cert_info)
        if problem is not None:
            return (400, problem, None), None

        push_type = headers.get("apns-push-type")
        for header, broken, reason in _HEADER_RULES:
            value = headers.get(header)
            if value is not None and broken(value, push_type, topic):
                return (400, reason, None), None

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

    def _topic_problem(
        self, topic: str, token: str, key: TrustedKey | None, cert_info: Any
    ) -> str | None:
        """The reason a well-formed request's topic is refused (all 400), or ``None``."""
        if _TOPIC_RE.fullmatch(topic) is None:
            return "BadTopic"
        bundle = base_topic(topic)
        if cert_info is not None and not cert_info.allows_topic(topic):
            return "TopicDisallowed"
        if key is not None and key.topics is not None and bundle not in key.topics:
            return "TopicDisallowed"
        registered = self.registry.topic_of(token)
        if registered is not None and registered != bundle:
            return "DeviceTokenNotForTopic"
        return None

    def authenticate(
        self, request: ReceivedRequest, now: float
    ) -> tuple[tuple[int, str, None] | None, TrustedKey | None]:
        """Check the request's credentials, as for a device push.

        Token mode checks the provider token (``authorization`` header); certificate mode
        checks that the client certificate is valid in the server's environment.

        Args:
            request: The request.
            now: The server's APNs clock (UNIX seconds), for token ages.

        Returns:
            The failure (status, reason, ``None``) or ``None``, and the trusted key the
            token was signed with (token mode).
        """
        if self.auth == "token":
            return self._check_provider_token(request, request.headers.get("authorization"), now)
        cert_info = request.connection.client_certificate_info if request.connection else None
        if (
            cert_info is not None
            and cert_info.environments
            and self.environment not in cert_info.environments
        ):
            return (403, "BadCertificateEnvironment", None), None
        return None, None

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


# ---------------------------------------------------------------------------------------------
# Broadcast push and channel management (iOS 18)
#
# From Apple's "Sending broadcast push notification requests to APNs", "Sending channel
# management requests to APNs" and the broadcast rows of "Handling error responses from APNs"
# (the rules are summarized in apnskit._model.broadcast's docstring). Apple gives no order for these
# checks; this one follows the device-push order: method, path, headers, authentication,
# topic, channel, push type, priority, expiration, request id, payload.
#
# Real clients send channel management to another host and port
# (api-manage-broadcast[.sandbox].push.apple.com:2195/2196); the mock serves the push paths
# (/3/device, /4/broadcasts) and the management paths (/1/apps) on its one port.

#: The ``push-type`` of a channel (Apple: "The only allowed value is LiveActivity").
CHANNEL_PUSH_TYPE = "LiveActivity"
#: Channels per app per environment (Apple, "Sending channel management requests").
MAX_CHANNELS = 10_000

_BROADCAST_PREFIX = "/4/broadcasts/apps/"
_MANAGE_PREFIX = "/1/apps/"
_BASE64_RE = re.compile(r"[A-Za-z0-9+/]+={0,2}")
_BROADCAST_EVENTS = frozenset({"update", "end"})


@dataclass(frozen=True, slots=True)
class StoredChannel:
    """A channel the mock server holds.

    Attributes:
        channel_id: Its id (base64 of 16 random bytes).
        bundle_id: The app it belongs to.
        message_storage_policy: 0 (no message stored) or 1 (most recent message stored).
        push_type: As created (``"LiveActivity"``).
    """

    channel_id: str
    bundle_id: str
    message_storage_policy: int
    push_type: str = CHANNEL_PUSH_TYPE


class ChannelStore:
    """The channels of each app, in the one environment the server plays.

    Args:
        max_channels: How many channels an app may have (Apple: 10,000 per environment).
    """

    def __init__(self, max_channels: int = MAX_CHANNELS) -> None:
        self.max_channels = max_channels
        self._channels: dict[str, dict[str, StoredChannel]] = {}
        self.disabled: set[str] = set()
        """Bundle IDs for which broadcast is not enabled (``403 FeatureNotEnabled``)."""

    def create(self, bundle_id: str, policy: int, push_type: str = CHANNEL_PUSH_TYPE) -> str:
        """Create a channel and return its id (no limit check: see :meth:`full`)."""
        channel_id = base64.b64encode(uuid.uuid4().bytes).decode("ascii")
        self._channels.setdefault(bundle_id, {})[channel_id] = StoredChannel(
            channel_id, bundle_id, policy, push_type
        )
        return channel_id

    def full(self, bundle_id: str) -> bool:
        """Whether ``bundle_id`` already has :attr:`max_channels` channels."""
        return len(self._channels.get(bundle_id, {})) >= self.max_channels

    def get(self, bundle_id: str, channel_id: str) -> StoredChannel | None:
        """The channel ``channel_id`` of ``bundle_id``, or ``None``."""
        return self._channels.get(bundle_id, {}).get(channel_id)

    def delete(self, bundle_id: str, channel_id: str) -> bool:
        """Delete a channel; whether it existed."""
        return self._channels.get(bundle_id, {}).pop(channel_id, None) is not None

    def channels(self, bundle_id: str) -> list[StoredChannel]:
        """The channels of ``bundle_id``, oldest first."""
        return list(self._channels.get(bundle_id, {}).values())


def is_broadcast_path(path: str) -> bool:
    """Whether ``path`` is a broadcast push (``/4/broadcasts/apps/...``)."""
    return path.startswith(_BROADCAST_PREFIX)


def is_management_path(path: str) -> bool:
    """Whether ``path`` is a channel management request (``/1/apps/...``)."""
    return path.startswith(_MANAGE_PREFIX)


def _channel_id_problem(channel_id: str | None) -> str | None:
    if channel_id is None or not channel_id:
        return "MissingChannelId"
    if _BASE64_RE.fullmatch(channel_id) is None:
        return "BadChannelId"
    try:
        base64.b64decode(channel_id, validate=True)
    except (binascii.Error, ValueError):
        return "BadChannelId"
    return None


_Answer = tuple[int, str | None, bytes | None, tuple[tuple[str, str], ...]]


class BroadcastValidator:
    """Answers broadcast pushes and channel management requests as APNs would.

    It shares authentication (provider tokens, certificates) with the device-push
    :class:`RequestValidator`.

    Args:
        requests: The device-push validator (for authentication and the environment).
        store: The channels.
    """

    def __init__(self, requests: RequestValidator, store: ChannelStore) -> None:
        self.requests = requests
        self.store = store

    def validate(self, request: ReceivedRequest, now: float) -> tuple[Reply, Any]:
        """Check a broadcast or management request and build the reply (and decoded body)."""
        echo_id = echoed_id(request.headers.get("apns-request-id"))
        if is_broadcast_path(request.path):
            status, reason, body, extra, payload = self._broadcast(request, now)
        else:
            status, reason, body, extra = self._manage(request, now)
            payload = None
        headers = (("apns-request-id", echo_id), *extra)
        return Reply(status, headers, reason, body=body), payload

    # -- shared checks --------------------------------------------------------------------

    def _common(self, request: ReceivedRequest, bundle: str, now: float) -> tuple[int, str] | None:
        if not bundle or "/" in bundle or "?" in bundle:
            return 404, "BadPath"
        if request.duplicate_headers:
            return 400, "DuplicateHeaders"
        failure, key = self.requests.authenticate(request, now)
        if failure is not None:
            return failure[0], failure[1]
        cert_info = request.connection.client_certificate_info if request.connection else None
        if _TOPIC_RE.fullmatch(bundle) is None:
            return 400, "BadTopic"
        if cert_info is not None and not (
            cert_info.allows_topic(bundle)
            or cert_info.allows_topic(bundle + ".push-type.liveactivity")
        ):
            return 400, "TopicDisallowed"
        if key is not None and key.topics is not None and bundle not in key.topics:
            return 400, "TopicDisallowed"
        if bundle in self.store.disabled:
            # Apple: FeatureNotEnabled when broadcast is not enabled for the app.
            return 403, "FeatureNotEnabled"
        request_id = request.headers.get("apns-request-id")
        if request_id is not None and _UUID_RE.fullmatch(request_id) is None:
            # Apple documents no reason for a malformed apns-request-id; the mock answers as
            # for a malformed apns-id.
            return 400, "BadMessageId"
        return None

    def _lookup(self, request: ReceivedRequest, bundle: str) -> tuple[int, str] | StoredChannel:
        channel_id = request.headers.get("apns-channel-id")
        problem = _channel_id_problem(channel_id)
        if problem is not None:
            return 400, problem
        assert channel_id is not None
        channel = self.store.get(bundle, channel_id)
        if channel is None:
            # Apple: "The apns-channel-id header used in the request doesn't exist." Channels
            # belong to one app in one environment.
            return 400, "ChannelNotRegistered"
        return channel

    # -- POST /4/broadcasts/apps/<bundle> -------------------------------------------------------

    def _broadcast(
        self, request: ReceivedRequest, now: float
    ) -> tuple[int, str | None, bytes | None, tuple[tuple[str, str], ...], Any]:
        if request.method != "POST":
            return 405, "MethodNotAllowed", None, (), None
        bundle = request.path[len(_BROADCAST_PREFIX) :]
        failure = self._common(request, bundle, now)
        if failure is not None:
            return failure[0], failure[1], None, (), None
        found = self._lookup(request, bundle)
        if not isinstance(found, StoredChannel):
            return found[0], found[1], None, (), None
        headers = request.headers
        push_type = headers.get("apns-push-type")
        if push_type is None:
            return 400, "MissingPushType", None, (), None
        if push_type != "liveactivity":
            return 400, "InvalidPushType", None, (), None
        priority = headers.get("apns-priority")
        if priority is not None and priority not in _PRIORITIES:
            return 400, "BadPriority", None, (), None
        # Apple, "Sending broadcast push notification requests to APNs" (header table,
        # https://developer.apple.com/documentation/usernotifications/sending-broadcast-push-notification-requests-to-apns):
        # apns-expiration is "Required" on every broadcast, and "providing a nonzero expiration
        # for a channel created with the No Message Stored storage policy results in message
        # rejection". Apple names no reason for a missing one; the mock answers as for a bad
        # one (BadExpirationDate), the reason documented for a rejected expiration.
        expiration = headers.get("apns-expiration")
        if expiration is None or not (expiration.isascii() and expiration.isdigit()):
            return 400, "BadExpirationDate", None, (), None
        if found.message_storage_policy == 0 and int(expiration) != 0:
            return 400, "BadExpirationDate", None, (), None
        body = request.body
        if not body:
            return 400, "PayloadEmpty", None, (), None
        if len(body) > MAX_PAYLOAD_SIZE:
            return 413, "PayloadTooLarge", None, (), None
        try:
            payload = json.loads(body)
        except (ValueError, UnicodeDecodeError):
            return 400, "BadPayload", None, (), None
        aps = payload.get("aps") if isinstance(payload, dict) else None
        if not isinstance(aps, dict) or aps.get("event") not in _BROADCAST_EVENTS:
            # Apple documents no reason for a broadcast that is not a Live Activity update or
            # end; BadPayload is the mock's own (as for malformed JSON).
            return 400, "BadPayload", None, (), payload
        return 200, None, None, (), payload

    # -- /1/apps/<bundle>/channels and /1/apps/<bundle>/all-channels -----------------------------

    def _manage(self, request: ReceivedRequest, now: float) -> _Answer:
        rest = request.path[len(_MANAGE_PREFIX) :]
        bundle, _, resource = rest.partition("/")
        if resource == "channels":
            allowed: tuple[str, ...] = ("POST", "GET", "DELETE")
        elif resource == "all-channels":
            allowed = ("GET",)
        else:
            return 404, "BadPath", None, ()
        if request.method not in allowed:
            return 405, "MethodNotAllowed", None, ()
        failure = self._common(request, bundle, now)
        if failure is not None:
            return failure[0], failure[1], None, ()
        if resource == "all-channels":
            ids = [c.channel_id for c in self.store.channels(bundle)]
            return 200, None, _json({"channels": ids}), ()
        if request.method == "POST":
            return self._create(request, bundle)
        found = self._lookup(request, bundle)
        if not isinstance(found, StoredChannel):
            return found[0], found[1], None, ()
        if request.method == "GET":
            body = {
                "message-storage-policy": found.message_storage_policy,
                "push-type": found.push_type,
            }
            return 200, None, _json(body), ()
        self.store.delete(bundle, found.channel_id)
        return 204, None, None, ()

    def _create(self, request: ReceivedRequest, bundle: str) -> _Answer:
        try:
            body = json.loads(request.body) if request.body else None
        except (ValueError, UnicodeDecodeError):
            body = None
        if not isinstance(body, dict):
            # Apple documents no reason for a missing or malformed creation body.
            return 400, "BadPayload", None, ()
        push_type = body.get("push-type")
        if push_type is None:
            return 400, "MissingPushType", None, ()
        # Apple spells it "LiveActivity"; whether APNs compares case-sensitively is not
        # documented, so the mock accepts any case.
        if not isinstance(push_type, str) or push_type.lower() != "liveactivity":
            return 400, "InvalidPushType", None, ()
        policy = body.get("message-storage-policy")
        if isinstance(policy, bool) or policy not in (0, 1):
            # Apple documents no reason for a bad message-storage-policy; InvalidPolicy is the
            # mock's (apnskit.Reason.INVALID_POLICY).
            return 400, "InvalidPolicy", None, ()
        if self.store.full(bundle):
            # Apple: CannotCreateChannelConfig, "You have reached the maximum channel limit".
            return 400, "CannotCreateChannelConfig", None, ()
        channel_id = self.store.create(bundle, int(policy), push_type)
        return 201, None, None, (("apns-channel-id", channel_id),)


def _json(value: object) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()
