"""Helpers for the client tests: one test body drives PushClient and AsyncPushClient alike.

Every behaviour test is an ``async def`` marked ``anyio`` and takes the ``flavor`` fixture:
``"sync"`` (PushClient, its blocking calls made straight from the test coroutine; nothing else
runs on that loop), ``"asyncio"`` and ``"trio"`` (AsyncPushClient on that anyio backend). The
``anyio_backend`` fixture follows the flavour, so each client runs once per backend it needs.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterable
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

import apnskit
from apnskit.testing import FakeTransport, ReceivedRequest, Reply

# Key generation is the slow part of credentials: one key for the session.
_KEY = ec.generate_private_key(ec.SECP256R1())
KEY_PEM = _KEY.private_bytes(
    serialization.Encoding.PEM,
    serialization.PrivateFormat.PKCS8,
    serialization.NoEncryption(),
)
TOPIC = "com.example.app"
FAST_RETRY = apnskit.RetryPolicy(max_attempts=3, backoff_base=0.001, backoff_max=0.01)


def token_credentials() -> apnskit.TokenCredentials:
    return apnskit.TokenCredentials(KEY_PEM, key_id="ABCDE12345", team_id="TEAM123456")


def notification(token: str | None = None, **kwargs: Any) -> apnskit.Notification:
    """A notification with a fresh apns-id, so the fake can count sends per notification."""
    kwargs.setdefault("apns_id", str(uuid.uuid4()))
    kwargs.setdefault("topic", TOPIC)
    return apnskit.Notification(token or "ab" * 32, {"aps": {"alert": "hi"}}, **kwargs)


def echo(request: ReceivedRequest, status: int = 200, reason: str | None = None) -> Reply:
    """A reply carrying the request's apns-id back, as APNs does."""
    return Reply(status, headers=(("apns-id", request.headers["apns-id"]),), reason=reason)


class Client:
    """One client, sync or async, behind an async interface the tests share."""

    def __init__(self, flavor: str, inner: Any) -> None:
        self.flavor = flavor
        self.inner = inner

    @property
    def is_async(self) -> bool:
        return self.flavor != "sync"

    async def send(self, item: Any) -> apnskit.PushResult:
        if self.is_async:
            return await self.inner.send(item)  # type: ignore[no-any-return]
        return self.inner.send(item)  # type: ignore[no-any-return]

    async def iter_many(self, items: Iterable[Any]) -> AsyncIterator[apnskit.PushResult]:
        if self.is_async:
            async for result in self.inner.send_many(items):
                yield result
        else:
            for result in self.inner.send_many(items):
                yield result

    async def send_many(self, items: Iterable[Any]) -> list[apnskit.PushResult]:
        return [r async for r in self.iter_many(items)]

    async def close(self) -> None:
        if self.is_async:
            await self.inner.close()
        else:
            self.inner.close()

    @property
    def dispatcher(self) -> Any:
        return self.inner._dispatcher


def requests_per_id(transport: FakeTransport) -> dict[str, int]:
    counts: dict[str, int] = {}
    for request in transport.requests:
        key = request.headers.get("apns-id", "")
        counts[key] = counts.get(key, 0) + 1
    return counts
