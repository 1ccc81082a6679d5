"""Helpers of the proxy tests (not in conftest: every test folder has one)."""

from __future__ import annotations

from typing import Any

import apnskit

FAST_RETRY = apnskit.RetryPolicy(max_attempts=2, backoff_base=0.001, backoff_max=0.01)


class Client:
    """A PushClient or AsyncPushClient behind one async interface."""

    def __init__(self, flavor: str, inner: Any) -> None:
        self.flavor = flavor
        self.inner = inner

    async def send(self, item: Any) -> apnskit.PushResult:
        if self.flavor == "sync":
            return self.inner.send(item)  # type: ignore[no-any-return]
        return await self.inner.send(item)  # type: ignore[no-any-return]

    async def send_many(self, items: Any) -> list[apnskit.PushResult]:
        if self.flavor == "sync":
            return list(self.inner.send_many(items))
        return [r async for r in self.inner.send_many(items)]

    async def create_channel(self, bundle_id: str) -> apnskit.Channel:
        if self.flavor == "sync":
            return self.inner.create_channel(bundle_id)  # type: ignore[no-any-return]
        return await self.inner.create_channel(bundle_id)  # type: ignore[no-any-return]

    async def close(self) -> None:
        if self.flavor == "sync":
            self.inner.close()
        else:
            await self.inner.close()
