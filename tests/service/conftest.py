"""Real services for the service tests: PostgreSQL databases and Redis key
prefixes made for this test run alone, dropped afterwards.

PostgreSQL and Redis are the machine's own (127.0.0.1:5432 with trust auth,
127.0.0.1:6379); override with TEST_POSTGRES_URL / TEST_REDIS_URL.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
import pytest
import redis

from store import JobKind, JobStatus, Session, connect
from store import queries as q
from store.migrate import upgrade
from store.settings import Settings, load_settings
from tests.service.processes import ApiProcess, WorkerProcess, running_worker

POSTGRES_ADMIN = os.environ.get("TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
RUN_ID = uuid.uuid4().hex[:10]


def create_database(suffix: str, migrate: bool = True) -> str:
    """A new PostgreSQL database, migrated unless asked not to; returns its SQLAlchemy URL."""
    name = f"backprop_test_{RUN_ID}_{suffix}"
    with psycopg.connect(POSTGRES_ADMIN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    base = POSTGRES_ADMIN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://", 1)
    url = f"{base}/{name}"
    if migrate:
        upgrade(url)
    return url


def drop_database(url: str) -> None:
    from store.db import _engines

    engine = _engines.pop(url, None)
    if engine is not None:
        engine.dispose()
    name = url.rsplit("/", 1)[1]
    with psycopg.connect(POSTGRES_ADMIN, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def delete_redis_keys(prefix: str) -> int:
    client = redis.Redis.from_url(REDIS_URL)
    keys = list(client.scan_iter(match=f"{prefix}*"))
    if keys:
        client.delete(*keys)
    return len(keys)


def environment(database_url: str, namespace: str, data_dir: Path) -> dict[str, str]:
    """Environment variables for API and worker processes using these services."""
    return {
        "BACKPROP_DATA_DIR": str(data_dir),
        "DATABASE_URL": database_url,
        "BROKER_URL": REDIS_URL,
        "BROKER_PREFIX": f"backprop-test-{RUN_ID}-{namespace}:",
        "BACKPROP_QUEUE": f"training-{RUN_ID}-{namespace}",
        # PostgreSQL runs keep stored bytes in the database, so the embedded runs (a
        # local folder) and these test both backends under the same scenarios.
        "BACKPROP_STORAGE_URL": "database://",
    }


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A fresh, migrated PostgreSQL database for this run."""
    url = create_database("main")
    yield url
    drop_database(url)


@pytest.fixture(scope="session")
def service_env(
    postgres_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, str]]:
    """Environment variables for API and worker processes of this run."""
    env = environment(postgres_url, "main", tmp_path_factory.mktemp("data"))
    yield env
    delete_redis_keys(env["BROKER_PREFIX"])


def apply_env(env: dict[str, str]) -> Settings:
    """Point this process's settings and store at ``env``; returns the settings."""
    os.environ.update(env)
    settings = load_settings()
    connect(settings)
    return settings


@contextmanager
def bound(env: dict[str, str]) -> Iterator[Settings]:
    """This process's settings and store pointed at ``env`` for the block, restored after."""
    saved = {key: os.environ.get(key) for key in env}
    previous_bind = Session.kw.get("bind")
    try:
        yield apply_env(env)
    finally:
        Session.configure(bind=previous_bind)
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def sqlite_env(data_dir: Path) -> dict[str, str]:
    """The embedded deployment in ``data_dir``: a migrated SQLite file, the filesystem
    broker and a storage folder."""
    url = f"sqlite:///{data_dir / 'backprop.db'}"
    upgrade(url)
    return {
        "BACKPROP_DATA_DIR": str(data_dir),
        "DATABASE_URL": url,
        "BROKER_URL": "filesystem://",
        "BACKPROP_STORAGE_URL": (data_dir / "objects").as_uri(),
        "BROKER_PREFIX": "",
        "BACKPROP_QUEUE": "training",
    }


@pytest.fixture(scope="session")
def service_settings(service_env: dict[str, str]) -> Iterator[Settings]:
    """Settings of this run, with the process environment set to match."""
    saved = {key: os.environ.get(key) for key in service_env}
    settings = apply_env(service_env)
    yield settings
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@pytest.fixture(scope="module")
def worker(
    service_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[WorkerProcess]:
    """A real worker process on this run's database and queue, for one test module."""
    with running_worker(service_env, tmp_path_factory.mktemp("worker")) as process:
        yield process


def cancel_unfinished(owner: str) -> None:
    """Cancel the owner's queued and running jobs, so that none outlives its module and
    keeps the next module's worker busy (a running one stops at its next epoch)."""
    with Session.begin() as session:
        for status in (JobStatus.QUEUED, JobStatus.RUNNING):
            for job in q.list_jobs(session, owner=owner, status=status, limit=10_000):
                q.request_cancel(session, job, stop_reason="cancelled")
            for job in q.list_jobs(
                session, owner=owner, status=status, limit=10_000, kind=JobKind.PREDICTION
            ):
                q.request_cancel(session, job, stop_reason="cancelled")


@pytest.fixture(scope="module")
def live_api(
    service_env: dict[str, str],
    service_settings: Settings,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[str, str]]:
    """A real `backprop api` process and worker for one module: (base URL, API key)."""
    logs = tmp_path_factory.mktemp("live")
    with running_worker(service_env, logs):
        api = ApiProcess(service_env, logs)
        try:
            with Session.begin() as session:
                key = q.create_api_key(session, "live")
            yield api.base, key
        finally:
            cancel_unfinished("live")
            api.stop()
