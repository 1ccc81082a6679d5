"""Send push notifications from Celery workers: single sends, and campaigns cut into chunks.

``pip install 'apnskit[celery]'``, then register the tasks on your own Celery app, once, in the
module the workers import::

    from celery import Celery
    import apnskit
    from apnskit.contrib.celery import ApnsTasks

    app = Celery("myapp", broker="redis://...", backend="redis://...")

    def load_credentials() -> apnskit.TokenCredentials:
        # Runs in the worker: the key is read from the worker's own files or secrets and
        # never travels over the broker.
        return apnskit.TokenCredentials.from_file("/run/secrets/AuthKey_ABC123DEFG.p8",
                                                  team_id="DEF123GHIJ")

    apns = ApnsTasks(app, credentials=load_credentials, environment="production")

    apns.send.delay(notification)                       # one notification
    campaign = apns.campaign(generator_of_notifications, on_invalid_tokens=forget.s())
    summary = campaign.wait()                           # or campaign.poll() now and then

Theory of operation:

- **One client per worker process.** The first task a process runs builds a
  :class:`apnskit.PushClient` from the credentials callable; every later task of that process
  reuses it (and its open HTTP/2 connections: Apple asks providers to keep connections open
  rather than open one per request). A prefork child closes it on
  ``worker_process_shutdown``, a solo or threads worker on ``worker_shutdown``. With the
  threads pool all threads share the one thread-safe client. A forked process never reuses
  its parent's client (the pid is checked).
- **Campaigns.** :meth:`ApnsTasks.campaign` reads any iterable lazily, cuts it into chunks
  and enqueues one task per chunk as soon as the chunk is full, so the producer holds one
  chunk at a time. Each notification gets an ``apns-id`` at enqueue when it has none, so a
  notification sent twice is recognisable by its id (APNs echoes it). Chunk task ids are
  derived from the campaign id and the chunk number, so :class:`Campaign` needs no list of
  ids: its summary is read from the result backend, by anyone who knows the campaign id.
- **Delivery semantics: at least once.** Tasks use late acknowledgement and
  ``reject_on_worker_lost``: a chunk whose worker dies (SIGKILL, OOM, a lost machine) goes
  back to the queue (at once when a prefork child dies, after the broker's visibility
  timeout when the whole worker does) and is sent again by another worker. Nothing is lost;
  notifications the dead worker had already handed to APNs are sent twice, with the same
  ``apns-id``. A chunk task marks itself as *sending* in the result backend before it sends;
  a run that finds that mark knows it is a redelivery and reports the chunk's notifications as
  possible duplicates (:attr:`CampaignSummary.possible_duplicates`). A run that finds the chunk
  already finished returns the stored report without sending.
- **Retries.** The client retries per its :class:`~apnskit.RetryPolicy`; what still failed
  for a retryable cause (no answer, 429, 500, 503) is sent again by a Celery retry of the
  chunk task that carries only that remainder (and the counts so far), up to ``max_retries``.
  What is then still failed is reported, with the notification itself so it can be sent
  again.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, NoReturn, TypedDict

import anyio
from celery import Task, signals
from celery.canvas import Signature, signature
from kombu.utils.json import register_type

from apnskit._clients.sync_client import PushClient
from apnskit._config import (
    DEFAULT_LIMITS,
    DEFAULT_RETRY_POLICY,
    DEFAULT_TIMEOUT,
    Environment,
    Limits,
    RetryPolicy,
    Timeout,
)
from apnskit._credentials.certificate import CertificateCredentials
from apnskit._credentials.token import TokenCredentials
from apnskit._errors import ConfigurationError, CredentialsError, InvalidNotificationError
from apnskit._model.notification import Notification
from apnskit._model.results import PushResult, Reason

__all__ = [
    "ApnsTasks",
    "Campaign",
    "CampaignSummary",
    "ChunkReport",
    "OutcomeRecord",
]

logger = logging.getLogger(__name__)

# Notifications and results passed to or returned by tasks travel as their to_dict() form in
# Celery's default JSON serializer (kombu's), and come back as objects on the other side.
register_type(Notification, "apnskit.Notification", Notification.to_dict, Notification.from_dict)
register_type(PushResult, "apnskit.PushResult", PushResult.to_dict, PushResult.from_dict)

# Statuses worth sending again later: Apple's "Handling notification responses from APNs"
# says to retry 429 (after backing off), 500 and 503.
_RETRYABLE_STATUSES = frozenset({429, 500, 503})
_MAX_RETRY_DELAY = 300.0
# The state a chunk task records while it sends, to recognise its own redelivery.
_SENDING = "SENDING"


class OutcomeRecord(TypedDict, total=False):
    """One rejected or failed notification of a chunk (a JSON object in the task result)."""

    device_token: str | None
    """The device token."""
    apns_id: str | None
    """The ``apns-id`` the notification was sent with."""
    status: int | None
    """APNs' HTTP status; ``None`` when no answer came (see ``error``)."""
    reason: str | None
    """Apple's reason string."""
    timestamp: str | None
    """For 410: since when the token is invalid (ISO 8601)."""
    error: str | None
    """For failures: ``"<ExceptionName>: <message>"``."""
    token_invalid: bool
    """True for 410 and ``BadDeviceToken``: the app should forget this token."""
    notification: dict[str, Any]
    """Failures only: :meth:`apnskit.Notification.to_dict`, to send it again later."""


