"""Hyperparameter sweeps: an Optuna study whose trials are ordinary training jobs.

A sweep row (:class:`store.Sweep`) holds the completed base spec, the search space
over spec paths, and how trials are drawn (the sampler), stopped early (the pruner)
and scored (the metric and its direction). Its study lives in Optuna's RDB storage
on the service's own database, so every worker and API process sees the same one:
on PostgreSQL in a schema of its own (``optuna``), on SQLite in a sibling file
(``backprop.db`` -> ``backprop.optuna.db``). Optuna keeps its own Alembic revision
in a table called ``alembic_version``, which must not meet ours.

The sweep moves on through :func:`advance`, which any process may call at any time
(it is idempotent, and serialized per sweep by the sweep row's lock): it tells the
study how every finished trial job ended, starts trials while fewer than
``parallel`` run and fewer than ``trials`` exist, and ends the sweep once its last
trial has. The API calls it after creating a sweep and after a cancel, the worker
after each trial job concludes, and every worker's reconciler as a safety net for a
worker killed in between.

While a trial trains, :class:`TrialJudge` reports its metric to the study at the
epochs where the pruner decides, and asks whether to prune it.

Optuna is imported only here and only when a sweep needs it: ordinary jobs never
load it.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import math
import re
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import select, text, update
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session as OrmSession

from core import EpochStats, StopReason
from store import Dataset, Job, JobStatus, Session, Sweep, TrainedModel
from store import queries as q
from store.db import engine_for
from store.models import utcnow

if TYPE_CHECKING:
    import optuna

log = logging.getLogger(__name__)

SAMPLERS = ("tpe", "random", "grid")
PRUNERS = ("asha", "hyperband", "median", "none")
DIRECTIONS = ("minimize", "maximize")
MAX_TRIALS = 1000
MAX_PARALLEL = 100
# Trials drawn by one call of advance. A draw (the sampler made, the study asked, the
# job row added, its message sent) takes about 0.17 s here, and advance holds the
# sweep's row the while (a cancel waits for it): POST /sweeps draws DRAWS_IN_REQUEST
# and answers in about a second whatever its `parallel`; the reconciler (every
# BACKPROP_RECONCILE_SECONDS) and each trial's end draw the rest, DRAWS_PER_ADVANCE at
# a time.
DRAWS_IN_REQUEST = 8
DRAWS_PER_ADVANCE = 32
MAX_PARAMS = 50
MAX_CHOICES = 1000
# The most points a grid may have. Optuna's GridSampler lists every point of the
# product each time it is made (once per trial drawn, in the API and in workers), at
# about 100 bytes a point plus its values: 100,000 points are some tens of MB and a
# fraction of a second, while a sweep never trains more than MAX_TRIALS of them.
# Three choices of 1000 values are 10^9 points: tens of GB. The size is computed from
# the lengths alone, before anything is built.
MAX_GRID = 100_000
# ASHA's defaults, chosen with bench/sweeps.py (digits, 100 epochs): every trial
# trains 4 epochs, a third of those 12, a ninth 36, a 27th to the end.
ASHA_MIN_RESOURCE = 4
ASHA_REDUCTION_FACTOR = 3

_CLASSIFICATION, _MULTILABEL, _REGRESSION = "classification", "multilabel", "regression"
# A test metric -> (the direction it improves in, the key of a model's test metrics,
# the tasks worker.evaluation.score measures it on). roc_auc is measured for two
# classes only (see BINARY_ONLY).
TEST_METRICS: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "test_accuracy": ("maximize", "accuracy", (_CLASSIFICATION, _MULTILABEL)),
    "test_balanced_accuracy": ("maximize", "balanced_accuracy", (_CLASSIFICATION,)),
    "test_log_loss": ("minimize", "log_loss", (_CLASSIFICATION,)),
    "test_roc_auc": ("maximize", "roc_auc", (_CLASSIFICATION,)),
    "test_mae": ("minimize", "mae", (_REGRESSION,)),
    "test_rmse": ("minimize", "rmse", (_REGRESSION,)),
    "test_r2": ("maximize", "r2", (_REGRESSION,)),
    "test_hamming_loss": ("minimize", "hamming_loss", (_MULTILABEL,)),
}
BINARY_ONLY = {"test_roc_auc"}
METRICS = {"val_loss": "minimize", "val_accuracy": "maximize"} | {
    name: direction for name, (direction, _, _) in TEST_METRICS.items()
}
# The tasks each metric is measured on (val_loss: every task).
METRIC_TASKS: dict[str, tuple[str, ...]] = {
    "val_loss": (_CLASSIFICATION, _MULTILABEL, _REGRESSION),
    "val_accuracy": (_CLASSIFICATION, _MULTILABEL),
} | {name: tasks for name, (_, _, tasks) in TEST_METRICS.items()}

# Optuna's trial states as the API names them.
STATES = {"RUNNING": "running", "COMPLETE": "complete", "PRUNED": "pruned", "FAIL": "fail"}


class SweepError(ValueError):
    """A sweep request that cannot run: ``field`` names the request's field at fault."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


