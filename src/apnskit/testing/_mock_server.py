"""``MockApnsServer``: a local APNs stand-in over HTTP/2 + TLS, with fault injection.

Use it from sync code (it serves from a background thread)::

    with MockApnsServer() as server:
        creds = server.apns_token_credentials()
        client = PushClient(creds, host=server.host, port=server.port, ca_file=server.ca_file)
        ...
        assert server.received[0].payload == {"aps": {"alert": "hi"}}

or from async code, asyncio or trio (it serves in the running event loop)::

    async with MockApnsServer(auth="certificate") as server:
        cert, key = server.issue_client_certificate(topics=["com.example.app"])
        ...

The server generates its own CA and a server certificate for 127.0.0.1, ::1 and localhost
(with ``cryptography``) in a private temporary directory, removed when it stops. Clients
trust it through :attr:`MockApnsServer.ca_file`.

Broadcast push (iOS 18): the server answers ``POST /4/broadcasts/apps/<bundle id>`` and the
channel management endpoints ``/1/apps/<bundle id>/channels`` (POST create, GET read, DELETE)
and ``/1/apps/<bundle id>/all-channels`` (GET list). Apple serves channel management on other
hosts and ports (``api-manage-broadcast[.sandbox].push.apple.com``, 2195/2196); the mock serves
both on its one port, so point a client's management host and push host at the same
:attr:`MockApnsServer.host` and :attr:`MockApnsServer.port`. Channels belong to the one
environment the server plays; :meth:`MockApnsServer.channels` lists them.

Requests are validated in Apple's order (see :mod:`apnskit.testing._validation`), recorded in
:attr:`MockApnsServer.received`, and :attr:`MockApnsServer.faults` scripts failures (see
:class:`~apnskit.testing._application.FaultPlan`). Each connection is a
:class:`~apnskit.testing.ServerConnection`; this module only adds sockets, TLS and timers.
"""

from __future__ import annotations

import datetime as _dt
import os
import secrets
import shutil
import ssl
import string
import tempfile
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

import anyio
import anyio.from_thread
from anyio.abc import SocketAttribute, SocketStream, TaskStatus
from anyio.streams.tls import TLSAttribute, TLSStream
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from apnskit._config import Environment
from apnskit._errors import ConfigurationError
from apnskit.testing._application import ApnsApplication, FaultPlan, ReceivedNotification
from apnskit.testing._server_connection import ServerConnection
from apnskit.testing._validation import MAX_CHANNELS

if TYPE_CHECKING:
    from apnskit._credentials.token import TokenCredentials
    from apnskit._model.broadcast import Channel

__all__ = ["MockApnsServer", "TokenKey"]

_ID_ALPHABET = string.ascii_uppercase + string.digits
_HANDSHAKE_TIMEOUT = 10.0
_READ_SIZE = 262144
# Apple's environment marker extensions carry an ASN.1 NULL.
_DER_NULL = b"\x05\x00"
_DEFAULT_KINDS = (
    "app",
    "voip",
    "complication",
    "fileprovider",
    "liveactivity",
    "widgets",
    "controls",
    "voip-ptt",
    "location-query",
)


def _random_id() -> str:
    return "".join(secrets.choice(_ID_ALPHABET) for _ in range(10))


@dataclass(frozen=True)
class TokenKey:
    """A token signing key the server trusts, made by :meth:`MockApnsServer.new_token_key`.

    Attributes:
        key_id: The 10-character key ID.
        team_id: The 10-character team ID.
        private_key_pem: The ``.p8`` PEM text (kept out of ``repr``).
        path: Where the ``.p8`` file was written (inside the server's temporary directory).
    """

    key_id: str
    team_id: str
    private_key_pem: bytes = field(repr=False)
    path: Path


class _Link:
    """One live connection: its sans-I/O state and what the I/O tasks share."""

    def __init__(self, conn: ServerConnection, stream: TLSStream) -> None:
        self.conn = conn
        self.stream = stream
        self.send_lock = anyio.Lock()
        self.wake = anyio.Event()
        self.errors_reported = 0

    async def flush(self) -> None:
        # Take the bytes under the lock: two tasks flushing must not reorder HTTP/2 frames.
        async with self.send_lock:
            data = self.conn.data_to_send()
            if data:
                await self.stream.send(data)


