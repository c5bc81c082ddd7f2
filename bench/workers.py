"""Workers benchmark: jobs per minute with 1 and with 2 worker processes on one host.

Eight compute-bound training jobs (a 100-64-2 network on 20,000 rows) are queued at
once; the clock runs from the first job queued to the last one finished. The
workers are started by `backprop worker --processes P`, which limits each process
to its share of the host's BLAS threads (cores // P). Embedded backends: SQLite,
the filesystem broker and the local-folder object store, in a scratch data folder
per round. Prints a table and, last, one JSON line.

    python -m bench.workers [--repeats 3] [--jobs 8] [--epochs 60]
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

import numpy as np

from store import JobStatus, Session
from store import queries as q
from tests.service.api_helpers import store_arrays
from tests.service.processes import wait_for
from worker.app import make_celery
from worker.queue import enqueue_training
from worker.threads import host_cores

from .embedded import embedded_service, start_workers

NETWORK = {
    "input_dim": 100,
    "layers": [{"units": 64, "activation": "relu"}, {"units": 2, "activation": "softmax"}],
}


def training(epochs: int) -> dict[str, Any]:
    return {
        "epochs": epochs,
        "batch_size": 64,
        "optimizer": {"name": "adam", "learning_rate": 0.001},
        "loss": "categorical_crossentropy",
        "validation_split": 0.1,
        "seed": 1,
    }


def rows() -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(20_000, 100))
    classes = (x @ rng.normal(size=100) > 0).astype(int)
    return x, np.eye(2)[classes]


def one_round(processes: int, jobs: int, epochs: int) -> dict[str, Any]:
    """Queue ``jobs`` jobs for ``processes`` worker processes; time them all."""
    with tempfile.TemporaryDirectory(prefix="bench-workers-") as folder:
        data = Path(folder)
        env, settings = embedded_service(data)
        x, t = rows()
        with Session.begin() as session:
            dataset = store_arrays(session, "bench", x, t)
        workers = start_workers(env, data, processes)
        try:
            app = make_celery(settings)
            start = time.perf_counter()
            job_ids = []
            for _ in range(jobs):
                with Session.begin() as session:
                    job_ids.append(q.add_job(session, dataset, NETWORK, training(epochs)).id)
                enqueue_training(job_ids[-1], app)

            def all_finished() -> bool:
                with Session.begin() as session:
                    return all(q.get_job(session, i).status.finished for i in job_ids)  # type: ignore[union-attr]

            wait_for(all_finished, 1800, 0.05, "every job to finish")
            elapsed = time.perf_counter() - start
            with Session.begin() as session:
                statuses = [q.get_job(session, i).status for i in job_ids]  # type: ignore[union-attr]
            assert statuses == [JobStatus.SUCCEEDED] * jobs, workers.output()
            threads = [
                line.split("BLAS threads per call ", 1)[1].split(" ", 1)[0]
                for line in workers.output().splitlines()
                if "BLAS threads per call" in line
            ]
        finally:
            workers.stop()
    return {
        "processes": processes,
        "seconds": elapsed,
        "jobs_per_minute": jobs / elapsed * 60,
        "blas_threads": threads,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--jobs", type=int, default=8)
    parser.add_argument("--epochs", type=int, default=60)
    args = parser.parse_args()
    os.environ.setdefault("BACKPROP_LOG_FORMAT", "text")

    results: dict[int, list[dict[str, Any]]] = {1: [], 2: []}
    for _ in range(args.repeats):
        for processes in (1, 2):
            result = one_round(processes, args.jobs, args.epochs)
            results[processes].append(result)
            print(
                f"  round: {processes} process(es): {result['seconds']:.1f} s, "
                f"{result['jobs_per_minute']:.1f} jobs/min, BLAS threads {result['blas_threads']}",
                file=sys.stderr,
            )

    median = {p: statistics.median(r["jobs_per_minute"] for r in results[p]) for p in results}
    ratio = median[2] / median[1]
    print(f"{args.jobs} jobs of a 100-64-2 network, 20,000 rows, {args.epochs} epochs each")
    print(f"host cores: {host_cores()}; embedded backends (SQLite, filesystem broker, folder)")
    print(f"{'worker processes':<18}{'BLAS threads each':>18}{'jobs/min (median)':>20}{'runs':>28}")
    for p in (1, 2):
        runs = ", ".join(f"{r['jobs_per_minute']:.1f}" for r in results[p])
        threads = results[p][0]["blas_threads"][0]
        print(f"{p:<18}{threads:>18}{median[p]:>20.1f}{runs:>28}")
    print(f"ratio 2/1: {ratio:.2f}x (goal at least 1.8x)")
    print(
        json.dumps(
            {
                "bench": "workers",
                "jobs": args.jobs,
                "epochs": args.epochs,
                "cores": host_cores(),
                "backends": "sqlite+filesystem+folder",
                "jobs_per_minute_1": round(median[1], 2),
                "jobs_per_minute_2": round(median[2], 2),
                "runs_1": [round(r["jobs_per_minute"], 2) for r in results[1]],
                "runs_2": [round(r["jobs_per_minute"], 2) for r in results[2]],
                "ratio": round(ratio, 3),
                "goal_ratio": 1.8,
            }
        )
    )


if __name__ == "__main__":
    main()
