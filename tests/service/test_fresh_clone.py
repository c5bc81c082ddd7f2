"""The user's path from a fresh clone, as the README tells it.

`git clone` of this repository into a temporary folder, `make run` there (which
makes its own virtualenv and starts the service on the embedded defaults), the
README's walk-through and command-line sections pasted into a shell, a long job,
Ctrl-C to the terminal's process group, `make run` again: the interrupted job
finishes with every epoch recorded once.

The clone holds what is committed (HEAD), as CI's clone does.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select

from store import Epoch, JobStatus
from store.settings import ENV_NAMES
from tests import worked_example as worked
from tests.service.http import answers, call, finished_job, free_port
from tests.service.processes import ROOT, wait_for
from tests.service.test_readme import run_blocks
from tests.service.test_restart import EPOCHS, checkpoint_epoch, database, job_row

pytestmark = pytest.mark.skipif(
    not (ROOT / ".git").exists(), reason="needs the repository's git history to clone"
)


@pytest.fixture(scope="module")
def clone(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("fresh") / "backprop"
    subprocess.run(["git", "clone", "--quiet", str(ROOT), str(folder)], check=True)
    return folder


class MakeRun:
    """`make run` in the clone, in a process group of its own as a terminal would run it."""

    def __init__(self, clone: Path, env: dict[str, str], port: int) -> None:
        self.base = f"http://127.0.0.1:{port}"
        self.log = clone / "make-run.log"
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                ["make", "run"],
                cwd=clone,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        # The first start makes the virtualenv and installs the project.
        wait_for(lambda: self._alive() and answers(self.base), 600, 0.2, "`make run` to answer")

    def _alive(self) -> bool:
        if self.process.poll() is not None:
            raise AssertionError(f"make run exited:\n{self.log.read_text()[-3000:]}")
        return True

    def ctrl_c(self) -> float:
        """SIGINT to the whole foreground group, as a terminal sends it; seconds to exit."""
        started = time.monotonic()
        os.killpg(self.process.pid, signal.SIGINT)
        self.process.wait(60)
        return time.monotonic() - started


@pytest.fixture
def user_env(clone: Path) -> Iterator[dict[str, str]]:
    """A user's shell: none of this test run's service settings, the port of the README
    changed to a free one (BACKPROP_PORT), `backprop` on PATH as after activating."""
    env = {k: v for k, v in os.environ.items() if k not in ENV_NAMES.values()}
    env.pop("VIRTUAL_ENV", None)
    env["BACKPROP_PORT"] = str(free_port())
    env["BACKPROP_CHECKPOINT_SECONDS"] = "0.5"
    yield env


def test_make_run_walk_through_ctrl_c_and_make_run_again(
    clone: Path, user_env: dict[str, str]
) -> None:
    port = int(user_env["BACKPROP_PORT"])
    first = MakeRun(clone, user_env, port)
    try:
        key = (clone / "data" / "api-key").read_text().strip()
        shell = {
            **user_env,
            "BACKPROP_URL": first.base,
            "PATH": f"{clone / '.venv' / 'bin'}{os.pathsep}{user_env['PATH']}",
        }
        printed = run_blocks(clone, port, shell)
        assert any('"labels":["setosa","virginica"]' in output for output in printed)

        status, job = call(first.base, "POST", "/jobs", worked.job(EPOCHS), key)
        assert status == 202, job
        engine = database({"BACKPROP_DATA_DIR": str(clone / "data")})
        wait_for(lambda: checkpoint_epoch(engine, job["id"]), 60, 0.05, "a checkpoint")
        seconds = first.ctrl_c()
    finally:
        if first.process.poll() is None:
            os.killpg(first.process.pid, signal.SIGKILL)
    print(f"\n[make run] Ctrl-C to exit while the job trains: {seconds:.2f} s")
    assert seconds < 5, first.log.read_text()[-3000:]
    assert job_row(engine, job["id"]).status == JobStatus.QUEUED  # given back

    second = MakeRun(clone, user_env, port)
    try:
        finished = finished_job(second.base, job["id"], key, timeout=180)
        assert finished["status"] == "succeeded", finished
        second.ctrl_c()
    finally:
        if second.process.poll() is None:
            os.killpg(second.process.pid, signal.SIGKILL)
    with engine.connect() as connection:
        count, distinct = connection.execute(
            select(func.count(), func.count(func.distinct(Epoch.epoch))).where(
                Epoch.job_id == job["id"]
            )
        ).one()
    engine.dispose()
    assert count == distinct == EPOCHS
