"""Scores of a trained network on held-out rows, computed with scikit-learn."""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np

from core import Model, SpecError
from core.frame import NUMBER, Frame

TASKS = ("classification", "regression", "multilabel")

# log loss clips probabilities into [EPS, 1 - EPS] so a confident miss costs ~34.5, not inf
EPS = 1e-15
THRESHOLD = 0.5


def sklearn_metrics() -> Any:
    """scikit-learn's metrics, imported on first use.

    The import takes about 1.8 s and 100 MB (SciPy, pandas). The API imports this
    module for its evaluate endpoint, and through the worker's task for the
    Celery app it sends with; its processes would otherwise all pay for metrics
    only the evaluate endpoint computes. The worker imports them as it starts.
    """
    import sklearn.metrics  # type: ignore[import-untyped]  # ships no type information

    return sklearn.metrics


def score(
    task: str,
    classes: list[str] | None,
    outputs: np.ndarray[Any, Any],
    targets: np.ndarray[Any, Any],
) -> dict[str, Any]:
    """Metrics of held-out rows, as plain JSON (a value that is not finite is None).

    ``outputs``: the network's outputs in the targets' units (n x units).
    ``targets``: classification, each row's class index into ``classes`` (n,);
    multilabel, the 0/1 matrix (n x labels); regression, the true values
    (n x targets, or (n,) for one target).

    classification: ``accuracy``, ``balanced_accuracy``, ``per_class``
    (precision, recall, f1, support of every class, absent ones included),
    ``confusion_matrix`` (rows: true class), ``log_loss`` and ``roc_auc`` (two
    classes only; None otherwise or when the rows hold one class). One output
    unit is read as the probability of ``classes[1]``.
    multilabel: ``subset_accuracy`` (= ``accuracy``), ``hamming_loss`` and
    ``per_label`` (f1 and support of each label, ``classes`` naming them).
    regression: ``mae``, ``rmse``, ``r2`` (averaged over the targets).
    Every result has ``task`` and ``n_samples``.

    Raises ValueError for an unknown task, classification or multilabel
    without ``classes``, or outputs and targets of different row counts.
    """
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}")
    outputs = np.asarray(outputs, dtype=np.float64)
    if outputs.ndim == 1:
        outputs = outputs.reshape(-1, 1)
    targets = np.asarray(targets)
    if len(targets) != len(outputs):
        raise ValueError(f"{len(outputs)} rows of outputs but {len(targets)} of targets")
    result: dict[str, Any] = {"task": task, "n_samples": len(outputs)}
    if task != "regression" and classes is None:
        raise ValueError(f"{task} needs the class names")
    # sklearn warns about classes absent from these rows and undefined scores;
    # the answers already say so (zero_division=0, None)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if task == "classification":
            assert classes is not None
            result.update(_classification(classes, outputs, targets.astype(np.intp).reshape(-1)))
        elif task == "multilabel":
            assert classes is not None
            result.update(_multilabel(classes, outputs, targets.astype(np.intp)))
        else:
            result.update(_regression(outputs, targets.astype(np.float64)))
    plain: dict[str, Any] = _plain(result)
    return plain


