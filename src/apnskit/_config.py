"""Small frozen configuration objects shared by both clients, and their defaults.

Hosts and ports follow Apple's "Sending notification requests to APNs"
(https://developer.apple.com/documentation/usernotifications/sending-notification-requests-to-apns).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from apnskit._errors import ConfigurationError

__all__ = [
    "DEFAULT_LIMITS",
    "DEFAULT_RETRY_POLICY",
    "DEFAULT_TIMEOUT",
    "Environment",
    "Limits",
    "RetryPolicy",
    "Timeout",
]


class Environment(str, enum.Enum):
    """An APNs environment: where a notification is delivered from."""

    PRODUCTION = "production"
    SANDBOX = "sandbox"

    @property
    def host(self) -> str:
        """The APNs host for device and broadcast pushes in this environment."""
        # api.development.push.apple.com is an old alias; Apple documents the sandbox name.
        if self is Environment.PRODUCTION:
            return "api.push.apple.com"
        return "api.sandbox.push.apple.com"

    @property
    def management_host(self) -> str:
        """The host for broadcast channel management (iOS 18) in this environment."""
        if self is Environment.PRODUCTION:
            return "api-manage-broadcast.push.apple.com"
        return "api-manage-broadcast.sandbox.push.apple.com"

    @property
    def management_port(self) -> int:
        """The port for broadcast channel management, as other clients configure it."""
        return 2196 if self is Environment.PRODUCTION else 2195

    @classmethod
    def parse(cls, value: str | Environment) -> Environment:
        """Accept ``"production"``/``"sandbox"`` (and ``"development"`` for sandbox)."""
        if isinstance(value, Environment):
            return value
        normalized = str(value).strip().lower()
        if normalized == "development":
            return cls.SANDBOX
        try:
            return cls(normalized)
        except ValueError:
            raise ConfigurationError(
                f"environment: {value!r} is not an APNs environment; use 'production' or 'sandbox'"
            ) from None

    def __str__(self) -> str:
        return self.value


#: The port APNs listens on; 2197 is the alternative where 443 is blocked.
DEFAULT_PORT = 443


def _check_positive(name: str, value: float | None, *, allow_none: bool = True) -> None:
    if value is None:
        if not allow_none:
            raise ConfigurationError(f"{name}: must be given")
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
        raise ConfigurationError(f"{name}: {value!r} must be a positive number of seconds")


@dataclass(frozen=True, slots=True)
class Timeout:
    """How long each step may take, in seconds (``None``: no limit)."""

    connect: float | None = 10.0
    """One connection attempt: DNS, TCP connect and the TLS handshake together."""
    deadline: float | None = 30.0
    """From handing a notification to the client until its answer arrives, retries included."""
    ping_interval: float | None = 60.0
    """Idle time after which a connection is checked with an HTTP/2 PING before it is used."""
    ping_timeout: float = 5.0
    """How long a PING may take before the connection is declared dead."""

    def __post_init__(self) -> None:
        _check_positive("Timeout.connect", self.connect)
        _check_positive("Timeout.deadline", self.deadline)
        _check_positive("Timeout.ping_interval", self.ping_interval)
        _check_positive("Timeout.ping_timeout", self.ping_timeout, allow_none=False)


@dataclass(frozen=True, slots=True)
class Limits:
    """How much a client may open and keep in flight."""

    # Why 24 connections and 15,000 in flight. A connection is full at the server's
    # MAX_CONCURRENT_STREAMS (APNs commonly allows 1000) or while its bodies wait for the
    # server's connection flow-control window, 64 KiB unless the server raises it (RFC 9113
    # section 6.9.2; what APNs grants is not documented). Either way one connection carries at
    # most one window, or 1000 requests, per round trip, and a provider is 20 to 150 ms from
    # APNs: at 150 ms and ~70-byte bodies that is about 6,200 notifications/s per connection,
    # at 50 ms about 19,000/s. One process sends 60,000/s (pure Python) to 125,000/s (the
    # compiled build) on one core of a current machine (bench/README.md, 2026-12-01), so at
    # 150 ms it needs ten to twenty connections; twenty-four leave room for larger bodies and
    # for a connection that drains (GOAWAY, worn-out stream ids) while its successor opens.
    # max_in_flight caps what all of them carry per round trip: 15,000 allows 100,000/s at
    # 150 ms, above the pure-Python rate, and bounds memory to 15,000 notifications (RSS
    # 96-107 MB for a 1,000,000-notification send_many, bench/memory.py --default-limits;
    # 20,000 reached 122 MB, close to issue 13's 150 MB). With 12 and 10,000 (the defaults
    # until issue 13's eighth pass, chosen when a process sent half as fast) the pure-Python
    # clients kept 76 % and 60 % of their 0 ms rate at 150 ms; now 87-90 % and 72-73 %. More would
    # only add connections APNs must hold for nothing. The connections open lazily, only when
    # the open ones are full and work waits, so a client whose load one connection carries
    # keeps one; and once one has answered, as many open at once as the waiting notifications
    # need (apnskit._engine.pool), so a short burst far from APNs reaches them in a few round
    # trips instead of a few per connection. With these, bench/throughput.py --rtt-ms keeps
    # at least 80 % of the 0 ms rate at 50 ms and 60 % at 150 ms (issue 13).
    max_connections: int = 24
    """Connections in the pool (opened lazily, only when the open ones are full: at the
    server's stream limit or waiting on its flow-control window; several at once once a
    connection has answered)."""
    max_in_flight: int = 15000
    """Notifications in flight across the pool (bounded further by each server's SETTINGS)."""

    def __post_init__(self) -> None:
        for name in ("max_connections", "max_in_flight"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigurationError(f"Limits.{name}: {value!r} must be an integer >= 1")


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """When and how often a notification is sent again.

    Retried: 429, 500 and 503 answers, streams the server refused or never processed
    (REFUSED_STREAM, above a GOAWAY's last stream id) and connections lost mid-flight.
    ``ExpiredProviderToken`` is retried once with a fresh token. Every other rejection is
    final.

    A 429 or 503 means APNs turned the request away unprocessed, and a refused stream was
    never processed (RFC 9113 section 8.7), so resending those cannot duplicate. A 500 and a
    connection lost with the request in flight leave its fate unknown: APNs may have
    delivered it, and the resend may then reach the device twice. Set ``retry_500=False`` to
    get the 500 as the result instead.
    """

    max_attempts: int = 3
    """Total sends per notification, the first one included."""
    backoff_base: float = 0.5
    """Delay before the first retry, in seconds; doubled for each further retry."""
    backoff_max: float = 30.0
    """Upper bound of one delay."""
    jitter: float = 0.5
    """Fraction of each delay that is randomised (0: none, 1: anywhere from 0 to the delay)."""
    retry_500: bool = True
    """Resend after a 500 InternalServerError (APNs may have processed it: a possible duplicate)."""

    def __post_init__(self) -> None:
        if not isinstance(self.retry_500, bool):
            raise ConfigurationError(f"RetryPolicy.retry_500: {self.retry_500!r} must be a bool")
        if isinstance(self.max_attempts, bool) or not isinstance(self.max_attempts, int):
            raise ConfigurationError("RetryPolicy.max_attempts: must be an integer >= 1")
        if self.max_attempts < 1:
            raise ConfigurationError(
                f"RetryPolicy.max_attempts: {self.max_attempts} must be >= 1 (1 means no retry)"
            )
        if self.backoff_base < 0 or self.backoff_max < 0:
            raise ConfigurationError("RetryPolicy.backoff_base/backoff_max: must be >= 0 seconds")
        if not 0.0 <= self.jitter <= 1.0:
            raise ConfigurationError(f"RetryPolicy.jitter: {self.jitter!r} must be within 0..1")

    def delay(self, retry_number: int, random_fraction: float) -> float:
        """The delay before retry number ``retry_number`` (1 for the first retry).

        Args:
            retry_number: 1 for the first retry, 2 for the second...
            random_fraction: a number in [0, 1) from the caller's random source.
        """
        # The exponent is capped: after hours of failed connects (retry_number in the
        # thousands) 2.0 ** n overflows a float, and the delay is at backoff_max long before.
        exponent = min(max(0, retry_number - 1), 64)
        base = min(self.backoff_max, self.backoff_base * 2.0**exponent)
        return float(base * (1.0 - self.jitter * random_fraction))


DEFAULT_TIMEOUT = Timeout()
DEFAULT_LIMITS = Limits()
DEFAULT_RETRY_POLICY = RetryPolicy()
