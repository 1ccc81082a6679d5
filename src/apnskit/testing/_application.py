"""The mock server's behaviour, independent of the network: faults, validation, records.

:class:`ApnsApplication` is an app for :class:`~apnskit.testing.ServerConnection`: called with
each :class:`~apnskit.testing.ReceivedRequest`, it consults the scripted faults
(:class:`FaultPlan`), validates the request as APNs would
(:class:`~apnskit.testing._validation.RequestValidator`, or for broadcast pushes and channel
management :class:`~apnskit.testing._validation.BroadcastValidator`), records it in
:attr:`received`
and returns the :class:`~apnskit.testing.Reply` or :class:`~apnskit.testing.Fault`.

It is thread-safe: a sync test scripts faults and reads records from its own thread while the
server answers from a background thread.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from apnskit._config import Environment
from apnskit.testing._server_connection import Fault, ReceivedRequest, Reply, redact_headers
from apnskit.testing._validation import (
    MAX_CHANNELS,
    BroadcastValidator,
    ChannelStore,
    DeviceRegistry,
    ProviderTokenVerifier,
    RequestValidator,
    TrustedKey,
    echoed_id,
    is_broadcast_path,
    is_management_path,
)

if TYPE_CHECKING:
    from apnskit._model.broadcast import Channel

__all__ = ["ApnsApplication", "FaultPlan", "ReceivedNotification"]

_RETRYABLE_STATUSES = {
    429: "TooManyRequests",
    500: "InternalServerError",
    503: "ServiceUnavailable",
}


@dataclass(frozen=True, slots=True)
class ReceivedNotification:
    """One request the server received, and what it did about it.

    Broadcast pushes and channel management requests are recorded too: their
    ``device_token`` is ``""``, :attr:`channel_id` gives the channel and
    :attr:`is_broadcast` tells a broadcast apart.

    Attributes:
        device_token: The token from the path (``""`` when the path has none).
        headers: The request's regular headers.
        payload: The decoded JSON payload, or ``None`` when it was not decoded (an early
            rejection, or malformed JSON).
        body: The raw request body.
        status: The HTTP status answered, or ``None`` when no reply was sent (reset, GOAWAY,
            dropped connection, never answered).
        reason: The reason answered, if any.
        apns_id: The ``apns-id`` answered (or the request's, when no reply was sent).
        outcome: ``"reply"``, ``"delayed"``, ``"reset"``, ``"goaway"``, ``"drop"`` or
            ``"no_reply"``.
        connection_id: The connection it arrived on.
        stream_id: The stream it arrived on.
        method: ``:method``.
        path: ``:path``.
        received_at: The server's APNs clock when it arrived (UNIX seconds).
    """

    device_token: str
    headers: dict[str, str] = field(repr=False)
    payload: Any
    body: bytes = field(repr=False)
    status: int | None
    reason: str | None
    apns_id: str | None
    outcome: str
    connection_id: int
    stream_id: int
    method: str = "POST"
    path: str = ""
    received_at: float = 0.0

    def __repr__(self) -> str:
        return (
            f"ReceivedNotification(device_token={self.device_token!r}, "
            f"headers={redact_headers(self.headers)!r}, payload={self.payload!r}, "
            f"status={self.status!r}, reason={self.reason!r}, apns_id={self.apns_id!r}, "
            f"outcome={self.outcome!r}, connection_id={self.connection_id}, "
            f"stream_id={self.stream_id})"
        )

    @property
    def topic(self) -> str | None:
        """The ``apns-topic`` header."""
        return self.headers.get("apns-topic")

    @property
    def push_type(self) -> str | None:
        """The ``apns-push-type`` header."""
        return self.headers.get("apns-push-type")

    @property
    def channel_id(self) -> str | None:
        """The ``apns-channel-id`` header (broadcasts, channel reads and deletes)."""
        return self.headers.get("apns-channel-id")

    @property
    def is_broadcast(self) -> bool:
        """Whether this was a broadcast push (``POST /4/broadcasts/apps/<bundle id>``)."""
        return is_broadcast_path(self.path)


def _check_max_channels(value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"max_channels: {value!r} must be an integer >= 0")


def _check_count(name: str, n: int) -> None:
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise ValueError(f"{name}: {n!r} must be an integer >= 0")


@dataclass
class _Countdown:
    """Let ``skip`` requests through, then apply to the next one."""

    skip: int
    fault: Fault


@dataclass
class _Plan:
    """What the :class:`FaultPlan` scripted and the application has yet to apply."""

    fail: list[tuple[int, Reply]] = field(default_factory=list)  # (remaining, reply)
    refuse: int = 0
    expire: int = 0
    never_reply: int = 0
    delay: list[tuple[int, float]] = field(default_factory=list)  # (remaining, seconds)
    countdowns: list[_Countdown] = field(default_factory=list)

    def clear(self) -> None:
        """Drop every pending fault (in place: the application holds this object)."""
        self.fail.clear()
        self.refuse = self.expire = self.never_reply = 0
        self.delay.clear()
        self.countdowns.clear()

    def take(self) -> tuple[Fault | Reply | None, float | None]:
        """The fault for the request being handled (lock held), and a delay to apply."""
        plan = self
        chosen: Fault | Reply | None = None
        if plan.countdowns:
            for countdown in plan.countdowns:
                if countdown.skip == 0 and chosen is None:
                    chosen = countdown.fault
                    countdown.skip = -1
                else:
                    countdown.skip -= 1
            plan.countdowns = [c for c in plan.countdowns if c.skip >= 0]
        if chosen is None and plan.refuse:
            plan.refuse -= 1
            chosen = Fault.reset()
        if chosen is None and plan.fail:
            remaining, reply = plan.fail[0]
            if remaining <= 1:
                plan.fail.pop(0)
            else:
                plan.fail[0] = (remaining - 1, reply)
            if remaining >= 1:
                chosen = reply
        if chosen is None and plan.expire:
            plan.expire -= 1
            chosen = Reply(403, reason="ExpiredProviderToken")
        if chosen is None and plan.never_reply:
            plan.never_reply -= 1
            chosen = Fault.no_reply()
        delay: float | None = None
        if plan.delay:
            remaining, seconds = plan.delay[0]
            if remaining <= 1:
                plan.delay.pop(0)
            else:
                plan.delay[0] = (remaining - 1, seconds)
            if remaining >= 1:
                delay = seconds
        return chosen, delay


class FaultPlan:
    """Faults scripted for the next requests (``server.faults``).

    Each method applies to requests the server receives from now on, across all connections.
    When several faults are pending, the first in this order takes a request: GOAWAY and drop
    countdowns, ``refuse_next``, ``fail_next``, ``expire_token_next``, ``never_reply_next``;
    ``delay_next`` then delays whatever reply results.
    """

    def __init__(
        self,
        lock: threading.RLock,
        set_max_concurrent_streams: Callable[[int], None] | None = None,
        plan: _Plan | None = None,
    ) -> None:
        self._lock = lock
        # The application that owns the server reads the plan (under the lock) as requests come.
        self._plan = plan if plan is not None else _Plan()
        self._set_streams = set_max_concurrent_streams

    def fail_next(self, n: int = 1, status: int = 503, reason: str | None = None) -> None:
        """Answer the next ``n`` requests with ``status`` (429, 500 or 503) and ``reason``.

        Args:
            n: How many requests.
            status: 429, 500 or 503.
            reason: Apple's reason; by default ``TooManyRequests``, ``InternalServerError``
                or ``ServiceUnavailable`` to match ``status``.
        """
        _check_count("n", n)
        if status not in _RETRYABLE_STATUSES:
            raise ValueError(f"status: {status} must be 429, 500 or 503")
        reply = Reply(status, reason=reason or _RETRYABLE_STATUSES[status])
        with self._lock:
            self._plan.fail.append((n, reply))

    def goaway_after(
        self,
        n: int = 0,
        *,
        last_stream_id: int | None = None,
        error_code: int = 0,
        reason: str | None = "Shutdown",
    ) -> None:
        """Answer ``n`` more requests normally, then send GOAWAY instead of the next reply.

        Args:
            n: Requests answered before the GOAWAY.
            last_stream_id: The GOAWAY's last stream id; ``None``: the last stream answered
                before it on that connection, so the request that met the GOAWAY (and any
                after it) is safe to retry.
            error_code: The HTTP/2 error code (0 is NO_ERROR).
            reason: The reason put in the debug data as ``{"reason": ...}``.
        """
        _check_count("n", n)
        fault = Fault.goaway(last_stream_id=last_stream_id, error_code=error_code, reason=reason)
        with self._lock:
            self._plan.countdowns.append(_Countdown(n, fault))

    def drop_after(self, n: int = 0) -> None:
        """Answer ``n`` more requests, then drop the TCP connection on receiving the next one.

        The request that triggers the drop (and any still in flight) gets no answer.
        """
        _check_count("n", n)
        with self._lock:
            self._plan.countdowns.append(_Countdown(n, Fault.drop()))

    def refuse_next(self, n: int = 1) -> None:
        """Reset the next ``n`` streams with RST_STREAM REFUSED_STREAM (safe to retry)."""
        _check_count("n", n)
        with self._lock:
            self._plan.refuse += n

    def delay_next(self, n: int, seconds: float) -> None:
        """Send the replies to the next ``n`` requests ``seconds`` late."""
        _check_count("n", n)
        if seconds < 0:
            raise ValueError(f"seconds: {seconds} must be >= 0")
        with self._lock:
            self._plan.delay.append((n, seconds))

    def never_reply_next(self, n: int = 1) -> None:
        """Never answer the next ``n`` requests (their streams stay open)."""
        _check_count("n", n)
        with self._lock:
            self._plan.never_reply += n

    def expire_token_next(self, n: int = 1) -> None:
        """Answer the next ``n`` requests 403 ``ExpiredProviderToken``."""
        _check_count("n", n)
        with self._lock:
            self._plan.expire += n

    def set_max_concurrent_streams(self, value: int) -> None:
        """Change SETTINGS_MAX_CONCURRENT_STREAMS, sending new SETTINGS on live connections."""
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"max_concurrent_streams: {value!r} must be an integer >= 1")
        if self._set_streams is None:
            raise RuntimeError("set_max_concurrent_streams: this plan is not attached to a server")
        self._set_streams(value)

    def clear(self) -> None:
        """Cancel every pending fault."""
        with self._lock:
            self._plan.clear()

    @property
    def pending(self) -> bool:
        """Whether any scripted fault is still waiting for a request."""
        with self._lock:
            plan = self._plan
            return bool(
                plan.fail
                or plan.refuse
                or plan.expire
                or plan.never_reply
                or plan.delay
                or plan.countdowns
            )


class ApnsApplication:
    """Answers requests as APNs would, with scripted faults; an app for ``ServerConnection``.

    Args:
        auth: ``"token"`` (JWT provider tokens) or ``"certificate"`` (mutual TLS).
        environment: ``"sandbox"`` (adds ``apns-unique-id`` to replies) or ``"production"``.
        strict: Answer ``BadDeviceToken`` for device tokens never registered.
        clock: The APNs clock (UNIX seconds) used for provider token ages; by default the
            system time plus :attr:`clock_offset`.
        set_max_concurrent_streams: Called by ``faults.set_max_concurrent_streams``.
        max_channels: Channels an app may have (Apple: 10,000 per environment); lower it to
            test the limit.
        on_request: Called with each request's :class:`ReceivedNotification` once it is
            answered, from the thread serving it (outside the lock; it must not raise).
    """

    def __init__(
        self,
        *,
        auth: str = "token",
        environment: str | Environment = "sandbox",
        strict: bool = False,
        clock: Callable[[], float] | None = None,
        set_max_concurrent_streams: Callable[[int], None] | None = None,
        max_channels: int = MAX_CHANNELS,
        on_request: Callable[[ReceivedNotification], None] | None = None,
    ) -> None:
        if auth not in ("token", "certificate"):
            raise ValueError(f"auth: {auth!r} must be 'token' or 'certificate'")
        _check_max_channels(max_channels)
        self.auth = auth
        self.environment = Environment.parse(environment)
        self.lock = threading.RLock()
        self.clock_offset = 0.0
        self._clock = clock
        self.registry = DeviceRegistry()
        self.verifier = ProviderTokenVerifier()
        self.validator = RequestValidator(
            auth=auth,
            environment=self.environment,
            strict=strict,
            verifier=self.verifier,
            registry=self.registry,
        )
        self.channel_store = ChannelStore(max_channels)
        self.broadcast_validator = BroadcastValidator(self.validator, self.channel_store)
        self._plan = _Plan()
        self.faults = FaultPlan(self.lock, set_max_concurrent_streams, self._plan)
        self.received: list[ReceivedNotification] = []
        """Every request received, in order of arrival."""
        self.on_request = on_request
        """Called with each request's record once it is answered (from the serving thread)."""

    @property
    def strict(self) -> bool:
        """Whether unknown device tokens are ``BadDeviceToken``."""
        return self.validator.strict

    @strict.setter
    def strict(self, value: bool) -> None:
        self.validator.strict = value

    @property
    def max_channels(self) -> int:
        """Channels an app may have before creation answers ``CannotCreateChannelConfig``."""
        return self.channel_store.max_channels

    @max_channels.setter
    def max_channels(self, value: int) -> None:
        _check_max_channels(value)
        with self.lock:
            self.channel_store.max_channels = value

    def create_channel(self, bundle_id: str, message_storage_policy: int = 1) -> str:
        """Create a channel directly (no request, no limit check) and return its id."""
        if isinstance(message_storage_policy, bool) or message_storage_policy not in (0, 1):
            raise ValueError(f"message_storage_policy: {message_storage_policy!r} must be 0 or 1")
        with self.lock:
            return self.channel_store.create(bundle_id, int(message_storage_policy))

    def channels(self, bundle_id: str) -> list[Channel]:
        """The channels ``bundle_id`` has now, oldest first."""
        from apnskit._model.broadcast import Channel, MessageStoragePolicy

        with self.lock:
            stored = self.channel_store.channels(bundle_id)
        return [
            Channel(
                channel_id=c.channel_id,
                bundle_id=c.bundle_id,
                message_storage_policy=MessageStoragePolicy(c.message_storage_policy),
                push_type=c.push_type,
                request_id=None,
            )
            for c in stored
        ]

    def set_broadcast_enabled(self, bundle_id: str, enabled: bool) -> None:
        """Enable or disable broadcast for ``bundle_id`` (disabled: 403 ``FeatureNotEnabled``)."""
        with self.lock:
            if enabled:
                self.channel_store.disabled.discard(bundle_id)
            else:
                self.channel_store.disabled.add(bundle_id)

    def now(self) -> float:
        """The APNs clock, UNIX seconds."""
        base = self._clock() if self._clock is not None else time.time()
        return base + self.clock_offset

    def advance_clock(self, seconds: float) -> None:
        """Move the APNs clock forward (e.g. to age provider tokens)."""
        with self.lock:
            self.clock_offset += seconds

    def register(self, device_token: str, topic: str) -> None:
        """Register ``device_token`` for ``topic`` (see :class:`DeviceRegistry`)."""
        with self.lock:
            self.registry.register(device_token, topic)

    def unregister(self, device_token: str, since: datetime | None = None) -> None:
        """Make ``device_token`` answer 410 ``Unregistered`` since ``since`` (default: now)."""
        with self.lock:
            self.registry.unregister(device_token, since)

    def trust_key(
        self,
        key_id: str,
        team_id: str,
        public_key: Any,
        *,
        topics: list[str] | None = None,
        environments: list[str | Environment] | None = None,
    ) -> None:
        """Trust tokens signed by ``public_key`` with this key ID and team ID.

        Args:
            key_id: The JWT ``kid``.
            team_id: The JWT ``iss``.
            public_key: A P-256 public key (``cryptography``), or its PEM text.
            topics: Restrict the key to these bundle IDs (``TopicDisallowed`` otherwise).
            environments: Restrict the key to these environments.
        """
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.hazmat.primitives.serialization import load_pem_public_key

        if isinstance(public_key, (str, bytes)):
            data = public_key.encode() if isinstance(public_key, str) else public_key
            public_key = load_pem_public_key(data)
        if not isinstance(public_key, ec.EllipticCurvePublicKey) or not isinstance(
            public_key.curve, ec.SECP256R1
        ):
            raise ValueError("public_key: must be a P-256 (secp256r1) public key")
        key = TrustedKey(
            key_id,
            team_id,
            public_key,
            frozenset(topics) if topics is not None else None,
            frozenset(Environment.parse(e) for e in environments)
            if environments is not None
            else None,
        )
        with self.lock:
            self.verifier.trust(key)

    def __call__(self, request: ReceivedRequest) -> Reply | Fault:
        """Answer one request (and pass its record to :attr:`on_request`)."""
        with self.lock:
            outcome = self._answer(request)
            record = self.received[-1]
        hook = self.on_request
        if hook is not None:
            # Outside the lock: a slow hook (printing to a pipe) must not hold up other
            # connections' requests or the test thread reading records.
            hook(record)
        return outcome

    def _answer(self, request: ReceivedRequest) -> Reply | Fault:
        now = self.now()
        forced, delay = self._plan.take()
        payload: Any = None
        if forced is None or (type(forced) is Fault and forced.kind == "no_reply"):
            path = request.path
            if is_broadcast_path(path) or is_management_path(path):
                reply, payload = self.broadcast_validator.validate(request, now)
            else:
                reply, payload = self.validator.validate(request, now)
        if forced is not None:
            if type(forced) is Reply:
                reply = Reply(forced.status, self._forced_headers(request), forced.reason)
                if forced.reason == "ExpiredProviderToken":
                    self.validator.expire(request)
            else:
                assert isinstance(forced, Fault)
                self._record(request, payload, None, forced.kind, now)
                return forced
        elif reply.reason == "ExpiredProviderToken":
            self.validator.expire(request)
        outcome: Reply | Fault = reply
        if delay is not None:
            outcome = Fault.delay(delay, reply)
        self._record(request, payload, reply, "delayed" if delay else "reply", now)
        return outcome

    def _forced_headers(self, request: ReceivedRequest) -> tuple[tuple[str, str], ...]:
        """The ids a scripted reply carries: the same ones a validated reply would."""
        path = request.path
        if is_broadcast_path(path) or is_management_path(path):
            # Apple: the apns-request-id is echoed, or made by APNs when the request had none.
            return (("apns-request-id", echoed_id(request.headers.get("apns-request-id"))),)
        # Apple ("Handling notification responses from APNs"): every response has apns-id
        # (the request's, or one APNs made) and, in the development environment only,
        # apns-unique-id.
        apns_id = echoed_id(request.headers.get("apns-id"))
        if self.environment is Environment.SANDBOX:
            return (("apns-id", apns_id), ("apns-unique-id", str(uuid.uuid4())))
        return (("apns-id", apns_id),)

    def _record(
        self,
        request: ReceivedRequest,
        payload: Any,
        reply: Reply | None,
        outcome: str,
        now: float,
    ) -> None:
        if payload is None and request.body:
            try:
                payload = json.loads(request.body)
            except ValueError:
                payload = None
        path = request.path
        token = path[10:] if path.startswith("/3/device/") else ""
        apns_id = request.headers.get("apns-id")
        if reply is not None:
            for name, value in reply.headers:
                if name == "apns-id":
                    apns_id = value
        self.received.append(
            ReceivedNotification(
                token,
                request.headers,
                payload,
                request.body,
                reply.status if reply is not None else None,
                reply.reason if reply is not None else None,
                apns_id,
                outcome,
                request.connection_id,
                request.stream_id,
                request.method,
                path,
                now,
            )
        )