class ChunkReport(TypedDict):
    """What a chunk task returns (JSON in the result backend)."""

    campaign_id: str
    """The campaign this chunk belongs to."""
    chunk: int
    """The chunk's number, from 0."""
    size: int
    """How many notifications the chunk had."""
    accepted: int
    """Accepted by APNs."""
    rejected: int
    """Rejected by APNs (final; listed in ``rejections``)."""
    failed: int
    """Without a final answer after every retry (listed in ``failures``)."""
    invalid: int
    """Items that were not valid notifications (listed in ``failures``, status ``None``)."""
    rejections: list[OutcomeRecord]
    """The rejected notifications."""
    failures: list[OutcomeRecord]
    """The failed and invalid ones, each with the notification to send again."""
    attempts: int
    """Task runs that sent something: 1, plus one per Celery retry of the remainder."""
    redeliveries: int
    """Times the chunk was taken up again after a worker died while sending it."""
    possible_duplicates: int
    """Notifications sent again after a redelivery: APNs may have had them already."""


@dataclass(frozen=True)
class CampaignSummary:
    """Where a campaign stands, read from the result backend by :meth:`Campaign.poll`.

    Every notification of a finished chunk is counted once, under ``accepted``,
    ``rejected``, ``failed`` or ``invalid``; those of chunks not finished yet under
    ``pending``. A chunk task that itself failed (for instance the worker could not load its
    credentials) counts its notifications as failed and its error in :attr:`errors`.
    """

    campaign_id: str
    """The campaign's id."""
    chunks: int
    """Chunks enqueued."""
    notifications: int
    """Notifications enqueued."""
    chunks_done: int = 0
    """Chunks finished (reported or errored)."""
    accepted: int = 0
    """Accepted by APNs."""
    rejected: int = 0
    """Rejected by APNs."""
    failed: int = 0
    """Failed after every retry, or in a chunk whose task failed."""
    invalid: int = 0
    """Not valid notifications."""
    pending: int = 0
    """In chunks not finished yet."""
    redelivered_chunks: int = 0
    """Finished chunks that were taken up again after a worker died."""
    possible_duplicates: int = 0
    """Notifications sent again after such a redelivery (an upper bound of duplicates)."""
    errors: dict[int, str] = field(default_factory=dict)
    """Chunk number -> the error its task failed with."""

    @property
    def done(self) -> bool:
        """True when every chunk has finished."""
        return self.chunks_done == self.chunks


def _retryable(result: PushResult) -> bool:
    if result.failed:
        return not isinstance(result.error, (InvalidNotificationError, CredentialsError))
    if result.status in _RETRYABLE_STATUSES:
        return True
    return isinstance(result.reason, Reason) and result.reason.retryable


