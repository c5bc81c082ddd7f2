"""The `backprop` command run as a new user runs it: `up` in a folder of its own
on the embedded defaults (SQLite and the server-less broker under ./data), and
what every failing command must look like."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from cli import address
from tests.service.http import answers, free_port
from tests.service.processes import wait_for

BACKPROP = str(Path(sys.executable).parent / "backprop")


def embedded_env(data_dir: Path | None = None) -> dict[str, str]:
    """This machine's environment minus every service setting, plus a data folder if given."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("DATABASE_URL", "BROKER_URL", "BROKER_PREFIX")
        and not k.startswith("BACKPROP_")
    }
    if data_dir is not None:
        env["BACKPROP_DATA_DIR"] = str(data_dir)
    return env


def one_line_error(done: subprocess.CompletedProcess[str], status: int = 1) -> str:
    """The message of a command that failed as every CLI error must: one line on stderr
    and a non-zero exit status (2, as click has it, for a command line that does not parse)."""
    assert done.returncode == status, (done.stdout, done.stderr)
    assert done.stderr.startswith("backprop: ") and done.stderr.count("\n") == 1, done.stderr
    return done.stderr


def processes_using(data_dir: Path) -> list[int]:
    """Live processes whose environment names this data folder."""
    marker = f"BACKPROP_DATA_DIR={data_dir}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if marker in (entry / "environ").read_bytes().split(b"\0"):
                found.append(int(entry.name))
        except OSError:
            continue
    return found


@dataclass
class Up:
    base: str
    port: int
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


@contextmanager
def running_up(
    folder: Path, *options: str, env: dict[str, str], log: str = "up.log"
) -> Iterator[Up]:
    """`backprop up --port <free> OPTIONS` run in ``folder``, answering until the block ends.

    It must then stop on SIGTERM with exit status 0 and take its children along.
    """
    port = free_port()
    log_path = folder / log
    with log_path.open("wb") as out:
        up = subprocess.Popen(
            [BACKPROP, "up", "--port", str(port), *options],
            cwd=folder,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        host = options[options.index("--host") + 1] if "--host" in options else "127.0.0.1"
        running = Up(f"http://{address(host, port)}", port, log_path)
        try:
            wait_for(
                lambda: up.poll() is not None or answers(running.base), 60, 0.1, "`up` to answer"
            )
            assert up.poll() is None, running.log()
            yield running
        finally:
            up.send_signal(signal.SIGTERM)
            code = up.wait(60)
    assert code == 0, running.log()
    data_dir = Path(running.log().split("backprop: data in ", 1)[1].split("\n", 1)[0])
    wait_for(lambda: not processes_using(data_dir), 20, 0.2, "every child of `up` to exit")
