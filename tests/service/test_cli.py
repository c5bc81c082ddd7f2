"""The `backprop` command: `up` on the embedded defaults (SQLite and a
server-less broker), end to end over HTTP, and the API key commands."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests import worked_example as worked
from tests.service.http import answers, call, finished_job, free_port
from tests.service.processes import wait_for

BACKPROP = str(Path(sys.executable).parent / "backprop")


def embedded_env(data_dir: Path) -> dict[str, str]:
    """This machine's environment minus every service setting, plus a data folder."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("DATABASE_URL", "BROKER_URL", "BROKER_PREFIX", "BACKPROP_QUEUE")
    }
    env["BACKPROP_DATA_DIR"] = str(data_dir)
    return env


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


def test_up_on_embedded_defaults(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    port = free_port()
    log = (tmp_path / "up.log").open("wb")
    up = subprocess.Popen(
        [BACKPROP, "up", "--port", str(port)],
        cwd=tmp_path,
        env=embedded_env(data_dir),
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: up.poll() is not None or answers(base), 60, 0.1, "backprop up to answer")
        assert up.poll() is None, (tmp_path / "up.log").read_text()
        key = (data_dir / "api-key").read_text().strip()
        assert key in (tmp_path / "up.log").read_text()  # printed on first start
        assert (data_dir / "backprop.db").exists()

        status, job = call(base, "POST", "/jobs", worked.JOB, key)
        assert status == 202, job
        done = finished_job(base, job["id"], key)
        assert done["status"] == "succeeded"
        assert done["loss"] == pytest.approx(worked.EPOCH_1_LOSS, abs=1e-9)
        status, out = call(
            base, "POST", f"/models/{done['model_id']}/predict", {"inputs": [[0.05, 0.10]]}, key
        )
        assert status == 200
        assert out["outputs"][0] == pytest.approx(worked.PREDICTION_AFTER_1, abs=1e-8)
        assert processes_using(data_dir)  # the API and worker processes
    finally:
        up.send_signal(signal.SIGTERM)
        code = up.wait(60)
        log.close()
    assert code == 0, (tmp_path / "up.log").read_text()
    wait_for(lambda: not processes_using(data_dir), 20, 0.2, "every child of `up` to exit")


def test_api_key_commands(tmp_path: Path) -> None:
    env = embedded_env(tmp_path / "data")
    subprocess.run([BACKPROP, "db", "upgrade"], env=env, check=True, capture_output=True)
    created = subprocess.run(
        [BACKPROP, "keys", "create", "--owner", "dana"],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    key = created.stdout.strip()
    assert key.startswith("bp_") and len(key) > 40
    listed = subprocess.run(
        [BACKPROP, "keys", "list"], env=env, check=True, capture_output=True, text=True
    )
    assert "dana" in listed.stdout and key[:10] in listed.stdout and key not in listed.stdout
    revoked = subprocess.run(
        [BACKPROP, "keys", "revoke", key], env=env, capture_output=True, text=True
    )
    assert revoked.returncode == 0
    again = subprocess.run(
        [BACKPROP, "keys", "revoke", key], env=env, capture_output=True, text=True
    )
    assert again.returncode != 0 and "no live key" in again.stderr