# --- the search space ------------------------------------------------------------

_SEGMENT = re.compile(r"\.?([A-Za-z_][A-Za-z0-9_]*)|\[(\d+)\]")
KINDS = ("choice", "uniform", "log_uniform", "int_uniform", "int_log_uniform")


def parse_path(path: str) -> list[str | int]:
    """``"network.layers[0].units"`` -> ``["network", "layers", 0, "units"]``; ValueError
    for anything not made of names and list indexes under network or training."""
    steps: list[str | int] = []
    position = 0
    while position < len(path):
        match = _SEGMENT.match(path, position)
        if match is None or (position == 0 and match.group(0).startswith(".")):
            raise ValueError("not a spec path like training.optimizer.learning_rate")
        steps.append(match.group(1) if match.group(1) is not None else int(match.group(2)))
        position = match.end()
    if len(steps) < 2 or steps[0] not in ("network", "training"):
        raise ValueError("a spec path starts with network. or training.")
    return steps


def _set(document: dict[str, Any], steps: Sequence[str | int], value: Any) -> None:
    """Put ``value`` at ``steps`` inside ``document`` (changed in place). A name given
    as text where the path goes on (``"optimizer": "adam"``) is read as ``{"name":
    ...}``, as the spec reads it; a missing key is added; a list index must exist."""
    node: Any = document
    for position, step in enumerate(steps[:-1]):
        child = node[step] if isinstance(step, int) else node.get(step)
        following = steps[position + 1]
        if isinstance(child, str) and isinstance(following, str):
            child = {"name": child}
        elif child is None and isinstance(following, str):
            child = {}
        node[step] = child
        node = child
        if isinstance(following, int):
            if not isinstance(node, list) or following >= len(node):
                raise KeyError(following)
        elif not isinstance(node, dict):
            raise KeyError(following)
    node[steps[-1]] = value


