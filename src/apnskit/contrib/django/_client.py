"""The process-wide client: created lazily, once per process, closed at exit."""

from __future__ import annotations

import atexit
import os
import threading
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from asgiref.sync import sync_to_async
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

import apnskit
from apnskit.contrib.django._settings import ApnskitSettings, inspect

__all__ = ["asend", "close_client", "get_client", "get_settings", "send", "send_many"]

_lock = threading.Lock()
_client: apnskit.PushClient | None = None
_settings: ApnskitSettings | None = None
# The process the client was made in: a forked worker (gunicorn --preload, multiprocessing)
# must not use, or close, the TLS connections it inherited from its parent.
_pid = 0
_atexit_registered = False


def get_settings() -> ApnskitSettings:
    """``settings.APNSKIT``, validated, with the credentials loaded (once per client).

    Raises:
        ImproperlyConfigured: The setting is missing or wrong; the message names the key
            (``manage.py check`` lists every problem at once).
    """
    with _lock:
        return _current()[1]


def get_client() -> apnskit.PushClient:
    """The process-wide :class:`apnskit.PushClient`, made from ``settings.APNSKIT``.

    It is made on first use, in the process that uses it (a forked worker makes its own),
    and closed when the interpreter exits. It is thread-safe: share it between threads.

    Raises:
        ImproperlyConfigured: ``settings.APNSKIT`` is missing or wrong.
    """
    with _lock:
        return _current()[0]


def close_client() -> None:
    """Close the process-wide client, if any; the next :func:`get_client` makes a new one.

    Called at interpreter exit, and when a test changes ``settings.APNSKIT``
    (``override_settings``).
    """
    global _client, _settings
    with _lock:
        client, _client, _settings = _client, None, None
        mine = _pid == os.getpid()
    if client is not None and mine:
        client.close()


def send(
    notification: apnskit.Notification | str,
    payload: apnskit.Payload | Mapping[str, Any] | None = None,
    **fields: Any,
) -> apnskit.PushResult:
    """Send one notification with the process-wide client and wait for its result.

    Args:
        notification: An :class:`apnskit.Notification`, or a device token (hex) to build
            one from ``payload`` and ``fields``.
        payload: With a device token: an :class:`apnskit.Payload` or a dict.
        **fields: With a device token: the other :class:`apnskit.Notification` arguments
            (``push_type``, ``priority``...). ``topic`` defaults to ``APNSKIT["TOPIC"]``.

    Returns:
        The result; a rejection is returned, not raised (``result.raise_for_status()``).

    Raises:
        ImproperlyConfigured: ``settings.APNSKIT`` is missing or wrong.
        apnskit.InvalidNotificationError: The notification breaks an APNs rule, or no topic
            is given and ``APNSKIT["TOPIC"]`` is not set.
    """
    client = get_client()
    return client.send(_notification(notification, payload, fields))


def send_many(notifications: Iterable[apnskit.Notification]) -> Iterator[apnskit.PushResult]:
    """Send many notifications, pipelined, with the process-wide client.

    Args:
        notifications: Any iterable of :class:`apnskit.Notification`, a generator of
            millions included (it is read as fast as results come back).

    Returns:
        An iterator of one result per notification, in completion order; leaving the loop
        early cancels what is still pending.

    Raises:
        ImproperlyConfigured: ``settings.APNSKIT`` is missing or wrong.
    """
    return get_client().send_many(notifications)


async def asend(
    notification: apnskit.Notification | str,
    payload: apnskit.Payload | Mapping[str, Any] | None = None,
    **fields: Any,
) -> apnskit.PushResult:
    """:func:`send` for async views: runs it in a worker thread, off the event loop.

    Args:
        notification: As for :func:`send`.
        payload: As for :func:`send`.
        **fields: As for :func:`send`.

    Returns:
        The result.
    """
    # thread_sensitive=False: PushClient is thread-safe, so sends need not queue up behind
    # Django's one sync thread.
    result: apnskit.PushResult = await sync_to_async(send, thread_sensitive=False)(
        notification, payload, **fields
    )
    return result


def _notification(
    notification: apnskit.Notification | str,
    payload: apnskit.Payload | Mapping[str, Any] | None,
    fields: dict[str, Any],
) -> apnskit.Notification:
    if isinstance(notification, apnskit.Notification):
        if payload is not None or fields:
            raise TypeError("send(): give a Notification alone, or a device token and a payload")
        return notification
    if payload is None:
        raise TypeError("send(): a device token needs a payload")
    if fields.get("topic") is None:
        topic = get_settings().topic
        if topic is None:
            raise apnskit.InvalidNotificationError(
                "topic", "not given, and settings.APNSKIT has no 'TOPIC' to default to"
            )
        fields["topic"] = topic
    body = payload if isinstance(payload, apnskit.Payload) else dict(payload)
    return apnskit.Notification(notification, body, **fields)


def _current() -> tuple[apnskit.PushClient, ApnskitSettings]:
    """The client and its settings, made if needed (the caller holds the lock)."""
    global _client, _settings, _pid, _atexit_registered
    if _client is None or _settings is None or _pid != os.getpid():
        found, problems = inspect(getattr(settings, "APNSKIT", None))
        if found is None:
            first = next(p for p in problems if p.serious)
            raise ImproperlyConfigured(f"apnskit.{first.id}: {first.message}")
        # In a forked child the parent's client is dropped, not closed: closing would send
        # GOAWAY on connections the parent still uses.
        _client = apnskit.PushClient(found.credentials, **found.client_options)
        _settings = found
        _pid = os.getpid()
        if not _atexit_registered:
            atexit.register(close_client)
            _atexit_registered = True
    return _client, _settings
