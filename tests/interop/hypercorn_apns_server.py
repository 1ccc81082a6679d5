"""A small APNs-like ASGI app served by hypercorn (HTTP/2 by h2), for the interop tests.

    python hypercorn_apns_server.py <certfile> <keyfile> <options JSON>

The options and the answers are those of ``node_apns_server.js``: the server's SETTINGS
(``initialWindowSize``, ``maxConcurrentStreams``, ``headerTableSize``; hypercorn has no
option for the first and last, so they are set on its h2 connection), and ``raiseStreamsTo``,
the MAX_CONCURRENT_STREAMS sent after the first answer on a connection. Prints
``LISTENING <port>`` once ready.
"""

from __future__ import annotations

import asyncio
import json
import re
import signal
import socket
import sys
from typing import Any

import h2.settings
from hypercorn.asyncio import serve
from hypercorn.config import Config
from hypercorn.protocol.h2 import H2Protocol

_PATH = re.compile(r"/3/device/([0-9a-f]{64})\Z")
_original_init = H2Protocol.__init__
_original_handle_events = H2Protocol._handle_events
_original_initiate = H2Protocol.initiate


def main() -> None:
    certfile, keyfile, options_json = sys.argv[1:4]
    options = json.loads(options_json)
    codes = h2.settings.SettingCodes
    extra = {
        codes.INITIAL_WINDOW_SIZE: options.get("initialWindowSize"),
        codes.HEADER_TABLE_SIZE: options.get("headerTableSize"),
    }
    raise_to = options.get("raiseStreamsTo")

    def patched_init(self: H2Protocol, *args: Any, **kwargs: Any) -> None:
        _original_init(self, *args, **kwargs)
        self.answered = 0  # type: ignore[attr-defined]

    async def patched_initiate(self: H2Protocol, *args: Any, **kwargs: Any) -> None:
        await _original_initiate(self, *args, **kwargs)
        # Through update_settings, so h2 applies them when the client acknowledges them
        # (section 6.5.3): set in h2's initial values they would be enforced at once, on the
        # client's first request, sent before it could know them.
        changes = {code: value for code, value in extra.items() if value is not None}
        if changes:
            self.connection.update_settings(changes)
            await self._flush()

    async def patched_handle_events(self: H2Protocol, events: list[Any]) -> None:
        await _original_handle_events(self, events)
        ended = any(type(e).__name__ == "StreamEnded" for e in events)
        if raise_to and ended and self.answered == 0:  # type: ignore[attr-defined]
            self.answered = 1  # type: ignore[attr-defined]
            self.connection.update_settings({codes.MAX_CONCURRENT_STREAMS: raise_to})
            await self._flush()

    H2Protocol.__init__ = patched_init  # type: ignore[method-assign]
    H2Protocol.initiate = patched_initiate  # type: ignore[method-assign]
    H2Protocol._handle_events = patched_handle_events  # type: ignore[method-assign]

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(512)
    sock.set_inheritable(True)
    config = Config()
    config.bind = [f"fd://{sock.fileno()}"]
    config.certfile = certfile
    config.keyfile = keyfile
    config.alpn_protocols = ["h2"]
    config.accesslog = None
    config.errorlog = "-"
    config.loglevel = "WARNING"
    # hypercorn recycles a connection after 1,000 requests (GOAWAY, then it closes the socket
    # even while request bodies are still waiting for flow-control window, so those requests
    # are abandoned) and drops one idle for 5 s. Neither is what these tests are about.
    config.keep_alive_max_requests = 10**9
    config.keep_alive_timeout = 300
    # In force from the first SETTINGS: a client opens one stream until it has them.
    config.h2_max_concurrent_streams = options.get("maxConcurrentStreams") or 100
    print(f"LISTENING {sock.getsockname()[1]}", flush=True)

    async def run() -> None:
        stop = asyncio.Event()
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
        await serve(app, config, shutdown_trigger=stop.wait)  # type: ignore[arg-type]

    asyncio.run(run())


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    headers = dict(scope["headers"])
    apns_id = headers.get(b"apns-id", b"00000000-0000-0000-0000-000000000000")
    match = _PATH.match(scope["path"])
    status, answer = 200, b""
    if scope["method"] != "POST" or match is None:
        status, answer = 404, b'{"reason":"BadPath"}'
    elif int(match.group(1), 16) % 7 == 3:
        status, answer = 400, b'{"reason":"BadDeviceToken"}'
    else:
        json.loads(body)  # the payload must be JSON
    out = [(b"apns-id", apns_id)]
    if answer:
        out.append((b"content-type", b"application/json"))
    await send({"type": "http.response.start", "status": status, "headers": out})
    await send({"type": "http.response.body", "body": answer})


if __name__ == "__main__":
    main()
