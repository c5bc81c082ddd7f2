"""Memory of big request bodies: the peak RSS a request adds to an API process.

Starts `backprop api` (gunicorn, 2 workers x 4 threads) on a scratch PostgreSQL
database with a storage folder, trains a small named model (4 number columns, 3
classes) in this process, then sends each body once per repeat. Before a request
the peak-RSS mark of every gunicorn worker is reset (``/proc/<pid>/clear_refs``,
5); after it, the request's cost is ``VmHWM`` minus the ``VmRSS`` before, the
largest over the workers. The goal is a peak of at most 3x the body plus a fixed
baseline (``BASELINE_MB``): the bench prints each case against that bound, then
one JSON line.

    python -m bench.bodies [--repeats 3] [--mb 60]
"""

from __future__ import annotations

import argparse
import http.client
import io
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa  # type: ignore[import-untyped]
import pyarrow.parquet as pq  # type: ignore[import-untyped]

from store import Session
from store import queries as q
from tests.service.api_helpers import IRIS_LIKE, train_in_process
from tests.service.conftest import (
    apply_env,
    create_database,
    delete_redis_keys,
    drop_database,
    environment,
)
from tests.service.processes import ApiProcess

# What a request may cost besides 3x its body: the parser's and allocator's working
# set (pyarrow's block buffers and thread pools, the model, Flask's request).
BASELINE_MB = 64.0
NAMES = ["sepal_length", "sepal_width", "petal_length", "petal_width"]


