"""Engine benchmark: this engine against scikit-learn and PyTorch on the CPU.

Side by side in one process, medians of several runs:

- large: MLP 784-256-128-10, relu, softmax + cross-entropy, SGD momentum 0.9,
  batch 128, 60,000 synthetic float32 samples, one epoch per run;
- tiny: the seeds' 2-2-2 sigmoid network, squared error, online (batch 1),
  10,000 samples, one epoch per run;
- the engine's share of this machine's matmul rate on the large net's shapes,
  and its peak training memory.

Prints a table and, as its last line, one JSON object.

    python -m bench.core [--repeats 5]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
import tracemalloc
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
from threadpoolctl import threadpool_info

import core

LARGE_SIZES = (784, 256, 128, 10)
LARGE_SAMPLES = 60_000
BATCH = 128
TINY_SAMPLES = 10_000


def side_by_side(
    samples: int, runners: dict[str, Callable[[], float]], repeats: int
) -> tuple[dict[str, float], dict[str, float]]:
    """Median samples/s of each runner, and the median per-round ratio engine/other.

    Each round runs every implementation once, one after the other, so a noisy
    minute on this shared machine slows all of them alike instead of one.
    """
    for run in runners.values():
        run()  # warm-up: first-touch page faults, BLAS threads, imports
    rounds = [{name: samples / run() for name, run in runners.items()} for _ in range(repeats)]
    rates = {name: statistics.median(r[name] for r in rounds) for name in runners}
    ratios = {
        name: statistics.median(r["engine"] / r[name] for r in rounds)
        for name in runners
        if name != "engine"
    }
    return rates, ratios


# --- data ---------------------------------------------------------------------


def large_data() -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    rng = np.random.default_rng(0)
    x = rng.random((LARGE_SAMPLES, LARGE_SIZES[0]), dtype=np.float32)
    labels = rng.integers(0, LARGE_SIZES[-1], LARGE_SAMPLES)
    y = np.eye(LARGE_SIZES[-1], dtype=np.float32)[labels]
    return x, y, labels


def large_spec() -> dict[str, Any]:
    hidden = [{"units": n, "activation": "relu"} for n in LARGE_SIZES[1:-1]]
    return {
        "input_dim": LARGE_SIZES[0],
        "layers": [*hidden, {"units": LARGE_SIZES[-1], "activation": "softmax"}],
    }


LARGE_TRAINING = {
    "epochs": 1,
    "dtype": "float32",
    "batch_size": BATCH,
    "loss": "categorical_crossentropy",
    "optimizer": {"name": "sgd", "learning_rate": 0.01, "momentum": 0.9},
}


# --- the large net --------------------------------------------------------------


def engine_large(x: np.ndarray[Any, Any], y: np.ndarray[Any, Any]) -> Callable[[], float]:
    def run() -> float:
        trainer = core.Trainer(large_spec(), LARGE_TRAINING, x, y)
        started = time.perf_counter()
        result = trainer.run()
        elapsed = time.perf_counter() - started
        assert result.model is not None, result.message
        return elapsed

    return run


def sklearn_epoch(
    estimator: str, x: np.ndarray[Any, Any], y: np.ndarray[Any, Any], **options: Any
) -> Callable[[], float]:
    """One timed ``partial_fit`` pass of a fresh scikit-learn MLP (plain SGD, no penalty)."""
    from sklearn import neural_network

    fit_args = {"classes": options.pop("classes")} if "classes" in options else {}

    def run() -> float:
        model = getattr(neural_network, estimator)(
            solver="sgd", alpha=0.0, random_state=0, **options
        )
        started = time.perf_counter()
        model.partial_fit(x, y, **fit_args)
        return time.perf_counter() - started

    return run


def sklearn_large(x: np.ndarray[Any, Any], labels: np.ndarray[Any, Any]) -> Callable[[], float]:
    return sklearn_epoch(
        "MLPClassifier",
        x,
        labels,
        hidden_layer_sizes=LARGE_SIZES[1:-1],
        momentum=0.9,
        nesterovs_momentum=False,
        batch_size=BATCH,
        learning_rate_init=0.01,
        classes=np.arange(LARGE_SIZES[-1]),
    )


def torch_large(x: np.ndarray[Any, Any], labels: np.ndarray[Any, Any]) -> Callable[[], float]:
    import torch

    torch.set_num_threads(2)
    xt, yt = torch.from_numpy(x), torch.from_numpy(labels)

    def run() -> float:
        torch.manual_seed(0)
        layers: list[torch.nn.Module] = []
        for fan_in, fan_out in zip(LARGE_SIZES[:-2], LARGE_SIZES[1:-1], strict=True):
            layers += [torch.nn.Linear(fan_in, fan_out), torch.nn.ReLU()]
        model = torch.nn.Sequential(*layers, torch.nn.Linear(LARGE_SIZES[-2], LARGE_SIZES[-1]))
        optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
        loss_fn = torch.nn.CrossEntropyLoss()
        started = time.perf_counter()
        order = torch.randperm(len(xt))
        for start in range(0, len(xt), BATCH):
            idx = order[start : start + BATCH]
            optimizer.zero_grad()
            loss_fn(model(xt[idx]), yt[idx]).backward()
            optimizer.step()
        return time.perf_counter() - started

    return run


def step_matmuls() -> list[tuple[int, int, int]]:
    """(m, k, n) of the matmuls of one training step of the large net.

    Forward a(m x k) W^T(k x n) per layer; weight gradients delta^T a; input
    gradients delta W for every layer but the first (its inputs need none).
    """
    shapes = []
    pairs = list(zip(LARGE_SIZES[:-1], LARGE_SIZES[1:], strict=True))
    for fan_in, fan_out in pairs:
        shapes.append((BATCH, fan_in, fan_out))
    for fan_in, fan_out in pairs:
        shapes.append((fan_out, BATCH, fan_in))
    for fan_in, fan_out in pairs[1:]:
        shapes.append((BATCH, fan_out, fan_in))
    return shapes


def matmul_share(
    x: np.ndarray[Any, Any], y: np.ndarray[Any, Any], repeats: int
) -> tuple[float, float, float]:
    """(flops per step, numpy GFLOP/s on the step's matmuls, the engine's share of it).

    Each repeat times one epoch of the step's bare matmuls (float32, contiguous
    operands) right before one engine epoch, so both see the same machine; the
    share is the median of the per-repeat ratios.
    """
    rng = np.random.default_rng(0)
    shapes = step_matmuls()
    operands = [
        (rng.random((m, k), dtype=np.float32), rng.random((k, n), dtype=np.float32))
        for m, k, n in shapes
    ]
    outputs = [np.empty((m, n), np.float32) for m, _, n in shapes]
    flops = sum(2.0 * m * k * n for m, k, n in shapes)
    steps = -(-LARGE_SAMPLES // BATCH)
    engine = engine_large(x, y)

    def bare() -> float:
        started = time.perf_counter()
        for _ in range(steps):
            for (a, b), out in zip(operands, outputs, strict=True):
                np.matmul(a, b, out=out)
        return time.perf_counter() - started

    bare()
    engine()
    pairs = [(bare(), engine()) for _ in range(repeats)]
    rate = statistics.median(flops * steps / b / 1e9 for b, _ in pairs)
    share = statistics.median(b / e for b, e in pairs)
    return flops, rate, share


def peak_memory(x: np.ndarray[Any, Any], y: np.ndarray[Any, Any]) -> dict[str, Any]:
    tracemalloc.start()
    trainer = core.Trainer(large_spec(), LARGE_TRAINING, x, y)
    trainer.run()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    weights = sum(p.nbytes for p in trainer.network.params())
    bound = 2 * (x.nbytes + y.nbytes) + weights
    # The training arrays themselves were allocated before tracing started.
    return {"peak_mib": peak / 2**20, "bound_mib": bound / 2**20, "ok": peak < bound}


# --- the tiny net ---------------------------------------------------------------


def tiny_data() -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    rng = np.random.default_rng(1)
    return rng.random((TINY_SAMPLES, 2)), rng.random((TINY_SAMPLES, 2))


TINY_SPEC = {
    "input_dim": 2,
    "layers": [{"units": 2, "activation": "sigmoid"}, {"units": 2, "activation": "sigmoid"}],
}
TINY_TRAINING = {
    "epochs": 1,
    "batch_size": 1,
    "loss": "squared_error",
    "optimizer": {"name": "sgd", "learning_rate": 0.5},
}


def engine_tiny(x: np.ndarray[Any, Any], t: np.ndarray[Any, Any]) -> Callable[[], float]:
    def run() -> float:
        trainer = core.Trainer(TINY_SPEC, TINY_TRAINING, x, t)
        started = time.perf_counter()
        trainer.run()
        return time.perf_counter() - started

    return run


def sklearn_tiny(x: np.ndarray[Any, Any], t: np.ndarray[Any, Any]) -> Callable[[], float]:
    return sklearn_epoch(
        "MLPRegressor",
        x,
        t,
        hidden_layer_sizes=(2,),
        activation="logistic",
        batch_size=1,
        momentum=0.0,
        learning_rate_init=0.5,
    )


def torch_tiny(x: np.ndarray[Any, Any], t: np.ndarray[Any, Any]) -> Callable[[], float]:
    import torch

    torch.set_num_threads(2)
    xt, tt = torch.from_numpy(x), torch.from_numpy(t)

    def run() -> float:
        torch.manual_seed(0)
        model = torch.nn.Sequential(
            torch.nn.Linear(2, 2), torch.nn.Sigmoid(), torch.nn.Linear(2, 2), torch.nn.Sigmoid()
        ).double()
        optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
        started = time.perf_counter()
        for i in torch.randperm(len(xt)).tolist():
            optimizer.zero_grad()
            (0.5 * ((model(xt[i]) - tt[i]) ** 2).sum()).backward()
            optimizer.step()
        return time.perf_counter() - started

    return run


# --- report -------------------------------------------------------------------


def blas_summary() -> list[dict[str, Any]]:
    keys = ("internal_api", "version", "num_threads", "architecture", "filepath")
    return [{k: pool.get(k) for k in keys} for pool in threadpool_info()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    warnings.filterwarnings("ignore")  # sklearn's one-epoch convergence warnings

    x, y, labels = large_data()
    large, large_ratio = side_by_side(
        LARGE_SAMPLES,
        {
            "engine": engine_large(x, y),
            "sklearn": sklearn_large(x, labels),
            "torch": torch_large(x, labels),
        },
        args.repeats,
    )
    flops_per_step, gflops, share = matmul_share(x, y, args.repeats)
    memory = peak_memory(x, y)

    xs, ts = tiny_data()
    tiny, tiny_ratio = side_by_side(
        TINY_SAMPLES,
        {
            "engine": engine_tiny(xs, ts),
            "sklearn": sklearn_tiny(xs, ts),
            "torch": torch_tiny(xs, ts),
        },
        args.repeats,
    )

    print("samples/s, median of", args.repeats, "rounds after a warm-up; ratios are medians of")
    print("per-round ratios (each round runs the three implementations back to back)")
    print(f"{'':<34}{'engine':>12}{'scikit-learn':>14}{'PyTorch':>12}")
    for name, rates in (("784-256-128-10, batch 128, f32", large), ("2-2-2 online, f64", tiny)):
        print(
            f"{name:<34}{rates['engine']:>12,.0f}{rates['sklearn']:>14,.0f}{rates['torch']:>12,.0f}"
        )
    print(
        f"matmul share: the step's 8 matmuls ({flops_per_step / 1e9:.3f} GFLOP: 3 forward, "
        f"3 weight-gradient, 2 input-gradient) run bare at {gflops:.1f} GFLOP/s; counting "
        f"only those flops, the engine reaches {share:.0%} of that rate"
    )
    print(
        f"peak traced memory of training {memory['peak_mib']:.1f} MiB; bound (2 x arrays "
        f"+ weights) {memory['bound_mib']:.1f} MiB: {'ok' if memory['ok'] else 'OVER'}"
    )
    print("BLAS:", blas_summary(), "OPENBLAS_CORETYPE =", os.environ.get("OPENBLAS_CORETYPE"))
    summary = {
        "large_samples_per_s": large,
        "tiny_samples_per_s_all": tiny,
        "large_vs_sklearn": large_ratio["sklearn"],
        "large_vs_torch": large_ratio["torch"],
        "large_matmul_share": share,
        "matmul_gflops": gflops,
        "tiny_samples_per_s": tiny["engine"],
        "tiny_vs_sklearn": tiny_ratio["sklearn"],
        "tiny_vs_torch": tiny_ratio["torch"],
        "peak_memory_ok": memory["ok"],
        "peak_memory_mib": memory["peak_mib"],
        "openblas_coretype": os.environ.get("OPENBLAS_CORETYPE"),
    }
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
