"""Service benchmark: recording overhead, queue latency and predict throughput.

Starts real processes -- gunicorn (2 workers) for the API and a Celery worker --
first on Redis + PostgreSQL (a scratch database and key prefix, dropped after),
then on the embedded defaults (SQLite + filesystem broker) for queue latency.
Prints a table and, last, one JSON line.

    python -m bench.service [--repeats 5]
"""

from __future__ import annotations

import argparse
import http.client
import io
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

import core
from store import Session, configure
from store import queries as q
from tests import worked_example as worked
from tests.service.conftest import create_database, delete_redis_keys, drop_database, environment
from tests.service.processes import ROOT, WorkerProcess, wait_for

WORKED = worked.job(10_000)


class Api:
    """A gunicorn server for ``api:create_app()`` and a tiny HTTP client for it."""

    def __init__(self, env: dict[str, str], log_dir: Path, key: str, workers: int = 2) -> None:
        self.key = key
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.log = (log_dir / "gunicorn.log").open("wb")
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gunicorn",
                "-w",
                str(workers),
                "-b",
                f"127.0.0.1:{self.port}",
                "api:create_app()",
            ],
            cwd=ROOT,
            env={**os.environ, **env},
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        wait_for(self._up, 30, 0.1, "gunicorn to answer")

    def _up(self) -> bool:
        try:
            return self.request("GET", "/healthz")[0] == 200
        except OSError:
            return False

    def request(
        self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None
    ) -> tuple[int, bytes]:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=120)
        try:
            payload = body if isinstance(body, bytes | None) else json.dumps(body).encode()
            sent = {
                "Content-Type": "application/json",
                "Authorization": f"Bearer {self.key}",
                **(headers or {}),
            }
            connection.request(method, path, body=payload, headers=sent)
            response = connection.getresponse()
            return response.status, response.read()
        finally:
            connection.close()

    def json(self, method: str, path: str, body: Any = None) -> Any:
        status, data = self.request(method, path, body)
        if status >= 400:
            raise RuntimeError(f"{method} {path} -> {status}: {data[:300]!r}")
        return json.loads(data)

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            self.process.wait(15)
        self.log.close()


def api_key(database_url: str) -> str:
    configure(database_url)
    with Session.begin() as session:
        return q.create_api_key(session, "bench")


@contextmanager
def stack(env: dict[str, str], log_dir: Path, key: str) -> Any:
    worker = WorkerProcess(env, log_dir)
    api = None
    try:
        worker.wait_ready()
        api = Api(env, log_dir, key)
        yield api
    finally:
        if api is not None:
            api.stop()
        worker.stop()


def wait_done(api: Api, job_id: int, poll: float = 0.005) -> dict[str, Any]:
    while True:
        job = api.json("GET", f"/jobs/{job_id}")
        if job["status"] in ("succeeded", "failed", "cancelled"):
            return job  # type: ignore[no-any-return]
        time.sleep(poll)


def seconds_between(start: str, end: str) -> float:
    return (datetime.fromisoformat(end) - datetime.fromisoformat(start)).total_seconds()


def recording_overhead(api: Api, repeats: int) -> dict[str, Any]:
    engine, service = [], []
    x, t = np.array(worked.INPUTS), np.array(worked.TARGETS)
    for _ in range(repeats):
        started = time.perf_counter()
        core.train(worked.NETWORK, WORKED["training"], x, t)
        engine.append(time.perf_counter() - started)
        started = time.perf_counter()
        job = api.json("POST", "/jobs", WORKED)
        done = wait_done(api, job["id"])
        service.append(time.perf_counter() - started)
        assert done["status"] == "succeeded" and done["epochs_completed"] == 10_000, done
    e, s = statistics.median(engine), statistics.median(service)
    return {
        "engine_s": e,
        "service_s": s,
        "bound_s": 1.3 * e + 0.5,
        "ok": s <= 1.3 * e + 0.5,
        "model_id": done["model_id"],
    }


def queue_latency(api: Api, jobs: int) -> float:
    body = worked.job(1)
    latencies = []
    for _ in range(jobs):
        done = wait_done(api, api.json("POST", "/jobs", body)["id"], poll=0.02)
        latencies.append(seconds_between(done["created_at"], done["started_at"]))
    return statistics.median(latencies)


