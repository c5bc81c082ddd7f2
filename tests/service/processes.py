"""Starting and stopping real worker processes for the service tests."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

ROOT = Path(__file__).resolve().parents[2]
T = TypeVar("T")


def wait_for(check: Callable[[], T], timeout: float, interval: float = 0.05, what: str = "") -> T:
    """Poll ``check`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what or check}")
        time.sleep(interval)


class GroupProcess:
    """A child in its own process group, logging to a file; stopped or killed as a group."""

    def __init__(
        self,
        command: list[str],
        env: dict[str, str],
        log_path: Path,
        cwd: Path = ROOT,
        inherit: bool = True,
    ) -> None:
        """``env`` adds to this process's environment, or is the whole of it if not ``inherit``."""
        self.log_path = log_path
        self.log = log_path.open("wb")
        self.process = subprocess.Popen(
            command,
            cwd=cwd,
            env={**os.environ, **env} if inherit else env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def kill(self) -> None:
        """SIGKILL the whole group: the main process and its children."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(10)

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.kill()
        self.log.close()


class WorkerProcess(GroupProcess):
    """``celery -A worker.make_celery worker``."""

    def __init__(self, env: dict[str, str], log_dir: Path, concurrency: int = 1) -> None:
        command = [
            sys.executable, "-m", "celery", "-A", "worker.make_celery", "worker",
            "--loglevel=INFO", f"--concurrency={concurrency}",
            "--without-gossip", "--without-mingle", "--without-heartbeat",
            "-n", f"test-{uuid.uuid4().hex[:6]}@%h",
        ]  # fmt: skip
        super().__init__(command, env, log_dir / f"worker-{uuid.uuid4().hex[:6]}.log")

    def wait_ready(self, timeout: float = 30) -> None:
        def ready() -> bool:
            if self.process.poll() is not None:
                raise AssertionError(f"worker exited early:\n{self.output()}")
            return " ready." in self.output()

        wait_for(ready, timeout, 0.1, "the worker to be ready")


class ApiProcess(GroupProcess):
    """``backprop api`` (gunicorn) on a free port, answering before this returns."""

    def __init__(self, env: dict[str, str], log_dir: Path) -> None:
        from tests.service.http import answers, free_port

        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        command = [str(Path(sys.executable).parent / "backprop"), "api", "--port", str(self.port)]
        super().__init__(command, env, log_dir / f"api-{uuid.uuid4().hex[:6]}.log")
        wait_for(lambda: answers(self.base), 30, 0.1, "the API to answer")


@contextmanager
def running_worker(env: dict[str, str], log_dir: Path) -> Iterator[WorkerProcess]:
    """A ready worker, stopped on the way out whatever happened."""
    worker = WorkerProcess(env, log_dir)
    try:
        worker.wait_ready()
        yield worker
    finally:
        worker.stop()
