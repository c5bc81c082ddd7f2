"""Request and response schemas (pydantic v2); ``/openapi.json`` is generated from them.

Request bodies are strict: a number must be a JSON number (not a string or a
boolean) and finite, and unknown fields are refused. Query strings are parsed
leniently, since everything in a URL is a string.

The network spec and training config are validated by the engine
(``core.parse_network``/``core.parse_training``), which is the one authority on
them; the ``models ``Network`` and ``Training`` below only describe them in the OpenAPI document.
"""

from __future__ import annotations

import math
from dataclasses import fields
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Literal, TypeAlias

from pydantic import (
    AllowInfNan,
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    SerializerFunctionWrapHandler,
    Strict,
    Tag,
    WithJsonSchema,
    field_serializer,
)
from pydantic.dataclasses import dataclass as pydantic_dataclass

import core
from core import spec
from core.activations import ACTIVATIONS
from core.losses import LOSSES
from core.optimizers import OPTIMIZERS
from store import JobStatus

# Primary keys are PostgreSQL `integer` columns.
MAX_ID = 2**31 - 1

Id = Annotated[int, Field(ge=1, le=MAX_ID)]
Number = Annotated[float, Strict(), AllowInfNan(False)]
Row = Annotated[list[Number], Field(min_length=1)]
Matrix = Annotated[list[Row], Field(min_length=1)]
# No control characters: PostgreSQL cannot store a NUL byte in text, and none belongs in a name.
Name = Annotated[str, Field(min_length=1, max_length=200, pattern=r"^[^\x00-\x1f\x7f]*$")]
Label = Annotated[str, Field(min_length=1, max_length=200)]


def _targets_kind(value: Any) -> str:
    if isinstance(value, list) and value:
        if isinstance(value[0], list):
            return "<rows>"
        if isinstance(value[0], str):
            return "<labels>"
    return "<numbers>"


# The tags are in angle brackets so that api.errors.field_path can drop them
# from error locations: they name a union branch, not a field.
Targets = Annotated[
    Annotated[Matrix, Tag("<rows>")]
    | Annotated[Annotated[list[Number], Field(min_length=1)], Tag("<numbers>")]
    | Annotated[Annotated[list[Label], Field(min_length=1)], Tag("<labels>")],
    Discriminator(_targets_kind),
    Field(
        description="Rows of numbers, one number per sample, or one class label per sample "
        "(one-hot encoded, classes sorted)."
    ),
]


