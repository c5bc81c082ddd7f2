"""The ``backprop`` command: run the service, its parts, migrations and API keys.

The API is started by its import string (``api:create_app()``) in a gunicorn
process, so this package never imports ``api``.
"""

from __future__ import annotations

import ctypes
import errno
import importlib.util
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
from sqlalchemy.engine import make_url

from store import LOCAL_OWNER, Session, connect
from store import queries as q
from store.migrate import upgrade
from store.settings import ENV_NAMES, Settings, load_settings
from worker.threads import host_cores, threads_per_call

from . import remote
from .errors import Failure, Reporting


def address(host: str, port: int) -> str:
    """``host:port``, with an IPv6 host in brackets as gunicorn and URLs want it."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def api_command(host: str, port: int, workers: int) -> list[str]:
    """gunicorn serving the API with gevent workers.

    An open event stream (``GET /jobs/<id>/events``, up to BACKPROP_SSE_SECONDS)
    is then a greenlet waiting for its job's next epochs, not one of a few
    threads: hundreds of streams leave every other request its turn. Everything
    the API does waits on sockets gevent patches (psycopg 3 >= 3.1.14 waits
    through gevent by itself, redis-py, boto3) or on short file and CPU work.
    The price: a request that computes for long holds its worker's other
    requests until it is done, so the heartbeat timeout is long (a large upload
    parses for minutes) rather than gunicorn's 30 s. The request limits and the
    JSON pages of the requests gunicorn refuses itself are in api/gunicorn_conf.py.
    No control socket: gunicorn's default one is shared by every instance on the
    host, and closing it costs about a second of every stop.
    """
    return [
        sys.executable, "-m", "gunicorn", "--config", str(_gunicorn_conf()),
        "--workers", str(workers), "--bind", address(host, port), "--no-control-socket",
        "--worker-class", "gevent", "--worker-connections", "1000", "--timeout", "600",
        "--access-logfile", "-",
        "api:create_app()",
    ]  # fmt: skip


def _gunicorn_conf() -> Path:
    # Found without importing api (this package never does).
    spec = importlib.util.find_spec("api")
    assert spec is not None and spec.submodule_search_locations
    return Path(list(spec.submodule_search_locations)[0]) / "gunicorn_conf.py"


def prepare_metrics_dir(settings: Settings) -> None:
    """One fresh folder where all gunicorn workers keep their Prometheus counters.

    Emptied first: a new worker could reuse an old one's pid and inherit its counts.
    """
    folder = Path(os.environ.get("PROMETHEUS_MULTIPROC_DIR") or settings.data_dir / "prometheus")
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(folder)


def worker_command(concurrency: int, name: str | None = None) -> list[str]:
    """``name``: the Celery node name, which each process on one host needs its own of."""
    return [
        sys.executable, "-m", "celery", "-A", "worker.make_celery", "worker",
        "--loglevel=INFO", f"--concurrency={concurrency}",
        *(["-n", name] if name else []),
    ]  # fmt: skip


@click.group(cls=Reporting)
def main() -> None:
    """backprop: train neural networks by backpropagation, serve predictions."""


def _set_data_dir(_ctx: click.Context, _param: click.Parameter, value: Path | None) -> None:
    if value is not None:
        os.environ[ENV_NAMES["data_dir"]] = str(value.resolve())


def with_data_dir(command: Callable[..., Any]) -> Callable[..., Any]:
    """--data-dir, which stands for BACKPROP_DATA_DIR in this command's settings."""
    option = click.option(
        "--data-dir",
        type=click.Path(file_okay=False, path_type=Path),
        callback=_set_data_dir,
        expose_value=False,
        is_eager=True,
        help="where the embedded defaults keep their files (or BACKPROP_DATA_DIR; ./data)",
    )
    return option(command)


def existing_database() -> None:
    """Point the store at the configured database, which must exist already.

    Opening a missing SQLite file would create an empty one, and a key stored
    there would open nothing: the user is most likely in the wrong folder.
    """
    settings = load_settings()
    url = make_url(settings.database_url)
    if url.get_backend_name() == "sqlite" and not Path(url.database or "").is_file():
        raise Failure(
            f"no database at {url.database}; run this in the folder that holds the data folder "
            "of `backprop up`, or name it with --data-dir (or BACKPROP_DATA_DIR, DATABASE_URL)"
        )
    connect(settings)


@main.group()
def db() -> None:
    """Database migrations."""


