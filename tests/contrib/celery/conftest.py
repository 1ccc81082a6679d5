"""Fixtures for the Celery tests: a real redis-server (broker and result backend), the mock
APNs server playing Apple, and real `celery worker` processes (not eager mode)."""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable, Iterator
from types import ModuleType
from typing import Any

import pytest
import redis
from celery_support import RedisServer, Worker

from apnskit.testing import MockApnsServer


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    yield server
    server.stop()


@pytest.fixture(scope="session")
def apns_mock() -> Iterator[MockApnsServer]:
    with MockApnsServer() as server:
        yield server


@pytest.fixture(scope="session")
def worker_env(
    redis_server: RedisServer, apns_mock: MockApnsServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, str]]:
    """What the workers (and, for the producer side, this process) read from the environment.

    The key file lives where only the worker is told to look; nothing of it goes on the broker.
    """
    key = apns_mock.new_token_key()
    env = {
        "APNSKIT_TEST_REDIS_URL": redis_server.url,
        "APNSKIT_TEST_APNS_PORT": str(apns_mock.port),
        "APNSKIT_TEST_CA_FILE": str(apns_mock.ca_file),
        "APNSKIT_TEST_KEY_FILE": str(key.path),
        "APNSKIT_TEST_KEY_ID": key.key_id,
        "APNSKIT_TEST_TEAM_ID": key.team_id,
    }
    saved = {name: os.environ.get(name) for name in env}
    os.environ.update(env)
    yield env
    for name, value in saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


@pytest.fixture(scope="session")
def celery_app(worker_env: dict[str, str]) -> ModuleType:
    """The app module, imported here as the producer (the workers import it themselves)."""
    return importlib.import_module("apnskit_test_celery_app")


@pytest.fixture(scope="session")
def redis_client(redis_server: RedisServer) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_server.url)
    yield client
    client.close()


@pytest.fixture(scope="session")
def start_worker(
    worker_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Callable[..., Worker]]:
    """Start worker nodes (not waiting for them: call ``wait_ready``); all stopped at the end."""
    log_dir = tmp_path_factory.mktemp("celery-workers")
    started: list[Worker] = []

    def start(name: str, env: dict[str, str] | None = None, **options: Any) -> Worker:
        worker = Worker(name, log_dir, {**worker_env, **(env or {})}, **options)
        started.append(worker)
        return worker

    yield start
    for worker in started:
        worker.stop()


@pytest.fixture(scope="session")
def workers(start_worker: Callable[..., Worker]) -> list[Worker]:
    """Two prefork worker nodes with two pool processes each, on the default test queue."""
    nodes = [start_worker("w1"), start_worker("w2")]
    for node in nodes:
        node.wait_ready()
    return nodes


@pytest.fixture
def strict_mock(apns_mock: MockApnsServer) -> Iterator[MockApnsServer]:
    """The mock in strict mode (unregistered tokens are BadDeviceToken), reset afterwards."""
    apns_mock.clear_received()
    apns_mock.strict = True
    yield apns_mock
    apns_mock.strict = False
    apns_mock.faults.clear()


@pytest.fixture
def mock(apns_mock: MockApnsServer) -> Iterator[MockApnsServer]:
    """The mock with nothing recorded and no faults."""
    apns_mock.clear_received()
    yield apns_mock
    apns_mock.faults.clear()
