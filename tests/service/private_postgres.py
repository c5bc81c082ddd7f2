"""A PostgreSQL server of a test's own, so that stopping and restarting it for real
stops nobody else's databases (the machine's server on 5432 is shared).

Made with the machine's own binaries (``/usr/lib/postgresql/<version>/bin``):
``initdb`` into a temporary folder, trust authentication, listening on a free port
on 127.0.0.1. PostgreSQL refuses to run as root, so as root the commands run as
the ``postgres`` user. ``available()`` says whether this machine can do it.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import psycopg

from tests.service.http import free_port


def _bin_dir() -> Path | None:
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    return versions[-1].parent if versions else None


def available() -> bool:
    if _bin_dir() is None:
        return False
    return os.geteuid() != 0 or shutil.which("runuser") is not None


class PrivatePostgres:
    """A running server (started by the constructor); ``stop``/``start`` for real."""

    def __init__(self) -> None:
        bin_dir = _bin_dir()
        assert bin_dir is not None, "no PostgreSQL binaries on this machine"
        self.bin = bin_dir
        self.folder = Path(tempfile.mkdtemp(prefix="backprop-pg-"))
        self.port = free_port()
        if os.geteuid() == 0:
            shutil.chown(self.folder, "postgres", "postgres")
        self._run("initdb", "-D", str(self.folder / "data"), "-A", "trust", "-U", "postgres")
        self.start()

    def _run(self, program: str, *args: str) -> None:
        command = [str(self.bin / program), *args]
        if os.geteuid() == 0:
            command = ["runuser", "-u", "postgres", "--", *command]
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    @property
    def admin_url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def create_database(self, name: str) -> str:
        """A new empty database; returns its SQLAlchemy URL."""
        with psycopg.connect(self.admin_url, autocommit=True) as admin:
            admin.execute(f'CREATE DATABASE "{name}"')
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{name}"

    def start(self) -> None:
        options = f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1 -c fsync=off"
        log = str(self.folder / "server.log")
        data = str(self.folder / "data")
        self._run("pg_ctl", "-D", data, "-o", options, "-l", log, "-w", "start")

    def stop(self) -> None:
        """As a restart or a crash does to clients: every session ends, and new
        connections are refused until ``start``."""
        self._run("pg_ctl", "-D", str(self.folder / "data"), "-m", "fast", "-w", "stop")

    def remove(self) -> None:
        with contextlib.suppress(subprocess.CalledProcessError):  # already stopped
            self._run("pg_ctl", "-D", str(self.folder / "data"), "-m", "immediate", "-w", "stop")
        shutil.rmtree(self.folder, ignore_errors=True)
