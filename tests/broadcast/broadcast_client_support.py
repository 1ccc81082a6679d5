"""Helpers for the broadcast client tests: one test body drives PushClient and AsyncPushClient.

A uniquely named module (not ``conftest``): pytest puts every test folder on ``sys.path``, and
several folders have a conftest.py. The ``"sync"`` flavour calls PushClient's blocking methods
straight from the test coroutine (the mock server runs in its own thread); ``"asyncio"`` and
``"trio"`` run AsyncPushClient on that anyio backend.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import apnskit
from apnskit.testing import MockApnsServer

BUNDLE = "com.example.app"
REQUEST_ID = "0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d"
FAST_RETRY = apnskit.RetryPolicy(max_attempts=3, backoff_base=0.001, backoff_max=0.01)
UPDATE = apnskit.Payload.live_activity_update(
    content_state={"score": "1 - 0"}, timestamp=1_700_000_000
)


class BroadcastClient:
    """One client, sync or async, behind the async interface the tests share."""

    def __init__(self, flavor: str, inner: Any) -> None:
        self.flavor = flavor
        self.inner = inner

    async def _call(self, name: str, *args: Any, **kwargs: Any) -> Any:
        method = getattr(self.inner, name)
        if self.flavor == "sync":
            return method(*args, **kwargs)
        return await method(*args, **kwargs)

    async def send(self, item: Any) -> apnskit.PushResult:
        result: apnskit.PushResult = await self._call("send", item)
        return result

    async def send_broadcast(self, item: Any) -> apnskit.PushResult:
        result: apnskit.PushResult = await self._call("send_broadcast", item)
        return result

    async def create_channel(self, bundle_id: str = BUNDLE, **kwargs: Any) -> apnskit.Channel:
        channel: apnskit.Channel = await self._call("create_channel", bundle_id, **kwargs)
        return channel

    async def get_channel(self, channel_id: str, **kwargs: Any) -> apnskit.Channel:
        channel: apnskit.Channel = await self._call("get_channel", BUNDLE, channel_id, **kwargs)
        return channel

    async def list_channels(self, bundle_id: str = BUNDLE, **kwargs: Any) -> apnskit.ChannelList:
        ids: apnskit.ChannelList = await self._call("list_channels", bundle_id, **kwargs)
        return ids

    async def delete_channel(self, channel_id: str, **kwargs: Any) -> apnskit.Channel:
        deleted: apnskit.Channel = await self._call("delete_channel", BUNDLE, channel_id, **kwargs)
        return deleted

    async def close(self) -> None:
        await self._call("close")


def client_class(flavor: str) -> type[apnskit.PushClient] | type[apnskit.AsyncPushClient]:
    """The client class a flavour tests."""
    return apnskit.PushClient if flavor == "sync" else apnskit.AsyncPushClient


def broadcast(channel_id: str, **kwargs: Any) -> apnskit.BroadcastNotification:
    """A broadcast update for ``channel_id`` of :data:`BUNDLE`."""
    return apnskit.BroadcastNotification(BUNDLE, channel_id, UPDATE, **kwargs)


def channel_requests(server: MockApnsServer, method: str | None = None) -> list[Any]:
    """The channel management requests ``server`` received (optionally of one method)."""
    return [
        r
        for r in server.received
        if r.path.startswith("/1/apps/") and (method is None or r.method == method)
    ]


def joint_ca_file(directory: Path, *servers: MockApnsServer) -> str:
    """One PEM file trusting every server's CA (a client takes a single ``ca_file``)."""
    path = directory / "cas.pem"
    path.write_bytes(b"".join(Path(s.ca_file).read_bytes() for s in servers))
    return str(path)
