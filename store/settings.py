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
from typing import Any

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError


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
    except ArgumentError:
        raise ValueError("not an SQLAlchemy database URL") from None
    return text


def _broker_url(text: str) -> str:
    if "://" not in text:
        raise ValueError("not a broker URL (transport://...)")
    return text


def _text(text: str) -> str:
    return text


def _one_of(*choices: str) -> Callable[[str], str]:
    def parse(text: str) -> str:
        if text not in choices:
            raise ValueError(f"expected one of {', '.join(choices)}")
        return text

    return parse


def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise ValueError("not a whole number") from None
    if value < 1:
        raise ValueError("must be at least 1")
    return value


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ValueError("not a number of seconds") from None
    if not math.isfinite(value) or value <= 0:
        raise ValueError("must be a positive, finite number of seconds")
    return value


def setting(env: str, default: str, meaning: str, parse: Callable[[str], Any]) -> dict[str, Any]:
    """Field metadata declaring one setting."""
    return {"setting": Setting(env, default, meaning, parse)}


@dataclass(frozen=True)
class Settings:
    # Declared first: other defaults are made from it.
    data_dir: Path = field(
        metadata=setting(
            "BACKPROP_DATA_DIR",
            "data",
            "where the embedded defaults keep their files (relative to the working directory)",
            _folder,
        )
    )
    database_url: str = field(
        metadata=setting(
            "DATABASE_URL",
            "sqlite:///{data_dir}/backprop.db",
            "any SQLAlchemy URL; PostgreSQL as `postgresql+psycopg://...`",
            _database_url,
        )
    )
    broker_url: str = field(
        metadata=setting(
            "BROKER_URL",
            "filesystem://",
            "Celery broker, e.g. `redis://127.0.0.1:6379/0`; `filesystem://` keeps its "
            "messages in `<BACKPROP_DATA_DIR>/broker`",
            _broker_url,
        )
    )
    broker_prefix: str = field(
        metadata=setting(
            "BROKER_PREFIX",
            "",
            "prefix of every Redis key the broker uses (tests use one per run)",
            _text,
        )
    )
    queue: str = field(
        metadata=setting("BACKPROP_QUEUE", "training", "Celery queue of training jobs", _text)
    )
    max_body_bytes: int = field(
        metadata=setting(
            "BACKPROP_MAX_BODY_BYTES", "67108864", "largest request body (413 above)", _count
        )
    )
    max_dataset_cells: int = field(
        metadata=setting(
            "BACKPROP_MAX_DATASET_CELLS", "20000000", "rows × columns of a dataset", _count
        )
    )
    max_weights: int = field(
        metadata=setting(
            "BACKPROP_MAX_WEIGHTS", "5000000", "weights and biases of a network", _count
        )
    )
    max_epochs: int = field(
        metadata=setting("BACKPROP_MAX_EPOCHS", "1000000", "epochs of a job", _count)
    )
    max_predict_rows: int = field(
        metadata=setting(
            "BACKPROP_MAX_PREDICT_ROWS", "100000", "rows of one predict request", _count
        )
    )
    max_job_seconds: float = field(
        metadata=setting(
            "BACKPROP_MAX_JOB_SECONDS",
            "86400",
            "training time of one job; a job that reaches it stops with `time_limit` and "
            "keeps its model",
            _seconds,
        )
    )
    epoch_flush_seconds: float = field(
        metadata=setting(
            "BACKPROP_EPOCH_FLUSH_SECONDS", "0.25", "how often a worker writes its epochs", _seconds
        )
    )
    log_format: str = field(
        metadata=setting(
            "BACKPROP_LOG_FORMAT",
            "json",
            "`json` (one object per line) or `text`",
            _one_of("json", "text"),
        )
    )
    sse_seconds: float = field(
        metadata=setting(
            "BACKPROP_SSE_SECONDS",
            "60",
            "longest life of one `GET /jobs/<id>/events` stream (clients reconnect with "
            "`Last-Event-ID`)",
            _seconds,
        )
    )
    lease_seconds: float = field(
        metadata=setting(
            "BACKPROP_LEASE_SECONDS",
            "30",
            "a running job whose worker has not reported for this long is resumed elsewhere",
            _seconds,
        )
    )
    checkpoint_seconds: float = field(
        metadata=setting(
            "BACKPROP_CHECKPOINT_SECONDS",
            "5",
            "how often a worker checkpoints a running job",
            _seconds,
        )
    )
    max_attempts: int = field(
        metadata=setting(
            "BACKPROP_MAX_ATTEMPTS",
            "5",
            "runs of one job (first run plus resumes) before it fails",
            _count,
        )
    )
    requeue_seconds: float = field(
        metadata=setting(
            "BACKPROP_REQUEUE_SECONDS",
            "60",
            "a queued job still waiting after this long is sent to the queue again",
            _seconds,
        )
    )
    reconcile_seconds: float = field(
        metadata=setting(
            "BACKPROP_RECONCILE_SECONDS", "5", "how often each worker looks for lost jobs", _seconds
        )
    )

    @property
    def broker_is_filesystem(self) -> bool:
        return self.broker_url.startswith("filesystem://")

    @property
    def broker_folder(self) -> Path:
        return self.data_dir / "broker"

    def as_env(self) -> dict[str, str]:
        """The environment variables that reproduce these settings in a child process."""
        return {spec.env: str(getattr(self, name)) for name, spec in declared()}


def declared() -> Iterator[tuple[str, Setting]]:
    """(field name, declaration) of every setting, in the order they load."""
    for f in fields(Settings):
        yield f.name, f.metadata["setting"]


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
            raise SettingsError(f"{spec.env}={text!r}: {reason}") from None
    return Settings(**values)


def configuration_table() -> str:
    """The README's Configuration table, in Markdown."""

    def default(spec: Setting) -> str:
        if not spec.default:
            return "empty"
        # A default made from another setting names that setting's variable.
        envs = {name: s.env for name, s in declared()}
        return "`" + re.sub(r"\{(\w+)\}", lambda m: f"<{envs[m[1]]}>", spec.default) + "`"

    rows = ["| variable | default | meaning |", "|---|---|---|"]
    rows += [f"| `{s.env}` | {default(s)} | {s.meaning} |" for _, s in declared()]
    return "\n".join(rows)