def probabilities(outputs: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    """Class probabilities (n x k) from outputs: softmax rows as they are; one sigmoid
    unit p as [1 - p, p]. Clipped to [1e-15, 1 - 1e-15] and each row renormalized."""
    p = np.column_stack([1.0 - outputs[:, 0], outputs[:, 0]]) if outputs.shape[1] == 1 else outputs
    p = np.clip(p, EPS, 1.0 - EPS)
    normalized: np.ndarray[Any, Any] = p / p.sum(axis=1, keepdims=True)
    return normalized


def _classification(
    classes: list[str], outputs: np.ndarray[Any, Any], y: np.ndarray[Any, Any]
) -> dict[str, Any]:
    skm = sklearn_metrics()
    labels = np.arange(len(classes))
    if outputs.shape[1] == 1:
        predicted = (outputs[:, 0] >= THRESHOLD).astype(np.intp)
    else:
        predicted = outputs.argmax(axis=1)
    if len(y) == 0:
        return {
            "accuracy": None,
            "balanced_accuracy": None,
            "per_class": [],
            "confusion_matrix": {"labels": list(classes), "matrix": []},
            "log_loss": None,
            "roc_auc": None,
        }
    precision, recall, f1, support = skm.precision_recall_fscore_support(
        y, predicted, labels=labels, zero_division=0
    )
    probs = probabilities(outputs)
    # sklearn refuses NaN; outputs of a network whose weights overflowed have no log loss
    finite = bool(np.isfinite(probs).all())
    roc_auc = None
    if finite and len(classes) == 2 and len(np.unique(y)) == 2:
        roc_auc = skm.roc_auc_score(y, probs[:, 1])
    return {
        "accuracy": skm.accuracy_score(y, predicted),
        "balanced_accuracy": skm.balanced_accuracy_score(y, predicted),
        "per_class": [
            {
                "class": name,
                "precision": precision[k],
                "recall": recall[k],
                "f1": f1[k],
                "support": int(support[k]),
            }
            for k, name in enumerate(classes)
        ],
        "confusion_matrix": {
            "labels": list(classes),
            "matrix": skm.confusion_matrix(y, predicted, labels=labels).tolist(),
        },
        "log_loss": skm.log_loss(y, probs, labels=labels) if finite else None,
        "roc_auc": roc_auc,
    }


def _multilabel(
    names: list[str], outputs: np.ndarray[Any, Any], y: np.ndarray[Any, Any]
) -> dict[str, Any]:
    skm = sklearn_metrics()
    if len(y) == 0:
        return {"subset_accuracy": None, "accuracy": None, "hamming_loss": None, "per_label": []}
    predicted = (outputs >= THRESHOLD).astype(np.intp)
    subset = skm.accuracy_score(y, predicted)
    f1 = skm.f1_score(y, predicted, average=None, zero_division=0)
    support = y.sum(axis=0)
    return {
        "subset_accuracy": subset,
        "accuracy": subset,
        "hamming_loss": skm.hamming_loss(y, predicted),
        "per_label": [
            {"label": name, "f1": f1[k], "support": int(support[k])} for k, name in enumerate(names)
        ],
    }


def _regression(outputs: np.ndarray[Any, Any], y: np.ndarray[Any, Any]) -> dict[str, Any]:
    skm = sklearn_metrics()
    y = y.reshape(len(y), -1)
    if len(y) == 0 or not np.isfinite(outputs).all():
        # no rows, or outputs that overflowed (sklearn refuses them): no finite error
        return {"mae": None, "rmse": None, "r2": None}
    return {
        "mae": skm.mean_absolute_error(y, outputs),
        "rmse": skm.root_mean_squared_error(y, outputs),
        # None for fewer than two rows, where R² is not defined
        "r2": skm.r2_score(y, outputs) if len(y) >= 2 else None,
    }


def _plain(value: Any) -> Any:
    """JSON values only: NumPy numbers as Python ones, non-finite floats as None."""
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    if isinstance(value, bool | np.bool_):
        return bool(value)
    if isinstance(value, int | np.integer):
        return int(value)
    if isinstance(value, float | np.floating):
        number = float(value)
        return number if math.isfinite(number) else None
    return value


def evaluate(model: Model, frame: Frame, targets: list[str], split: str) -> dict[str, Any]:
    """Score ``model`` on the rows of ``frame``, which holds its input columns and the
    ``targets`` columns; ``split`` says which rows they are ("test", "given").

    Held-out test rows encode a category their training rows never had as zeros,
    whatever the model does at predict time: the score is of the rows as they
    are. Raises SpecError for a model trained before typed tables (it has no
    target encoder), a missing or unusable target value (field: the column), or
    a class the model does not know.
    """
    target, preprocessor = model.target, model.preprocessor
    if target is None or preprocessor is None:
        raise SpecError("model", "this model was trained before models could be scored")
    outputs = model.predict(
        frame.select(preprocessor.input_names), unknown="ignore" if split == "test" else None
    )
    truth = frame.select(targets)
    if target.task == "classification":
        expected = target.indices(truth)
    else:
        for column in truth:
            if column.kind != NUMBER:
                raise SpecError(
                    column.name, f"{target.task} targets are numbers; this column holds text"
                )
            values = column.values
            bad = np.isnan(values) if target.task == "regression" else ~np.isin(values, (0.0, 1.0))
            if bad.any():
                row = int(np.flatnonzero(bad)[0])
                what = "missing" if np.isnan(values[row]) else f"{values[row]:g}, not 0 or 1"
                raise SpecError(column.name, f"row {row}: the target is {what}")
        expected = np.column_stack([column.values for column in truth])
    return {**score(target.task, target.classes, outputs, expected), "split": split}
