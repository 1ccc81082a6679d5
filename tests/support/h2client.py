"""A small blocking HTTP/2 client over TLS (h2 + ssl + socket) to drive the mock server."""

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
import h2.settings
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from apnskit._model.results import PushResult, parse_reason

TOKEN = "ab" * 32
TOPIC = "com.example.app"
KEY_ID = "KEY1234567"
TEAM_ID = "TEAM123456"
# Key generation is the slow part: one key per session.
SIGNING_KEY = ec.generate_private_key(ec.SECP256R1())


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def make_jwt(
    key: ec.EllipticCurvePrivateKey,
    kid: str,
    iss: str,
    iat: int | None = None,
    *,
    alg: str = "ES256",
) -> str:
    header = b64url(json.dumps({"alg": alg, "kid": kid}).encode())
    claims = b64url(
        json.dumps({"iss": iss, "iat": int(time.time()) if iat is None else iat}).encode()
    )
    der = key.sign(f"{header}.{claims}".encode(), ec.ECDSA(hashes.SHA256()))
    r, s = decode_dss_signature(der)
    return f"{header}.{claims}.{b64url(r.to_bytes(32, 'big') + s.to_bytes(32, 'big'))}"


def bearer(
    iat: int | None = None,
    *,
    key: ec.EllipticCurvePrivateKey = SIGNING_KEY,
    kid: str = KEY_ID,
) -> str:
    return "bearer " + make_jwt(key, kid, TEAM_ID, iat)


@dataclass
class Response:
    stream_id: int
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
        return value.get("reason")

    @property
    def json(self) -> Any:
        return json.loads(self.body)

    def as_result(self, request: object) -> PushResult:
        """The PushResult a client would build from this answer."""
        return PushResult(
            notification=request,
            status=self.status,
            reason=parse_reason(self.reason),
            headers=dict(self.headers),
            body=self.body,
        )