def _status(pid: int, key: str) -> float:
    """A ``/proc/<pid>/status`` figure in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) / 1024
    raise KeyError(key)


def _workers(master: int) -> list[int]:
    children: list[int] = []
    for task in Path(f"/proc/{master}/task").iterdir():
        children += [int(p) for p in (task / "children").read_text().split()]
    return children


def _send(port: int, key: str, path: str, body: bytes, media: str) -> tuple[int, bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    try:
        headers = {"Content-Type": media, "Authorization": f"Bearer {key}"}
        connection.request("POST", path, body=body, headers=headers)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def measured(api: ApiProcess, key: str, path: str, body: bytes, media: str) -> dict[str, Any]:
    """One request: its status, seconds and the peak MB it added to a worker."""
    workers = _workers(api.process.pid)
    before = {}
    for pid in workers:
        Path(f"/proc/{pid}/clear_refs").write_text("5")  # resets VmHWM to VmRSS
        before[pid] = _status(pid, "VmRSS")
    start = time.perf_counter()
    status, answer = _send(api.port, key, path, body, media)
    seconds = time.perf_counter() - start
    peak = max(_status(pid, "VmHWM") - before[pid] for pid in workers)
    return {"status": status, "seconds": seconds, "peak_mb": peak, "answer": answer[:160]}


def _csv(rows: np.ndarray[Any, Any], header: bool = True) -> bytes:
    out = io.BytesIO()
    np.savetxt(
        out, rows, fmt="%.6f", delimiter=",", header=",".join(NAMES) if header else "", comments=""
    )
    return out.getvalue()


def bodies(mb: float) -> list[tuple[str, str, bytes, str]]:
    """(case, path template, body, media type); ``{model}`` is the model's id."""
    rng = np.random.default_rng(0)
    size = int(mb * 1e6)
    rows = rng.random((size // 36, 4))  # about 36 bytes per CSV row
    csv = _csv(rows)
    inputs = json.dumps({"inputs": np.round(rows[: size // 40], 6).tolist()}).encode()
    instances = json.dumps(
        {
            "instances": [
                dict(zip(NAMES, r, strict=True)) for r in np.round(rows[: size // 110], 6).tolist()
            ]
        }
    ).encode()
    labelled = np.concatenate([rows, rng.integers(0, 3, (len(rows), 1))], axis=1)
    upload = io.BytesIO()
    np.savetxt(
        upload,
        labelled,
        fmt=["%.6f"] * 4 + ["%d"],
        delimiter=",",
        header=",".join([*NAMES, "species"]),
        comments="",
    )
    parquet = io.BytesIO()
    wide = rng.random((size // 8 // 20, 20))
    table = pa.table(
        {f"c{i}": wide[:, i] for i in range(20)} | {"y": rng.integers(0, 2, len(wide))}
    )
    pq.write_table(table, parquet, compression="none")
    few = _csv(rows[:50_000])
    return [
        ("predict CSV, over the row limit", "/models/{model}/predict", csv, "text/csv"),
        ("predict CSV, 50,000 rows", "/models/{model}/predict", few, "text/csv"),
        ("predict JSON inputs", "/models/{model}/predict", inputs, "application/json"),
        ("predict JSON instances", "/models/{model}/predict", instances, "application/json"),
        (
            "predict Parquet",
            "/models/{model}/predict",
            parquet.getvalue(),
            "application/vnd.apache.parquet",
        ),
        ("dataset CSV upload", "/datasets?name=big&target=species", upload.getvalue(), "text/csv"),
        (
            "dataset Parquet upload",
            "/datasets?name=wide&target=y",
            parquet.getvalue(),
            "application/vnd.apache.parquet",
        ),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--mb", type=float, default=60.0, help="size of the big bodies")
    args = parser.parse_args()
    url = create_database("bench_bodies")
    folder = Path(tempfile.mkdtemp(prefix="bench-bodies-"))
    env = environment(url, "bench-bodies", folder)
    env["BACKPROP_STORAGE_URL"] = f"file://{folder}/objects"
    env["BACKPROP_MAX_BODY_BYTES"] = str(int(args.mb * 1.2e6) + (1 << 20))
    api = None
    results = []
    try:
        apply_env(env)
        with Session.begin() as session:
            key = q.create_api_key(session, "bench")
        api = ApiProcess(env, folder)
        status, answer = _send(
            api.port, key, "/datasets?name=iris&target=species", IRIS_LIKE.encode(), "text/csv"
        )
        dataset = json.loads(answer)["id"]
        status, answer = _send(
            api.port,
            key,
            "/jobs",
            json.dumps(
                {
                    "dataset_id": dataset,
                    "network": {"layers": [{"units": 3}]},
                    "training": {"epochs": 2},
                }
            ).encode(),
            "application/json",
        )
        model = train_in_process(json.loads(answer)["id"])
        small = json.dumps({"inputs": [[5.1, 3.5, 1.4, 0.2]]}).encode()
        cases = [("predict JSON, 1 row", "/models/{model}/predict", small, "application/json")]
        cases += bodies(args.mb)
        print(f"{'case':34} {'body MB':>8} {'status':>6} {'peak MB':>8} {'bound MB':>8} {'s':>6}")
        for name, path, body, media in cases:
            runs = [
                measured(api, key, path.format(model=model), body, media)
                for _ in range(args.repeats)
            ]
            body_mb = len(body) / 2**20
            # The worst run: a worker's allocator may keep an earlier request's memory,
            # and a later request then adds less on top of it.
            peak = max(run["peak_mb"] for run in runs)
            seconds = statistics.median(run["seconds"] for run in runs)
            bound = 3 * body_mb + BASELINE_MB
            result = {
                "case": name,
                "body_mb": round(body_mb, 1),
                "status": runs[0]["status"],
                "peak_mb": round(peak, 1),
                "bound_mb": round(bound, 1),
                "within": peak <= bound,
                "seconds": round(seconds, 2),
            }
            results.append(result)
            mark = "" if peak <= bound else "  OVER"
            print(
                f"{name:34} {body_mb:8.1f} {runs[0]['status']:6} {peak:8.1f} {bound:8.1f} "
                f"{seconds:6.2f}{mark}",
                flush=True,
            )
            if runs[0]["status"] >= 500:
                print("   ", runs[0]["answer"], file=sys.stderr)
    finally:
        if api is not None:
            api.stop()
        drop_database(url)
        delete_redis_keys(env["BROKER_PREFIX"])
    print(json.dumps({"baseline_mb": BASELINE_MB, "results": results}))


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    main()