class StrictBody(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class Query(BaseModel):
    model_config = ConfigDict(extra="forbid")


# --- documentation of the engine's own formats ---------------------------------

# The names are the engine's registries'; mypy sees plain strings.
if TYPE_CHECKING:
    ActivationName: TypeAlias = str
    LossName: TypeAlias = str
    OptimizerName: TypeAlias = str
else:
    ActivationName = Literal[tuple(ACTIVATIONS)]
    LossName = Literal[tuple(LOSSES)]
    OptimizerName = Literal[tuple(OPTIMIZERS)]


class Layer(BaseModel):
    model_config = ConfigDict(extra="forbid")
    units: int = Field(ge=1)
    activation: ActivationName = "sigmoid"
    weights: Matrix | None = Field(
        default=None, description="units x inputs; weights[j][i] is the weight from input i"
    )
    bias: list[Number] | None = None


class Network(BaseModel):
    model_config = ConfigDict(extra="forbid")
    input_dim: int | None = Field(default=None, ge=1, description="default: the encoded width")
    layers: list[Layer] = Field(min_length=1)


class Optimizer(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: OptimizerName = "sgd"
    learning_rate: float | None = Field(
        default=None, gt=0, description="0.01 for sgd, 0.001 otherwise"
    )
    momentum: float = Field(default=0.0, ge=0, le=spec.MAX_DECAY)
    nesterov: bool = False
    beta1: float = Field(default=0.9, ge=0, le=spec.MAX_DECAY)
    beta2: float = Field(default=0.999, ge=0, le=spec.MAX_DECAY)
    rho: float = Field(default=0.9, ge=0, le=spec.MAX_DECAY)
    epsilon: float = Field(default=1e-8, ge=spec.MIN_EPSILON, le=spec.MAX_EPSILON)


class Schedule(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: Literal["constant", "invscaling", "plateau"] = "constant"
    power: float = Field(default=0.5, ge=0, le=spec.MAX_POWER)
    factor: float = Field(default=0.5, gt=0, lt=1)
    patience: int = Field(default=5, ge=1, le=spec.MAX_PATIENCE)
    min_delta: float = Field(default=1e-4, ge=0)
    min_learning_rate: float = Field(default=1e-6, ge=0)


class EarlyStopping(BaseModel):
    model_config = ConfigDict(extra="forbid")
    patience: int = Field(default=10, ge=1, le=spec.MAX_PATIENCE)
    min_delta: float = Field(default=0.0, ge=0)


class Preprocess(BaseModel):
    """How a table's columns become inputs, fitted on the training rows."""

    model_config = ConfigDict(extra="forbid")
    impute: Literal["median", "mean", "constant"] = Field(
        default="median", description="What replaces a missing number."
    )
    fill_value: float = Field(default=0.0, description="The number used by impute=constant.")
    missing_indicator: bool = Field(
        default=False, description="Add a 0/1 column after each number column with gaps."
    )
    unknown: Literal["ignore", "error"] = Field(
        default="ignore",
        description="A category not seen in training: all zeros, or a 400 at predict.",
    )


class Training(BaseModel):
    model_config = ConfigDict(extra="forbid")
    epochs: int = Field(ge=1)
    loss: LossName | None = Field(
        default=None,
        description="default: categorical_crossentropy for softmax outputs, else squared_error",
    )
    optimizer: Optimizer | OptimizerName = "sgd"
    schedule: Schedule | Literal["constant", "invscaling", "plateau"] = "constant"
    l2: float = Field(default=0.0, ge=0, le=spec.MAX_L2)
    batch_size: int | Literal["full"] | None = Field(default=32, description="null or 'full'")
    shuffle: bool = True
    seed: int = Field(default=0, ge=0, le=spec.MAX_SEED)
    train_bias: bool = True
    normalize: Literal["standardize", "minmax"] | None = None
    validation_split: float = Field(default=0.0, ge=0, lt=1)
    test_split: float = Field(
        default=0.0,
        ge=0,
        lt=1,
        description="Rows held out before fitting (stratified by class) and scored when "
        "training ends; the scores are the model's `metrics`.",
    )
    target_scaling: Literal["auto", "standardize", "none"] = Field(
        default="auto",
        description="auto: regression targets are standardized under an identity output; "
        "predictions come back in the targets' units.",
    )
    preprocess: Preprocess | None = None
    early_stopping: EarlyStopping | bool | None = None
    target_loss: float | None = Field(default=None, ge=0)
    stop_when_all_correct: bool = False
    dtype: Literal["float64", "float32"] = "float64"
    time_limit: float | None = Field(default=None, gt=0, description="seconds")


def _documented_as(model: type[BaseModel]) -> WithJsonSchema:
    # allOf keeps pydantic from resolving the $ref, which points outside its own $defs.
    return WithJsonSchema({"allOf": [{"$ref": f"#/components/schemas/{model.__name__}"}]})


NetworkField = Annotated[dict[str, Any], _documented_as(Network)]
TrainingField = Annotated[dict[str, Any], _documented_as(Training)]
DOC_MODELS: tuple[type[BaseModel], ...] = (
    Preprocess,
    Layer,
    Network,
    Optimizer,
    Schedule,
    EarlyStopping,
    Training,
)


# --- examples ------------------------------------------------------------------------
# What /docs shows for each operation (through /openapi.json), chosen so that each
# works when pasted against a new service: the job trains XOR on an inline dataset
# with named columns, so predictions can be sent as rows, objects or CSV.
# tests/service/test_docs_examples.py sends every one of them.

XOR_DATASET: dict[str, Any] = {
    "inputs": [[0, 0], [0, 1], [1, 0], [1, 1]],
    "targets": [[0], [1], [1], [0]],
    "feature_names": ["x1", "x2"],
    "target_names": ["y"],
}
XOR_CSV = "x1,x2,y\n0,0,0\n0,1,1\n1,0,1\n1,1,0\n"
XOR_JOB: dict[str, Any] = {
    "dataset": {"name": "xor", **XOR_DATASET},
    "network": {
        "input_dim": 2,
        "layers": [{"units": 4, "activation": "tanh"}, {"units": 1, "activation": "sigmoid"}],
    },
    "training": {"epochs": 500, "optimizer": {"name": "adam", "learning_rate": 0.05}},
}


def _example(value: Any) -> ConfigDict:
    return ConfigDict(json_schema_extra={"examples": [value]})


# --- requests --------------------------------------------------------------------


class DatasetData(StrictBody):
    inputs: Matrix = Field(description="One row of feature values per sample.")
    targets: Targets
    feature_names: list[Name] | None = None
    target_names: list[Name] | None = None


class DatasetCreate(StrictBody):
    """A dataset as arrays (``inputs`` and ``targets``) or as ``records`` with a ``target``."""

    model_config = _example({"name": "xor", **XOR_DATASET})

    name: Name
    inputs: Matrix | None = Field(default=None, description="One row of feature values per sample.")
    targets: Targets | None = None
    feature_names: list[Name] | None = None
    target_names: list[Name] | None = None
    records: Annotated[list[dict[Name, Any]], Field(min_length=1)] | None = Field(
        default=None,
        description='Rows as objects, `[{"column": value, ...}]`; null is a missing value.',
    )
    target: str | None = Field(
        default=None, description="With records: comma-separated names of the target columns."
    )
    task: Task | None = None
    categorical: list[Name] | None = None
    ignore: list[Name] | None = None


class InlineDataset(DatasetData):
    name: Name = "inline"


Task = Literal["classification", "regression", "multilabel"]
Delimiter = Literal[",", ";", "\t", "|", "tab"]


class TableQuery(Query):
    """How to read a CSV body (a Parquet body needs none of it)."""

    delimiter: Delimiter | None = Field(
        default=None, description="Detected among , ; tab and | when not given."
    )
    decimal: Literal[".", ","] = Field(default=".", description="`,` for decimal commas.")


class DatasetCsvQuery(TableQuery):
    """Query parameters of a CSV or Parquet upload to ``POST /datasets``."""

    body_example: ClassVar[str] = XOR_CSV

    name: Name = Field(description="Name of the dataset.", examples=["xor"])
    target: str = Field(
        min_length=1,
        description="Comma-separated names of the target columns; the others are features.",
        examples=["y"],
    )
    task: Task | None = Field(
        default=None,
        description="Inferred when not given: text or booleans are classes, several 0/1 "
        "columns are labels (multilabel), numbers are a regression.",
    )
    categorical: str | None = Field(
        default=None, description="Comma-separated columns of numeric codes that are categories."
    )
    ignore: str | None = Field(default=None, description="Comma-separated columns to leave out.")


class JobCreate(StrictBody):
    model_config = _example(XOR_JOB)

    dataset_id: Id | None = Field(default=None, description="A stored dataset; or `dataset`.")
    dataset: InlineDataset | None = Field(default=None, description="Stored as a new dataset.")
    network: NetworkField = Field(
        default_factory=dict,
        description="`input_dim` may be left out (the dataset's encoded width), and so may "
        "the output layer (the one the task needs is appended, with its loss). Left out "
        "entirely with `init_from_model`: that model's architecture and weights.",
    )
    training: TrainingField
    init_from_model: Id | None = Field(
        default=None,
        description="A trained model to start from: its weights (unless `network` gives "
        "layers) and its preprocessing.",
    )


# One row of inputs: numbers in the model's input order, or column name -> value
# (a number, text for a category, true/false, or null for a missing value). An
# object may also hold the training target; it is ignored. Tagged, so that an
# error names the field in the row, not a union branch.
Instance = Annotated[
    Annotated[Row, Tag("<row>")] | Annotated[dict[Name, Any], Tag("<object>")],
    Discriminator(lambda value: "<object>" if isinstance(value, dict) else "<row>"),
]
Columns = Annotated[dict[Name, list[Any]], Field(min_length=1)]


def _inputs_kind(value: Any) -> str:
    return "<columns>" if isinstance(value, dict) else "<rows>"


class PredictRequest(StrictBody):
    """Send ``inputs`` (rows of numbers, or TensorFlow Serving's columns: name -> values)
    or ``instances`` (TensorFlow Serving / Vertex AI: rows as lists or objects)."""

    model_config = _example({"inputs": [[0, 1], [1, 1]]})

    inputs: (
        Annotated[
            Annotated[list[Row], Tag("<rows>")] | Annotated[Columns, Tag("<columns>")],
            Discriminator(_inputs_kind),
        ]
        | None
    ) = None
    instances: list[Instance] | None = None
    signature_name: str | None = Field(
        default=None, description="Accepted for TensorFlow Serving clients; not used."
    )


class EvaluateRequest(StrictBody):
    """Rows with known targets: a stored dataset, or records holding the target columns."""

    model_config = _example({"records": [{"x1": 0, "x2": 1, "y": 1}, {"x1": 1, "x2": 1, "y": 0}]})

    dataset_id: Id | None = None
    records: list[dict[Name, Any]] | None = None


HeaderRule = Literal["auto", "present", "absent"]


class PredictCsvQuery(TableQuery):
    """Query parameters of a ``text/csv`` body to ``POST /models/<id>/predict``."""

    body_example: ClassVar[str] = "x1,x2\n0,1\n1,1\n"

    header: HeaderRule = Field(
        default="auto",
        description="Whether the first row names the columns. `auto`: a first row of names "
        "is a header, a first row of numbers is data, and a mix is refused.",
    )


class EvaluateCsvQuery(PredictCsvQuery):
    """Query parameters of a CSV body to ``POST /models/<id>/evaluate``: rows with their
    target columns."""

    body_example: ClassVar[str] = "x1,x2,y\n0,1,1\n1,1,0\n"


class PageQuery(Query):
    limit: int = Field(default=50, ge=1, le=500)
    after: Id | None = Field(default=None, description="Cursor: `next_after` of the last page.")


class JobListQuery(PageQuery):
    status: JobStatus | None = None
    ids: str | None = Field(
        default=None,
        description="Comma-separated job ids (at most 50): exactly those jobs, in that order, "
        "each with its `network` and `training`; not with `status` or `after`.",
    )


class EpochQuery(Query):
    after: int = Field(default=0, ge=0, le=MAX_ID, description="Epochs after this number.")
    limit: int = Field(default=1000, ge=1, le=10000)


# --- responses -------------------------------------------------------------------


def finite_or_null(value: Any) -> Any:
    """``value`` with every NaN or infinite float, in lists and dicts too, made None.

    JSON has no NaN or Infinity: Python writes them as bare words that browsers'
    JSON.parse and most other parsers refuse, so a diverging epoch's loss or
    gradient norm must reach clients as null.
    """
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, list):
        if _sums_to_finite(value):
            return value
        return [
            finite_or_null(item) if isinstance(item, float | list | dict) else item
            for item in value
        ]
    if isinstance(value, dict):
        return {key: finite_or_null(item) for key, item in value.items()}
    return value


def _sums_to_finite(values: list[Any]) -> bool:
    """Whether a list of numbers, or of lists of numbers, has a finite sum.

    If it has, every number in it is finite: a fast path (summed in C) past the
    item-by-item walk for large answers such as a model's weights. False for
    anything else, which the walk then handles.
    """
    try:
        if values and isinstance(values[0], list):
            return math.isfinite(sum(map(sum, values)))
        return math.isfinite(sum(values))
    except (TypeError, OverflowError):
        return False


# A response body. As JSON, a number that is not finite is null in every field.
class Out(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    @field_serializer("*", mode="wrap", when_used="json")
    def _standard_json(self, value: Any, handler: SerializerFunctionWrapHandler) -> Any:
        return finite_or_null(handler(value))


class DatasetOut(Out):
    model_config = _example(
        {
            "id": 1,
            "name": "xor",
            "n_samples": 4,
            "n_features": 2,
            "n_targets": 1,
            "feature_names": ["x1", "x2"],
            "target_names": ["y"],
            "classes": None,
            "task": "regression",
            "profile": {
                "n_rows": 4,
                "task": "regression",
                "columns": [
                    {
                        "name": "x1",
                        "type": "number",
                        "role": "feature",
                        "missing": 0,
                        "distinct": 2,
                        "min": 0.0,
                        "max": 1.0,
                        "mean": 0.5,
                        "std": 0.5,
                        "histogram": {"edges": [0.0, 0.5, 1.0], "counts": [2, 2]},
                    }
                ],
                "class_balance": None,
            },
            "sha256": "9c1f0e4b" * 8,
            "created_at": "2026-01-01T12:00:00Z",
        }
    )

    id: int
    name: str
    n_samples: int
    n_features: int
    n_targets: int
    feature_names: list[str] | None
    target_names: list[str] | None
    classes: list[str] | None
    task: str | None = Field(default=None, description="classification, regression or multilabel")
    profile: dict[str, Any] | None = Field(
        default=None,
        description="Per column: type (number, category, ignored), role, missing and distinct "
        "counts; min, max, mean, std (population) and a histogram of numbers; the most "
        "frequent categories. The target's class balance.",
    )
    sha256: str
    created_at: datetime


class DatasetList(Out):
    datasets: list[DatasetOut]
    next_after: int | None


class JobOut(Out):
    model_config = _example(
        {
            "id": 1,
            "status": "queued",
            "dataset_id": 1,
            "epochs_completed": 0,
            "epochs_total": 500,
            "attempt": 0,
            "loss": None,
            "val_loss": None,
            "model_id": None,
            "error": None,
            "stop_reason": None,
            "cancel_requested": False,
            "created_at": "2026-01-01T12:00:01Z",
            "started_at": None,
            "finished_at": None,
            "sweep_id": None,
            "trial_number": None,
        }
    )

    id: int
    status: JobStatus
    dataset_id: int | None
    epochs_completed: int = Field(
        description="Epochs recorded so far; after a resume from a checkpoint it restarts "
        "from the checkpoint's epoch."
    )
    epochs_total: int
    attempt: int = Field(
        description="Runs a worker has started: 0 while first queued, 1 for the first run, "
        "one more for each resume (after a lost worker or a stop that gave the job back)."
    )
    loss: float | None = Field(
        description="Training loss of the latest recorded epoch; null if none or not finite."
    )
    val_loss: float | None = Field(description="Its validation loss; null if none or not finite.")
    model_id: int | None = Field(description="Set once the job has succeeded.")
    error: str | None
    stop_reason: str | None
    cancel_requested: bool
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    network: dict[str, Any] | None = Field(
        default=None,
        exclude_if=lambda value: value is None,
        description="The completed network spec (as `GET /jobs/<id>/spec`): only in "
        "`GET /jobs?ids=`.",
    )
    training: dict[str, Any] | None = Field(
        default=None,
        exclude_if=lambda value: value is None,
        description="The completed training config: only in `GET /jobs?ids=`.",
    )
    sweep_id: int | None = Field(default=None, description="The sweep of a trial job.")
    trial_number: int | None = Field(default=None, description="Its number in the sweep.")


class JobSpec(Out):
    network: dict[str, Any]
    training: dict[str, Any]


class JobList(Out):
    jobs: list[JobOut]
    next_after: int | None


class PredictionCreate(StrictBody):
    """A batch prediction of every row of a stored dataset."""

    model_config = _example({"dataset_id": 1})

    # Optional here so that another owner's model is a 404 before the body is judged.
    dataset_id: Id | None = None


class PredictionOut(Out):
    """A batch prediction job: queued, running, then its outputs ready to download."""

    id: int
    model_id: int | None
    dataset_id: int | None
    status: JobStatus
    rows_total: int = Field(description="Rows of the dataset.")
    rows_done: int = Field(
        description="Rows predicted so far by the current attempt (an attempt that takes "
        "over after a lost worker starts again from the first row)."
    )
    attempt: int
    error: str | None
    stop_reason: str | None
    cancel_requested: bool
    result: str | None = Field(
        description="URL of the outputs once the job has succeeded; "
        "`?format=csv` or `?format=parquet` (the default)."
    )
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None


class PredictionList(Out):
    predictions: list[PredictionOut]
    next_after: int | None


class ResultQuery(Query):
    format: Literal["csv", "parquet"] = Field(
        default="parquet",
        description="Parquet (the stored file, as is) or CSV (converted on the way out).",
    )


def _nullable_numbers(schema: dict[str, Any]) -> None:
    # The engine declares its numbers as floats; documents that they may come as null.
    for prop in schema["properties"].values():
        if prop.get("type") == "number":
            prop["anyOf"] = [{"type": prop.pop("type")}, {"type": "null"}]


# The engine's own record of an epoch, so its fields are declared once; as a pydantic
# dataclass it validates stored rows and is documented like the models here.
@pydantic_dataclass(frozen=True, config=ConfigDict(json_schema_extra=_nullable_numbers))
class EpochOut(core.EpochStats):
    """One epoch: losses, validation accuracy (if measured), learning rate, gradient norm, time.

    A number that is not finite (the loss or gradient norm of an epoch where
    training diverged) is null.
    """


def epoch_out(row: object) -> EpochOut:
    """A stored epoch row (an ORM object) as an EpochOut."""
    # Pydantic dataclasses do not read attributes of other objects (from_attributes).
    return EpochOut(**{field.name: getattr(row, field.name) for field in fields(EpochOut)})


class EpochList(Out):
    epochs: list[EpochOut]
    next_after: int | None


class EpochsEvent(Out):
    """The data of an ``epochs`` event of ``GET /jobs/<id>/events``."""

    epochs: list[EpochOut]


class ModelOut(Out):
    id: int
    job_id: int
    dataset_id: int | None
    dataset_sha256: str
    spec: dict[str, Any] = Field(
        description="Architecture, loss, dtype, normalization, classes, feature and target names."
    )
    summary: dict[str, Any] = Field(
        description="Stop reason, epochs and final losses (null where not finite)."
    )
    normalization: dict[str, Any] | None
    classes: list[str] | None
    metrics: dict[str, Any] | None = Field(
        default=None,
        description="Scores of the rows held out by `training.test_split`, by scikit-learn.",
    )
    created_at: datetime
    lineage: Lineage


class Metrics(Out):
    """Scores by scikit-learn: accuracy, balanced accuracy, per-class precision, recall
    and F1, the confusion matrix (rows: true classes), log loss and, for two classes,
    ROC AUC; subset accuracy and Hamming loss for labels; MAE, RMSE and R² for
    regressions. Which appear depends on `task`."""

    model_config = ConfigDict(extra="allow")

    task: str
    n_samples: int


class LayerWeights(Out):
    units: int
    activation: str
    weights: list[list[float]]
    bias: list[float]


class ModelWeights(Out):
    format: int
    input_dim: int
    layers: list[LayerWeights]
    loss: str
    dtype: str
    normalization: dict[str, Any] | None
    classes: list[str] | None
    feature_names: list[str] | None = None
    preprocess: dict[str, Any] | None = Field(
        default=None, description="How the input columns are encoded (models of tables)."
    )
    target: dict[str, Any] | None = Field(
        default=None, description="How outputs are read: task, classes, target scaling."
    )


# Not an Out: the predict view refuses an output that is not finite, so the walk
# that makes such numbers null would only slow the largest answers (3x at 100k rows).
class PredictOut(BaseModel):
    model_config = _example({"outputs": [[0.981], [0.024]], "output_names": ["y"]})

    outputs: list[list[float]]
    predictions: list[list[float]] | None = Field(
        default=None,
        exclude_if=lambda value: value is None,
        description="The outputs again, as TensorFlow Serving names them (instances requests).",
    )
    labels: list[str | int | list[int]] | None = Field(
        default=None,
        exclude_if=lambda value: value is None,
        description="Present for classifiers: class names, or indices when unnamed; for "
        "multilabel models one list of 0/1 indicators per row.",
    )
    output_names: list[str] | None = Field(
        default=None,
        exclude_if=lambda value: value is None,
        description="What each output column is: a class, a label or a target column.",
    )


class Health(Out):
    model_config = _example({"status": "ok"})

    status: str


class Readiness(Out):
    model_config = _example({"status": "ok", "checks": {"database": "ok", "broker": "ok"}})

    status: str
    checks: dict[str, str]


class ErrorBody(Out):
    code: str
    message: str
    field: str | None = Field(default=None, description="Path of the offending input, if any.")


class ErrorOut(Out):
    error: ErrorBody


# --- registry ----------------------------------------------------------------------
# Model lineage and listings, and the model registry (MLflow's registered models,
# versions and aliases).


class Lineage(Out):
    """Where a model came from: enough to tell whether two models were trained alike
    (same spec hash, seed and dataset hash) and to find everything they came from."""

    job_id: int = Field(description="The training job that made it.")
    dataset_id: int | None = Field(description="Its training dataset; null once deleted.")
    dataset_sha256: str = Field(description="SHA-256 of the training dataset's contents.")
    spec_sha256: str | None = Field(
        description="SHA-256 of the job's completed network spec and training config "
        "(canonical JSON): equal for models trained alike."
    )
    seed: int | None = Field(description="The training seed.")
    service_version: str | None = Field(
        description="The backprop release that trained it (`unknown` for models trained "
        "before releases were recorded)."
    )
    init_model_id: int | None = Field(
        description="The model whose weights and preprocessing the job started from, if any."
    )
    sweep_id: int | None = Field(description="The sweep the job was a trial of, if any.")
    trial_number: int | None = Field(description="Its trial number in that sweep.")
    best_of_sweep: bool = Field(
        description="True for the model of its sweep's best trial, once the sweep has ended."
    )
    created_at: datetime


class ModelList(Out):
    models: list[ModelOut]
    next_after: int | None


Description = Annotated[str, Field(max_length=5000, pattern=r"^[^\x00]*$")]


class VersionCreate(StrictBody):
    """The caller's trained model to register as the next version."""

    model_config = _example({"model_id": 1, "description": "first XOR model"})

    model_id: Id
    description: Description | None = None


class AliasSet(StrictBody):
    """The version an alias points at."""

    model_config = _example({"version": 1})

    version: Id


class ModelVersionOut(Out):
    model_config = _example(
        {
            "name": "xor",
            "version": 1,
            "model_id": 1,
            "description": None,
            "aliases": ["production"],
            "created_at": "2026-01-01T12:00:05Z",
        }
    )

    name: str
    version: int
    model_id: int
    description: str | None
    aliases: list[str] = Field(description="The aliases pointing at this version.")
    created_at: datetime


class RegisteredModelOut(Out):
    id: int
    name: str
    description: str | None
    latest_version: int | None = Field(description="Its highest version; null when it has none.")
    aliases: dict[str, int] = Field(description="Alias -> version.")
    created_at: datetime
    updated_at: datetime


class RegisteredModelDetail(RegisteredModelOut):
    versions: list[ModelVersionOut] = Field(description="Newest first.")


class RegisteredModelList(Out):
    registered_models: list[RegisteredModelOut]
    next_after: int | None


# --- trace ---
# One backpropagation step on one sample, every number named as seed 001 names it
# (core.trace): units i1.., h1.. (h<k>_<j> with several hidden layers), o1..;
# weights w1.. layer by layer, unit by unit, input by input.

# Imported here so that this section stays whole in one place of the file.
from core import trace  # noqa: E402

TRACE_EXAMPLE: dict[str, Any] = {
    "network": {
        "input_dim": 2,
        "layers": [
            {
                "units": 2,
                "activation": "sigmoid",
                "weights": [[0.15, 0.20], [0.25, 0.30]],
                "bias": [0.35, 0.35],
            },
            {
                "units": 2,
                "activation": "sigmoid",
                "weights": [[0.40, 0.45], [0.50, 0.55]],
                "bias": [0.60, 0.60],
            },
        ],
    },
    "inputs": [0.05, 0.10],
    "targets": [0.01, 0.99],
    "learning_rate": 0.5,
    "train_bias": False,
}
TraceRow = Annotated[list[Number], Field(min_length=1)]
LearningRate = Annotated[float, Strict(), AllowInfNan(False), Field(gt=0)]


class TraceRequest(StrictBody):
    """A network with its weights and biases, and one sample to trace it on."""

    model_config = _example(TRACE_EXAMPLE)

    network: NetworkField = Field(
        description="Every layer with its `weights` (units x inputs: weights[j][i] is w_ji, "
        f"into unit j from input i) and `bias`; at most {trace.MAX_TRACE_PARAMS} weights "
        "and biases."
    )
    inputs: TraceRow = Field(description="One sample: `input_dim` numbers.")
    targets: TraceRow = Field(description="Its targets: one number per output unit.")
    loss: LossName | None = Field(
        default=None,
        description="default: categorical_crossentropy for softmax outputs, else squared_error",
    )
    learning_rate: LearningRate = Field(
        default=trace.DEFAULT_LEARNING_RATE, description="The seed's 0.5 by default."
    )
    train_bias: bool = Field(
        default=True,
        description="false freezes the biases (the seed's example): their gradients are "
        "still given, their `after` is their value.",
    )


class ModelTraceRequest(StrictBody):
    """One sample in the network's own space: its encoded inputs and targets."""

    model_config = _example({"inputs": [0.0, 1.0], "targets": [1.0]})

    inputs: TraceRow = Field(
        description="The network's inputs: the row after the model's preprocessing "
        "(normalized numbers, one-hot categories), `input_dim` numbers."
    )
    targets: TraceRow = Field(
        description="The network's targets: one per output unit (one-hot classes; "
        "standardized values for a regression the job standardized)."
    )
    learning_rate: LearningRate | None = Field(
        default=None, description="default: the training job's learning rate"
    )
    train_bias: bool | None = Field(
        default=None, description="default: as the training job trained (training.train_bias)"
    )


class TraceParam(Out):
    at: str = Field(description="Its place in the network spec: `layers[l].weights[j][i]`.")
    value: float = Field(description="Before the update.")
    gradient: float = Field(description="dE/dw, with every weight as before the update.")
    after: float = Field(description="value - learning_rate * gradient (a frozen bias: its value).")


class TraceWeight(Out):
    # "from" is a Python keyword: the field is written under its alias.
    model_config = ConfigDict(
        serialize_by_alias=True, validate_by_name=True, validate_by_alias=True
    )

    at: str = Field(description="Its place in the network spec: `layers[l].weights[j][i]`.")
    from_: str = Field(alias="from", description="The unit it comes from.")
    to: str = Field(description="The unit it feeds.")
    value: float = Field(description="Before the update.")
    gradient: float = Field(description="dE/dw, with every weight as before the update.")
    after: float = Field(description="value - learning_rate * gradient.")


def _absent_if_none(value: Any) -> bool:
    return value is None


class TraceUnit(Out):
    """An input unit has only `layer` and `out`."""

    layer: int = Field(description="0 for inputs, l + 1 for layers[l].")
    activation: str | None = Field(default=None, exclude_if=_absent_if_none)
    net: float | None = Field(
        default=None, exclude_if=_absent_if_none, description="Its weighted input, bias included."
    )
    out: float = Field(description="Its output, f(net) (an input unit: the input).")
    dE_dout: float | None = Field(
        default=None,
        exclude_if=_absent_if_none,
        description="dE/dout; absent at an output whose loss gives only the combined delta "
        "out - target (the cross-entropies).",
    )
    delta: float | None = Field(default=None, exclude_if=_absent_if_none, description="dE/dnet.")
    bias: TraceParam | None = Field(
        default=None, exclude_if=_absent_if_none, description="Its bias, at `layers[l].bias[j]`."
    )
    target: float | None = Field(
        default=None, exclude_if=_absent_if_none, description="Output units: the target."
    )


class TraceError(Out):
    total: float = Field(description="E_total: the loss of the sample.")
    outputs: dict[str, float] = Field(description="Each output unit's share (E_o1, E_o2, ...).")


class TraceOut(Out):
    """The forward pass (`units`: net, out), the error, the backward pass (`units`:
    delta; `weights` and biases: gradient) and the update (`after`)."""

    # The seed's example, as the engine traces it (a few milliseconds at import).
    model_config = _example(
        trace.trace_step(
            trace.parse_traced_network(TRACE_EXAMPLE["network"]),
            TRACE_EXAMPLE["inputs"],
            TRACE_EXAMPLE["targets"],
            learning_rate=TRACE_EXAMPLE["learning_rate"],
            train_bias=TRACE_EXAMPLE["train_bias"],
        ).to_json()
    )

    loss: str
    learning_rate: float
    train_bias: bool
    units: dict[str, TraceUnit] = Field(description="By name: i1.., h1.. (h<k>_<j>), o1...")
    weights: dict[str, TraceWeight] = Field(
        description="By name w1.., numbered layer by layer, unit by unit, input by input."
    )
    error: TraceError
    network_after: NetworkField = Field(
        description="The network after the update, to send back for the next step."
    )


# The XOR job's network (XOR_JOB) with weights of the kind training leaves; its loss
# and learning rate are the job's.
XOR_TRACED = trace.trace_step(
    trace.parse_traced_network(
        {
            "input_dim": 2,
            "layers": [
                {
                    "units": 4,
                    "activation": "tanh",
                    "weights": [[1.9, -1.7], [1.2, 1.4], [-1.6, 1.8], [0.3, -0.2]],
                    "bias": [0.4, -0.9, 0.5, 0.1],
                },
                {
                    "units": 1,
                    "activation": "sigmoid",
                    "weights": [[2.1, -2.4, 2.2, 0.3]],
                    "bias": [1.1],
                },
            ],
        }
    ),
    [0.0, 1.0],
    [1.0],
    learning_rate=0.05,
)


class ModelTraceOut(TraceOut):
    """As `POST /trace` answers: here for the XOR example's model (2 inputs, 4 tanh
    units, 1 sigmoid output)."""

    model_config = _example(XOR_TRACED.to_json())


# --- sweeps ------------------------------------------------------------------------

SWEEP_EXAMPLE: dict[str, Any] = {
    "dataset_id": 1,
    "network": {"layers": [{"units": 32, "activation": "relu"}]},
    "training": {
        "epochs": 50,
        "optimizer": {"name": "adam", "learning_rate": 0.01},
        "normalize": "standardize",
        "validation_split": 0.2,
    },
    "search_space": {
        "training.optimizer.learning_rate": {"log_uniform": [1e-4, 1e-1]},
        "network.layers[0].units": {"choice": [16, 32, 64, 128]},
        "training.batch_size": {"choice": [16, 32, 64]},
    },
    "trials": 4,
    "parallel": 2,
    "sampler": {"name": "tpe", "seed": 1},
    "pruner": "asha",
    "metric": "val_loss",
    "direction": "minimize",
}

# "name" or {"name": ..., option: whole number}; worker.sweeps judges the rest.
SamplerField = Annotated[
    str | dict[str, Any],
    Field(description='`tpe`, `random` or `grid`, or `{"name": ..., "seed": N}`.'),
]
PrunerField = Annotated[
    str | dict[str, Any],
    Field(
        description="`asha`, `hyperband`, `median` or `none`, or an object with its options: "
        "asha `min_resource` (4), `reduction_factor` (3), `min_early_stopping_rate`, "
        "`bootstrap_count`; hyperband `min_resource`, `reduction_factor`; median "
        "`n_startup_trials`, `n_warmup_steps`, `interval_steps`, `n_min_trials`."
    ),
]


class SweepCreate(StrictBody):
    """A hyperparameter search over spec paths: each trial is a training job."""

    model_config = _example(SWEEP_EXAMPLE)

    dataset_id: Id
    network: NetworkField = Field(
        default_factory=dict, description="The base network spec, completed as a job's is."
    )
    training: TrainingField
    search_space: dict[str, dict[str, Any]] = Field(
        description='Spec path -> `{"choice": [...]}`, `{"uniform": [lo, hi]}`, '
        '`{"log_uniform": [lo, hi]}`, `{"int_uniform": [lo, hi]}` or '
        '`{"int_log_uniform": [lo, hi]}`.'
    )
    trials: int = Field(ge=1, le=1000, description="Trials in all (capped at a grid's size).")
    parallel: int = Field(default=1, ge=1, le=100, description="Trials queued or running at once.")
    sampler: SamplerField = "tpe"
    pruner: PrunerField = "asha"
    metric: str = Field(
        default="val_loss",
        description="`val_loss`, `val_accuracy` (need `validation_split`) or a held-out "
        "test metric (`test_accuracy`, `test_balanced_accuracy`, `test_log_loss`, "
        "`test_roc_auc`, `test_mae`, `test_rmse`, `test_r2`, `test_hamming_loss`; need "
        "`test_split`), judged by the validation counterpart while trials run.",
    )
    direction: Literal["minimize", "maximize"] | None = Field(
        default=None, description="Default: the metric's own."
    )


class SweepListQuery(PageQuery):
    pass


class SweepBest(Out):
    job_id: int
    model_id: int | None
    trial_number: int
    value: float | None
    params: dict[str, Any]


class TrialOut(Out):
    number: int
    job_id: int
    status: JobStatus = Field(description="The trial job's status.")
    state: Literal["running", "complete", "pruned", "fail"] = Field(
        description="The trial's state in the study."
    )
    params: dict[str, Any]
    value: float | None = Field(
        description="The metric of the trial's model (a pruned one's at the epoch it "
        "stopped); null while running or when it failed."
    )
    epochs_completed: int
    stop_reason: str | None


class SweepSummary(Out):
    id: int
    status: JobStatus
    dataset_id: int | None
    trials_total: int
    parallel: int
    sampler: str
    pruner: str
    metric: str
    direction: str
    search_space: dict[str, Any]
    created_at: datetime
    finished_at: datetime | None
    best: SweepBest | None = Field(
        description="The complete trial with the best value (pruned trials are not "
        "candidates); once the sweep has ended, the one it marked."
    )
    error: str | None


class SweepOut(SweepSummary):
    trials: list[TrialOut]


class SweepList(Out):
    sweeps: list[SweepSummary]
    next_after: int | None
