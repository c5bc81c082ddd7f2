"""Event-stream benchmark: latency of /healthz and single-row predict with 0 and with
200 open ``GET /jobs/<id>/events`` streams.

Starts the API as ``backprop api`` starts it (``cli.api_command``: gunicorn, 2 gevent
workers) on PostgreSQL + Redis (a scratch database and key prefix, dropped after)
with one Celery worker, which trains a long job throughout (in both phases, so
that they differ only by the streams). 150 streams follow that running job, 50 a
job queued behind it, across 10 API keys. Each round measures, one request after
another on a keep-alive connection, ``--requests`` of each kind without streams,
then opens the 200 streams, waits until every one has answered, and measures
again. Prints the median over rounds of each p99 (and median), then one JSON line.

    python -m bench.streams [--rounds 5] [--requests 200] [--streams 200]
    python -m bench.streams --loss-png 1000000   # GET loss.png and /curve of a long job

``--server gthread --streams 0`` runs the previous configuration (2 workers x 4
threads) for comparison without streams (with them, its requests wait minutes).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from cli import api_command
from store import Session, configure
from store import queries as q
from tests import worked_example as worked
from tests.service.conftest import create_database, delete_redis_keys, drop_database, environment
from tests.service.http import call, finished_job
from tests.service.processes import GroupProcess, WorkerProcess, wait_for
from tests.service.stream_swarm import Client, Swarm, p99, slow_job, timed

KEYS = 10


def start_api(env: dict[str, str], log_dir: Path, port: int, server: str) -> GroupProcess:
    command = api_command("127.0.0.1", port, 2)
    if server == "gthread":  # as before: threads, not greenlets
        at = command.index("--worker-class")
        command[at : at + 6] = ["--worker-class", "gthread", "--threads", "4"]
    prometheus = log_dir / "prometheus"
    prometheus.mkdir(exist_ok=True)
    api = GroupProcess(
        command, {**env, "PROMETHEUS_MULTIPROC_DIR": str(prometheus)}, log_dir / "api.log"
    )
    base = f"http://127.0.0.1:{port}"
    wait_for(lambda: _answers(base), 30, 0.1, "the API to answer")
    return api


def _answers(base: str) -> bool:
    try:
        return call(base, "GET", "/healthz")[0] == 200
    except OSError:
        return False


def _errors(log: Path) -> str:
    """The API log's error lines and tracebacks (the log is gone with the folder)."""
    lines = log.read_text(errors="replace").splitlines()
    return "\n".join(line for line in lines if "ERROR" in line or "Error" in line)[-5000:]


def measure(port: int, key: str, model_id: int, requests: int) -> dict[str, list[float]]:
    health, predictor = Client(port), Client(port, key)
    row = json.dumps({"inputs": worked.INPUTS}).encode()

    def ok(answer: tuple[int, bytes]) -> None:
        if answer[0] != 200:
            raise RuntimeError(f"answered {answer[0]}: {answer[1][:200]!r}")

    try:
        return {
            "healthz": timed(lambda: ok(health.call("GET", "/healthz")), requests),
            "predict": timed(
                lambda: ok(predictor.call("POST", f"/models/{model_id}/predict", row)), requests
            ),
        }
    finally:
        health.close()
        predictor.close()


