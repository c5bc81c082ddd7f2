"""Recovery benchmark: how soon a running job trains again after the database returns.

One worker (PostgreSQL + Redis, the service's default lease, requeue and reconcile
periods) trains a job; this benchmark's own database is stopped for 2.5 s and then
for 12 s (connections refused and sessions terminated: the shared server keeps
running), and the clock runs from each return to the job's next stored epoch. The
goal is under 5 s; before the worker retried its writes the job failed at the first
stop. Prints a table and, last, one JSON line.

    python -m bench.recovery [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from store import JobStatus, Session
from store import queries as q
from tests.service.conftest import create_database, delete_redis_keys, drop_database, environment
from tests.service.processes import WorkerProcess, wait_for
from tests.service.test_faults import (
    LONG,
    last_epoch,
    outcome,
    stop_postgres,
    submit,
    using,
)

STOPS = (2.5, 12.0)


def one_round(index: int) -> dict[str, Any]:
    url = create_database(f"bench_recovery_{index}")
    with tempfile.TemporaryDirectory(prefix="bench-recovery-") as folder:
        env = environment(url, f"bench-recovery-{index}", Path(folder))
        env["BACKPROP_LOG_FORMAT"] = "text"
        worker = None
        try:
            with using(env) as settings:
                worker = WorkerProcess(env, Path(folder))
                worker.wait_ready()
                [job_id] = submit(settings, {**LONG, "time_limit": 8})
                wait_for(lambda: last_epoch(job_id) > 0, 60, what="the job to train")
                recovered = []
                for seconds in STOPS:
                    before = last_epoch(job_id)
                    stop_postgres(url, seconds)
                    back = time.monotonic()
                    wait_for(lambda before=before: last_epoch(job_id) > before, 120, 0.02)
                    recovered.append(time.monotonic() - back)

                def ended() -> bool:
                    with Session.begin() as session:
                        job = q.get_job(session, job_id)
                        return job is not None and job.status.finished

                wait_for(ended, 120, 0.1)
                end = outcome(job_id)
        finally:
            if worker is not None:
                worker.stop()
            delete_redis_keys(env["BROKER_PREFIX"])
            drop_database(url)
    return {
        "recover_2_5s": recovered[0],
        "recover_12s": recovered[1],
        "succeeded": end["status"] == JobStatus.SUCCEEDED,
        "attempts": end["attempt"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    rounds = [one_round(i) for i in range(args.repeats)]
    print(f"{'round':>5} {'after 2.5 s stop':>17} {'after 12 s stop':>16} {'ok':>4} {'att':>4}")
    for i, r in enumerate(rounds):
        print(
            f"{i:>5} {r['recover_2_5s']:>15.2f} s {r['recover_12s']:>14.2f} s"
            f" {str(r['succeeded']):>4} {r['attempts']:>4}"
        )
    summary = {
        "median_recover_2_5s": statistics.median(r["recover_2_5s"] for r in rounds),
        "median_recover_12s": statistics.median(r["recover_12s"] for r in rounds),
        "succeeded": sum(r["succeeded"] for r in rounds),
        "rounds": len(rounds),
    }
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
