"""Large-data benchmark: uploads, a training epoch and a batch prediction over a
million rows, through a live service on the embedded defaults.

Starts gunicorn (the API) and one Celery worker on SQLite, the filesystem
broker and a storage folder, all in a scratch data folder, and measures:

- uploads of a 1,000,000 x 100 float32 Parquet table and of a 200,000 x 20 CSV,
  over HTTP, against pyarrow reading the same bytes alone (goal: at least 0.5x);
- one training epoch of a 100-64-2 float32 network on the million rows: its time,
  and the worker's peak memory (VmHWM) against 2x the array plus the idle worker;
- a batch prediction job over the million rows, end to end (POST to succeeded),
  in rows/s against the engine's own predict on the same stored rows (goal 0.8x).

Jobs per minute with 1 and 2 worker processes: ``python -m bench.workers``.

Prints a table and, last, one JSON line.

    python -m bench.data [--rows 1000000] [--repeats 3]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import tempfile
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.csv as pcsv
import pyarrow.parquet as pq

import core
from bench.ingest import make_csv
from bench.service import Api, api_key, stack
from store import Session, connect, storage
from store import queries as q
from store.migrate import upgrade
from store.settings import load_settings
from worker.frames import dataset_frame

FEATURES = 100
NETWORK = {
    "input_dim": FEATURES,
    "layers": [{"units": 64, "activation": "relu"}, {"units": 2, "activation": "softmax"}],
}
TRAINING = {
    "epochs": 1,
    "batch_size": 128,
    "dtype": "float32",
    "loss": "categorical_crossentropy",
    "optimizer": {"name": "adam", "learning_rate": 0.001},
    "seed": 0,
}


def parquet_body(rows: int, seed: int = 0) -> bytes:
    """``FEATURES`` float32 columns and a 0/1 class column ``label``."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((rows, FEATURES), dtype=np.float32)
    columns = {f"f{j}": x[:, j] for j in range(FEATURES)}
    columns["label"] = (x[:, :5].sum(axis=1) > 0).astype(np.int8)
    sink = io.BytesIO()
    pq.write_table(pa.table(columns), sink)
    return sink.getvalue()


def timed(run: Any) -> tuple[float, Any]:
    started = time.perf_counter()
    value = run()
    return time.perf_counter() - started, value


def upload(api: Api, path: str, body: bytes, media: str) -> tuple[float, dict[str, Any]]:
    seconds, (status, data) = timed(
        lambda: api.request("POST", path, body, {"Content-Type": media})
    )
    if status != 201:
        raise RuntimeError(f"upload -> {status}: {data[:300]!r}")
    return seconds, json.loads(data)


def wait(api: Api, path: str, poll: float = 0.01) -> dict[str, Any]:
    while True:
        answer = api.json("GET", path)
        if answer["status"] in ("succeeded", "failed", "cancelled"):
            return answer  # type: ignore[no-any-return]
        time.sleep(poll)


def vm_hwm_mb(pid: int) -> float:
    """Peak resident memory of a process so far (VmHWM), in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM")


class RssSampler(threading.Thread):
    """The resident memory of a process every 20 ms, with the time of each sample."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid = pid
        self.samples: list[tuple[float, float]] = []
        self.done = threading.Event()
        self.start()

    def run(self) -> None:
        while not self.done.wait(0.02):
            self.samples.append((time.time(), vm_rss_mb(self.pid)))

    def stop(self) -> None:
        self.done.set()
        self.join()


