"""Where a trained model came from: the hash of the spec it was trained with and the
release of the service that trained it (the rest of its lineage is its job, its
dataset's hash, its seed and its creation time, columns of ``models``)."""

from __future__ import annotations

import hashlib
import json
from functools import cache
from importlib.metadata import PackageNotFoundError, version
from typing import Any

UNKNOWN_VERSION = "unknown"
# The seed a training config without one trains with: core.TrainingConfig's default,
# written here because the store does not import the engine (a test holds them equal).
DEFAULT_SEED = 0


def spec_sha256(network: Any, training: Any) -> str:
    """SHA-256 (hex) of a job's completed network spec and training config, as canonical
    JSON (sorted keys, no spaces, ASCII): two jobs trained alike share it.

    Migration 0008 carries a copy of this function for the models it backfills.
    """
    document = json.dumps(
        {"network": network, "training": training},
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=True,
    )
    return hashlib.sha256(document.encode()).hexdigest()


@cache
def service_version() -> str:
    """The installed ``backprop`` distribution's version, or ``unknown`` when the code
    runs from files that were never installed."""
    try:
        return version("backprop")
    except PackageNotFoundError:
        return UNKNOWN_VERSION
