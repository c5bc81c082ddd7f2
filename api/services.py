"""What one app instance holds beyond Flask's config."""

from __future__ import annotations

from dataclasses import dataclass

from flask import current_app

from store.settings import Settings

from .auth import KeyCache
from .broker import Broker
from .metrics import Metrics
from .model_cache import ModelCache

KEY = "backprop"


@dataclass(frozen=True)
class ServiceState:
    settings: Settings
    broker: Broker
    models: ModelCache
    keys: KeyCache
    metrics: Metrics


def state() -> ServiceState:
    """The state of the app handling the current request."""
    return current_app.extensions[KEY]  # type: ignore[no-any-return]