@db.command("upgrade")
@with_data_dir
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
@click.option(
    "--concurrency",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="jobs one process runs at once (threads); they share its BLAS threads",
)
@click.option(
    "--processes",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="worker processes to run on this host, dividing its cores among them",
)
def worker(concurrency: int, processes: int) -> None:
    """Run Celery workers for training jobs (in the foreground).

    Each process limits its BLAS threads so that together they do not run more
    threads than the host has cores: cores // (processes x concurrency) per
    matrix product, at least 1, unless BACKPROP_BLAS_THREADS says otherwise.
    """
    if processes == 1:
        command = worker_command(concurrency)
        os.execv(command[0], command)
    settings = load_settings()
    threads = threads_per_call(host_cores(), processes * concurrency, settings.blas_threads)
    # Each process's own share of the cores, as the explicit setting it reads.
    os.environ[ENV_NAMES["blas_threads"]] = str(threads)
    os.environ[ENV_NAMES["data_dir"]] = str(settings.data_dir)
    click.echo(
        f"backprop: {processes} worker processes x {concurrency} jobs, "
        f"{threads} BLAS thread(s) per matrix product each"
    )
    children = Children()
    for stop_signal in STOP_SIGNALS:
        signal.signal(stop_signal, _raise_stop)
    try:
        for number in range(1, processes + 1):
            # Celery's warm shutdown: running jobs are checkpointed and queued again.
            name = f"worker{number}-{os.getpid()}@{socket.gethostname()}"
            children.start(f"worker {number}", worker_command(concurrency, name), signal.SIGTERM)
        supervise(children)
    except Stop as reason:
        stop_all(children, reason)


@main.group()
def keys() -> None:
    """API keys: every endpoint but the health checks needs one."""


@keys.command("create")
@click.option("--owner", required=True, help="who the key's datasets, jobs and models belong to")
@with_data_dir
def keys_create(owner: str) -> None:
    """Create a key and print it (it is stored hashed and cannot be shown again)."""
    existing_database()
    with Session.begin() as session:
        key = q.create_api_key(session, owner)
    click.echo(key)


@keys.command("revoke")
@click.argument("key")
@with_data_dir
def keys_revoke(key: str) -> None:
    """Revoke a key, given whole or by the prefix that `keys list` shows."""
    existing_database()
    with Session.begin() as session:
        count = q.revoke_api_key(session, key)
    if count == 0:
        raise Failure("no live key matches")
    click.echo(f"revoked {count} key(s)")


@keys.command("list")
@with_data_dir
def keys_list() -> None:
    """Owners and prefixes of all keys."""
    existing_database()
    with Session.begin() as session:
        for row in q.list_api_keys(session):
            state = "revoked" if row.revoked_at else "live"
            click.echo(f"{row.prefix}...  {row.owner:<20} {state}")


remote.register(main)


def local_key(settings: Settings) -> str:
    """The local owner's key, kept in the data folder: made on first start, read after.

    A key file that is gone, or whose key was revoked, is replaced by a new key.
    """
    connect(settings)
    path = settings.data_dir / "api-key"
    saved = path.read_text().strip() if path.is_file() else ""
    with Session.begin() as session:
        if saved and q.owner_of_key(session, saved) == LOCAL_OWNER:
            return saved
        key = q.create_api_key(session, LOCAL_OWNER)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(key + "\n")
    path.chmod(0o600)
    return key


def check_port(host: str, port: int) -> None:
    """Refuse, in one line and before anything starts, an address gunicorn could not bind."""
    try:
        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
        with socket.socket(family) as probe:
            # As gunicorn does: a port whose old connections linger in TIME_WAIT is free.
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind((host, port))
    except OSError as error:
        if error.errno == errno.EADDRINUSE:
            raise Failure(
                f"port {port} on {host} is in use; stop what holds it or pick another --port"
            ) from None
        raise Failure(f"cannot listen on {host}:{port}: {error.strerror or error}") from None


def activate_hint() -> str | None:
    """How to put `backprop` on PATH, when it runs from a virtualenv that is not active."""
    scripts = Path(sys.executable).parent
    on_path = shutil.which("backprop")
    if sys.prefix == sys.base_prefix or (on_path and Path(on_path).parent == scripts):
        return None
    return f"in another shell, `. {scripts / 'activate'}` puts `backprop` on PATH"


