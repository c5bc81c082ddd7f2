"""The embedded service the worker benchmarks run: SQLite, the filesystem broker and a
storage folder in a scratch folder, and ``backprop worker --processes P`` on them."""

from __future__ import annotations

import sys
from pathlib import Path

from store.migrate import upgrade
from store.settings import Settings
from tests.service.conftest import apply_env
from tests.service.processes import GroupProcess, wait_for


def embedded_service(data: Path, blas_threads: str = "") -> tuple[dict[str, str], Settings]:
    """The environment of an embedded service in ``data`` (migrated), and this process's
    settings pointed at it; ``blas_threads`` empty gives each process its share."""
    env = {
        "BACKPROP_DATA_DIR": str(data),
        "DATABASE_URL": f"sqlite:///{data / 'backprop.db'}",
        "BROKER_URL": "filesystem://",
        "BROKER_PREFIX": "",
        "BACKPROP_QUEUE": "training",
        "BACKPROP_STORAGE_URL": "",
        "BACKPROP_BLAS_THREADS": blas_threads,
        "BACKPROP_LOG_FORMAT": "text",
    }
    upgrade(env["DATABASE_URL"])
    return env, apply_env(env)


def start_workers(env: dict[str, str], data: Path, processes: int) -> GroupProcess:
    """``backprop worker --processes P`` on the service of ``env``, once every process
    says it is ready (the caller stops it); its log is ``data/workers.log``."""
    command = [str(Path(sys.executable).parent / "backprop"), "worker", "--processes"]
    workers = GroupProcess([*command, str(processes)], env, data / "workers.log")
    try:
        wait_for(
            lambda: workers.output().count(" ready.") == processes,
            60,
            0.1,
            "the workers to be ready",
        )
    except BaseException:
        workers.stop()
        raise
    return workers