def _check_server_options(
    auth: str,
    certfile: object,
    keyfile: object,
    ca_file: object,
    max_concurrent_streams: int,
) -> None:
    """The checks of :class:`MockApnsServer`'s options that need nothing built yet."""
    if auth not in ("token", "certificate"):
        raise ConfigurationError(f"auth: {auth!r} must be 'token' or 'certificate'")
    if (certfile is None) != (keyfile is None):
        raise ConfigurationError("certfile/keyfile: give both or neither")
    # Without these checks ca_file would name the generated CA, which did not sign a given
    # certificate (or a given CA that did not sign the generated one): clients trusting it
    # fail verification with a message that points nowhere near the cause.
    if certfile is not None and ca_file is None:
        raise ConfigurationError(
            "ca_file: give the CA that signed certfile (for a self-signed certificate, "
            "the certificate file itself)"
        )
    if ca_file is not None and certfile is None:
        raise ConfigurationError(
            "ca_file: only with certfile/keyfile; the generated server certificate is "
            "signed by the server's own CA (read it from MockApnsServer.ca_file)"
        )
    if isinstance(max_concurrent_streams, bool) or max_concurrent_streams < 1:
        raise ConfigurationError(
            f"max_concurrent_streams: {max_concurrent_streams!r} must be an integer >= 1"
        )


