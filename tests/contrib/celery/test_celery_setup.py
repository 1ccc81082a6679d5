"""ApnsTasks set-up checks that need no worker: bad arguments fail at once, clearly."""

from __future__ import annotations

from typing import Any

import pytest
from celery import Celery

import apnskit
from apnskit.contrib.celery import ApnsTasks


def _app() -> Celery:
    # Never connects: nothing here sends a task.
    return Celery("setup-checks", broker="memory://", backend="cache+memory://")


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"credentials": apnskit.TokenCredentials}, None),
        ({"credentials": "AuthKey_ABC.p8"}, "credentials: pass a callable"),
        ({"chunk_size": 0}, "chunk_size: 0 must be an integer >= 1"),
        ({"chunk_size": True}, "chunk_size"),
        ({"max_retries": -1}, "max_retries: -1"),
        ({"retry_delay": -1.0}, "retry_delay: -1.0"),
    ],
)
def test_bad_arguments_raise_configuration_error(kwargs: dict[str, Any], match: str | None) -> None:
    options: dict[str, Any] = {"credentials": lambda: None, **kwargs}
    if match is None:
        ApnsTasks(_app(), **options)  # a class is a callable too: accepted
        return
    with pytest.raises(apnskit.ConfigurationError, match=match):
        ApnsTasks(_app(), **options)


def test_credentials_callable_errors_become_credentials_errors() -> None:
    def broken() -> apnskit.TokenCredentials:
        raise OSError(2, "No such file or directory", "/secrets/AuthKey_X.p8")

    tasks = ApnsTasks(_app(), credentials=broken, name="t1")
    with pytest.raises(
        apnskit.CredentialsError, match=r"broken\(\) failed .*FileNotFoundError.*AuthKey_X"
    ):
        tasks.client()
    wrong = ApnsTasks(_app(), credentials=lambda: "not credentials", name="t2")
    with pytest.raises(apnskit.CredentialsError, match="returned a str, not TokenCredentials"):
        wrong.client()


def test_task_names_follow_the_prefix() -> None:
    app = _app()
    tasks = ApnsTasks(app, credentials=lambda: None, name="push")
    assert tasks.send.name == "push.send"
    assert tasks.send_chunk.name == "push.send_chunk"
    assert tasks.send.acks_late
    assert tasks.send.reject_on_worker_lost
    assert tasks.send_chunk.acks_late
    assert tasks.send_chunk.reject_on_worker_lost