def loss_png_cost(epochs: int) -> None:
    """CPU seconds and peak memory of GET /jobs/<id>/loss.png and /curve on a job of
    ``epochs`` epochs (written by PostgreSQL itself), in this process."""
    import resource

    from sqlalchemy import text

    from api import create_app
    from store.settings import load_settings

    url = create_database("bench_loss_png")
    env = environment(url, "bench-loss-png", Path(tempfile.mkdtemp()))
    try:
        os.environ.update(env)
        app = create_app(load_settings())
        with Session.begin() as session:
            key = q.create_api_key(session, "bench")
        client = app.test_client()
        client.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {key}"
        job = client.post("/jobs", json={**worked.job(epochs)}).json
        assert job is not None
        with Session.begin() as session:
            session.execute(
                text(
                    "INSERT INTO epochs (job_id, epoch, loss, learning_rate, grad_norm, seconds) "
                    "SELECT :job, g, 1.0 / g, 0.1, 1.0, 0.0 FROM generate_series(1, :n) AS g"
                ),
                {"job": job["id"], "n": epochs},
            )
        client.get(f"/jobs/{job['id']}/loss.png")  # matplotlib's import and first figure
        for path in ("loss.png", "curve", "curve?points=10000"):
            before_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
            cpu, wall = time.process_time(), time.perf_counter()
            response = client.get(f"/jobs/{job['id']}/{path}")
            cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
            peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before_rss
            assert response.status_code == 200
            print(
                f"GET /jobs/<id>/{path} on {epochs:,} epochs: {wall:.3f} s, {cpu:.3f} s CPU, "
                f"peak RSS +{peak / 1024:.1f} MB, {len(response.data):,} bytes"
            )
        client.post(f"/jobs/{job['id']}/cancel")
    finally:
        delete_redis_keys(env["BROKER_PREFIX"])  # the job's message
        drop_database(url)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--streams", type=int, default=200)
    parser.add_argument("--server", choices=("gevent", "gthread"), default="gevent")
    parser.add_argument(
        "--loss-png", type=int, metavar="EPOCHS", help="measure loss.png and /curve instead"
    )
    args = parser.parse_args()
    if args.loss_png:
        loss_png_cost(args.loss_png)
        return
    from tests.service.http import free_port

    results: dict[str, dict[str, list[float]]] = {
        phase: {"healthz_p99": [], "predict_p99": [], "healthz_median": [], "predict_median": []}
        for phase in ("idle", "streams")
    }
    with tempfile.TemporaryDirectory() as tmp:
        log_dir = Path(tmp)
        url = create_database("bench_streams")
        env = environment(url, "bench-streams", log_dir)
        os.environ.update(env)
        configure(url)
        with Session.begin() as session:
            keys = [q.create_api_key(session, "bench") for _ in range(KEYS + 1)]
        worker = WorkerProcess(env, log_dir)
        api = None
        try:
            worker.wait_ready()
            port = free_port()
            api = start_api(env, log_dir, port, args.server)
            base = f"http://127.0.0.1:{port}"
            model_job = call(base, "POST", "/jobs", worked.job(1), keys[0])[1]
            model_id = finished_job(base, model_job["id"], keys[0])["model_id"]
            running = call(base, "POST", "/jobs", slow_job(), keys[0])[1]["id"]
            wait_for(
                lambda: (
                    call(base, "GET", f"/jobs/{running}", key=keys[0])[1]["status"] == "running"
                ),
                60,
                0.1,
            )
            queued = call(base, "POST", "/jobs", slow_job(), keys[0])[1]["id"]
            on_running = args.streams * 3 // 4
            for number in range(args.rounds):
                for phase in ("idle", "streams"):
                    swarm = Swarm(port)
                    try:
                        if phase == "streams":
                            opened = [
                                swarm.open(
                                    f"/jobs/{running if i < on_running else queued}/events",
                                    keys[i % KEYS],
                                )
                                for i in range(args.streams)
                            ]
                            swarm.wait_answered(opened, 120)
                            statuses = {s.status for s in opened}
                            if opened and statuses != {200}:
                                failed = next(s for s in opened if s.status != 200)
                                raise RuntimeError(
                                    f"streams answered {statuses}: {failed.head[:600]!r}\n"
                                    + _errors(log_dir / "api.log")
                                )
                            time.sleep(1)  # every stream caught up and waiting on the poller
                        times = measure(port, keys[KEYS], model_id, args.requests)
                    finally:
                        swarm.close()
                    for kind, values in times.items():
                        results[phase][f"{kind}_p99"].append(p99(values))
                        results[phase][f"{kind}_median"].append(statistics.median(values))
                    print(
                        f"round {number + 1} {phase:<8} "
                        f"healthz p99 {p99(times['healthz']):6.1f} ms  "
                        f"predict p99 {p99(times['predict']):6.1f} ms",
                        file=sys.stderr,
                    )
            for job in (running, queued):
                call(base, "POST", f"/jobs/{job}/cancel", key=keys[0])
        finally:
            if api is not None:
                api.stop()
            worker.stop()
            delete_redis_keys(env["BROKER_PREFIX"])
            drop_database(url)

    summary: dict[str, Any] = {"server": args.server, "streams": args.streams}
    print(
        f"server: {args.server}, 2 workers; {args.requests} requests of each kind per phase; "
        f"median of {args.rounds} rounds"
    )
    print(f"{'':<26}{'healthz p99':>14}{'predict p99':>14}{'healthz p50':>14}{'predict p50':>14}")
    for phase, label in (("idle", "0 open streams"), ("streams", f"{args.streams} open streams")):
        medians = {name: statistics.median(values) for name, values in results[phase].items()}
        summary[phase] = medians
        print(
            f"{label:<26}"
            + "".join(
                f"{medians[name]:>11.1f} ms"
                for name in ("healthz_p99", "predict_p99", "healthz_median", "predict_median")
            )
        )
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
