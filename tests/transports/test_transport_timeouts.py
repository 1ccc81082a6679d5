"""A server that stops reading must not stall a client forever: writes time out."""

from __future__ import annotations

import socket
from typing import Any

import anyio
import pytest

from apnskit import ConnectionLostError
from apnskit._transports.anyio_transport import AnyioStream
from apnskit._transports.socket_transport import SocketStream


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> Any:
    return request.param


@pytest.mark.anyio
async def test_async_write_times_out_when_nobody_reads() -> None:
    # A zero-buffer memory stream blocks every send until someone receives: nobody does.
    send, receive = anyio.create_memory_object_stream[bytes](0)
    async with send, receive:
        stream = AnyioStream(send, write_timeout=0.05)  # type: ignore[arg-type]
        with pytest.raises(ConnectionLostError, match="stopped reading"):
            await stream.write(b"frame")


def test_sync_write_times_out_when_nobody_reads() -> None:
    left, right = socket.socketpair()
    with left, right:
        left.setblocking(False)
        stream = SocketStream(left, write_timeout=0.05)  # type: ignore[arg-type]
        with pytest.raises(ConnectionLostError, match="stopped reading"):
            stream.write(b"x" * (64 * 1024 * 1024))