def vm_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    rows, repeats = args.rows, args.repeats

    folder = Path(tempfile.mkdtemp(prefix="backprop-bench-data-"))
    env = {
        "BACKPROP_DATA_DIR": str(folder),
        "DATABASE_URL": f"sqlite:///{folder / 'backprop.db'}",
        "BROKER_URL": "filesystem://",
        "BACKPROP_STORAGE_URL": (folder / "objects").as_uri(),
        "BACKPROP_LOG_FORMAT": "text",
    }
    os.environ.update(env)
    upgrade(env["DATABASE_URL"])
    key = api_key(env["DATABASE_URL"])
    connect(load_settings())
    results: dict[str, Any] = {"rows": rows}

    big = parquet_body(rows)
    csv = make_csv(200_000)
    with stack(env, folder, key) as api:
        worker_pid = _worker_pid(folder)
        # The baseline: the worker after a small job has loaded what any job loads.
        _, small = upload(
            api,
            "/datasets?name=small&target=label&categorical=label",
            parquet_body(1_000, seed=1),
            "application/vnd.apache.parquet",
        )
        warm = api.json(
            "POST", "/jobs", {"dataset_id": small["id"], "network": NETWORK, "training": TRAINING}
        )
        wait(api, f"/jobs/{warm['id']}")
        idle_mb = vm_rss_mb(worker_pid)

        # --- uploads, interleaved with pyarrow alone on the same bytes
        parquet_ours, parquet_arrow, csv_ours, csv_arrow = [], [], [], []
        dataset = None
        for round_ in range(repeats):
            seconds, answer = upload(
                api,
                "/datasets?name=big&target=label&categorical=label",
                big,
                "application/vnd.apache.parquet",
            )
            parquet_ours.append(seconds)
            if dataset is None:
                dataset = answer
            else:
                api.request("DELETE", f"/datasets/{answer['id']}")
            parquet_arrow.append(timed(lambda: pq.read_table(pa.BufferReader(big)))[0])
            seconds, answer = upload(api, "/datasets?name=csv&target=count", csv, "text/csv")
            csv_ours.append(seconds)
            api.request("DELETE", f"/datasets/{answer['id']}")
            csv_arrow.append(timed(lambda: pcsv.read_csv(pa.BufferReader(csv)))[0])
            del round_
        assert dataset is not None
        med = statistics.median
        results["parquet_upload_s"] = med(parquet_ours)
        results["parquet_pyarrow_s"] = med(parquet_arrow)
        results["parquet_ratio"] = med(parquet_arrow) / med(parquet_ours)
        results["parquet_mb"] = len(big) / 1e6
        results["csv_upload_s"] = med(csv_ours)
        results["csv_pyarrow_s"] = med(csv_arrow)
        results["csv_ratio"] = med(csv_arrow) / med(csv_ours)
        results["csv_mb"] = len(csv) / 1e6

        # --- one training epoch on the million rows
        # Admission designs the job on the stored table (splits, preprocessing fit).
        results["submit_s"], job = timed(
            lambda: api.json(
                "POST",
                "/jobs",
                {"dataset_id": dataset["id"], "network": NETWORK, "training": TRAINING},
            )
        )
        sampler = RssSampler(worker_pid)
        done = wait(api, f"/jobs/{job['id']}")
        sampler.stop()
        if done["status"] != "succeeded":
            raise RuntimeError(f"training failed: {done['error']}")
        epochs = api.json("GET", f"/jobs/{job['id']}/epochs")["epochs"]
        array_mb = rows * FEATURES * 4 / 2**20
        results["epoch_s"] = epochs[0]["seconds"]
        results["job_s"] = _between(done["started_at"], done["finished_at"])
        results["worker_idle_mb"] = idle_mb
        results["worker_peak_mb"] = vm_hwm_mb(worker_pid)
        # While the epoch ran: the samples of its last seconds before the job finished.
        end = datetime.fromisoformat(done["finished_at"]).timestamp()
        during = [mb for t, mb in sampler.samples if end - epochs[0]["seconds"] <= t <= end]
        results["worker_epoch_mb"] = max(during) if during else None
        results["array_mb"] = array_mb
        results["rss_bound_mb"] = 2 * array_mb + idle_mb
        model_id = done["model_id"]

        # --- batch prediction against the engine's own predict on the same rows
        with Session.begin() as session:
            row = q.get_dataset(session, dataset["id"])
            model_row = q.get_model(session, model_id)
            assert row is not None and model_row is not None
        model = core.Model.from_bytes(storage().read(model_row.weights_key))
        frame = dataset_frame(row)
        engine, service = [], []
        for _ in range(repeats):
            engine.append(timed(lambda: model.predict(frame))[0])
            seconds, answer = timed(
                lambda: wait(
                    api,
                    "/predictions/"
                    + str(
                        api.json(
                            "POST",
                            f"/models/{model_id}/predictions",
                            {"dataset_id": dataset["id"]},
                        )["id"]
                    ),
                )
            )
            if answer["status"] != "succeeded":
                raise RuntimeError(f"prediction failed: {answer['error']}")
            service.append(seconds)
        results["engine_rows_per_s"] = rows / med(engine)
        results["batch_rows_per_s"] = rows / med(service)
        results["batch_ratio"] = med(engine) / med(service)

    print_table(results)
    print(json.dumps(results))


def _worker_pid(folder: Path) -> int:
    """The Celery worker's process id: the one started with this data folder."""
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().split(b"\0")
            environ = (proc / "environ").read_bytes()
        except OSError:
            continue
        if b"celery" in b" ".join(cmdline) and str(folder).encode() in environ:
            return int(proc.name)
    raise RuntimeError("worker process not found")


def _between(start: str, end: str) -> float:
    return (datetime.fromisoformat(end) - datetime.fromisoformat(start)).total_seconds()


def print_table(r: dict[str, Any]) -> None:
    lines = [
        (
            "upload, Parquet",
            f"{r['rows']:,} x {FEATURES} float32 ({r['parquet_mb']:.0f} MB)",
            f"{r['parquet_upload_s']:.2f} s",
            f"pyarrow {r['parquet_pyarrow_s']:.2f} s",
            f"{r['parquet_ratio']:.2f}x (goal 0.5x)",
        ),
        (
            "upload, CSV",
            f"200,000 x 20 ({r['csv_mb']:.0f} MB)",
            f"{r['csv_upload_s']:.2f} s",
            f"pyarrow {r['csv_pyarrow_s']:.2f} s",
            f"{r['csv_ratio']:.2f}x (goal 0.5x)",
        ),
        (
            "one epoch 100-64-2",
            f"{r['rows']:,} rows, batch 128",
            f"{r['epoch_s']:.2f} s",
            f"job {r['job_s']:.2f} s",
            "",
        ),
        ("POST /jobs", "admission on the stored table", f"{r['submit_s']:.2f} s", "", ""),
        (
            "worker RSS during the epoch",
            f"baseline {r['worker_idle_mb']:.0f} MB",
            f"{r['worker_epoch_mb']:.0f} MB",
            f"bound {r['rss_bound_mb']:.0f} MB",
            "the encoded rows + baseline",
        ),
        (
            "worker peak RSS (set-up)",
            f"baseline {r['worker_idle_mb']:.0f} MB",
            f"{r['worker_peak_mb']:.0f} MB",
            f"bound {r['rss_bound_mb']:.0f} MB",
            "the mapped table + the encoded rows",
        ),
        (
            "batch prediction",
            f"{r['rows']:,} rows",
            f"{r['batch_rows_per_s']:,.0f} rows/s",
            f"engine {r['engine_rows_per_s']:,.0f} rows/s",
            f"{r['batch_ratio']:.2f}x (goal 0.8x)",
        ),
    ]
    widths = [max(len(str(line[i])) for line in lines) for i in range(5)]
    for line in lines:
        print("  ".join(str(cell).ljust(w) for cell, w in zip(line, widths, strict=True)))


if __name__ == "__main__":
    main()
