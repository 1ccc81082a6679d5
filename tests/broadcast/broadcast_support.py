"""Shared helpers for the broadcast tests: a blocking HTTP/2 client over TLS, tokens, payloads.

The client is a trimmed copy of tests/testing/apns_h2client.py (test modules do not import
each other across directories: pytest puts each directory on sys.path under its own name).
"""

from __future__ import annotations

import base64
import contextlib
import json
import socket
import ssl
import time
from dataclasses import dataclass, field
from typing import Any

import h2.config
import h2.connection
import h2.events
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from apnskit._results import PushResult, parse_reason

BUNDLE = "com.example.app"
KEY_ID = "BKEY123456"
TEAM_ID = "BTEAM12345"
CHANNEL = "dHN0LXNyY2gtY2hubA=="
REQUEST_ID = "0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d"
SIGNING_KEY = ec.generate_private_key(ec.SECP256R1())
UPDATE = {"aps": {"event": "update", "timestamp": 1_700_000_000, "content-state": {"score": 1}}}


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def bearer(iat: int) -> str:
    header = _b64url(json.dumps({"alg": "ES256", "kid": KEY_ID}).encode())
    claims = _b64url(json.dumps({"iss": TEAM_ID, "iat": iat}).encode())
    der = SIGNING_KEY.sign(f"{header}.{claims}".encode(), ec.ECDSA(hashes.SHA256()))
    r, s = decode_dss_signature(der)
    signature = _b64url(r.to_bytes(32, "big") + s.to_bytes(32, "big"))
    return f"bearer {header}.{claims}.{signature}"


@dataclass
class Response:
    status: int | None = None
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    reset_code: int | None = None
    done: bool = False

    @property
    def reason(self) -> str | None:
        if not self.body:
            return None
        value: Any = json.loads(self.body)
        return value.get("reason") if isinstance(value, dict) else None

    def as_result(self, request: object) -> PushResult:
        """The PushResult a client would build from this answer."""
        return PushResult(
            notification=request,
            status=self.status,
            reason=parse_reason(self.reason),
            headers=dict(self.headers),
            body=self.body,
        )


class H2Client:
    """Blocking HTTP/2 client: one request at a time, or several pipelined."""

    def __init__(
        self,
        host: str,
        port: int,
        ca_file: str,
        *,
        authorization: str | None = None,
        cert: tuple[str, str] | None = None,
        timeout: float = 5.0,
    ) -> None:
        context = ssl.create_default_context(cafile=ca_file)
        context.set_alpn_protocols(["h2"])
        if cert is not None:
            context.load_cert_chain(*cert)
        raw = socket.create_connection((host, port), timeout=timeout)
        try:
            self.sock = context.wrap_socket(raw, server_hostname=host)
        except BaseException:
            raw.close()
            raise
        self.timeout = timeout
        self.authorization = authorization
        self.h2 = h2.connection.H2Connection(
            h2.config.H2Configuration(client_side=True, header_encoding="utf-8")
        )
        self.h2.initiate_connection()
        self.responses: dict[int, Response] = {}
        self.closed = False
        self._settings = 0
        self._flush()
        deadline = time.monotonic() + timeout
        while self._settings == 0 and not self.closed:
            self._read_once(deadline)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()

    def request(
        self,
        method: str,
        path: str,
        headers: tuple[tuple[str, str], ...] | list[tuple[str, str]] = (),
        body: bytes = b"",
        *,
        authorization: str | None = None,
    ) -> Response:
        all_headers = [
            (":method", method),
            (":scheme", "https"),
            (":path", path),
            (":authority", "api.sandbox.push.apple.com"),
        ]
        auth = authorization if authorization is not None else self.authorization
        if auth:
            all_headers.append(("authorization", auth))
        all_headers.extend(headers)
        stream_id = self.h2.get_next_available_stream_id()
        self.h2.send_headers(stream_id, all_headers, end_stream=not body)
        if body:
            self.h2.send_data(stream_id, body, end_stream=True)
        response = self.responses[stream_id] = Response()
        self._flush()
        deadline = time.monotonic() + self.timeout
        while not response.done and not self.closed:
            self._read_once(deadline)
        return response

    def send(self, item: Any) -> Response:
        """Send an apnskit request object (method, path, headers, body) as a client would."""
        return self.request(getattr(item, "method", "POST"), item.path, item.headers, item.body)

    def _flush(self) -> None:
        data = self.h2.data_to_send()
        if data:
            self.sock.sendall(data)

    def _read_once(self, deadline: float) -> None:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("no answer from the server in time")
        self.sock.settimeout(remaining)
        try:
            data = self.sock.recv(65536)
        except (ConnectionResetError, ssl.SSLError, BrokenPipeError):
            data = b""
        if not data:
            self.closed = True
            return
        for event in self.h2.receive_data(data):
            self._on_event(event)
        with contextlib.suppress(OSError):
            self._flush()

    def _on_event(self, event: h2.events.Event) -> None:
        if isinstance(event, h2.events.ResponseReceived):
            response = self.responses[event.stream_id]
            for name, value in event.headers:
                if name == ":status":
                    response.status = int(value)
                else:
                    response.headers[name] = value
            if event.stream_ended is not None:
                response.done = True
        elif isinstance(event, h2.events.DataReceived):
            response = self.responses[event.stream_id]
            response.body += event.data
            self.h2.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
            if event.stream_ended is not None:
                response.done = True
        elif isinstance(event, h2.events.StreamEnded):
            self.responses[event.stream_id].done = True
        elif isinstance(event, h2.events.StreamReset):
            response = self.responses[event.stream_id]
            response.reset_code = int(event.error_code)
            response.done = True
        elif isinstance(event, h2.events.RemoteSettingsChanged):
            self._settings += 1
