"""The `backprop` command: `up` on the embedded defaults (SQLite and a
server-less broker), end to end over HTTP, and the API key commands."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests import worked_example as worked
from tests.service.cli_process import (
    BACKPROP,
    embedded_env,
    one_line_error,
    processes_using,
    running_up,
)
from tests.service.http import answers, call, finished_job, free_port
from tests.service.processes import wait_for

SCRIPTS = Path(BACKPROP).parent
ACTIVATE_HINT = f"`. {SCRIPTS / 'activate'}` puts `backprop` on PATH"


def path_with_scripts(scripts: bool) -> dict[str, str]:
    """PATH with or without this virtualenv's scripts, as before and after activating it."""
    folders = [p for p in os.environ["PATH"].split(os.pathsep) if Path(p) != SCRIPTS]
    return {"PATH": os.pathsep.join([str(SCRIPTS)] * scripts + folders)}


def test_up_on_embedded_defaults(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    env = {**embedded_env(data_dir), **path_with_scripts(False)}
    with running_up(tmp_path, env=env) as up:
        key = (data_dir / "api-key").read_text().strip()
        assert f"API key for owner 'local': {key}" in up.log()
        assert (data_dir / "backprop.db").exists()
        # As `make run` starts it, from a virtualenv that is not active: it says how to
        # reach `backprop` from another shell.
        assert (ACTIVATE_HINT in up.log()) == (sys.prefix != sys.base_prefix)

        status, job = call(up.base, "POST", "/jobs", worked.JOB, key)
        assert status == 202, job
        done = finished_job(up.base, job["id"], key)
        assert done["status"] == "succeeded"
        assert done["loss"] == pytest.approx(worked.EPOCH_1_LOSS, abs=1e-9)
        status, out = call(
            up.base, "POST", f"/models/{done['model_id']}/predict", {"inputs": [[0.05, 0.10]]}, key
        )
        assert status == 200
        assert out["outputs"][0] == pytest.approx(worked.PREDICTION_AFTER_1, abs=1e-8)
        assert processes_using(data_dir)  # the API and worker processes


@pytest.mark.parametrize("how", [signal.SIGKILL, signal.SIGHUP])
def test_the_children_stop_when_up_dies_or_loses_its_terminal(
    tmp_path: Path, how: signal.Signals
) -> None:
    """kill -9 gives `up` no chance to stop its children (they run in sessions of their
    own); they stop by themselves, freeing the port. A hang-up stops `up` as Ctrl-C does."""
    data_dir, port = tmp_path / "data", free_port()
    with (tmp_path / "up.log").open("wb") as log:
        up = subprocess.Popen(
            [BACKPROP, "up", "--port", str(port)],
            cwd=tmp_path,
            env=embedded_env(data_dir),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{port}"
    wait_for(lambda: answers(base), 60, 0.1, "`up` to answer")
    children = [pid for pid in processes_using(data_dir) if pid != up.pid]
    assert len(children) >= 2  # the API and the worker, with their own children
    up.send_signal(how)
    code = up.wait(30)
    assert code == (-signal.SIGKILL if how == signal.SIGKILL else 0)
    wait_for(lambda: not processes_using(data_dir), 30, 0.2, "the children to exit")
    assert not answers(base)


def test_up_on_an_ipv6_host(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    with running_up(tmp_path, "--host", "::1", env=embedded_env(data_dir)) as up:
        assert up.base.startswith("http://[::1]:")
        assert f"API on {up.base}" in up.log()
        key = (data_dir / "api-key").read_text().strip()
        status, job = call(up.base, "POST", "/jobs", worked.JOB, key)
        assert status == 202, job


def test_up_shows_the_same_key_on_every_start(tmp_path: Path) -> None:
    """Started again on the same folder (named by --data-dir), `up` prints the saved key,
    and a revoked one is replaced."""
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    with running_up(tmp_path, env=embedded_env(), log="first.log") as first:
        key = (tmp_path / "data" / "api-key").read_text().strip()
        assert f"API key for owner 'local': {key}" in first.log()
    options = ("--data-dir", str(tmp_path / "data"))
    env = {**embedded_env(), **path_with_scripts(True)}
    with running_up(elsewhere, *options, env=env, log="second.log") as second:
        assert f"API key for owner 'local': {key}" in second.log()
        assert ACTIVATE_HINT not in second.log()  # `backprop` is on PATH already
        assert call(second.base, "GET", "/jobs", key=key)[0] == 200
    assert not (elsewhere / "data").exists()
    revoke = [BACKPROP, "keys", "revoke", key, "--data-dir", str(tmp_path / "data")]
    subprocess.run(revoke, env=embedded_env(), check=True, capture_output=True)
    with running_up(tmp_path, env=embedded_env(), log="third.log") as third:
        new_key = (tmp_path / "data" / "api-key").read_text().strip()
        assert new_key != key and f"API key for owner 'local': {new_key}" in third.log()
        assert call(third.base, "GET", "/jobs", key=new_key)[0] == 200


def test_up_refuses_a_port_in_use_before_starting_anything(tmp_path: Path) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        done = subprocess.run(
            [BACKPROP, "up", "--port", str(port)],
            cwd=tmp_path,
            env=embedded_env(),
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert f"port {port} on 127.0.0.1 is in use" in one_line_error(done)
    assert not (tmp_path / "data").exists()


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
    assert "no live key matches" in one_line_error(again)


@pytest.mark.parametrize("command", [["create", "--owner", "dana"], ["list"], ["revoke", "bp_x"]])
def test_key_commands_outside_the_data_folder(tmp_path: Path, command: list[str]) -> None:
    """In a folder without data/backprop.db they say so, and create no empty database."""
    done = subprocess.run(
        [BACKPROP, "keys", *command],
        cwd=tmp_path,
        env=embedded_env(),
        capture_output=True,
        text=True,
    )
    message = one_line_error(done)
    assert f"no database at {tmp_path / 'data' / 'backprop.db'}" in message
    assert "--data-dir" in message
    assert not (tmp_path / "data").exists()


def test_key_commands_name_the_data_folder(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    subprocess.run(
        [BACKPROP, "db", "upgrade", "--data-dir", str(data_dir)],
        env=embedded_env(),
        check=True,
        capture_output=True,
    )
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    created = subprocess.run(
        [BACKPROP, "keys", "create", "--owner", "erin", "--data-dir", str(data_dir)],
        cwd=elsewhere,
        env=embedded_env(),
        capture_output=True,
        text=True,
    )
    assert created.returncode == 0, created.stderr
    listed = subprocess.run(
        [BACKPROP, "keys", "list"], env=embedded_env(data_dir), capture_output=True, text=True
    )
    assert "erin" in listed.stdout and created.stdout.strip()[:10] in listed.stdout


def test_a_database_without_tables_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "backprop.db").write_bytes(b"")
    done = subprocess.run(
        [BACKPROP, "keys", "list"], cwd=tmp_path, env=embedded_env(), capture_output=True, text=True
    )
    assert "database error: no such table: api_keys" in one_line_error(done)


def test_a_database_that_does_not_answer_is_one_line(tmp_path: Path) -> None:
    url = f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/nothing"
    done = subprocess.run(
        [BACKPROP, "db", "upgrade"],
        cwd=tmp_path,
        env={**embedded_env(), "DATABASE_URL": url},
        capture_output=True,
        text=True,
    )
    assert "database error: connection failed" in one_line_error(done)


@pytest.mark.parametrize("command", [["db", "upgrade"], ["keys", "list"], ["up"]])
def test_a_bad_setting_is_one_line_naming_the_variable(tmp_path: Path, command: list[str]) -> None:
    done = subprocess.run(
        [BACKPROP, *command],
        cwd=tmp_path,
        env={**embedded_env(), "BACKPROP_LEASE_SECONDS": "abc"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    message = "backprop: BACKPROP_LEASE_SECONDS='abc': not a finite number of seconds\n"
    assert one_line_error(done) == message
    assert not (tmp_path / "data").exists()  # refused before anything was made


def test_up_refuses_a_host_it_cannot_listen_on(tmp_path: Path) -> None:
    done = subprocess.run(
        [BACKPROP, "up", "--host", "no-such-host.invalid", "--port", str(free_port())],
        cwd=tmp_path,
        env=embedded_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert "cannot listen on no-such-host.invalid:" in one_line_error(done)
    assert not (tmp_path / "data").exists()