def substitute(
    network: dict[str, Any], training: dict[str, Any], params: dict[str, Any]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Copies of the base spec with each parameter's value at its path. KeyError
    (naming the path) for a path that does not lead anywhere in the spec."""
    spec = {"network": copy.deepcopy(network), "training": copy.deepcopy(training)}
    for path, value in params.items():
        try:
            _set(spec, parse_path(path), value)
        except (KeyError, IndexError, TypeError, ValueError):
            raise KeyError(path) from None
    return spec["network"], spec["training"]


@dataclass(frozen=True)
class Param:
    """One dimension of a search space: the spec path and how its values are drawn."""

    path: str
    kind: str  # one of KINDS
    values: list[Any]  # the choices, or [low, high]

    def candidates(self) -> list[Any]:
        """The values that stand for the whole range when a spec is checked: the
        choices; a range's bounds, and for a float range a fractional value inside
        it too (a whole-number field searched with uniform fails on that one)."""
        if self.kind not in ("uniform", "log_uniform"):
            return list(self.values)
        low, high = (float(value) for value in self.values)
        inside = low + (high - low) * 0.381966  # not a whole number for whole bounds
        if inside.is_integer():
            inside = math.nextafter(inside, high)
        return [inside, low, high]

    def distribution(self) -> optuna.distributions.BaseDistribution:
        from optuna import distributions as d

        if self.kind == "choice":
            return d.CategoricalDistribution(self.values)
        low, high = self.values
        if self.kind in ("uniform", "log_uniform"):
            return d.FloatDistribution(float(low), float(high), log=self.kind == "log_uniform")
        return d.IntDistribution(int(low), int(high), log=self.kind == "int_log_uniform")


def _number(value: Any) -> bool:
    return (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and math.isfinite(float(value))
    )


def parse_search_space(space: Any) -> list[Param]:
    """The search space as Params; SweepError naming ``search_space["<path>"]``.

    Each path maps to one of ``{"choice": [v, ...]}`` (numbers, text, booleans or
    null), ``{"uniform": [low, high]}``, ``{"log_uniform": [low, high]}`` (low > 0),
    ``{"int_uniform": [low, high]}`` or ``{"int_log_uniform": [low, high]}``
    (whole numbers).
    """
    if not isinstance(space, dict) or not space:
        raise SweepError("search_space", "give at least one spec path to search over")
    if len(space) > MAX_PARAMS:
        raise SweepError("search_space", f"at most {MAX_PARAMS} paths, got {len(space)}")
    params = []
    for path, rule in space.items():
        field = f'search_space["{path}"]'
        try:
            parse_path(path)
        except ValueError as exc:
            raise SweepError(field, str(exc)) from None
        if not isinstance(rule, dict) or len(rule) != 1 or next(iter(rule)) not in KINDS:
            raise SweepError(field, f"give exactly one of {', '.join(KINDS)}")
        kind, values = next(iter(rule.items()))
        if kind == "choice":
            if not isinstance(values, list) or not values:
                raise SweepError(field, "choice needs a non-empty list of values")
            if len(values) > MAX_CHOICES:
                raise SweepError(field, f"at most {MAX_CHOICES} choices")
            for value in values:
                if not (value is None or isinstance(value, str | bool) or _number(value)):
                    raise SweepError(field, "choices are numbers, text, booleans or null")
            if len({repr(value) for value in values}) != len(values):
                raise SweepError(field, "a choice is repeated")
            params.append(Param(path, kind, list(values)))
            continue
        if not isinstance(values, list) or len(values) != 2 or not all(map(_number, values)):
            raise SweepError(field, f"{kind} needs [low, high], two finite numbers")
        low, high = values
        if low >= high:
            raise SweepError(field, f"{kind} needs low < high, got [{low}, {high}]")
        if kind.startswith("int") and not all(float(v).is_integer() for v in values):
            raise SweepError(field, f"{kind} needs whole numbers")
        if "log" in kind and low <= 0:
            raise SweepError(field, f"{kind} needs low > 0, got {low}")
        if kind.startswith("int"):
            values = [int(low), int(high)]
        params.append(Param(path, kind, values))
    return params


# Training fields that neither the dataset's encoding nor its fit checks read (see
# api.admission.check_plan and core.check_fit): a value of one is checked against
# the spec alone. Every other path (the splits, seed, preprocessing, loss, dtype, the
# input width, the output layer) is checked against the dataset too.
SPEC_ONLY_TRAINING = frozenset(
    {"optimizer", "schedule", "l2", "batch_size", "shuffle", "train_bias", "epochs"}
    | {"early_stopping", "target_loss", "time_limit"}
)
# The most values checked against the dataset per sweep: each check encodes the
# dataset as a job's admission does (about 40 ms for 50,000 rows of 20 columns here),
# so 100 keep a POST /sweeps within seconds on the largest datasets.
MAX_DATA_CHECKS = 100


def touches_data(path: str, n_layers: int) -> bool:
    """Whether a value at ``path`` may change how the dataset is encoded or whether the
    network fits it; ``n_layers`` is the completed base network's (its last is the
    output layer). A hidden layer's fields and SPEC_ONLY_TRAINING's do not."""
    steps = parse_path(path)
    if steps[0] == "training":
        return steps[1] not in SPEC_ONLY_TRAINING
    if steps[1] == "layers" and len(steps) > 2:
        return steps[2] == n_layers - 1
    return True


def data_checks(params: Sequence[Param], n_layers: int) -> int:
    """How many values check_space checks against the dataset; SweepError naming
    ``search_space["<path>"]`` past MAX_DATA_CHECKS."""
    count = 0
    for param in params:
        if touches_data(param.path, n_layers):
            count += len(param.candidates())
            if count > MAX_DATA_CHECKS:
                raise SweepError(
                    f'search_space["{param.path}"]',
                    f"at most {MAX_DATA_CHECKS} values in all of fields checked against the "
                    "dataset (splits, seed, preprocessing, loss, input and output layers); "
                    "give fewer choices, or a range (int_uniform for a seed)",
                )
    return count


def check_space(
    params: Sequence[Param],
    network: dict[str, Any],
    training: dict[str, Any],
    check: Callable[[dict[str, Any], dict[str, Any], str], None],
) -> None:
    """Substitute each choice and both bounds of every parameter into the completed
    base spec and pass the result and the parameter's path to ``check`` (which raises
    SweepError or the engine's SpecError); SweepError naming ``search_space["<path>"]``."""
    import core

    for param in params:
        field = f'search_space["{param.path}"]'
        for value in param.candidates():
            try:
                trial_network, trial_training = substitute(network, training, {param.path: value})
            except KeyError:
                raise SweepError(field, "the path leads nowhere in the completed spec") from None
            try:
                check(trial_network, trial_training, param.path)
            except (core.SpecError, SweepError) as exc:
                message = f"the value {value!r} makes an invalid spec: {exc}"
                fractional = isinstance(value, float) and not value.is_integer()
                if fractional and param.kind in ("uniform", "log_uniform"):
                    message += (
                        f"; {param.kind} draws fractional numbers: search a whole-number "
                        "field with int_uniform or int_log_uniform"
                    )
                raise SweepError(field, message) from None


