"""The ``backprop`` command: run the service, its parts, migrations and API keys.

The API is started by its import string (``api:create_app()``) in a gunicorn
process, so this package never imports ``api``.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import click

from store import LOCAL_OWNER, Session, configure
from store import queries as q
from store.migrate import upgrade
from store.settings import Settings, load_settings

from . import remote


def api_command(host: str, port: int, workers: int) -> list[str]:
    # Threads per worker, so that a few open event streams do not take every worker.
    return [
        sys.executable, "-m", "gunicorn", "--workers", str(workers), "--bind", f"{host}:{port}",
        "--worker-class", "gthread", "--threads", "4", "--access-logfile", "-",
        "api:create_app()",
    ]  # fmt: skip


def prepare_metrics_dir(settings: Settings) -> None:
    """One fresh folder where all gunicorn workers keep their Prometheus counters.

    Emptied first: a new worker could reuse an old one's pid and inherit its counts.
    """
    folder = Path(os.environ.get("PROMETHEUS_MULTIPROC_DIR") or settings.data_dir / "prometheus")
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(folder)


def worker_command(concurrency: int) -> list[str]:
    return [
        sys.executable, "-m", "celery", "-A", "worker.app", "worker",
        "--loglevel=INFO", f"--concurrency={concurrency}",
    ]  # fmt: skip


@click.group()
def main() -> None:
    """backprop: train neural networks by backpropagation, serve predictions."""


@main.group()
def db() -> None:
    """Database migrations."""


@db.command("upgrade")
def db_upgrade() -> None:
    """Migrate the database at DATABASE_URL to the newest revision."""
    upgrade(load_settings().database_url)
    click.echo("database is up to date")


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=int, envvar="BACKPROP_PORT", default=8000, show_default=True)
@click.option("--workers", type=int, default=2, show_default=True)
def api(host: str, port: int, workers: int) -> None:
    """Serve the HTTP API with gunicorn (in the foreground)."""
    prepare_metrics_dir(load_settings())
    command = api_command(host, port, workers)
    os.execv(command[0], command)


@main.command()
@click.option("--concurrency", type=int, default=1, show_default=True)
def worker(concurrency: int) -> None:
    """Run a Celery worker for training jobs (in the foreground)."""
    command = worker_command(concurrency)
    os.execv(command[0], command)


@main.group()
def keys() -> None:
    """API keys: every endpoint but the health checks needs one."""


@keys.command("create")
@click.option("--owner", required=True, help="who the key's datasets, jobs and models belong to")
def keys_create(owner: str) -> None:
    """Create a key and print it (it is stored hashed and cannot be shown again)."""
    configure(load_settings().database_url)
    with Session.begin() as session:
        key = q.create_api_key(session, owner)
    click.echo(key)


@keys.command("revoke")
@click.argument("key")
def keys_revoke(key: str) -> None:
    """Revoke a key, given whole or by the prefix that `keys list` shows."""
    configure(load_settings().database_url)
    with Session.begin() as session:
        count = q.revoke_api_key(session, key)
    if count == 0:
        raise click.ClickException("no live key matches")
    click.echo(f"revoked {count} key(s)")


@keys.command("list")
def keys_list() -> None:
    """Owners and prefixes of all keys."""
    configure(load_settings().database_url)
    with Session.begin() as session:
        for row in q.list_api_keys(session):
            state = "revoked" if row.revoked_at else "live"
            click.echo(f"{row.prefix}...  {row.owner:<20} {state}")


remote.register(main)


def local_key(settings: Settings) -> str | None:
    """On first start, a key for the local owner, also saved in the data folder."""
    configure(settings.database_url)
    with Session.begin() as session:
        if q.has_api_key(session, LOCAL_OWNER):
            return None
        key = q.create_api_key(session, LOCAL_OWNER)
    path = settings.data_dir / "api-key"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(key + "\n")
    path.chmod(0o600)
    return key


class Children:
    """Child processes in their own process groups, stopped together."""

    def __init__(self) -> None:
        self.processes: dict[str, subprocess.Popen[bytes]] = {}

    def start(self, name: str, command: list[str]) -> None:
        self.processes[name] = subprocess.Popen(command, start_new_session=True)

    def exited(self) -> str | None:
        for name, process in self.processes.items():
            if process.poll() is not None:
                return name
        return None

    def stop(self, timeout: float = 20.0) -> None:
        # Each main process shuts its own children down (gunicorn's and Celery's
        # warm shutdowns); the whole group is killed only if that takes too long.
        for process in self.processes.values():
            if process.poll() is None:
                process.terminate()
        deadline = time.monotonic() + timeout
        for process in self.processes.values():
            try:
                process.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()


class Stop(Exception):
    pass


def _raise_stop(signum: int, _frame: object) -> None:
    raise Stop(signal.Signals(signum).name)


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=int, envvar="BACKPROP_PORT", default=8000, show_default=True)
def up(host: str, port: int) -> None:
    """Migrate, then run the API and one worker until Ctrl-C or SIGTERM."""
    settings = load_settings()
    # The children must agree on the data folder whatever directory they resolve it from.
    os.environ["BACKPROP_DATA_DIR"] = str(settings.data_dir)
    upgrade(settings.database_url)
    key = local_key(settings)
    click.echo(f"backprop: data in {settings.data_dir}")
    click.echo(f"backprop: database {settings.database_url.split('@')[-1]}")
    if key is not None:
        click.echo(f"backprop: API key for owner '{LOCAL_OWNER}': {key}")
        click.echo(f"backprop: (saved in {settings.data_dir / 'api-key'})")
    children = Children()
    signal.signal(signal.SIGTERM, _raise_stop)
    signal.signal(signal.SIGINT, _raise_stop)
    try:
        prepare_metrics_dir(settings)
        children.start("worker", worker_command(1))
        children.start("api", api_command(host, port, 2))
        click.echo(f"backprop: API on http://{host}:{port}  (Ctrl-C stops everything)")
        while True:
            dead = children.exited()
            if dead is not None:
                click.echo(f"backprop: the {dead} process exited; stopping", err=True)
                children.stop()
                sys.exit(1)
            time.sleep(0.2)
    except Stop as reason:
        click.echo(f"backprop: {reason}; stopping")
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        children.stop()
