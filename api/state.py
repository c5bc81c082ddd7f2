"""What one app instance holds beyond Flask's config."""

from __future__ import annotations

from dataclasses import dataclass

from flask import current_app

from settings import Settings

from .broker import Broker
from .predictor import ModelCache

KEY = "backprop"


@dataclass(frozen=True)
class ServiceState:
    settings: Settings
    broker: Broker
    models: ModelCache


def state() -> ServiceState:
    """The state of the app handling the current request."""
    return current_app.extensions[KEY]  # type: ignore[no-any-return]