class MockApnsServer:
    """A local APNs server for tests: validates like Apple, injects faults, records requests.

    Args:
        host: The address to listen on.
        port: The port; 0 picks a free one (see :attr:`port`).
        auth: ``"token"`` (JWT provider tokens, checked against :meth:`trust_key` keys) or
            ``"certificate"`` (mutual TLS; see :meth:`issue_client_certificate`).
        environment: ``"sandbox"`` (replies carry ``apns-unique-id``) or ``"production"``.
        strict: Answer ``BadDeviceToken`` for device tokens never :meth:`register`-ed.
        max_concurrent_streams: SETTINGS_MAX_CONCURRENT_STREAMS (under token auth announced
            after the connection's first successful request; one stream until then).
        strict_stream_limit: Answer a stream opened beyond the limit in force with GOAWAY
            PROTOCOL_ERROR, ending the connection, instead of refusing that one stream with
            RST_STREAM REFUSED_STREAM (which clients retry). Either way it is recorded in
            :attr:`errors`. A raised limit is in force once sent, a lowered one once the client
            acknowledges it (RFC 9113 section 6.5.3).
        certfile: A server certificate (PEM) to present instead of the generated one.
        keyfile: Its private key (PEM).
        ca_file: The CA file that signed ``certfile`` (for a self-signed certificate, the
            certificate file itself), which clients should trust; required with ``certfile``,
            not allowed without it.
        client_ca_file: Extra CA certificates trusted for client certificates.
        max_channels: Broadcast channels an app may have (Apple: 10,000 per environment);
            tests lower it to reach the limit quickly.
        on_request: Called with each request's :class:`ReceivedNotification` once it is
            answered, from the thread serving it; it must not raise (e.g. to log requests).

    Raises:
        ConfigurationError: Inconsistent options (e.g. ``certfile`` without ``keyfile`` or
            without ``ca_file``).
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        auth: str = "token",
        environment: str | Environment = "sandbox",
        strict: bool = False,
        max_concurrent_streams: int = 1000,
        strict_stream_limit: bool = False,
        certfile: str | os.PathLike[str] | None = None,
        keyfile: str | os.PathLike[str] | None = None,
        ca_file: str | os.PathLike[str] | None = None,
        client_ca_file: str | os.PathLike[str] | None = None,
        max_channels: int = MAX_CHANNELS,
        on_request: Callable[[ReceivedNotification], None] | None = None,
    ) -> None:
        _check_server_options(auth, certfile, keyfile, ca_file, max_concurrent_streams)
        self._host = host
        self._requested_port = port
        self._port: int | None = None
        self.auth = auth
        self.environment = Environment.parse(environment)
        self._max_streams = max_concurrent_streams
        self.strict_stream_limit = strict_stream_limit
        """GOAWAY PROTOCOL_ERROR (``True``) or REFUSED_STREAM (``False``) for a stream beyond the
        limit; a change applies to connections opened afterwards."""
        self._certfile = Path(certfile) if certfile is not None else None
        self._keyfile = Path(keyfile) if keyfile is not None else None
        self._given_ca_file = Path(ca_file) if ca_file is not None else None
        self._client_ca_file = Path(client_ca_file) if client_ca_file is not None else None
        if isinstance(max_channels, bool) or not isinstance(max_channels, int) or max_channels < 0:
            raise ConfigurationError(f"max_channels: {max_channels!r} must be an integer >= 0")
        self.app = ApnsApplication(
            auth=auth,
            environment=self.environment,
            strict=strict,
            set_max_concurrent_streams=self._set_max_concurrent_streams,
            max_channels=max_channels,
            on_request=on_request,
        )
        self._links: dict[int, _Link] = {}
        self._next_connection_id = 1
        self._tmpdir: Path | None = None
        self._ca_key: ec.EllipticCurvePrivateKey | None = None
        self._ca_cert: x509.Certificate | None = None
        self._ca_path: Path | None = None
        self._ssl_context: ssl.SSLContext | None = None
        self._portal_cm: Any = None
        self._portal: anyio.from_thread.BlockingPortal | None = None
        self._task_group: Any = None
        self._serve_scope: anyio.CancelScope | None = None
        self._serve_future: Any = None
        self._loop_thread: int | None = None
        self._generated_server_cert = False
        self.connection_count = 0
        """How many connections completed the TLS handshake so far."""
        self.errors: list[str] = []
        """Connection-level problems seen (TLS handshake failures, HTTP/2 protocol errors,
        every stream opened beyond the stream limit), oldest first."""

    # -- what tests use -----------------------------------------------------------------------

    @property
    def host(self) -> str:
        """The address the server listens on."""
        return self._host

    @property
    def port(self) -> int:
        """The port the server listens on (known once started)."""
        if self._port is None:
            raise RuntimeError("port: the server is not started; use it as a context manager")
        return self._port

    @property
    def ca_file(self) -> str:
        """Path of the CA certificate (PEM) clients must trust."""
        if self._given_ca_file is not None:
            return str(self._given_ca_file)
        self._ensure_pki()
        assert self._ca_path is not None
        return str(self._ca_path)

    @property
    def received(self) -> list[ReceivedNotification]:
        """Every request received so far, in order, with the answer given.

        This includes requests that got no HTTP answer: those the fault plan answered with a
        GOAWAY (``outcome == "goaway"``), a stream reset, a dropped connection or silence.
        Their ``status`` is ``None`` and ``outcome`` says what happened; a client resends them,
        so one notification may appear more than once. Count ``status == 200`` records for what
        was accepted.
        """
        with self.app.lock:
            return list(self.app.received)

    @property
    def faults(self) -> FaultPlan:
        """Scripts failures for the next requests (see :class:`FaultPlan`)."""
        return self.app.faults

    @property
    def strict(self) -> bool:
        """Whether device tokens never registered are ``BadDeviceToken``."""
        return self.app.strict

    @strict.setter
    def strict(self, value: bool) -> None:
        self.app.strict = value

    @property
    def max_concurrent_streams(self) -> int:
        """The stream limit announced to trusted connections."""
        return self._max_streams

    @property
    def open_connections(self) -> int:
        """How many connections are open now."""
        return len(self._links)

    def clear_received(self) -> None:
        """Forget the requests received so far."""
        with self.app.lock:
            self.app.received.clear()

    def now(self) -> float:
        """The server's APNs clock (UNIX seconds), used for provider token ages."""
        return self.app.now()

    def advance_clock(self, seconds: float) -> None:
        """Move the server's clock forward, e.g. by 3601 to make current tokens expired."""
        self.app.advance_clock(seconds)

    def register(self, device_token: str, topic: str) -> None:
        """Register a device token for ``topic`` (its bundle ID; a push-type suffix is ignored).

        A registered token pushed with another bundle ID is ``DeviceTokenNotForTopic``.
        """
        self.app.register(device_token, topic)

    def unregister(self, device_token: str, since: _dt.datetime | None = None) -> None:
        """Make ``device_token`` answer 410 ``Unregistered`` with ``since`` (default now)."""
        self.app.unregister(device_token, since)

    # -- broadcast channels --------------------------------------------------------------------

    @property
    def max_channels(self) -> int:
        """Channels an app may have before creation answers ``CannotCreateChannelConfig``."""
        return self.app.max_channels

    @max_channels.setter
    def max_channels(self, value: int) -> None:
        self.app.max_channels = value

    def channels(self, bundle_id: str) -> list[Channel]:
        """The broadcast channels ``bundle_id`` has now (:class:`apnskit.Channel`), oldest first."""
        return self.app.channels(bundle_id)

    def create_channel(self, bundle_id: str, message_storage_policy: int = 1) -> str:
        """Create a channel without a request (and without the limit check); return its id."""
        return self.app.create_channel(bundle_id, message_storage_policy)

    def set_broadcast_enabled(self, bundle_id: str, enabled: bool) -> None:
        """Turn broadcast off (403 ``FeatureNotEnabled``) or back on for ``bundle_id``."""
        self.app.set_broadcast_enabled(bundle_id, enabled)

    def trust_key(
        self,
        key_id: str,
        team_id: str,
        public_key: Any,
        *,
        topics: Sequence[str] | None = None,
        environments: Sequence[str | Environment] | None = None,
    ) -> None:
        """Trust provider tokens signed with ``public_key`` under ``key_id`` and ``team_id``.

        Args:
            key_id: The JWT header's ``kid``.
            team_id: The JWT's ``iss``.
            public_key: The P-256 public key, or its PEM text.
            topics: Only these bundle IDs may be pushed to with it (``TopicDisallowed``).
            environments: Only these environments accept it (``InvalidProviderToken``).
        """
        self.app.trust_key(
            key_id,
            team_id,
            public_key,
            topics=list(topics) if topics is not None else None,
            environments=list(environments) if environments is not None else None,
        )

    def new_token_key(self, *, key_id: str | None = None, team_id: str | None = None) -> TokenKey:
        """Make a fresh P-256 signing key, trust it, and write it as a ``.p8`` file.

        Args:
            key_id: The key ID; random by default.
            team_id: The team ID; random by default.
        """
        key = ec.generate_private_key(ec.SECP256R1())
        kid = key_id or _random_id()
        tid = team_id or _random_id()
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        directory = self._ensure_tmpdir()
        path = directory / f"AuthKey_{kid}.p8"
        _write_private(path, pem)
        self.trust_key(kid, tid, key.public_key())
        return TokenKey(kid, tid, pem, path)

    def apns_token_credentials(self, *, follow_server_clock: bool = True) -> TokenCredentials:
        """Fresh :class:`apnskit.TokenCredentials` whose key this server trusts.

        Args:
            follow_server_clock: Give the credentials the server's clock, so that
                :meth:`advance_clock` ages their tokens the same way (they renew instead of
                being rejected). Use ``faults.expire_token_next`` to test the rejection.
        """
        from apnskit._credentials.token import TokenCredentials

        token_key = self.new_token_key()
        if follow_server_clock:
            return TokenCredentials(
                token_key.private_key_pem,
                key_id=token_key.key_id,
                team_id=token_key.team_id,
                clock=self.app.now,
            )
        return TokenCredentials(
            token_key.private_key_pem, key_id=token_key.key_id, team_id=token_key.team_id
        )

    def issue_client_certificate(
        self,
        topics: Sequence[str | tuple[str, Sequence[str]]] = ("com.example.app",),
        *,
        environments: Sequence[str | Environment] | None = None,
        uid: str | None = None,
        days: int = 30,
    ) -> tuple[str, str]:
        """Issue an Apple-like client certificate, signed by the server's CA, for mutual TLS.

        Args:
            topics: Topics for Apple's topics extension: a bundle ID (allowed every push
                type suffix) or ``(topic, kinds)``. The first one is the subject UID.
            environments: ``"sandbox"`` and/or ``"production"``; by default the server's.
            uid: The subject UID, instead of the first topic.
            days: Validity in days.

        Returns:
            ``(certificate_pem_path, private_key_pem_path)``.
        """
        entries: list[tuple[str, Sequence[str]]] = [
            (t, _DEFAULT_KINDS) if isinstance(t, str) else (t[0], tuple(t[1])) for t in topics
        ]
        if not entries and uid is None:
            raise ValueError("topics: give at least one topic, or a uid")
        envs = [Environment.parse(e) for e in (environments or [self.environment])]
        self._ensure_pki()
        assert self._ca_key is not None
        assert self._ca_cert is not None
        subject_uid = uid if uid is not None else entries[0][0]
        key = ec.generate_private_key(ec.SECP256R1())
        cert = _client_certificate(
            _certificate_builder(
                x509.Name(
                    [
                        x509.NameAttribute(NameOID.USER_ID, subject_uid),
                        x509.NameAttribute(
                            NameOID.COMMON_NAME, f"Apple Push Services: {subject_uid}"
                        ),
                    ]
                ),
                self._ca_cert.subject,
                key,
                days,
            ),
            entries,
            envs,
        ).sign(self._ca_key, hashes.SHA256())
        directory = self._ensure_tmpdir()
        stem = f"client-{cert.serial_number:x}"[:24]
        cert_path = directory / f"{stem}.pem"
        key_path = directory / f"{stem}.key"
        _write_pem_pair(cert_path, cert, key_path, key)
        return str(cert_path), str(key_path)

    # -- running ------------------------------------------------------------------------------

    def __enter__(self) -> MockApnsServer:
        self._prepare()
        self._portal_cm = anyio.from_thread.start_blocking_portal()
        try:
            self._portal = self._portal_cm.__enter__()
            assert self._portal is not None
            self._serve_future, _ = self._portal.start_task(self._serve)
        except BaseException:
            self._portal_cm.__exit__(None, None, None)
            self._portal_cm = self._portal = None
            self._cleanup()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            if self._portal is not None and self._serve_scope is not None:
                self._portal.call(self._serve_scope.cancel)
                if self._serve_future is not None:
                    self._serve_future.result()
        finally:
            if self._portal_cm is not None:
                self._portal_cm.__exit__(None, None, None)
            self._portal_cm = self._portal = None
            self._serve_future = None
            self._cleanup()

    async def __aenter__(self) -> MockApnsServer:
        self._prepare()
        try:
            await self._start()
        except BaseException:
            self._cleanup()
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            await self._stop()
        finally:
            self._cleanup()

    async def _start(self) -> None:
        self._task_group = anyio.create_task_group()
        await self._task_group.__aenter__()
        try:
            await self._task_group.start(self._serve)
        except BaseException:
            self._task_group.cancel_scope.cancel()
            await self._task_group.__aexit__(None, None, None)
            self._task_group = None
            raise

    async def _stop(self) -> None:
        group = self._task_group
        if group is None:
            return
        self._task_group = None
        group.cancel_scope.cancel()
        await group.__aexit__(None, None, None)

    def _prepare(self) -> None:
        if self._task_group is not None or self._portal is not None:
            raise RuntimeError("the server is already running")
        self._ensure_pki()
        self._ssl_context = self._make_ssl_context()

    def _cleanup(self) -> None:
        self._port = None
        self._links.clear()
        if self._tmpdir is not None:
            shutil.rmtree(self._tmpdir, ignore_errors=True)
            self._tmpdir = None
            self._ca_key = self._ca_cert = self._ca_path = None
            if self._generated_server_cert:
                self._certfile = self._keyfile = None
                self._generated_server_cert = False

    async def _serve(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        listener = await anyio.create_tcp_listener(
            local_host=self._host, local_port=self._requested_port
        )
        self._port = int(listener.extra(SocketAttribute.local_port))
        self._loop_thread = threading.get_ident()
        with anyio.CancelScope() as scope:
            self._serve_scope = scope
            async with listener, anyio.create_task_group() as group:
                task_status.started()
                await listener.serve(self._handle, task_group=group)
        self._serve_scope = None

    async def _handle(self, raw: SocketStream) -> None:
        try:
            await self._handle_tls(raw)
        finally:
            # Whatever happened, including cancellation while the server stops in the middle
            # of a handshake, the socket is closed here and never left to the garbage
            # collector (a ResourceWarning in the user's test suite).
            await anyio.aclose_forcefully(raw)

    async def _handle_tls(self, raw: SocketStream) -> None:
        assert self._ssl_context is not None
        try:
            with anyio.fail_after(_HANDSHAKE_TIMEOUT):
                stream = await TLSStream.wrap(
                    raw, server_side=True, ssl_context=self._ssl_context, standard_compatible=False
                )
        except (
            OSError,
            ssl.SSLError,
            anyio.BrokenResourceError,
            anyio.EndOfStream,
            TimeoutError,
        ) as exc:
            self.errors.append(f"TLS handshake failed: {type(exc).__name__}: {exc}")
            await anyio.aclose_forcefully(raw)
            return
        try:
            await self._serve_connection(stream)
        except BaseException as exc:
            # The peer went away; nothing to answer. The read loop runs in a task group, so a
            # reset arrives wrapped in an exception group; one client must never stop the
            # server. Anything else (cancellation included) propagates.
            if not _is_disconnect(exc):
                raise
        finally:
            await anyio.aclose_forcefully(stream)

    async def _serve_connection(self, stream: TLSStream) -> None:
        # RFC 9113 section 3.2: HTTP/2 over TLS is negotiated with ALPN "h2".
        if stream.extra(TLSAttribute.alpn_protocol, None) != "h2":
            self.errors.append("client did not negotiate ALPN h2")
            return
        cert_info = None
        der = stream.extra(TLSAttribute.peer_certificate_binary, None)
        if der is not None:
            from apnskit._credentials.certinfo import read_certificate_info

            cert_info = read_certificate_info(x509.load_der_x509_certificate(der))
        connection_id = self._next_connection_id
        self._next_connection_id += 1
        self.connection_count += 1
        conn = ServerConnection(
            self.app,
            client_certificate_info=cert_info,
            connection_id=connection_id,
            max_concurrent_streams=self._max_streams,
            hold_streams_until_success=self.auth == "token",
            strict_stream_limit=self.strict_stream_limit,
        )
        link = _Link(conn, stream)
        self._links[connection_id] = link
        try:
            conn.initiate()
            await link.flush()
            async with anyio.create_task_group() as group:
                group.start_soon(self._run_timers, link, group.cancel_scope)
                await self._read_loop(link)
                group.cancel_scope.cancel()
        finally:
            self._links.pop(connection_id, None)

    async def _read_loop(self, link: _Link) -> None:
        conn = link.conn
        stream = link.stream
        while not conn.should_close:
            try:
                data = await stream.receive(_READ_SIZE)
            except anyio.EndOfStream:
                data = b""
            conn.receive_data(data, anyio.current_time())
            # Record protocol errors before their RST_STREAM or GOAWAY goes out: a test that
            # has just read one must find the reason in server.errors.
            if len(conn.peer_errors) > link.errors_reported:
                for problem in conn.peer_errors[link.errors_reported :]:
                    self.errors.append(f"connection {conn.connection_id}: {problem}")
                link.errors_reported = len(conn.peer_errors)
            await link.flush()
            if conn.next_timer() is not None:
                link.wake.set()

    async def _run_timers(self, link: _Link, scope: anyio.CancelScope) -> None:
        conn = link.conn
        while True:
            deadline = conn.next_timer()
            if deadline is None:
                await link.wake.wait()
            else:
                with anyio.move_on_after(max(0.0, deadline - anyio.current_time())):
                    await link.wake.wait()
            link.wake = anyio.Event()
            conn.tick(anyio.current_time())
            await link.flush()
            if conn.should_close:
                scope.cancel()
                return

    def _set_max_concurrent_streams(self, value: int) -> None:
        self._max_streams = value

        def apply() -> None:
            for link in list(self._links.values()):
                link.conn.set_max_concurrent_streams(value)
                link.wake.set()

        if self._loop_thread is None or self._serve_scope is None:
            return  # Not serving: new connections will use the new value.
        if threading.get_ident() == self._loop_thread:
            apply()
        elif self._portal is not None:
            self._portal.call(apply)
        else:
            raise RuntimeError(
                "set_max_concurrent_streams: call it from the event loop serving the server"
            )

    # -- certificates ---------------------------------------------------------------------

    def _ensure_tmpdir(self) -> Path:
        if self._tmpdir is None:
            self._tmpdir = Path(tempfile.mkdtemp(prefix="apnskit-mock-"))
        return self._tmpdir

    def _ensure_pki(self) -> None:
        if self._ca_cert is not None:
            return
        directory = self._ensure_tmpdir()
        ca_key = ec.generate_private_key(ec.SECP256R1())
        ca_cert = _ca_certificate(ca_key)
        self._ca_key, self._ca_cert = ca_key, ca_cert
        self._ca_path = directory / "ca.pem"
        self._ca_path.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
        if self._certfile is None:
            server_key = ec.generate_private_key(ec.SECP256R1())
            server_cert = _server_certificate(ca_cert.subject, ca_key, server_key)
            self._certfile = directory / "server.pem"
            self._keyfile = directory / "server.key"
            _write_pem_pair(self._certfile, server_cert, self._keyfile, server_key)
            self._generated_server_cert = True

    def _make_ssl_context(self) -> ssl.SSLContext:
        assert self._certfile is not None
        assert self._keyfile is not None
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        # APNs: TLS 1.2 or later; RFC 9113 section 9.2 requires at least TLS 1.2 for h2.
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.load_cert_chain(str(self._certfile), str(self._keyfile))
        context.set_alpn_protocols(["h2"])
        if self.auth == "certificate":
            context.verify_mode = ssl.CERT_REQUIRED
            assert self._ca_path is not None
            context.load_verify_locations(cafile=str(self._ca_path))
            if self._client_ca_file is not None:
                context.load_verify_locations(cafile=str(self._client_ca_file))
        return context

    def __repr__(self) -> str:
        where = f"{self._host}:{self._port}" if self._port is not None else "not started"
        return f"<MockApnsServer {where} auth={self.auth} environment={self.environment.value}>"


# anyio's TLS stream raises EndOfStream from send() too, when the peer closed its TLS session
# while a reply was going out (a Celery worker killed mid-campaign did this): one client
# leaving must never stop the server.
_DISCONNECTS = (
    OSError,
    anyio.BrokenResourceError,
    anyio.ClosedResourceError,
    anyio.EndOfStream,
    ssl.SSLError,
)


def _is_disconnect(exc: BaseException) -> bool:
    """True for a peer disconnect, alone or as every member of an exception group."""
    if isinstance(exc, _DISCONNECTS):
        return True
    members = getattr(exc, "exceptions", None)
    if isinstance(members, tuple) and members:
        return all(isinstance(m, BaseException) and _is_disconnect(m) for m in members)
    return False


def _write_private(path: Path, data: bytes) -> None:
    # Private keys are readable by their owner only.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)


def _write_pem_pair(
    cert_path: Path, cert: x509.Certificate, key_path: Path, key: ec.EllipticCurvePrivateKey
) -> None:
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    _write_private(
        key_path,
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
    )


def _certificate_builder(
    subject: x509.Name, issuer: x509.Name, key: ec.EllipticCurvePrivateKey, days: int
) -> x509.CertificateBuilder:
    """A certificate for ``key``, valid from five minutes ago (clock skew) for ``days``."""
    now = _dt.datetime.now(_dt.timezone.utc)
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _dt.timedelta(minutes=5))
        .not_valid_after(now + _dt.timedelta(days=days))
    )