# --- samplers and pruners -----------------------------------------------------

_SAMPLER_OPTIONS = {"tpe": {"seed", "n_startup_trials"}, "random": {"seed"}, "grid": {"seed"}}
_PRUNER_OPTIONS: dict[str, dict[str, tuple[int, int]]] = {
    # option -> (smallest value, default)
    "asha": {
        "min_resource": (1, ASHA_MIN_RESOURCE),
        "reduction_factor": (2, ASHA_REDUCTION_FACTOR),
        "min_early_stopping_rate": (0, 0),
        "bootstrap_count": (0, 0),
    },
    "hyperband": {"min_resource": (1, 1), "reduction_factor": (2, 3)},
    "median": {
        "n_startup_trials": (0, 5),
        "n_warmup_steps": (0, 0),
        "interval_steps": (1, 1),
        "n_min_trials": (1, 1),
    },
    "none": {},
}


def _whole(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def parse_choice(
    value: Any, field: str, names: Sequence[str], allowed: dict[str, set[str]]
) -> tuple[str, dict[str, Any]]:
    """``"name"`` or ``{"name": ..., option: whole number, ...}`` -> (name, options)."""
    if isinstance(value, str):
        value = {"name": value}
    if not isinstance(value, dict) or not isinstance(value.get("name"), str):
        raise SweepError(field, f"give one of {', '.join(names)}, or an object with its name")
    name = value["name"]
    if name not in names:
        raise SweepError(f"{field}.name", f"unknown {field} {name!r}; one of {', '.join(names)}")
    options = {key: option for key, option in value.items() if key != "name"}
    for key, option in options.items():
        if key not in allowed[name]:
            known = ", ".join(sorted(allowed[name])) or "none"
            raise SweepError(f"{field}.{key}", f"unknown option of {name}; its options: {known}")
        if not _whole(option) or not 0 <= option <= 2**31 - 1:
            raise SweepError(f"{field}.{key}", "a whole number from 0 to 2147483647")
    return name, options


def parse_sampler(value: Any) -> tuple[str, dict[str, Any]]:
    return parse_choice(value, "sampler", SAMPLERS, _SAMPLER_OPTIONS)


def parse_pruner(value: Any, epochs: int) -> tuple[str, dict[str, Any]]:
    """The pruner's name and options, every default filled in; ``epochs`` is the most
    any trial trains (its resource).

    A ``min_resource`` left to its default is lowered for short trials to
    ``epochs // reduction_factor`` (at least 1), so that a trial is judged before its
    end; trials of one epoch cannot be pruned at all, and then the pruner is
    ``none``. A ``min_resource`` the request gives is kept: SweepError when no trial
    could be pruned with it."""
    allowed = {name: set(options) for name, options in _PRUNER_OPTIONS.items()}
    name, options = parse_choice(value, "pruner", PRUNERS, allowed)
    for key, (least, _) in _PRUNER_OPTIONS[name].items():
        if key in options and options[key] < least:
            raise SweepError(f"pruner.{key}", f"at least {least}, got {options[key]}")
    given = dict(options)
    options = {key: given.get(key, default) for key, (_, default) in _PRUNER_OPTIONS[name].items()}
    if "min_resource" in options and options["min_resource"] >= epochs:
        if "min_resource" not in given:
            if epochs <= 1:
                return "none", {}
            options["min_resource"] = max(1, epochs // options["reduction_factor"])
            return name, options
        where = "pruner.min_resource"
        raise SweepError(
            where,
            f"min_resource ({options['min_resource']}) must be below the trials' epochs "
            f"({epochs}): no trial could be pruned",
        )
    return name, options


def make_sampler(sweep: Sweep, params: Sequence[Param], draw: int) -> optuna.samplers.BaseSampler:
    """The sampler for the sweep's ``draw``-th trial. A seeded sampler is seeded with
    ``seed + draw``: every process that draws trial n draws it the same way, and two
    sweeps with the same seed and space draw the same parameter sets. The grid is
    seeded alike in every process (with the sweep's id when no seed is given)."""
    import optuna

    options = dict(sweep.sampler_options or {})
    given = options.pop("seed", None)
    if sweep.sampler == "grid":
        # The grid sampler gives trial n the grid's n-th point in an order its seed
        # shuffles: every process must shuffle alike, or points would repeat.
        grid = {param.path: param.values for param in params}
        return optuna.samplers.GridSampler(grid, seed=sweep.id if given is None else int(given))
    seed = None if given is None else int(given) + draw
    if sweep.sampler == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    return optuna.samplers.TPESampler(seed=seed, **options)


def make_pruner(sweep: Sweep, epochs: int) -> optuna.pruners.BasePruner:
    import optuna

    options = dict(sweep.pruner_options or {})
    if sweep.pruner == "asha":
        return optuna.pruners.SuccessiveHalvingPruner(**options)
    if sweep.pruner == "hyperband":
        return optuna.pruners.HyperbandPruner(max_resource=epochs, **options)
    if sweep.pruner == "median":
        return optuna.pruners.MedianPruner(**options)
    return optuna.pruners.NopPruner()


def grid_size(params: Sequence[Param]) -> int:
    """The number of the grid's points, from the choices' counts alone (never more
    than MAX_GRID + 1: counting stops past it)."""
    size = 1
    for param in params:
        size *= len(param.values)
        if size > MAX_GRID:
            return MAX_GRID + 1
    return size


def check_grid(params: Sequence[Param]) -> int:
    """The grid's size; SweepError naming ``search_space`` past MAX_GRID points."""
    size = grid_size(params)
    if size > MAX_GRID:
        counts = " x ".join(str(len(param.values)) for param in params)
        raise SweepError(
            "search_space",
            f"the grid has {counts} points, more than {MAX_GRID:,}: give fewer choices, "
            "or sample it with random or tpe",
        )
    return size


def most_epochs(params: Sequence[Param], training: dict[str, Any]) -> int:
    """The most epochs a trial may train: the base's, or the largest searched."""
    epochs = int(training["epochs"])
    for param in params:
        if param.path == "training.epochs":
            epochs = max([epochs, *(int(v) for v in param.values if _number(v))])
    return epochs


def report_epochs(sweep: Sweep, epochs: int) -> Callable[[int], bool]:
    """Whether the pruner judges a trial at an epoch: a trial reports its metric only
    then (each report is a write to the study), and is asked whether to stop."""
    options = sweep.pruner_options or {}
    if sweep.pruner == "asha":
        first = (
            options["min_resource"]
            * options["reduction_factor"] ** options["min_early_stopping_rate"]
        )
        rungs = set()
        step = first
        while step < epochs:
            rungs.add(step)
            step *= options["reduction_factor"]
        return rungs.__contains__
    if sweep.pruner == "median":
        warmup, interval = options["n_warmup_steps"], options["interval_steps"]
        return lambda epoch: epoch >= warmup and (epoch - warmup) % interval == 0
    if sweep.pruner == "hyperband":
        return lambda epoch: epoch < epochs
    return lambda epoch: False


# --- metrics ----------------------------------------------------------------------


def check_metric(
    metric: str,
    direction: str | None,
    training: dict[str, Any],
    task: str,
    pruner: str,
    n_classes: int | None = None,
) -> str:
    """The direction of ``metric`` (given, or the metric's own); SweepError when the
    metric cannot be measured by these trials (on a ``task`` dataset of ``n_classes``
    classes) or is asked to go the wrong way."""
    if metric not in METRICS:
        raise SweepError("metric", f"unknown metric {metric!r}; one of {', '.join(METRICS)}")
    natural = METRICS[metric]
    if direction is not None and direction != natural:
        raise SweepError("direction", f"{metric} improves as it goes to {natural[:3]}imum")
    validation = float(training.get("validation_split") or 0)
    if metric.startswith("val_") and validation <= 0:
        raise SweepError("training.validation_split", f"{metric} needs a validation split above 0")
    if task not in METRIC_TASKS[metric]:
        tasks = " or ".join(METRIC_TASKS[metric])
        raise SweepError("metric", f"{metric} is measured on a {tasks} dataset, not {task}")
    if metric in BINARY_ONLY and n_classes is not None and n_classes != 2:
        raise SweepError(
            "metric", f"{metric} is measured for two classes; the dataset has {n_classes}"
        )
    if metric in TEST_METRICS:
        if float(training.get("test_split") or 0) <= 0:
            raise SweepError("training.test_split", f"{metric} needs a test split above 0")
        if pruner != "none" and validation <= 0:
            raise SweepError(
                "training.validation_split",
                f"{metric} is measured once a trial ends; the pruner judges trials by the "
                "validation split's metric every epoch, so give one above 0 (or pruner none)",
            )
    return natural


def intermediate(metric: str, direction: str, stats: EpochStats) -> float | None:
    """The value a trial reports for an epoch: the metric itself for val_loss and
    val_accuracy; for a test metric (known only at the end), its validation
    counterpart in the same direction: val_accuracy for an accuracy where there is
    one, else the validation loss (negated for a metric that is maximized)."""
    if metric == "val_loss":
        return stats.val_loss
    if metric == "val_accuracy":
        return stats.val_accuracy
    accuracy = metric in ("test_accuracy", "test_balanced_accuracy")
    if direction == "maximize" and accuracy and stats.val_accuracy is not None:
        return stats.val_accuracy
    if stats.val_loss is None:
        return None
    return stats.val_loss if direction == "minimize" else -stats.val_loss


def final_value(metric: str, model: TrainedModel | None) -> float | None:
    """The metric of a trial's model: of its kept epoch for val_*, of its held-out
    rows for test_*; None when the trial has no model or the metric no value."""
    if model is None:
        return None
    value: Any
    if metric in TEST_METRICS:
        value = (model.metrics or {}).get(TEST_METRICS[metric][1])
    else:
        value = (model.summary or {}).get(metric)
    return float(value) if _number(value) else None


@dataclass(frozen=True)
class Outcome:
    """How a trial job's trial ends in the study: Optuna's state and the value."""

    state: str  # running, complete, pruned, fail (STATES' values)
    value: float | None


def outcome(sweep: Sweep, job: Job, model: TrainedModel | None) -> Outcome:
    """What the study is told of a trial job (and what the API shows of it).

    A job still queued or running is a running trial; one that succeeded is a
    complete trial with its metric, or a pruned one (stop_reason pruned) valued
    at the epoch it stopped; a succeeded job whose metric has no value, a failed
    or a cancelled job is a failed trial."""
    if not job.status.finished:
        return Outcome("running", None)
    value = final_value(sweep.metric, model) if job.status == JobStatus.SUCCEEDED else None
    if job.status == JobStatus.SUCCEEDED and job.stop_reason == StopReason.PRUNED:
        return Outcome("pruned", value)
    if value is None:
        return Outcome("fail", None)
    return Outcome("complete", value)


# --- the study's storage ------------------------------------------------------

_storages: dict[str, Any] = {}
_storage_lock = threading.Lock()


def study_url(database_url: str) -> str:
    """Where the sweeps' studies are kept for a service database: the same PostgreSQL
    database (its ``optuna`` schema, see :func:`study_storage`), or for SQLite a
    sibling file, ``<name>.optuna.db``."""
    url = make_url(database_url)
    if url.get_backend_name() != "sqlite":
        return database_url
    path = url.database or ""
    if path in ("", ":memory:"):
        raise ValueError("sweeps need a database file or server, not an in-memory SQLite")
    sibling = Path(path)
    name = sibling.name.removesuffix(".db")
    return url.set(database=str(sibling.with_name(f"{name}.optuna.db"))).render_as_string(
        hide_password=False
    )


def study_storage(database_url: str) -> optuna.storages.RDBStorage:
    """Optuna's RDB storage of the sweeps' studies, one per process (its tables are
    made on first use)."""
    with _storage_lock:
        if database_url not in _storages:
            import optuna

            optuna.logging.set_verbosity(optuna.logging.WARNING)
            url = study_url(database_url)
            kwargs: dict[str, Any]
            if make_url(url).get_backend_name() == "postgresql":
                with engine_for(database_url).begin() as connection:
                    connection.execute(text("CREATE SCHEMA IF NOT EXISTS optuna"))
                kwargs = {
                    "pool_pre_ping": True,
                    "connect_args": {"options": "-csearch_path=optuna", "connect_timeout": 10},
                }
            else:
                Path(make_url(url).database or "").parent.mkdir(parents=True, exist_ok=True)
                kwargs = {"connect_args": {"timeout": 30}}
            _storages[database_url] = _made_once(
                lambda: optuna.storages.RDBStorage(url, engine_kwargs=kwargs)
            )
        storage: optuna.storages.RDBStorage = _storages[database_url]
        return storage


def _made_once(make: Callable[[], Any]) -> Any:
    # Two processes making Optuna's tables at once: the loser's CREATE fails on the
    # winner's table; the second try finds them made.
    try:
        return make()
    except Exception:
        log.info("the study storage was being made elsewhere; trying again")
        return make()


def create_study(database_url: str, name: str, direction: str) -> None:
    import optuna

    optuna.create_study(
        storage=study_storage(database_url),
        study_name=name,
        direction="maximize" if direction == "maximize" else "minimize",
        load_if_exists=True,
    )


def delete_study(database_url: str, name: str) -> None:
    """Delete a study from the sweeps' storage; one already gone is no error."""
    import optuna

    with contextlib.suppress(KeyError):  # no study of that name
        optuna.delete_study(study_name=name, storage=study_storage(database_url))


def _study(database_url: str, sweep: Sweep, sampler: Any = None, pruner: Any = None) -> Any:
    import optuna

    return optuna.load_study(
        study_name=sweep.study_name,
        storage=study_storage(database_url),
        sampler=sampler,
        pruner=pruner,
    )


# --- the worker's side of a trial ---------------------------------------------


class TrialJudge:
    """A running trial's reports to its study, and the pruner's verdict.

    Called after each epoch; returns True when the trial should stop as pruned.
    Nothing here may end the job: an error of the study's storage is logged and
    the epoch goes unjudged.
    """

    def __init__(self, database_url: str, sweep: Sweep, trial_number: int) -> None:
        import optuna

        params = parse_search_space(sweep.search_space)
        self.epochs = most_epochs(params, sweep.training)
        self.metric, self.direction = sweep.metric, sweep.direction
        self.judged = report_epochs(sweep, self.epochs)
        study = _study(database_url, sweep, pruner=make_pruner(sweep, self.epochs))
        trial_id = study._storage.get_trial_id_from_study_id_trial_number(
            study._study_id, trial_number
        )
        self.trial = optuna.Trial(study, trial_id)

    def __call__(self, stats: EpochStats) -> bool:
        if not self.judged(stats.epoch):
            return False
        value = intermediate(self.metric, self.direction, stats)
        if value is None or not math.isfinite(value):
            return False
        try:
            self.trial.report(value, step=stats.epoch)
            return bool(self.trial.should_prune())
        except Exception:
            log.exception("trial %s: reporting epoch %s failed", self.trial.number, stats.epoch)
            return False


def judge_for(job: Job, database_url: str) -> TrialJudge | None:
    """The judge of a trial job, or None for an ordinary job (or when its sweep's
    study cannot be reached: the trial then trains unjudged)."""
    if job.sweep_id is None or job.trial_number is None:
        return None
    try:
        with Session.begin() as session:
            sweep = session.get(Sweep, job.sweep_id)
        if sweep is None or sweep.pruner == "none":
            return None
        return TrialJudge(database_url, sweep, job.trial_number)
    except Exception:
        log.exception("job %s: its sweep's study could not be loaded; no pruning", job.id)
        return None


# --- moving a sweep on ----------------------------------------------------------


def trial_jobs(session: OrmSession, sweep_id: int) -> list[Job]:
    return list(
        session.scalars(select(Job).where(Job.sweep_id == sweep_id).order_by(Job.trial_number))
    )


def models_of(session: OrmSession, jobs: Sequence[Job]) -> dict[int, TrainedModel]:
    ids = [job.id for job in jobs if job.status == JobStatus.SUCCEEDED]
    if not ids:
        return {}
    rows = session.scalars(select(TrainedModel).where(TrainedModel.job_id.in_(ids)))
    return {row.job_id: row for row in rows if row.job_id is not None}


def _tell(study: Any, trial: Any, result: Outcome) -> None:
    from optuna.trial import TrialState

    if result.state == "complete":
        study.tell(trial.number, result.value, skip_if_finished=True)
    elif result.state == "pruned":
        study.tell(trial.number, state=TrialState.PRUNED, skip_if_finished=True)
    else:
        study.tell(trial.number, state=TrialState.FAIL, skip_if_finished=True)


def lock_sweep(session: OrmSession, sweep_id: int, owner: str | None = None) -> bool:
    """Take sweep ``sweep_id``'s row lock as the transaction's first statement (a write,
    on PostgreSQL and on SQLite alike: on SQLite a transaction that read first could
    not write after another one had), so that two callers never count the same trials;
    False when there is no such sweep (of ``owner``, when given)."""
    statement = update(Sweep).where(Sweep.id == sweep_id).values(status=Sweep.status)
    if owner is not None:
        statement = statement.where(Sweep.owner == owner)
    return bool(session.execute(statement).rowcount)  # type: ignore[attr-defined]


def advance(
    sweep_id: int,
    database_url: str,
    send: Callable[[int], None],
    most: int = DRAWS_PER_ADVANCE,
) -> list[int]:
    """Move sweep ``sweep_id`` on; returns the ids of the trial jobs it started (at
    most ``most``), which it has already handed to ``send`` (after its commit).

    Under the sweep row's lock: tell the study how each finished trial job ended
    (a trial the study still has running; a trial the study started that has no
    job, left by a process that died between the two, is failed); then, unless the
    sweep was cancelled, start trials while fewer than ``parallel`` are queued or
    running and fewer than ``trials`` exist; once none is queued or running and no
    more will start, end the sweep: cancelled, succeeded with its best trial's job
    (``best_job_id``), or failed when no trial completed. A finished sweep is left
    as it is.
    """
    started: list[int] = []
    with Session.begin() as session:
        lock_sweep(session, sweep_id)
        sweep = session.get(Sweep, sweep_id, populate_existing=True)
        if sweep is None or JobStatus(sweep.status).finished:
            return started
        jobs = trial_jobs(session, sweep_id)
        models = models_of(session, jobs)
        params = parse_search_space(sweep.search_space)
        epochs = most_epochs(params, sweep.training)
        study = _study(database_url, sweep, pruner=make_pruner(sweep, epochs))
        from optuna.trial import TrialState

        by_number = {job.trial_number: job for job in jobs}
        for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            job = by_number.get(trial.number)
            if job is None:
                _tell(study, trial, Outcome("fail", None))
            elif job.status.finished:
                _tell(study, trial, outcome(sweep, job, models.get(job.id)))
        active = sum(not job.status.finished for job in jobs)
        dataset = None if sweep.dataset_id is None else session.get(Dataset, sweep.dataset_id)
        if dataset is None and not sweep.cancel_requested and len(jobs) < sweep.trials:
            sweep.cancel_requested = True
            sweep.error = "the sweep's dataset was deleted"
        if sweep.sampler == "grid" and grid_size(params) > MAX_GRID and not sweep.cancel_requested:
            # A sweep admitted before the grid had a limit: drawing would list every point.
            sweep.cancel_requested = True
            sweep.error = f"its grid has more than {MAX_GRID:,} points"
        new: list[Job] = []
        while (
            not sweep.cancel_requested
            and dataset is not None
            and active + len(new) < sweep.parallel
            and len(jobs) + len(new) < sweep.trials
            and len(new) < most
        ):
            draw = study._storage.get_n_trials(study._study_id)
            study.sampler = make_sampler(sweep, params, draw)
            trial = study.ask({param.path: param.distribution() for param in params})
            values = {param.path: trial.params[param.path] for param in params}
            network, training = substitute(sweep.network, sweep.training, values)
            job = q.add_job(session, dataset, network, training)
            job.sweep_id, job.trial_number, job.params = sweep.id, trial.number, values
            new.append(job)
        session.flush()
        if not new and active == 0 and (sweep.cancel_requested or len(jobs) >= sweep.trials):
            _end(session, sweep, study, jobs)
        started = [job.id for job in new]
    for job_id in started:
        send(job_id)
    return started


def _end(session: OrmSession, sweep: Sweep, study: Any, jobs: Sequence[Job]) -> None:
    best = None
    with contextlib.suppress(ValueError):  # no complete trial
        best = study.best_trial
    by_number = {job.trial_number: job for job in jobs}
    if best is not None and best.number in by_number:
        sweep.best_job_id = by_number[best.number].id
    if sweep.cancel_requested and sweep.error is None:
        sweep.status = JobStatus.CANCELLED.value
    elif sweep.best_job_id is None:
        sweep.status = JobStatus.FAILED.value
        sweep.error = sweep.error or "no trial completed"
    elif sweep.cancel_requested:
        sweep.status = JobStatus.FAILED.value
    else:
        sweep.status = JobStatus.SUCCEEDED.value
    sweep.finished_at = utcnow()
    log.info("sweep %s ended %s (best job %s)", sweep.id, sweep.status, sweep.best_job_id)


def unfinished_sweeps(session: OrmSession) -> list[int]:
    active = (JobStatus.QUEUED.value, JobStatus.RUNNING.value)
    return list(session.scalars(select(Sweep.id).where(Sweep.status.in_(active))))


def sender(app: Any) -> Callable[[int], None]:
    """Sends a new trial job's message through the Celery ``app``, after its commit; a
    broker that does not take it leaves the job marked as never sent, for the
    reconciler to send (as the API does with a job it could not send)."""
    from .queue import enqueue_training
    from .transient import is_transient

    def send(job_id: int) -> None:
        try:
            enqueue_training(job_id, app)
        except Exception as exc:
            if not is_transient(exc):
                raise
            log.warning("trial job %s not sent; the reconciler will send it", job_id)
            with Session.begin() as session:
                q.mark_not_sent(session, [job_id])

    return send


def advance_all(database_url: str, send: Callable[[int], None]) -> None:
    """:func:`advance` every unfinished sweep: the reconciler's safety net."""
    with Session.begin() as session:
        ids = unfinished_sweeps(session)
    for sweep_id in ids:
        try:
            advance(sweep_id, database_url, send)
        except Exception:
            log.exception("sweep %s could not be moved on; will try again", sweep_id)


def after_job(job_id: int, database_url: str, send: Callable[[int], None]) -> None:
    """After a job's attempt ended: if it was a trial that has finished, move its
    sweep on. One query for an ordinary job."""
    with Session.begin() as session:
        row = session.execute(
            select(Job.sweep_id, Job.status).where(Job.id == job_id)
        ).one_or_none()
    if row is None or row.sweep_id is None or not JobStatus(row.status).finished:
        return
    advance(row.sweep_id, database_url, send)
