"""The HTTP API: a Flask app factory (gunicorn: ``api:create_app()``).

Nothing imports this package; it imports the store, the engine and the queue.
"""

from __future__ import annotations

from flask import Flask
from werkzeug.routing import IntegerConverter, Map

from store import connect
from store.logs import configure_logging
from store.settings import Settings, load_settings

from .auth import KeyCache, authenticate
from .broker import Broker
from .errors import register_error_handlers
from .metrics import Metrics
from .metrics import install as install_metrics
from .model_cache import ModelCache
from .routes import (
    datasets,
    events,
    export,
    health,
    jobs,
    metrics,
    models,
    openapi,
    plots,
    predictions,
    registry,
    sweeps,
    trace,
    ui,
)
from .schemas import MAX_ID
from .services import KEY, ServiceState


class IdConverter(IntegerConverter):
    """A positive id that fits the database's integer keys; anything else is a 404."""

    def __init__(self, url_map: Map) -> None:
        super().__init__(url_map, min=1, max=MAX_ID)


def create_app(settings: Settings | None = None) -> Flask:
    """A configured app: settings, store, error handlers, one blueprint per resource."""
    settings = settings or load_settings()
    connect(settings)

    app = Flask(__name__, static_folder=None)
    # Werkzeug answers larger bodies with 413 before a view reads them.
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body_bytes
    app.json.sort_keys = False  # type: ignore[attr-defined]
    app.url_map.converters["id"] = IdConverter
    configure_logging(settings.log_format)
    service = ServiceState(settings, Broker(settings), ModelCache(), KeyCache(), Metrics())
    app.extensions[KEY] = service

    register_error_handlers(app)
    install_metrics(app, service.metrics)
    app.before_request(lambda: authenticate(service.keys))
    for blueprint in (
        datasets.bp,
        jobs.bp,
        events.bp,
        plots.bp,
        models.bp,
        export.bp,
        predictions.bp,
        registry.bp,
        sweeps.bp,
        health.bp,
        metrics.bp,
        openapi.bp,
        trace.bp,
        ui.bp,
    ):
        app.register_blueprint(blueprint)
    return app