class Children:
    """Child processes in their own process groups, stopped together.

    Each is started with the signal that stops it gracefully and quickly, and is
    given ``STOP_SECONDS`` to exit before its whole group is killed.
    """

    # A running job is given back at its next epoch boundary, normally within
    # moments, and an idle worker on the filesystem broker needs about 4 s (its
    # polling loop); a job whose epoch takes longer than this is killed and
    # resumes from its last checkpoint once its lease expires.
    STOP_SECONDS = 10.0

    def __init__(self) -> None:
        self.processes: dict[str, tuple[subprocess.Popen[bytes], signal.Signals]] = {}

    def start(self, name: str, command: list[str], stop_signal: signal.Signals) -> None:
        process = subprocess.Popen(
            command, start_new_session=True, preexec_fn=_dies_with_parent(stop_signal)
        )
        self.processes[name] = (process, stop_signal)

    def exited(self) -> str | None:
        for name, (process, _) in self.processes.items():
            if process.poll() is not None:
                return name
        return None

    def stop(self, timeout: float = STOP_SECONDS) -> None:
        # Each main process shuts its own children down; the whole group is
        # killed only if that takes too long.
        for process, stop_signal in self.processes.values():
            if process.poll() is None:
                process.send_signal(stop_signal)
        deadline = time.monotonic() + timeout
        for process, _ in self.processes.values():
            try:
                process.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()


# prctl(2): the signal a process gets when the thread that started it dies.
PR_SET_PDEATHSIG = 1


def _dies_with_parent(stop_signal: signal.Signals) -> Callable[[], None]:
    """A ``preexec_fn`` that has the child sent ``stop_signal`` when `backprop up` dies.

    The children run in sessions of their own (a terminal's Ctrl-C must reach only
    `up`, which stops them in order), so nothing else would stop them if `up` were
    killed outright (kill -9) or lost its terminal: they would keep the port and
    the queue. Linux only; elsewhere the children outlive such a death.
    """
    parent = os.getpid()

    def arrange() -> None:
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(PR_SET_PDEATHSIG, int(stop_signal))
        except (OSError, AttributeError):
            return
        if os.getppid() != parent:  # `up` died before prctl took effect
            os.kill(os.getpid(), stop_signal)

    return arrange


class Stop(Exception):
    pass


STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def _raise_stop(signum: int, _frame: object) -> None:
    raise Stop(signal.Signals(signum).name)


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=int, envvar="BACKPROP_PORT", default=8000, show_default=True)
@with_data_dir
def up(host: str, port: int) -> None:
    """Migrate, then run the API and one worker until Ctrl-C, SIGTERM or SIGHUP."""
    check_port(host, port)
    settings = load_settings()
    # The children must agree on the data folder whatever directory they resolve it from.
    os.environ["BACKPROP_DATA_DIR"] = str(settings.data_dir)
    upgrade(settings.database_url)
    key = local_key(settings)
    click.echo(f"backprop: data in {settings.data_dir}")
    click.echo(f"backprop: database {settings.database_url.split('@')[-1]}")
    click.echo(f"backprop: API key for owner '{LOCAL_OWNER}': {key}")
    click.echo(f"backprop: (saved in {settings.data_dir / 'api-key'})")
    hint = activate_hint()
    if hint is not None:
        click.echo(f"backprop: {hint}")
    children = Children()
    # SIGHUP: the terminal that ran `up` has gone.
    for stop_signal in STOP_SIGNALS:
        signal.signal(stop_signal, _raise_stop)
    try:
        prepare_metrics_dir(settings)
        # Celery's warm shutdown: the running job is checkpointed and queued again.
        children.start("worker", worker_command(1), signal.SIGTERM)
        # gunicorn's quick shutdown: requests are short, and event streams would
        # hold a graceful one for their whole life (clients reconnect).
        children.start("api", api_command(host, port, 2), signal.SIGINT)
        click.echo(f"backprop: API on http://{address(host, port)}  (Ctrl-C stops everything)")
        supervise(children)
    except Stop as reason:
        stop_all(children, reason)


def supervise(children: Children) -> None:
    """Wait until a stop signal (raising Stop); if a child exits first, stop the
    others and exit with status 1."""
    while True:
        dead = children.exited()
        if dead is not None:
            click.echo(f"backprop: the {dead} process exited; stopping", err=True)
            children.stop()
            sys.exit(1)
        time.sleep(0.2)


def stop_all(children: Children, reason: Stop) -> None:
    click.echo(f"backprop: {reason}; stopping")
    for stop_signal in STOP_SIGNALS:
        signal.signal(stop_signal, signal.SIG_IGN)
    children.stop()