def _record(result: PushResult, *, with_notification: bool) -> OutcomeRecord:
    notification = result.notification
    sent_id = notification.apns_id
    record: OutcomeRecord = {
        "device_token": notification.device_token,
        "apns_id": result.apns_id or (None if sent_id is None else str(sent_id)),
        "status": result.status,
        "reason": None if result.reason is None else str(result.reason),
        "timestamp": None if result.timestamp is None else result.timestamp.isoformat(),
        "error": None if result.error is None else f"{type(result.error).__name__}: {result.error}",
        "token_invalid": result.token_invalid,
    }
    if with_notification:
        record["notification"] = notification.to_dict()
    return record


# What differs between the notifications of a typical campaign: everything else is
# usually the same for the whole chunk and travels once (see _factor).
_OWN_KEYS = frozenset({"device_token", "apns_id"})
_MISSING = object()


def _factor(chunk: list[dict[str, Any]]) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
    """Split a chunk into the fields all its notifications share and what each has alone.

    A campaign usually sends one payload to many devices: sending it once per chunk instead
    of once per notification makes the broker message (and its JSON work at both ends)
    several times smaller.
    """
    first = chunk[0]
    shared: dict[str, Any] = {}
    for key, value in first.items():
        if key in _OWN_KEYS:
            continue
        if all((other := item.get(key, _MISSING)) is value or other == value for item in chunk):
            shared[key] = value
    if not shared:
        return None, chunk
    return shared, [{k: v for k, v in item.items() if k not in shared} for item in chunk]


def _new_report(campaign_id: str, index: int, size: int) -> ChunkReport:
    return {
        "campaign_id": campaign_id,
        "chunk": index,
        "size": size,
        "accepted": 0,
        "rejected": 0,
        "failed": 0,
        "invalid": 0,
        "rejections": [],
        "failures": [],
        "attempts": 0,
        "redeliveries": 0,
        "possible_duplicates": 0,
    }


def _note_redelivery(report: ChunkReport, campaign_id: str, index: int, size: int) -> None:
    # An earlier run of this very message was sending when its worker died: some of these
    # notifications may have reached APNs already.
    report["redeliveries"] += 1
    report["possible_duplicates"] += size
    logger.warning(
        "apnskit: chunk %d of campaign %s was redelivered after its worker died; "
        "resending %d notifications (possible duplicates, same apns-id)",
        index,
        campaign_id,
        size,
    )


def _build_notifications(
    items: list[dict[str, Any]], shared: dict[str, Any] | None, report: ChunkReport
) -> list[Notification]:
    """The chunk's notifications; each item that breaks a rule is counted and recorded."""
    notifications: list[Notification] = []
    base: Notification | None = None
    for raw in items:
        own = shared is not None and isinstance(raw, Mapping) and raw.keys() == _OWN_KEYS
        item = {**shared, **raw} if shared is not None and isinstance(raw, Mapping) else raw
        try:
            if own and base is not None:
                # Same payload, topic and headers as the chunk's first: only the token and
                # the id differ, so the body serialized for the first is reused.
                notifications.append(
                    base.with_device_token(raw["device_token"]).with_apns_id(raw["apns_id"])
                )
            else:
                # The first such item checks the shared fields once; an item with fields of
                # its own is checked whole.
                built = Notification.from_dict(item)
                if own:
                    base = built
                notifications.append(built)
        except InvalidNotificationError as exc:
            report["invalid"] += 1
            report["failures"].append(_invalid_record(item, exc))
    return notifications


def _invalid_record(item: object, exc: InvalidNotificationError) -> OutcomeRecord:
    token = item.get("device_token") if isinstance(item, Mapping) else None
    return {
        "device_token": token if isinstance(token, str) else None,
        "apns_id": None,
        "status": None,
        "reason": None,
        "timestamp": None,
        "error": f"InvalidNotificationError: {exc}",
        "token_invalid": False,
        "notification": dict(item) if isinstance(item, Mapping) else {},
    }