def load(
    api: Api, method: str, path: str, body: bytes | None, clients: int, seconds: float
) -> dict[str, float]:
    """``clients`` threads sending requests back to back for ``seconds``."""
    latencies: list[float] = []
    lock = threading.Lock()
    deadline = time.perf_counter() + seconds

    def client() -> None:
        mine = []
        while time.perf_counter() < deadline:
            started = time.perf_counter()
            status, _ = api.request(method, path, body)
            assert status == 200, status
            mine.append(time.perf_counter() - started)
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=client) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    latencies.sort()
    return {
        "rps": len(latencies) / seconds,
        "p50_ms": 1000 * latencies[len(latencies) // 2],
        "p99_ms": 1000 * latencies[int(len(latencies) * 0.99)],
    }


def large_model(api: Api) -> int:
    rng = np.random.default_rng(0)
    n = 512
    labels = rng.integers(0, 10, n)
    body = {
        "dataset": {
            "inputs": rng.random((n, 784)).round(4).tolist(),
            "targets": np.eye(10)[labels].tolist(),
        },
        "network": {
            "input_dim": 784,
            "layers": [
                {"units": 256, "activation": "relu"},
                {"units": 128, "activation": "relu"},
                {"units": 10, "activation": "softmax"},
            ],
        },
        "training": {
            "epochs": 1,
            "dtype": "float32",
            "batch_size": 128,
            "optimizer": {"name": "sgd", "learning_rate": 0.01, "momentum": 0.9},
        },
    }
    done = wait_done(api, api.json("POST", "/jobs", body)["id"])
    assert done["status"] == "succeeded", done
    return int(done["model_id"])


def batch_predict(api: Api, model_id: int, repeats: int) -> dict[str, float]:
    weights = api.json("GET", f"/models/{model_id}/weights")
    model = core.Model.from_json(weights)
    x = np.random.default_rng(1).random((10_000, 784), dtype=np.float32)
    buffer = io.BytesIO()
    np.save(buffer, x, allow_pickle=False)
    payload = buffer.getvalue()
    headers = {"Content-Type": "application/x-npy", "Accept": "application/x-npy"}
    engine, service = [], []
    for _ in range(repeats):
        started = time.perf_counter()
        expected = model.predict(x)
        engine.append(time.perf_counter() - started)
        started = time.perf_counter()
        status, data = api.request("POST", f"/models/{model_id}/predict", payload, headers)
        service.append(time.perf_counter() - started)
        assert status == 200, data[:300]
        got = np.load(io.BytesIO(data), allow_pickle=False)
        np.testing.assert_allclose(got, expected, rtol=1e-5)
    e, s = statistics.median(engine), statistics.median(service)
    return {"engine_rows_per_s": 10_000 / e, "service_rows_per_s": 10_000 / s, "ratio": e / s}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--load-seconds", type=float, default=5.0)
    args = parser.parse_args()
    results: dict[str, Any] = {}

    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        url = create_database("bench")
        env = environment(url, "bench", tmp_path)
        try:
            with stack(env, tmp_path, api_key(url)) as api:
                rec = recording_overhead(api, args.repeats)
                results["recording"] = rec
                results["queue_latency_redis_ms"] = 1000 * queue_latency(api, 20)
                single = json.dumps({"inputs": [[0.05, 0.10]]}).encode()
                health = load(api, "GET", "/healthz", None, 8, args.load_seconds)
                predict = load(
                    api, "POST", f"/models/{rec['model_id']}/predict", single, 8, args.load_seconds
                )
                results["predict_single"] = {
                    "healthz": health,
                    "predict": predict,
                    "ratio": predict["rps"] / health["rps"],
                }
                results["predict_batch"] = batch_predict(api, large_model(api), args.repeats)
        finally:
            delete_redis_keys(env["BROKER_PREFIX"])
            drop_database(url)

        embedded = {"BACKPROP_DATA_DIR": str(tmp_path / "embedded")}
        clean = {
            k: v
            for k, v in os.environ.items()
            if k not in ("DATABASE_URL", "BROKER_URL", "BROKER_PREFIX")
        }
        os.environ.clear()
        os.environ.update(clean)
        from store.migrate import upgrade

        sqlite_url = f"sqlite:///{tmp_path / 'embedded' / 'backprop.db'}"
        upgrade(sqlite_url)
        with stack(embedded, tmp_path, api_key(sqlite_url)) as api:
            results["queue_latency_embedded_ms"] = 1000 * queue_latency(api, 10)

    rec, single, batch = results["recording"], results["predict_single"], results["predict_batch"]
    rows = [
        ("worked example, 10,000 epochs: engine alone", f"{rec['engine_s']:.3f} s", ""),
        (
            "  through the service (submit -> succeeded)",
            f"{rec['service_s']:.3f} s",
            f"<= {rec['bound_s']:.3f} s",
        ),
        (
            "queue latency submit -> running, Redis",
            f"{results['queue_latency_redis_ms']:.1f} ms",
            "<= 50 ms",
        ),
        ("queue latency, embedded", f"{results['queue_latency_embedded_ms']:.1f} ms", "<= 250 ms"),
        ("GET /healthz, 8 clients", f"{single['healthz']['rps']:.0f} req/s", ""),
        (
            "single-row predict, 8 clients",
            f"{single['predict']['rps']:.0f} req/s, p99 {single['predict']['p99_ms']:.1f} ms",
            ">= 0.6x healthz, p99 <= 20 ms",
        ),
        ("batch predict 10,000 x 784: engine", f"{batch['engine_rows_per_s']:.0f} rows/s", ""),
        (
            "  through the service (.npy)",
            f"{batch['service_rows_per_s']:.0f} rows/s",
            ">= 0.7x engine",
        ),
    ]
    for name, value, target in rows:
        print(f"{name:<48} {value:>34}  {target}")
    summary = {
        "recording_engine_s": rec["engine_s"],
        "recording_service_s": rec["service_s"],
        "recording_ok": rec["ok"],
        "queue_latency_redis_ms": results["queue_latency_redis_ms"],
        "queue_latency_embedded_ms": results["queue_latency_embedded_ms"],
        "predict_vs_healthz": single["ratio"],
        "predict_p99_ms": single["predict"]["p99_ms"],
        "batch_predict_vs_engine": batch["ratio"],
    }
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
