"""Service settings, read once from environment variables.

Each setting is declared once, on its field: the environment variable, the
default (written as it would be in the environment), what it means and how its
text is read. Loading, ``as_env()`` and the README's Configuration table all
derive from these declarations.

With no environment at all the service runs on embedded defaults: SQLite and a
server-less Celery broker (kombu's filesystem transport), both under a local
data folder, so ``backprop up`` works on a bare machine.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, TypeVar, dataclass_transform

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

T = TypeVar("T")


class SettingsError(ValueError):
    """An environment variable holds a value its setting cannot take.

    The message is one line that names the variable, fit to show a person as it is.
    """


@dataclass(frozen=True)
class Setting:
    env: str
    # Text as in the environment; ``{field}`` stands for an earlier setting's value.
    default: str
    meaning: str
    # Turns the text into the value, raising ValueError with a reason when it cannot.
    parse: Callable[[str], Any]


def _folder(text: str) -> Path:
    # Resolved once here, so that child processes started elsewhere agree on it.
    return Path(text).resolve()


def _database_url(text: str) -> str:
    try:
        make_url(text)
    except (ArgumentError, ValueError):
        raise ValueError("not an SQLAlchemy database URL") from None
    return text


def _broker_url(text: str) -> str:
    if "://" not in text:
        raise ValueError("not a broker URL (transport://...)")
    return text


def _storage_url(text: str) -> str:
    from .objects import check_url  # the backends' own rules, declared with them

    return check_url(text)


def _text(text: str) -> str:
    return text


def _one_of(*choices: str) -> Callable[[str], str]:
    def parse(text: str) -> str:
        if text not in choices:
            raise ValueError(f"expected one of {', '.join(choices)}")
        return text

    return parse


def _positive(number: Callable[[str], float], what: str) -> Callable[[str], Any]:
    def parse(text: str) -> float:
        try:
            value = number(text)
        except ValueError:
            raise ValueError(f"not {what}") from None
        if not math.isfinite(value) or value <= 0:
            raise ValueError(f"must be {what} greater than 0")
        return value

    return parse


_count = _positive(int, "a whole number")
_seconds = _positive(float, "a finite number of seconds")


def _optional_count(text: str) -> int | None:
    # Empty (the default) leaves the choice to the reader of the setting.
    return None if text == "" else _count(text)


def setting(env: str, default: str, parse: Callable[[str], Any], meaning: str) -> Any:
    """Declares one field of Settings: its variable, default, reader and meaning."""
    return field(metadata={"setting": Setting(env, default, meaning, parse)})


# Tells type checkers that `setting` declares fields, none with a default of its own.
@dataclass_transform(frozen_default=True, field_specifiers=(setting,))
def _settings_class(cls: type[T]) -> type[T]:
    return dataclass(frozen=True)(cls)


@_settings_class
class Settings:
    # Declared first: later defaults are made from it.
    data_dir: Path = setting(
        "BACKPROP_DATA_DIR",
        "data",
        _folder,
        "where the embedded defaults keep their files (relative to the working directory)",
    )
    database_url: str = setting(
        "DATABASE_URL",
        "sqlite:///{data_dir}/backprop.db",
        _database_url,
        "any SQLAlchemy URL; PostgreSQL as `postgresql+psycopg://...`",
    )
    broker_url: str = setting(
        "BROKER_URL",
        "filesystem://",
        _broker_url,
        "Celery broker, e.g. `redis://127.0.0.1:6379/0`; `filesystem://` uses the data folder",
    )
    broker_prefix: str = setting(
        "BROKER_PREFIX",
        "",
        _text,
        "prefix of every Redis key the broker uses (tests use one per run)",
    )
    storage_url: str = setting(
        "BACKPROP_STORAGE_URL",
        "file://{data_dir}/objects",
        _storage_url,
        "where datasets, checkpoints and model weights are kept: `file:///folder`, "
        "`database://` (the database above) or `s3://bucket/prefix` (boto3's `AWS_*` "
        "variables; `?endpoint_url=` for another S3-compatible server)",
    )
    cache_bytes: int = setting(
        "BACKPROP_CACHE_BYTES",
        "10737418240",
        _count,
        "local copies of stored datasets a host keeps (in `<BACKPROP_DATA_DIR>/cache`, "
        "least recently used out first); a storage folder needs none",
    )
    queue: str = setting(
        "BACKPROP_QUEUE",
        "training",
        _text,
        "Celery queue of training and batch prediction jobs",
    )
    max_body_bytes: int = setting(
        "BACKPROP_MAX_BODY_BYTES",
        "67108864",
        _count,
        "largest request body (413 above)",
    )
    max_upload_bytes: int = setting(
        "BACKPROP_MAX_UPLOAD_BYTES",
        "4294967296",
        _count,
        "largest dataset upload (413 above); it is spooled to a temporary file, not memory",
    )
    max_dataset_cells: int = setting(
        "BACKPROP_MAX_DATASET_CELLS",
        "200000000",
        _count,
        "rows × columns of a dataset",
    )
    max_weights: int = setting(
        "BACKPROP_MAX_WEIGHTS",
        "5000000",
        _count,
        "weights and biases of a network",
    )
    max_layers: int = setting(
        "BACKPROP_MAX_LAYERS",
        "64",
        _count,
        "layers of a network",
    )
    max_model_bytes: int = setting(
        "BACKPROP_MAX_MODEL_BYTES",
        "268435456",
        _count,
        "stored size of a model or a checkpoint, estimated from the spec at admission",
    )
    max_epochs: int = setting(
        "BACKPROP_MAX_EPOCHS",
        "1000000",
        _count,
        "epochs of a job",
    )
    max_predict_rows: int = setting(
        "BACKPROP_MAX_PREDICT_ROWS",
        "100000",
        _count,
        "rows of one predict request",
    )
    max_job_seconds: float = setting(
        "BACKPROP_MAX_JOB_SECONDS",
        "86400",
        _seconds,
        "a job's training time; one that reaches it stops with `time_limit`, keeping its model",
    )
    epoch_flush_seconds: float = setting(
        "BACKPROP_EPOCH_FLUSH_SECONDS",
        "0.25",
        _seconds,
        "how often a worker writes its epochs",
    )
    log_format: str = setting(
        "BACKPROP_LOG_FORMAT",
        "json",
        _one_of("json", "text"),
        "`json` (one object per line) or `text`",
    )
    sse_seconds: float = setting(
        "BACKPROP_SSE_SECONDS",
        "60",
        _seconds,
        "life of one `/jobs/<id>/events` stream; clients reconnect with `Last-Event-ID`",
    )
    sse_per_key: int = setting(
        "BACKPROP_SSE_PER_KEY",
        "50",
        _count,
        "open `/jobs/<id>/events` streams one API key may hold in each API process (429 above)",
    )
    lease_seconds: float = setting(
        "BACKPROP_LEASE_SECONDS",
        "30",
        _seconds,
        "a running job whose worker has not reported for this long is resumed elsewhere",
    )
    checkpoint_seconds: float = setting(
        "BACKPROP_CHECKPOINT_SECONDS",
        "5",
        _seconds,
        "how often a worker checkpoints a running job",
    )
    max_attempts: int = setting(
        "BACKPROP_MAX_ATTEMPTS",
        "5",
        _count,
        "runs of one job (first run plus resumes after a lost worker) before it fails",
    )
    requeue_seconds: float = setting(
        "BACKPROP_REQUEUE_SECONDS",
        "60",
        _seconds,
        "a queued job whose message the broker no longer holds is sent again once it has "
        "waited this long",
    )
    reconcile_seconds: float = setting(
        "BACKPROP_RECONCILE_SECONDS",
        "5",
        _seconds,
        "how often each worker looks for lost jobs",
    )
    blas_threads: int | None = setting(
        "BACKPROP_BLAS_THREADS",
        "",
        _optional_count,
        "BLAS/OpenMP threads per matrix product in a worker process; empty: the host's "
        "cores divided by the worker's `--concurrency` (`backprop worker --processes P` "
        "also divides them by P)",
    )

    @property
    def broker_is_filesystem(self) -> bool:
        return self.broker_url.startswith("filesystem://")

    @property
    def broker_folder(self) -> Path:
        return self.data_dir / "broker"

    @property
    def cache_folder(self) -> Path:
        """Local copies of stored datasets, by content digest (object storage backends
        other than a local folder)."""
        return self.data_dir / "cache"

    def as_env(self) -> dict[str, str]:
        """The environment variables that reproduce these settings in a child process."""
        values = {name: getattr(self, name) for name, _ in declared()}
        # None is a setting left empty (its default).
        return {
            spec.env: "" if values[name] is None else str(values[name]) for name, spec in declared()
        }


def declared() -> Iterator[tuple[str, Setting]]:
    """(field name, declaration) of every setting, in the order they load."""
    for f in fields(Settings):
        yield f.name, f.metadata["setting"]


# Field name -> variable, for code that sets one setting for a child process.
ENV_NAMES = {name: spec.env for name, spec in declared()}


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    """Settings from the environment (``os.environ`` by default); unset or empty means default.

    Raises SettingsError naming the first variable whose value cannot be used.
    """
    environ = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    for name, spec in declared():
        text = environ.get(spec.env) or spec.default.format_map(values)
        try:
            values[name] = spec.parse(text)
        except ValueError as reason:
            # A URL may hold a password, and the message may end up in a log.
            shown = spec.env if "://" in text else f"{spec.env}={text!r}"
            raise SettingsError(f"{shown}: {reason}") from None
    return Settings(**values)


def configuration_table() -> str:
    """The README's Configuration table, in Markdown."""

    def default(spec: Setting) -> str:
        if not spec.default:
            return "empty"
        # A default made from another setting names that setting's variable.
        return "`" + re.sub(r"\{(\w+)\}", lambda m: f"<{ENV_NAMES[m[1]]}>", spec.default) + "`"

    rows = ["| variable | default | meaning |", "|---|---|---|"]
    rows += [f"| `{s.env}` | {default(s)} | {s.meaning} |" for _, s in declared()]
    return "\n".join(rows)