def _chunk_task_id(campaign_id: str, index: int) -> str:
    return f"apnskit-campaign-{campaign_id}-{index}"


def _meta_id(campaign_id: str) -> str:
    return f"apnskit-campaign-{campaign_id}"


class _SendTask(Task):  # type: ignore[misc]  # Celery is untyped
    """The single-send task: gives the notification its ``apns-id`` at enqueue."""

    def apply_async(self, args: Any = None, kwargs: Any = None, *more: Any, **options: Any) -> Any:
        if args:
            first = args[0]
            if isinstance(first, Notification) and first.apns_id is None:
                args = (first.with_apns_id(uuid.uuid4()), *args[1:])
        return super().apply_async(args, kwargs, *more, **options)


class ApnsTasks:
    """apnskit's tasks registered on your Celery app, and the worker process's client.

    Create it once, at import of the module your workers load (``celery -A``), with the same
    arguments in the producers and the workers.

    Args:
        app: Your ``celery.Celery`` application.
        credentials: Called in the worker, on its first task, to build the
            :class:`~apnskit.TokenCredentials` or :class:`~apnskit.CertificateCredentials`
            (e.g. from a key file only the workers can read). Never sent over the broker. If
            it raises, the task fails with a :class:`~apnskit.CredentialsError` saying why, and
            the next task calls it again (a fixed file is picked up without a restart).
        environment: ``"production"`` or ``"sandbox"``, as for :class:`~apnskit.PushClient`.
        host: Override the APNs host (the mock server in tests).
        port: Override the APNs port.
        ca_file: An extra trust anchor for the server certificate.
        timeout: The client's timeouts.
        limits: The client's pool: connections per worker process and notifications in
            flight.
        retry: The client's own retry policy, applied inside one task run.
        chunk_size: Notifications per chunk task in :meth:`campaign`.
        max_retries: Celery retries of a chunk's retryable remainder (and of a single send).
        retry_delay: Seconds before the first such retry; doubled for each further one (at
            most 300). Keep the broker's visibility timeout well above it.
        name: Prefix of the task names (``<name>.send``, ``<name>.send_chunk``).

    Raises:
        ConfigurationError: An argument cannot work.
    """

    def __init__(
        self,
        app: Any,
        *,
        credentials: Callable[[], TokenCredentials | CertificateCredentials],
        environment: str | Environment | None = None,
        host: str | None = None,
        port: int | None = None,
        ca_file: str | None = None,
        timeout: Timeout = DEFAULT_TIMEOUT,
        limits: Limits = DEFAULT_LIMITS,
        retry: RetryPolicy = DEFAULT_RETRY_POLICY,
        chunk_size: int = 1000,
        max_retries: int = 3,
        retry_delay: float = 5.0,
        name: str = "apnskit",
    ) -> None:
        if not callable(credentials):
            raise ConfigurationError(
                "credentials: pass a callable that builds the credentials in the worker "
                "(credentials objects hold private keys and must not go over the broker)"
            )
        if isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1:
            raise ConfigurationError(f"chunk_size: {chunk_size!r} must be an integer >= 1")
        if isinstance(max_retries, bool) or not isinstance(max_retries, int) or max_retries < 0:
            raise ConfigurationError(f"max_retries: {max_retries!r} must be an integer >= 0")
        if not isinstance(retry_delay, (int, float)) or not retry_delay >= 0:
            raise ConfigurationError(f"retry_delay: {retry_delay!r} must be a number >= 0")
        self.app = app
        self.chunk_size = chunk_size
        self.max_retries = max_retries
        self.retry_delay = float(retry_delay)
        self._credentials = credentials
        self._client_options: dict[str, Any] = {
            "environment": environment,
            "host": host,
            "port": port,
            "ca_file": ca_file,
            "timeout": timeout,
            "limits": limits,
            "retry": retry,
        }
        self._client: PushClient | None = None
        self._client_pid: int | None = None
        self._lock = threading.Lock()

        def send(task: Any, notification: Any) -> PushResult:
            return self._run_send(task, notification)

        def send_chunk(
            task: Any,
            campaign_id: str,
            index: int,
            notifications: list[dict[str, Any]],
            on_invalid_tokens: dict[str, Any] | None = None,
            carried: dict[str, Any] | None = None,
            shared: dict[str, Any] | None = None,
        ) -> ChunkReport:
            return self._run_chunk(
                task, campaign_id, index, notifications, on_invalid_tokens, carried, shared
            )

        # Late acknowledgement + reject_on_worker_lost: a task whose worker dies goes back
        # to the queue instead of being lost (at-least-once delivery).
        options: dict[str, Any] = {
            "bind": True,
            "acks_late": True,
            "reject_on_worker_lost": True,
            "max_retries": max_retries,
        }
        self.send: Any = app.task(send, name=f"{name}.send", base=_SendTask, **options)
        """The single-send task: ``send.delay(notification)``; its result is a PushResult."""
        self.send_chunk: Any = app.task(send_chunk, name=f"{name}.send_chunk", **options)
        """The chunk task :meth:`campaign` enqueues (returns a :class:`ChunkReport`)."""
        signals.worker_process_shutdown.connect(self._on_shutdown, weak=False)
        signals.worker_shutdown.connect(self._on_shutdown, weak=False)

    # ------------------------------------------------------------------ the worker's client

    def client(self) -> PushClient:
        """This process's client, built on first use from the credentials callable.

        Raises:
            CredentialsError: The credentials callable failed or returned something else
                than credentials.
        """
        pid = os.getpid()
        client = self._client
        if client is not None and self._client_pid == pid:
            return client
        with self._lock:
            if self._client is None or self._client_pid != pid:
                # A client inherited through fork() shares its sockets with the parent:
                # never use it (nor close it: the parent's connections would break).
                self._client = PushClient(self._load_credentials(), **self._client_options)
                self._client_pid = pid
                logger.info("apnskit: opened the APNs client of worker process %d", pid)
            return self._client

    def close_client(self) -> None:
        """Close this process's client, if it has one (the worker shutdown signals call it)."""
        with self._lock:
            client, self._client = self._client, None
            owned = self._client_pid == os.getpid()
            self._client_pid = None
        if client is not None and owned:
            client.close()
            logger.info("apnskit: closed the APNs client of worker process %d", os.getpid())

    def _on_shutdown(self, **_: Any) -> None:
        self.close_client()

    def _load_credentials(self) -> TokenCredentials | CertificateCredentials:
        factory = getattr(self._credentials, "__qualname__", repr(self._credentials))
        try:
            credentials = self._credentials()
        except Exception as exc:
            raise CredentialsError(
                f"credentials: {factory}() failed in worker process {os.getpid()}: "
                f"{type(exc).__name__}: {exc}"
            ) from None
        if not isinstance(credentials, (TokenCredentials, CertificateCredentials)):
            raise CredentialsError(
                f"credentials: {factory}() returned a {type(credentials).__name__}, not "
                "TokenCredentials or CertificateCredentials"
            )
        return credentials

    def _delay(self, retries: int) -> float:
        return float(min(self.retry_delay * 2**retries, _MAX_RETRY_DELAY))

    # ------------------------------------------------------------------ single send

    def _run_send(self, task: Any, notification: Any) -> PushResult:
        if isinstance(notification, Mapping):
            notification = Notification.from_dict(notification)
        if not isinstance(notification, Notification):
            raise InvalidNotificationError(
                "notification", f"{type(notification).__name__} is not an apnskit.Notification"
            )
        result = self.client().send(notification)
        if _retryable(result) and task.request.retries < self.max_retries:
            raise task.retry(countdown=self._delay(task.request.retries))
        return result

    # ------------------------------------------------------------------ chunks

    def _run_chunk(
        self,
        task: Any,
        campaign_id: str,
        index: int,
        items: list[dict[str, Any]],
        on_invalid_tokens: dict[str, Any] | None,
        carried: dict[str, Any] | None,
        shared: dict[str, Any] | None = None,
    ) -> ChunkReport:
        previous = task.backend.get_task_meta(task.request.id, cache=False)
        if previous.get("status") == "SUCCESS" and isinstance(previous.get("result"), dict):
            # Finished, but the worker died before acknowledging: nothing to send again.
            stored: ChunkReport = previous["result"]
            return stored
        # A retry carries its own earlier report on.
        report: ChunkReport = (
            carried  # type: ignore[assignment]
            if carried is not None
            else _new_report(campaign_id, index, len(items))
        )
        if previous.get("status") == _SENDING:
            _note_redelivery(report, campaign_id, index, len(items))
        task.update_state(state=_SENDING, meta={"chunk": index, "items": len(items)})
        report["attempts"] += 1

        notifications = _build_notifications(items, shared, report)
        remainder = self._send_chunk(notifications, report)
        if remainder and task.request.retries < self.max_retries:
            self._retry_chunk(
                task, report, remainder, (campaign_id, index, len(items)), on_invalid_tokens
            )
        for result in remainder:
            report["failed"] += 1
            report["failures"].append(_record(result, with_notification=True))

        invalid_tokens = [record for record in report["rejections"] if record["token_invalid"]]
        if invalid_tokens and on_invalid_tokens is not None:
            # At least once, like everything here: a redelivered chunk calls it again.
            signature(on_invalid_tokens, app=task.app).delay(invalid_tokens)
        return report

    def _send_chunk(
        self, notifications: list[Notification], report: ChunkReport
    ) -> list[PushResult]:
        """Send; count what was accepted or rejected, return what may succeed later."""
        remainder: list[PushResult] = []
        if notifications:
            for result in self.client().send_many(notifications):
                if result.accepted:
                    report["accepted"] += 1
                elif _retryable(result):
                    remainder.append(result)
                else:
                    report["rejected"] += 1
                    report["rejections"].append(_record(result, with_notification=False))
        return remainder

    def _retry_chunk(
        self,
        task: Any,
        report: ChunkReport,
        remainder: list[PushResult],
        chunk: tuple[str, int, int],
        on_invalid_tokens: dict[str, Any] | None,
    ) -> NoReturn:
        """Send ``remainder`` again later, as the same chunk carrying its report so far.

        ``chunk`` is the campaign id, the chunk's index and its size.
        """
        retries = task.request.retries
        campaign_id, index, size = chunk
        logger.info(
            "apnskit: chunk %d of campaign %s: retrying %d of %d notifications in %.1f s",
            index,
            campaign_id,
            len(remainder),
            size,
            self._delay(retries),
        )
        raise task.retry(
            args=(campaign_id, index, [r.notification.to_dict() for r in remainder]),
            kwargs={
                "on_invalid_tokens": on_invalid_tokens,
                "carried": dict(report),
                "shared": None,
            },
            countdown=self._delay(retries),
        )

    # ------------------------------------------------------------------ campaigns

    def campaign(
        self,
        notifications: Iterable[Notification | Mapping[str, Any]],
        *,
        chunk_size: int | None = None,
        on_invalid_tokens: Signature | None = None,
        campaign_id: str | None = None,
        queue: str | None = None,
    ) -> Campaign:
        """Enqueue ``notifications`` as chunk tasks, reading the iterable lazily.

        Only one chunk is held at a time, so a generator over millions is fine. Each
        notification without an ``apns-id`` gets a random one here, which it keeps through
        retries and redeliveries.

        Args:
            notifications: :class:`~apnskit.Notification` objects, or their
                :meth:`~apnskit.Notification.to_dict` form (validated here).
            chunk_size: Notifications per task (default: the ``chunk_size`` given at setup).
            on_invalid_tokens: A Celery signature that each chunk with invalid tokens (410,
                or ``BadDeviceToken``) enqueues with the list of their :class:`OutcomeRecord`
                as first argument (``forget.s(x)`` runs as ``forget(records, x)``), so the
                app can forget them. At least once per such chunk: make it idempotent.
            campaign_id: An id of your own (default: a random one).
            queue: The queue to send the chunk tasks to.

        Returns:
            The :class:`Campaign`, to poll or wait for.

        Raises:
            InvalidNotificationError: An item is not a valid notification (chunks before it
                are already enqueued and will be sent).
        """
        size = self.chunk_size if chunk_size is None else chunk_size
        if isinstance(size, bool) or not isinstance(size, int) or size < 1:
            raise ConfigurationError(f"chunk_size: {size!r} must be an integer >= 1")
        cid = campaign_id or uuid.uuid4().hex
        hook = dict(on_invalid_tokens) if on_invalid_tokens is not None else None
        options: dict[str, Any] = {} if queue is None else {"queue": queue}
        chunk: list[dict[str, Any]] = []
        chunks = 0
        total = 0
        # apns-ids for the notifications that have none: a random UUID's first 80 bits
        # (version and variant bits included) per campaign, then a counter in the last
        # 48, so each id is canonical, unique, and costs no call to the OS's random source.
        id_prefix = str(uuid.uuid4())[:24]
        for item in notifications:
            if isinstance(item, Notification):
                data = item.to_dict()
            else:
                data = Notification.from_dict(item).to_dict()
            if "apns_id" not in data:
                data["apns_id"] = f"{id_prefix}{total + len(chunk):012x}"
            chunk.append(data)
            if len(chunk) == size:
                self._enqueue(cid, chunks, chunk, hook, options)
                chunks += 1
                total += len(chunk)
                chunk = []
        if chunk:
            self._enqueue(cid, chunks, chunk, hook, options)
            chunks += 1
            total += len(chunk)
        meta = {"chunks": chunks, "notifications": total, "chunk_size": size}
        self.app.backend.store_result(_meta_id(cid), meta, "SUCCESS")
        return Campaign(self.app, cid, chunks=chunks, notifications=total, chunk_size=size)

    def _enqueue(
        self,
        campaign_id: str,
        index: int,
        chunk: list[dict[str, Any]],
        hook: dict[str, Any] | None,
        options: dict[str, Any],
    ) -> None:
        shared, items = _factor(chunk)
        self.send_chunk.apply_async(
            args=(campaign_id, index, items),
            kwargs={"on_invalid_tokens": hook, "shared": shared},
            task_id=_chunk_task_id(campaign_id, index),
            **options,
        )

    def restore_campaign(self, campaign_id: str) -> Campaign:
        """The :class:`Campaign` of ``campaign_id``, from the result backend (any process).

        Raises:
            LookupError: No campaign with that id has finished enqueueing (or its record
                expired from the backend).
        """
        return Campaign.restore(self.app, campaign_id)


