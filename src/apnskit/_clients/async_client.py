"""AsyncPushClient's public layer: the methods callers use, over the anyio driver.

Written once: ``sync_client.py`` (PushClient) is generated from ``async_client.py`` by
``.ci/unasync.py`` with a token map (coroutines become plain methods). Run it after editing
this file; its ``--check`` runs in CI and in the test suite. How a call waits
(tasks here, threads there) is the business of the hand-written drivers beside it
(``*_driver.py``) and stays different by design. A driver gives this layer ``_guard`` (the
lock around the dispatcher, or none), ``_note_work()`` and ``_wake_driver()`` (after a submit
or a cancel), ``_submit_waiting()``, ``_settled()``, ``_wait_step()`` and ``_abandon()`` (a
``send()``'s submit and wait), ``_wait()`` and ``_shutdown()``.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator, Iterable
from types import TracebackType
from typing import Any

from apnskit._clients.async_driver import AsyncDriver, AsyncSource, AsyncWakeup
from apnskit._clients.common import check_broadcast
from apnskit._engine.tickets import Ticket
from apnskit._errors import ClientClosedError
from apnskit._model.broadcast import (
    BroadcastNotification,
    Channel,
    ChannelList,
    ChannelRequest,
    MessageStoragePolicy,
    channel_from_result,
    channel_ids_from_result,
    check_deleted,
    create_channel_request,
    delete_channel_request,
    get_channel_request,
    list_channels_request,
)
from apnskit._model.results import PushResult

__all__ = ["AsyncPushClient"]

# How often a send_many() caller that may pull more input looks at the free room even when
# none of its own notifications ended (room also frees when other callers' ones end).
_ROOM_RECHECK = 0.05


class AsyncPushClient(AsyncDriver):
    """Send notifications to APNs from async code (asyncio or trio, through anyio).

    Example:
        ```python
        async with apnskit.AsyncPushClient(credentials, environment="sandbox") as client:
            result = await client.send(notification)
        ```

    Args:
        credentials: :class:`apnskit.TokenCredentials` or :class:`apnskit.CertificateCredentials`.
        environment: ``"production"`` or ``"sandbox"``. Required with token credentials
            unless ``host`` is given; picked from a certificate when omitted.
        host: Override the APNs host (the mock server; for a proxy see ``proxy``).
        port: Override the port (default 443; APNs also listens on 2197).
        management_host: Override the channel-management host (default: Apple's, or ``host``
            when that is overridden, as the mock server serves both).
        management_port: Override the channel-management port (default 2195 sandbox,
            2196 production, or ``port`` when ``host`` is overridden).
        ca_file: An extra trust anchor (PEM) besides the system store.
        ssl_context: A ready TLS context to use as given, never changed: it must offer ALPN
            ``h2`` (else :class:`apnskit.ConfigurationError`) and, with certificate
            credentials, already hold the client certificate
            (``credentials.configure_ssl_context(context)`` loads it).
        transport: The network seam; :class:`apnskit.testing.FakeTransport` swaps in a fake.
        timeout: Connect timeout, per-notification deadline, PING health checks.
        limits: Connections in the pool and notifications in flight.
        retry: How often and how late notifications are retried.
        event_hook: Called with each client event (sent, result, retry, connection opened,
            closed or failed), e.g. for metrics.
            It runs synchronously in the task doing the I/O:
            keep it quick and do not call the client from it. Its exceptions are logged and
            ignored.
        proxy: Connect through this proxy: ``"http://[user:password@]host:port"`` (HTTP
            CONNECT, Basic auth) or ``"socks5://[user:password@]host:port"`` (remote DNS;
            ``socks5h://`` is the same; needs ``apnskit[socks]``). The TLS session to APNs
            runs inside the tunnel, its certificate checked as without a proxy. Applies to
            the channel-management connections too. Not with a custom ``transport``.
        trust_env: When ``proxy`` is not given, use ``HTTPS_PROXY`` or ``ALL_PROXY`` from the
            environment unless ``NO_PROXY`` lists the host (as httpx does). False ignores
            them.
    """

    async def send(self, notification: Any) -> PushResult:
        """Send one notification and wait for its result.

        Rejections are returned, not raised; call ``result.raise_for_status()`` to raise.
        Cancelling the call (a timeout around it) withdraws the notification:
        it is not sent if it was still queued, and its stream is reset if it was written
        (APNs may have it already).

        Raises:
            ClientClosedError: The client was closed.
        """
        ticket = self._submit_waiting(notification)
        # The wait is written out here rather than in a helper coroutine: while another task
        # drives, a step is a bare future, so no coroutine stands between this one and it
        # (1,000 tasks calling send() pay each layer once per notification, issue 13).
        try:
            while not self._settled(ticket):
                await self._wait_step(ticket)
        except BaseException:
            # The caller left (cancelled, a timeout around send(); interrupted, a
            # KeyboardInterrupt or a signal handler's exception): it will never see the
            # result, so the notification is withdrawn rather than sent later behind its
            # back. One already written may still reach APNs (README).
            self._abandon(ticket)
            raise
        assert ticket.result is not None
        return ticket.result

    async def _send_ticket(self, notification: Any) -> Ticket:
        """Like :meth:`send`, but returns the finished ticket (for channel management)."""
        ticket = self._submit_waiting(notification)
        try:
            while not self._settled(ticket):
                await self._wait_step(ticket)
        except BaseException:
            self._abandon(ticket)  # as in send()
            raise
        return ticket

    async def send_many(
        self,
        notifications: Iterable[Any] | AsyncIterable[Any],
    ) -> AsyncIterator[PushResult]:
        """Send many notifications, pipelined, yielding each result as it completes.

        ``notifications`` may be any iterable or async iterable,
        a generator of millions included: it is read only as fast as in-flight room frees up
        (``Limits.max_in_flight``), so memory stays flat. Every notification yields exactly
        one result; order follows completion.
        Leaving the loop early cancels what is still pending
        (close the iterator, e.g. with ``contextlib.aclosing``, for that to happen at once).

        Raises:
            ClientClosedError: The client was closed: before the first item, or meanwhile (then
                after a result for every notification already taken from the iterable).
        """
        self._check_open()
        source = AsyncSource(notifications)
        wakeup = AsyncWakeup(collect=True)
        finished = wakeup.tickets
        assert finished is not None
        pending: set[Ticket] = set()  # submitted, not yet taken from ``finished``
        dispatcher = self._dispatcher
        limit = self._setup.limits.max_in_flight
        batch = max(1, min(1000, limit))
        try:
            while True:
                if not source.exhausted:
                    await self._feed(source, wakeup, pending, batch)
                while finished:
                    ticket = finished.popleft()
                    pending.discard(ticket)
                    assert ticket.result is not None
                    yield ticket.result
                if source.exhausted and not pending:
                    break
                # Wait until something of ours ends, or there is room to pull more. Room frees
                # up when anyone's notifications end, not only ours: while we may pull more,
                # look again now and then even if none of ours ended.
                await self._wait(
                    lambda: (
                        bool(finished)
                        or (not source.exhausted and dispatcher.outstanding < limit - batch // 2)
                    ),
                    wakeup,
                    recheck=None if source.exhausted else _ROOM_RECHECK,
                )
            if source.cut:
                # Everything taken from the iterable has had its result; say why the rest
                # was not taken.
                raise ClientClosedError(
                    "the client was closed during send_many(); notifications not yet taken "
                    "from the iterable were not sent"
                )
        finally:
            if pending:
                # The caller left early (break, an exception, cancellation): stop what it
                # no longer waits for instead of sending it anyway.
                error = ClientClosedError("send_many() was closed before this was answered")
                self._withdraw(pending, error)

    async def _feed(
        self,
        source: AsyncSource,
        wakeup: AsyncWakeup,
        pending: set[Ticket],
        batch: int,
    ) -> None:
        """Take from ``source`` what fits in the free room (at most ``batch``) and submit it."""
        limit = self._setup.limits.max_in_flight
        with self._guard:
            room = min(limit - self._dispatcher.outstanding, batch)
            if self._closed:
                source.cut = source.exhausted = True  # take nothing more from the caller
                return
        pulled = await source.take(room)
        if not pulled:
            return
        with self._guard:
            # No _check_open() here: after close() each pulled item still gets its result
            # (the closed dispatcher ends it with ClientClosedError at once, and hands it to
            # ``wakeup``, so to ``finished``).
            pending.update(self._dispatcher.submit_many(pulled, self._clock(), wakeup))
            poke = self._note_work()
        if poke:
            self._wake_driver()

    def _withdraw(self, tickets: Iterable[Ticket], error: ClientClosedError) -> None:
        # Cancelling writes RST_STREAM for a notification already sent: the driver writes it.
        with self._guard:
            for ticket in tickets:
                self._dispatcher.cancel(ticket, error)
            poke = self._note_work()
        if poke:
            self._wake_driver()

    async def send_broadcast(self, notification: BroadcastNotification) -> PushResult:
        """Send a Live Activity update or end to every device subscribed to a channel (iOS 18).

        The result carries ``request_id`` (``apns-request-id``); it is retried and validated
        like a device notification.

        Raises:
            InvalidNotificationError: ``notification`` is not a :class:`BroadcastNotification`.
            ClientClosedError: The client was closed.
        """
        check_broadcast(notification)
        return await self.send(notification)

    async def create_channel(
        self,
        bundle_id: str,
        *,
        message_storage_policy: MessageStoragePolicy | int = MessageStoragePolicy.NO_MESSAGE_STORED,
        request_id: str | None = None,
    ) -> Channel:
        """Create a broadcast channel for ``bundle_id`` on the channel-management host.

        Creation is not idempotent, so a failed attempt is not retried blindly.

        Raises:
            ChannelError: APNs refused (e.g. the 10,000-channel limit) or did not answer.
        """
        request = create_channel_request(bundle_id, message_storage_policy, request_id=request_id)
        return channel_from_result(request, await self._manage(request))

    async def get_channel(
        self,
        bundle_id: str,
        channel_id: str,
        *,
        request_id: str | None = None,
    ) -> Channel:
        """Read one channel's configuration.

        Raises:
            ChannelError: APNs refused (e.g. ``ChannelNotRegistered``) or did not answer.
        """
        request = get_channel_request(bundle_id, channel_id, request_id=request_id)
        return channel_from_result(request, await self._manage(request))

    async def list_channels(self, bundle_id: str, *, request_id: str | None = None) -> ChannelList:
        """The ids of every channel of ``bundle_id`` in this environment (``.request_id`` too).

        Raises:
            ChannelError: APNs refused or did not answer.
        """
        request = list_channels_request(bundle_id, request_id=request_id)
        return channel_ids_from_result(request, await self._manage(request))

    async def delete_channel(
        self,
        bundle_id: str,
        channel_id: str,
        *,
        request_id: str | None = None,
    ) -> Channel:
        """Delete a channel; returns it with the answer's ``request_id``.

        Raises:
            ChannelError: APNs refused (e.g. ``ChannelNotRegistered``) or did not answer.
        """
        request = delete_channel_request(bundle_id, channel_id, request_id=request_id)
        ticket = await self._manage_ticket(request)
        assert ticket.result is not None
        return check_deleted(request, ticket.result, earlier_send_may_have_run=ticket.unknown_fate)

    async def _manage(self, request: ChannelRequest) -> PushResult:
        ticket = await self._manage_ticket(request)
        assert ticket.result is not None
        return ticket.result

    async def _manage_ticket(self, request: ChannelRequest) -> Ticket:
        # Channel management lives on its own host: a small client of our own kind, made on
        # first use, sharing credentials, TLS and transport.
        with self._guard:
            self._check_open()
            if self._management is None:
                self._management = AsyncPushClient(self._credentials, **self._management_options())
            management = self._management
        assert isinstance(management, AsyncPushClient)  # the driver knows it as a driver
        return await management._send_ticket(request)

    async def close(self) -> None:
        """Close every connection (GOAWAY) and fail what is still in flight.

        Safe to call more than once.
        """
        await self._shutdown()

    async def __aenter__(self) -> AsyncPushClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()