class H2TestClient:
    """Blocking client: send requests (pipelined), read responses and connection events."""

    def __init__(
        self,
        host: str,
        port: int,
        ca_file: str,
        *,
        cert: tuple[str, str] | None = None,
        authorization: str | None = None,
        timeout: float = 5.0,
        alpn: tuple[str, ...] = ("h2",),
    ) -> None:
        context = ssl.create_default_context(cafile=ca_file)
        context.set_alpn_protocols(list(alpn))
        if cert is not None:
            context.load_cert_chain(*cert)
        raw = socket.create_connection((host, port), timeout=timeout)
        try:
            self.sock = context.wrap_socket(raw, server_hostname=host)
        except BaseException:
            raw.close()
            raise
        try:
            self._start(timeout, authorization)
        except BaseException:
            self.sock.close()
            raise

    def _start(self, timeout: float, authorization: str | None) -> None:
        self.timeout = timeout
        self.authorization = authorization
        self.h2 = h2.connection.H2Connection(
            h2.config.H2Configuration(client_side=True, header_encoding="utf-8")
        )
        self.h2.initiate_connection()
        self.responses: dict[int, Response] = {}
        self.goaway: h2.events.ConnectionTerminated | None = None
        self.closed = False
        self.settings_seen = 0
        self._flush()
        # Wait for the server's SETTINGS (its stream limit) before sending anything.
        deadline = time.monotonic() + timeout
        while self.settings_seen == 0:
            if self.closed:
                raise ConnectionError("the server closed the connection before its SETTINGS")
            self._read_once(deadline)

    @property
    def max_streams(self) -> int:
        return self.h2.remote_settings.max_concurrent_streams

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()

    def __enter__(self) -> H2TestClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def headers_for(
        self,
        token: str = TOKEN,
        *,
        topic: str | None = TOPIC,
        extra: list[tuple[str, str]] | None = None,
        method: str = "POST",
        path: str | None = None,
        authorization: str | None = None,
    ) -> list[tuple[str, str]]:
        headers = [
            (":method", method),
            (":scheme", "https"),
            (":path", path if path is not None else f"/3/device/{token}"),
            (":authority", "api.sandbox.push.apple.com"),
        ]
        auth = authorization if authorization is not None else self.authorization
        if auth:
            headers.append(("authorization", auth))
        if topic is not None:
            headers.append(("apns-topic", topic))
        headers.extend(extra or [])
        return headers

    def send(self, headers: list[tuple[str, str]], body: bytes = b'{"aps":{"alert":"hi"}}') -> int:
        stream_id = self.h2.get_next_available_stream_id()
        self.h2.send_headers(stream_id, headers, end_stream=not body)
        if body:
            self.h2.send_data(stream_id, body, end_stream=True)
        self.responses[stream_id] = Response(stream_id)
        self._flush()
        return stream_id

    def request(
        self,
        method: str,
        path: str,
        headers: tuple[tuple[str, str], ...] | list[tuple[str, str]] = (),
        body: bytes = b"",
        *,
        authorization: str | None = None,
    ) -> Response:
        """Send one request with any method and path, and wait for its answer."""
        all_headers = self.headers_for(
            method=method, path=path, topic=None, authorization=authorization
        )
        all_headers.extend(headers)
        return self.wait([self.send(all_headers, body)])[0]

    def send_item(self, item: Any) -> Response:
        """Send an apnskit request object (method, path, headers, body) as a client would."""
        return self.request(getattr(item, "method", "POST"), item.path, item.headers, item.body)

    def push(
        self, token: str = TOKEN, *, body: bytes = b'{"aps":{"alert":"hi"}}', **kwargs: Any
    ) -> Response:
        stream_id = self.send(self.headers_for(token, **kwargs), body)
        return self.wait([stream_id])[0]

    def wait(self, stream_ids: list[int], timeout: float | None = None) -> list[Response]:
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while not all(self.responses[s].done for s in stream_ids) and not self.closed:
            if self.goaway is not None and all(
                self.responses[s].done or s > self.goaway.last_stream_id for s in stream_ids
            ):
                break
            self._read_once(deadline)
        return [self.responses[s] for s in stream_ids]

    def read_until(self, predicate: Any, timeout: float | None = None) -> None:
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while not predicate() and not self.closed:
            self._read_once(deadline)

    def send_many(self, requests: list[tuple[list[tuple[str, str]], bytes]]) -> list[Response]:
        """Pipeline requests, keeping within the server's stream limit."""
        queue = list(requests)
        sent: list[int] = []
        deadline = time.monotonic() + self.timeout
        while queue or not all(self.responses[s].done for s in sent):
            if self.closed:
                break
            open_now = sum(1 for s in sent if not self.responses[s].done)
            while queue and open_now < self.max_streams:
                headers, body = queue.pop(0)
                stream_id = self.h2.get_next_available_stream_id()
                self.h2.send_headers(stream_id, headers, end_stream=not body)
                if body:
                    self.h2.send_data(stream_id, body, end_stream=True)
                self.responses[stream_id] = Response(stream_id)
                sent.append(stream_id)
                open_now += 1
            self._flush()
            if not all(self.responses[s].done for s in sent):
                self._read_once(deadline)
        return [self.responses[s] for s in sent]

    def send_past_the_limit(self, count: int) -> list[int]:
        """Open ``count`` push streams in one write, ignoring the server's stream limit.

        A client bug on purpose (RFC 9113 section 5.1.2), to see how the server answers it.
        """
        self.h2.remote_settings = h2.settings.Settings(
            client=False, initial_values={h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS: count}
        )
        stream_ids = []
        for _ in range(count):
            stream_id = self.h2.get_next_available_stream_id()
            self.h2.send_headers(stream_id, self.headers_for())
            self.h2.send_data(stream_id, b'{"aps":{"alert":"hi"}}', end_stream=True)
            self.responses[stream_id] = Response(stream_id)
            stream_ids.append(stream_id)
        self._flush()
        return stream_ids

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
        except TimeoutError:
            raise TimeoutError("no answer from the server in time") from None
        except (ConnectionResetError, ssl.SSLError, BrokenPipeError):
            data = b""
        if not data:
            self.closed = True
            return
        for event in self.h2.receive_data(data):
            self._on_event(event)
        try:
            self._flush()
        except OSError:
            self.closed = True

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
        elif isinstance(event, h2.events.ConnectionTerminated):
            self.goaway = event
        elif isinstance(event, h2.events.RemoteSettingsChanged):
            self.settings_seen += 1


class H2Client(H2TestClient):
    """:class:`H2TestClient` whose ``send()`` also takes an apnskit request object."""

    def send(self, item: Any, body: bytes = b"") -> Any:  # type: ignore[override]
        if isinstance(item, list):  # the base class's form: a header list and a body
            return super().send(item, body)
        return self.send_item(item)
