"""Sweeps benchmark: what ASHA pruning saves on a real search, and what it costs.

scikit-learn's bundled digits (1,797 8x8 images, 10 classes) are uploaded as a
dataset; two sweeps of 24 trials, 2 at once, at most 100 epochs each, search the
learning rate, the hidden layer's width and the batch size for the best validation
accuracy: one pruned by ASHA (the service's default settings), one unpruned. Both
use the `random` sampler with the same seed, and a seeded sampler draws trial n
with seed + n, so both sweeps train the same 24 parameter sets: the pruned one
differs only in the trials it stopped early. Each trial holds out 20% of the rows
for validation and 20% for the test accuracy of its model.

Reported: the epochs the pruned sweep trained as a share of the unpruned one's
(goal at most 40%), the test accuracy of each sweep's best trial (goal: the pruned
within 1 point of the unpruned), and each sweep's wall time with 1 and with 2
worker processes (`backprop worker --processes P`; each with its share of the
cores' BLAS threads unless --blas-threads says otherwise). Embedded backends (SQLite,
the filesystem broker, a storage folder) in a scratch folder per run. Prints a
table and, last, one JSON line.

    python -m bench.sweeps [--trials 24] [--epochs 100] [--processes 1,2] [--blas-threads N]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from sklearn.datasets import load_digits  # type: ignore[import-untyped]

ROOT = Path(__file__).resolve().parents[1]
# The sweep of examples/digits-sweep.json, the README's example.
SPEC: dict[str, Any] = json.loads((ROOT / "examples" / "digits-sweep.json").read_text())


def digits_csv() -> str:
    digits = load_digits()
    names = [f"pixel_{i}" for i in range(digits.data.shape[1])]
    lines = [",".join([*names, "digit"])]
    for row, label in zip(digits.data, digits.target, strict=True):
        lines.append(",".join([*(f"{v:g}" for v in row), f"d{label}"]))
    return "\n".join(lines) + "\n"


def one_sweep(
    pruner: str, processes: int, trials: int, epochs: int, blas_threads: str = ""
) -> dict[str, Any]:
    """Run one sweep on ``processes`` worker processes; its epochs, best trial, time."""
    # The test helpers need pytest: imported here, so that `--csv` runs in a service's
    # own environment (`make run`), where the README's example uses it.
    from store import Session, TrainedModel
    from tests.service.api_helpers import client_for
    from tests.service.processes import wait_for

    from .embedded import embedded_service, start_workers

    with tempfile.TemporaryDirectory(prefix="bench-sweeps-") as folder:
        data = Path(folder)
        env, settings = embedded_service(data, blas_threads)
        client = client_for(settings, owner="bench")
        answer = client.post(
            "/datasets?name=digits&target=digit",
            data=digits_csv(),
            content_type="text/csv",
        )
        assert answer.status_code == 201, answer.json
        dataset_id = answer.json["id"]  # type: ignore[index]
        workers = start_workers(env, data, processes)
        try:
            spec = json.loads(json.dumps(SPEC))
            spec["training"]["epochs"] = epochs
            body = {**spec, "dataset_id": dataset_id, "pruner": pruner, "trials": trials}
            start = time.perf_counter()
            answer = client.post("/sweeps", json=body)
            assert answer.status_code == 202, answer.json
            sweep_id = answer.json["id"]  # type: ignore[index]

            def ended() -> dict[str, Any] | None:
                sweep: dict[str, Any] = client.get(f"/sweeps/{sweep_id}").json  # type: ignore[assignment]
                return sweep if sweep["status"] in ("succeeded", "failed", "cancelled") else None

            sweep = wait_for(ended, 3600, 0.2, "the sweep to end")
            elapsed = time.perf_counter() - start
            assert sweep["status"] == "succeeded", (sweep, workers.output()[-3000:])
            with Session.begin() as session:
                accuracy = {
                    row.job_id: (row.metrics or {}).get("accuracy")
                    for row in session.query(TrainedModel)
                }
        finally:
            workers.stop()
    trials_out = sweep["trials"]
    best = sweep["best"]
    return {
        "pruner": pruner,
        "processes": processes,
        "seconds": elapsed,
        "epochs": sum(t["epochs_completed"] for t in trials_out),
        "pruned": sum(t["state"] == "pruned" for t in trials_out),
        "best_val_accuracy": best["value"],
        "best_test_accuracy": accuracy[best["job_id"]],
        "best_params": best["params"],
        "top_test_accuracy": max(a for a in accuracy.values() if a is not None),
        "params": [t["params"] for t in trials_out],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=24)
    parser.add_argument("--epochs", type=int, default=100)
    parser.add_argument("--processes", default="1,2")
    parser.add_argument(
        "--blas-threads",
        default="",
        help="BACKPROP_BLAS_THREADS of the workers (default: each process's share of the cores)",
    )
    parser.add_argument("--csv", type=Path, help="only write the digits as a CSV file here")
    args = parser.parse_args()
    if args.csv is not None:
        args.csv.write_text(digits_csv())
        return
    from worker.threads import host_cores

    os.environ.setdefault("BACKPROP_LOG_FORMAT", "text")
    counts = [int(p) for p in args.processes.split(",")]

    runs: dict[tuple[str, int], dict[str, Any]] = {}
    for processes in counts:
        for pruner in ("asha", "none"):
            run = one_sweep(pruner, processes, args.trials, args.epochs, args.blas_threads)
            runs[pruner, processes] = run
            print(
                f"  {pruner:>5}, {processes} process(es): {run['seconds']:.1f} s, "
                f"{run['epochs']} epochs, {run['pruned']} pruned, best val "
                f"{run['best_val_accuracy']:.4f} test {run['best_test_accuracy']:.4f}",
                file=sys.stderr,
            )
    first = counts[0]
    pruned, full = runs["asha", first], runs["none", first]
    assert pruned["params"] == full["params"], "both sweeps drew the same parameter sets"
    share = pruned["epochs"] / full["epochs"]
    gap = (full["best_test_accuracy"] - pruned["best_test_accuracy"]) * 100
    print(
        f"digits, {args.trials} trials (2 at once), at most {args.epochs} epochs, "
        "val_accuracy; random sampler, one seed: the same parameter sets in both"
    )
    threads = args.blas_threads or "each process's share of the cores"
    print(f"host cores: {host_cores()}; BLAS threads: {threads}; embedded backends (SQLite,")
    print("filesystem broker, folder)")
    print(
        f"{'sweep':<10}{'workers':>8}{'epochs':>8}{'pruned':>8}{'best val acc':>14}"
        f"{'its test acc':>14}{'wall time':>11}"
    )
    for pruner in ("asha", "none"):
        for p in counts:
            run = runs[pruner, p]
            print(
                f"{pruner:<10}{p:>8}{run['epochs']:>8}{run['pruned']:>8}"
                f"{run['best_val_accuracy']:>14.4f}{run['best_test_accuracy']:>14.4f}"
                f"{run['seconds']:>10.1f}s"
            )
    print(
        "ASHA is asynchronous: with 2 workers, which trials a rung compares depends on "
        f"timing. Shares and gaps below: the {first}-process runs."
    )
    print(f"epochs used by the pruned sweep: {share:.1%} (goal at most 40%)")
    print(f"best test accuracy, unpruned minus pruned: {gap:+.2f} points (goal at most 1)")
    print(
        json.dumps(
            {
                "bench": "sweeps",
                "trials": args.trials,
                "epochs": args.epochs,
                "cores": host_cores(),
                "blas_threads": args.blas_threads or None,
                "epochs_pruned": pruned["epochs"],
                "epochs_unpruned": full["epochs"],
                "epoch_share": round(share, 4),
                "trials_pruned": pruned["pruned"],
                "best_test_accuracy_pruned": pruned["best_test_accuracy"],
                "best_test_accuracy_unpruned": full["best_test_accuracy"],
                "top_test_accuracy_pruned": pruned["top_test_accuracy"],
                "top_test_accuracy_unpruned": full["top_test_accuracy"],
                "gap_points": round(gap, 3),
                "seconds": {f"{k[0]}_{k[1]}": round(v["seconds"], 1) for k, v in runs.items()},
                "epochs_by_run": {f"{k[0]}_{k[1]}": v["epochs"] for k, v in runs.items()},
                "best_test_accuracy_by_run": {
                    f"{k[0]}_{k[1]}": v["best_test_accuracy"] for k, v in runs.items()
                },
                "best_params_pruned": pruned["best_params"],
                "best_params_unpruned": full["best_params"],
            }
        )
    )


if __name__ == "__main__":
    main()
