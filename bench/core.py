"""Engine benchmark: this engine against scikit-learn, PyTorch and JAX on the CPU.

Side by side in one process, medians of several runs:

- large: MLP 784-256-128-10, relu, softmax + cross-entropy, SGD momentum 0.9,
  batch 128, 60,000 synthetic float32 samples, one epoch per run; the peers are
  scikit-learn, PyTorch eager, PyTorch under ``torch.compile`` and JAX under
  ``jax.jit`` (compilation happens in the warm-up and is reported apart);
- tiny: the seeds' 2-2-2 sigmoid network, squared error, online (batch 1),
  10,000 samples, one epoch per run;
- each implementation's share of this machine's matmul rate on the large net's
  shapes: one epoch of the step's bare matmuls runs in every round beside the
  implementations, and the engine's peak training memory.

A peer that cannot run here (not installed, or ``torch.compile`` without a
working compiler) is left out of the rounds and the table says why.

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
from dataclasses import dataclass
from typing import Any

import numpy as np
from threadpoolctl import threadpool_info, threadpool_limits

import core

LARGE_SIZES = (784, 256, 128, 10)
LARGE_SAMPLES = 60_000
BATCH = 128
TINY_SAMPLES = 10_000
# Threads each implementation may use (--threads): both cores by default. On a machine
# other work keeps busy, a multi-threaded GEMM waits on whichever of its threads was
# descheduled, and two-thread timings swing by 20x; one thread each stays comparable.
THREADS = 2


Runner = Callable[[], float]  # runs one epoch, returns its seconds


@dataclass
class Rounds:
    """The samples/s of every implementation in every round, and what could not run."""

    rounds: list[dict[str, float]]
    warmup_s: dict[str, float]  # the first, untimed epoch: compilation happens there
    unavailable: dict[str, str]  # name -> why it was left out

    def rate(self, name: str) -> float:
        return statistics.median(r[name] for r in self.rounds)

    def ratio(self, name: str, other: str) -> float:
        """Median over rounds of name's speed over other's."""
        return statistics.median(r[name] / r[other] for r in self.rounds)

    def __contains__(self, name: str) -> bool:
        return name in self.rounds[0]


def side_by_side(samples: int, runners: dict[str, Runner | str], repeats: int) -> Rounds:
    """Every runner once per round, one after the other, ``repeats`` rounds.

    Interleaving makes a noisy minute on this shared machine slow all of them
    alike instead of one. A runner given as a string, or whose warm-up raises,
    is left out with that reason.
    """
    unavailable = {name: run for name, run in runners.items() if isinstance(run, str)}
    ready: dict[str, Runner] = {}
    warmup: dict[str, float] = {}
    for name, run in runners.items():
        if isinstance(run, str):
            continue
        started = time.perf_counter()
        try:
            run()  # warm-up: compilation, first-touch page faults, BLAS threads, imports
        except Exception as error:  # a peer that cannot run here is reported, not fatal
            unavailable[name] = f"{type(error).__name__}: {str(error).strip().splitlines()[0]}"
            continue
        warmup[name] = time.perf_counter() - started
        ready[name] = run
    rounds = [{name: samples / run() for name, run in ready.items()} for _ in range(repeats)]
    return Rounds(rounds, warmup, unavailable)


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

    torch.set_num_threads(THREADS)
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


def torch_compiled_large(x: np.ndarray[Any, Any], labels: np.ndarray[Any, Any]) -> Runner | str:
    """The same PyTorch training under ``torch.compile`` (Inductor, CPU).

    The model and its compiled forward/backward are built once, as a user training
    for many epochs would; each run puts back the initial weights and takes a
    fresh optimizer. ``dynamic=False`` compiles the last, smaller batch as a shape
    of its own instead of recompiling everything for symbolic shapes.
    """
    try:
        import torch
    except ImportError as error:
        return f"not installed ({error})"

    torch.set_num_threads(THREADS)
    xt, yt = torch.from_numpy(x), torch.from_numpy(labels)
    torch.manual_seed(0)
    layers: list[torch.nn.Module] = []
    for fan_in, fan_out in zip(LARGE_SIZES[:-2], LARGE_SIZES[1:-1], strict=True):
        layers += [torch.nn.Linear(fan_in, fan_out), torch.nn.ReLU()]
    model = torch.nn.Sequential(*layers, torch.nn.Linear(LARGE_SIZES[-2], LARGE_SIZES[-1]))
    initial = [p.detach().clone() for p in model.parameters()]
    loss_fn = torch.nn.CrossEntropyLoss()
    compiled = torch.compile(model, dynamic=False)

    def run() -> float:
        with torch.no_grad():
            for p, p0 in zip(model.parameters(), initial, strict=True):
                p.copy_(p0)
        optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
        started = time.perf_counter()
        order = torch.randperm(len(xt))
        for start in range(0, len(xt), BATCH):
            idx = order[start : start + BATCH]
            optimizer.zero_grad()
            loss_fn(compiled(xt[idx]), yt[idx]).backward()
            optimizer.step()
        return time.perf_counter() - started

    return run


def jax_large(x: np.ndarray[Any, Any], labels: np.ndarray[Any, Any]) -> Runner | str:
    """The same training as one ``jax.jit`` step per batch (XLA, CPU).

    The step gathers its batch from the device arrays, takes the gradient and
    applies the momentum update, its buffers donated so XLA updates them in place.
    Compiled once (and once more for the last, smaller batch) in the warm-up.
    """
    try:
        import jax
        import jax.numpy as jnp
    except ImportError as error:
        return f"not installed ({error})"

    xj, yj = jnp.asarray(x), jnp.asarray(labels)
    pairs = list(zip(LARGE_SIZES[:-1], LARGE_SIZES[1:], strict=True))

    def loss(params: list[tuple[Any, Any]], xb: Any, yb: Any) -> Any:
        a = xb
        for w, b in params[:-1]:
            a = jax.nn.relu(a @ w + b)
        w, b = params[-1]
        logp = jax.nn.log_softmax(a @ w + b)
        return -jnp.mean(jnp.take_along_axis(logp, yb[:, None], axis=1))

    # The data are arguments, not closed over: a closed-over array becomes a constant
    # compiled into the program.
    def step(params: Any, velocity: Any, xs: Any, ys: Any, idx: Any) -> tuple[Any, Any]:
        grads = jax.grad(loss)(params, xs[idx], ys[idx])
        velocity = jax.tree_util.tree_map(lambda v, g: 0.9 * v - 0.01 * g, velocity, grads)
        params = jax.tree_util.tree_map(lambda p, v: p + v, params, velocity)
        return params, velocity

    jit_step = jax.jit(step, donate_argnums=(0, 1))

    def run() -> float:
        rng = np.random.default_rng(0)
        params = [
            (
                jnp.asarray(rng.normal(0.0, np.sqrt(2.0 / i), (i, o)), dtype=jnp.float32),
                jnp.zeros(o, dtype=jnp.float32),
            )
            for i, o in pairs
        ]
        velocity = jax.tree_util.tree_map(jnp.zeros_like, params)
        jax.block_until_ready((params, velocity))
        started = time.perf_counter()
        order = rng.permutation(len(x)).astype(np.int32)
        for start in range(0, len(x), BATCH):
            params, velocity = jit_step(params, velocity, xj, yj, order[start : start + BATCH])
        jax.block_until_ready(params)
        return time.perf_counter() - started

    return run


def numpy_large(x: np.ndarray[Any, Any], y: np.ndarray[Any, Any]) -> Runner:
    """Straightforward NumPy, as one would write it by hand: matmuls forward and
    backward, np.maximum for ReLU, softmax, momentum in a few in-place ufuncs."""
    pairs = list(zip(LARGE_SIZES[:-1], LARGE_SIZES[1:], strict=True))

    def run() -> float:
        rng = np.random.default_rng(0)
        ws = [rng.normal(0.0, np.sqrt(2.0 / i), (i, o)).astype(np.float32) for i, o in pairs]
        bs = [np.zeros(o, np.float32) for _, o in pairs]
        params = [p for pair in zip(ws, bs, strict=True) for p in pair]
        velocity = [np.zeros_like(p) for p in params]
        started = time.perf_counter()
        order = rng.permutation(len(x))
        for start in range(0, len(x), BATCH):
            idx = order[start : start + BATCH]
            xb, yb = x[idx], y[idx]
            acts = [xb]
            for w, b in zip(ws[:-1], bs[:-1], strict=True):
                acts.append(np.maximum(acts[-1] @ w + b, 0.0))
            z = acts[-1] @ ws[-1] + bs[-1]
            e = np.exp(z - z.max(axis=1, keepdims=True))
            delta = (e / e.sum(axis=1, keepdims=True) - yb) / len(xb)
            grads: list[np.ndarray[Any, Any]] = []
            for layer in range(len(ws) - 1, -1, -1):
                grads[:0] = [acts[layer].T @ delta, delta.sum(axis=0)]
                if layer:
                    delta = (delta @ ws[layer].T) * (acts[layer] > 0)
            for p, g, v in zip(params, grads, velocity, strict=True):
                v *= 0.9
                v -= 0.01 * g
                p += v
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


def bare_matmuls() -> tuple[float, Runner]:
    """(flops per step, a runner of one epoch of the step's bare matmuls).

    Float32 with contiguous operands and preallocated outputs: the rate this
    machine's BLAS reaches on exactly the arithmetic a training step cannot avoid.
    Run as one more implementation in every round, so that each round's shares
    compare epochs timed within seconds of each other.
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

    def run() -> float:
        started = time.perf_counter()
        for _ in range(steps):
            for (a, b), out in zip(operands, outputs, strict=True):
                np.matmul(a, b, out=out)
        return time.perf_counter() - started

    return flops, run


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

    torch.set_num_threads(THREADS)
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


LARGE_COLUMNS = {
    "engine": "engine",
    "numpy": "NumPy (plain)",
    "sklearn": "scikit-learn",
    "torch": "torch eager",
    "torch_compile": "torch.compile",
    "jax": "JAX jit",
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument(
        "--threads", type=int, default=2, help="BLAS/XLA threads of every implementation"
    )
    args = parser.parse_args()
    global THREADS
    THREADS = args.threads
    threadpool_limits(THREADS)
    if THREADS == 1:
        # XLA's CPU thread pool takes no thread count: one core for the whole process
        # (threads started from here on inherit it) holds JAX to one core as well.
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    warnings.filterwarnings("ignore")  # sklearn's one-epoch convergence warnings

    x, y, labels = large_data()
    flops_per_step, matmuls = bare_matmuls()
    large = side_by_side(
        LARGE_SAMPLES,
        {
            "engine": engine_large(x, y),
            "numpy": numpy_large(x, y),
            "sklearn": sklearn_large(x, labels),
            "torch": torch_large(x, labels),
            "torch_compile": torch_compiled_large(x, labels),
            "jax": jax_large(x, labels),
            "matmuls": matmuls,
        },
        args.repeats,
    )
    memory = peak_memory(x, y)

    xs, ts = tiny_data()
    tiny = side_by_side(
        TINY_SAMPLES,
        {
            "engine": engine_tiny(xs, ts),
            "sklearn": sklearn_tiny(xs, ts),
            "torch": torch_tiny(xs, ts),
        },
        args.repeats,
    )

    steps = -(-LARGE_SAMPLES // BATCH)
    gflops = large.rate("matmuls") / LARGE_SAMPLES * steps * flops_per_step / 1e9
    print(f"{THREADS} thread(s) per implementation (--threads)")
    print(f"784-256-128-10 relu/softmax + cross-entropy, SGD momentum, batch {BATCH}, float32,")
    print(f"{LARGE_SAMPLES:,} samples ({steps} steps) per epoch; medians of {args.repeats} rounds")
    print("after a warm-up epoch; each round runs every implementation back to back, and")
    print("ratios and shares are medians of per-round ratios. Share: the implementation's")
    print("speed over the speed of the step's 8 bare matmuls (3 forward, 3 weight-gradient,")
    print(f"2 input-gradient; {flops_per_step / 1e9:.4f} GFLOP per step) in the same round.")
    print(f"{'':<16}{'samples/s':>11}{'steps/s':>9}{'engine is':>11}{'share':>7}{'warm-up s':>11}")
    for name, label in LARGE_COLUMNS.items():
        if name not in large:
            print(f"{label:<16}  left out: {large.unavailable.get(name, 'not run')}")
            continue
        rate = large.rate(name)
        ahead = "" if name == "engine" else f"{large.ratio('engine', name):.2f}x"
        print(
            f"{label:<16}{rate:>11,.0f}{rate * steps / LARGE_SAMPLES:>9,.0f}{ahead:>11}"
            f"{large.ratio(name, 'matmuls'):>7.0%}{large.warmup_s[name]:>11.1f}"
        )
    print(f"{'bare matmuls':<16}{'':>20}{'':>11}{'':>7}  at {gflops:.1f} GFLOP/s")
    print()
    print("2-2-2 sigmoid, squared error, online (batch 1), float64, samples/s:")
    for name, label in (("engine", "engine"), ("sklearn", "scikit-learn"), ("torch", "torch")):
        ahead = "" if name == "engine" else f"  (engine {tiny.ratio('engine', name):.2f}x)"
        print(f"  {label:<14}{tiny.rate(name):>11,.0f}{ahead}")
    print(
        f"peak traced memory of training {memory['peak_mib']:.1f} MiB; bound (2 x arrays "
        f"+ weights) {memory['bound_mib']:.1f} MiB: {'ok' if memory['ok'] else 'OVER'}"
    )
    print("BLAS:", blas_summary(), "OPENBLAS_CORETYPE =", os.environ.get("OPENBLAS_CORETYPE"))
    print("peers:", peer_versions())
    peers = [name for name in LARGE_COLUMNS if name != "engine" and name in large]
    large_vs = {name: large.ratio("engine", name) for name in peers}
    summary = {
        "large_samples_per_s": {
            name: large.rate(name) for name in [*LARGE_COLUMNS, "matmuls"] if name in large
        },
        "large_vs_sklearn": large_vs.get("sklearn"),
        "large_vs_torch": large_vs.get("torch"),
        "large_vs_torch_compile": large_vs.get("torch_compile"),
        "large_vs_jax": large_vs.get("jax"),
        "large_matmul_share": large.ratio("engine", "matmuls"),
        "large_matmul_share_all": {
            name: large.ratio(name, "matmuls") for name in LARGE_COLUMNS if name in large
        },
        "large_left_out": large.unavailable,
        "large_warmup_s": large.warmup_s,
        "matmul_gflops": gflops,
        "tiny_samples_per_s_all": {
            name: tiny.rate(name) for name in ("engine", "sklearn", "torch")
        },
        "tiny_samples_per_s": tiny.rate("engine"),
        "tiny_vs_sklearn": tiny.ratio("engine", "sklearn"),
        "tiny_vs_torch": tiny.ratio("engine", "torch"),
        "peak_memory_ok": memory["ok"],
        "peak_memory_mib": memory["peak_mib"],
        "openblas_coretype": os.environ.get("OPENBLAS_CORETYPE"),
        "threads": THREADS,
    }
    print(json.dumps(summary))


def peer_versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    found = {}
    for package in ("numpy", "scikit-learn", "torch", "jax", "jaxlib"):
        try:
            found[package] = version(package)
        except PackageNotFoundError:
            found[package] = "not installed"
    return found


if __name__ == "__main__":
    main()
