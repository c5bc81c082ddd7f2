"""Real services for the service tests: a PostgreSQL database and a Redis key
prefix made for this test run alone, dropped afterwards.

PostgreSQL and Redis are the machine's own (127.0.0.1:5432 with trust auth,
127.0.0.1:6379); override with TEST_POSTGRES_URL / TEST_REDIS_URL.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
import redis

from settings import Settings, load_settings
from store import configure
from store.migrate import upgrade

POSTGRES_ADMIN = os.environ.get("TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
RUN_ID = uuid.uuid4().hex[:10]


def _sqlalchemy_url(libpq_url: str, database: str) -> str:
    base = libpq_url.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://", 1)
    return f"{base}/{database}"


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A fresh, migrated PostgreSQL database for this run."""
    name = f"backprop_test_{RUN_ID}"
    with psycopg.connect(POSTGRES_ADMIN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = _sqlalchemy_url(POSTGRES_ADMIN, name)
    upgrade(url)
    yield url
    from store.db import _engines

    for engine in _engines.values():
        engine.dispose()
    with psycopg.connect(POSTGRES_ADMIN, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def redis_prefix() -> Iterator[str]:
    """A key prefix that only this run's broker messages use; its keys are deleted after."""
    prefix = f"backprop-test-{RUN_ID}:"
    yield prefix
    client = redis.Redis.from_url(REDIS_URL)
    keys = list(client.scan_iter(match=f"{prefix}*"))
    if keys:
        client.delete(*keys)


@pytest.fixture(scope="session")
def service_env(
    postgres_url: str, redis_prefix: str, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, str]:
    """Environment variables for API and worker processes of this run."""
    data_dir: Path = tmp_path_factory.mktemp("data")
    return {
        "BACKPROP_DATA_DIR": str(data_dir),
        "DATABASE_URL": postgres_url,
        "BROKER_URL": REDIS_URL,
        "BROKER_PREFIX": redis_prefix,
        "BACKPROP_QUEUE": f"training-{RUN_ID}",
    }


@pytest.fixture(scope="session")
def service_settings(service_env: dict[str, str]) -> Iterator[Settings]:
    """Settings of this run, with the process environment set to match."""
    saved = {key: os.environ.get(key) for key in service_env}
    os.environ.update(service_env)
    settings = load_settings()
    configure(settings.database_url)
    yield settings
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