class Campaign:
    """A campaign's chunk tasks, summarised from the result backend.

    Args:
        app: The Celery app whose backend holds the chunk results.
        campaign_id: The campaign's id.
        chunks: How many chunk tasks were enqueued.
        notifications: How many notifications they hold.
        chunk_size: Notifications per chunk (the last one may have fewer).
    """

    def __init__(
        self, app: Any, campaign_id: str, *, chunks: int, notifications: int, chunk_size: int
    ) -> None:
        self.app = app
        self.campaign_id = campaign_id
        self.chunks = chunks
        self.notifications = notifications
        self.chunk_size = chunk_size
        # Finished chunks are read once; only their counts are kept, not their records.
        self._finished: set[int] = set()
        self._totals: dict[str, int] = dict.fromkeys(
            ("accepted", "rejected", "failed", "invalid", "redelivered", "duplicates"), 0
        )
        self._errors: dict[int, str] = {}

    @classmethod
    def restore(cls, app: Any, campaign_id: str) -> Campaign:
        """Find a campaign by id in ``app``'s result backend.

        Raises:
            LookupError: No campaign with that id has finished enqueueing.
        """
        meta = app.backend.get_task_meta(_meta_id(campaign_id), cache=False)
        data = meta.get("result")
        if meta.get("status") != "SUCCESS" or not isinstance(data, dict):
            raise LookupError(
                f"campaign_id: no campaign {campaign_id!r} in the result backend (still "
                "being enqueued, expired, or another backend)"
            )
        return cls(
            app,
            campaign_id,
            chunks=int(data["chunks"]),
            notifications=int(data["notifications"]),
            chunk_size=int(data["chunk_size"]),
        )

    def task_id(self, index: int) -> str:
        """The Celery task id of chunk ``index``."""
        return _chunk_task_id(self.campaign_id, index)

    def _size(self, index: int) -> int:
        if index == self.chunks - 1:
            return self.notifications - self.chunk_size * (self.chunks - 1)
        return self.chunk_size

    def poll(self) -> CampaignSummary:
        """Read the chunks not finished at the last poll and return the summary now."""
        backend = self.app.backend
        totals = self._totals
        for index in range(self.chunks):
            if index in self._finished:
                continue
            meta = backend.get_task_meta(self.task_id(index), cache=False)
            status = meta.get("status")
            if status == "SUCCESS":
                report = meta["result"]
                for key in ("accepted", "rejected", "failed", "invalid"):
                    totals[key] += int(report[key])
                if report["redeliveries"]:
                    totals["redelivered"] += 1
                totals["duplicates"] += int(report["possible_duplicates"])
            elif status == "FAILURE":
                error = meta.get("result")
                if isinstance(error, BaseException):
                    text = f"{type(error).__name__}: {error}"
                elif isinstance(error, dict):
                    text = f"{error.get('exc_type')}: {error.get('exc_message')}"
                else:
                    text = str(error)
                self._errors[index] = text
                totals["failed"] += self._size(index)
            else:
                continue
            self._finished.add(index)
        pending = sum(self._size(i) for i in range(self.chunks) if i not in self._finished)
        return CampaignSummary(
            campaign_id=self.campaign_id,
            chunks=self.chunks,
            notifications=self.notifications,
            chunks_done=len(self._finished),
            accepted=totals["accepted"],
            rejected=totals["rejected"],
            failed=totals["failed"],
            invalid=totals["invalid"],
            pending=pending,
            redelivered_chunks=totals["redelivered"],
            possible_duplicates=totals["duplicates"],
            errors=dict(self._errors),
        )

    def wait(self, timeout: float | None = None, interval: float = 0.5) -> CampaignSummary:
        """Poll until every chunk has finished, and return the final summary.

        Args:
            timeout: Seconds to wait at most (None: no limit).
            interval: Seconds between polls.

        Raises:
            TimeoutError: ``timeout`` passed first.
        """
        limit = None if timeout is None else time.monotonic() + timeout
        while True:
            summary = self.poll()
            if summary.done:
                return summary
            if limit is not None and time.monotonic() >= limit:
                raise TimeoutError(
                    f"campaign {self.campaign_id}: {summary.chunks - summary.chunks_done} of "
                    f"{summary.chunks} chunks not finished after {timeout} s"
                )
            time.sleep(interval)

    async def wait_async(self, interval: float = 0.5) -> CampaignSummary:
        """Like :meth:`wait`, from async code (asyncio or trio); cancel it to stop waiting.

        Args:
            interval: Seconds between polls.
        """
        while True:
            summary = await anyio.to_thread.run_sync(self.poll)
            if summary.done:
                return summary
            await anyio.sleep(interval)

    def chunk_reports(self) -> Iterator[ChunkReport]:
        """Yield the report of every chunk finished so far (read from the backend now)."""
        backend = self.app.backend
        for index in range(self.chunks):
            meta = backend.get_task_meta(self.task_id(index), cache=False)
            if meta.get("status") == "SUCCESS":
                report: ChunkReport = meta["result"]
                yield report

    def __repr__(self) -> str:
        return (
            f"Campaign(campaign_id={self.campaign_id!r}, chunks={self.chunks}, "
            f"notifications={self.notifications})"
        )