def _ca_certificate(ca_key: ec.EllipticCurvePrivateKey) -> x509.Certificate:
    """The mock's self-signed CA, for a year: it signs the server and client certificates."""
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "apnskit mock APNs CA")])
    return (
        _certificate_builder(ca_name, ca_name, ca_key, 365)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )


def _server_certificate(
    ca_name: x509.Name, ca_key: ec.EllipticCurvePrivateKey, server_key: ec.EllipticCurvePrivateKey
) -> x509.Certificate:
    """A server certificate for localhost, 127.0.0.1 and ::1, signed by the mock's CA."""
    import ipaddress

    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    return (
        _certificate_builder(subject, ca_name, server_key, 365)
        .add_extension(
            x509.SubjectAlternativeName(
                [
                    x509.DNSName("localhost"),
                    x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                    x509.IPAddress(ipaddress.ip_address("::1")),
                ]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )


def _client_certificate(
    builder: x509.CertificateBuilder,
    entries: Sequence[tuple[str, Sequence[str]]],
    environments: Sequence[Environment],
) -> x509.CertificateBuilder:
    """Add what an Apple push certificate carries: client auth, environments and topics."""
    from apnskit._credentials.certinfo import (
        DEVELOPMENT_OID,
        PRODUCTION_OID,
        TOPICS_OID,
        encode_topics_extension,
    )

    builder = builder.add_extension(
        x509.BasicConstraints(ca=False, path_length=None), critical=True
    ).add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
    if Environment.SANDBOX in environments:
        builder = builder.add_extension(
            x509.UnrecognizedExtension(DEVELOPMENT_OID, _DER_NULL), critical=False
        )
    if Environment.PRODUCTION in environments:
        builder = builder.add_extension(
            x509.UnrecognizedExtension(PRODUCTION_OID, _DER_NULL), critical=False
        )
    if entries:
        builder = builder.add_extension(
            x509.UnrecognizedExtension(TOPICS_OID, encode_topics_extension(entries)),
            critical=False,
        )
    return builder
