"""The dashboard (``/``) and the browsable API docs (``/docs``).

Plain HTML and JavaScript with uPlot vendored under ``static/vendor`` (MIT, its
licence beside it); no build step and no CDN. The pages are public shells: all
data they show comes from the authenticated API with the key the user enters.
"""

from __future__ import annotations

from pathlib import Path

from flask import Blueprint, Response, send_from_directory

STATIC = Path(__file__).parent.parent / "static"

bp = Blueprint("ui", __name__)


@bp.get("/")
def dashboard() -> Response:
    return send_from_directory(STATIC / "ui", "index.html", max_age=0)


@bp.get("/docs")
def docs() -> Response:
    return send_from_directory(STATIC / "ui", "docs.html", max_age=0)


@bp.get("/ui/<path:name>")
def asset(name: str) -> Response:
    folder = STATIC if name.startswith("vendor/") else STATIC / "ui"
    return send_from_directory(folder, name, max_age=300)
