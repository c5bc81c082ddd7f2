"""/healthz (the process answers) and /readyz (its database and broker answer)."""

from __future__ import annotations

from flask import Blueprint
from sqlalchemy import text

from store import Session

from ..decorators import responds
from ..errors import ApiError
from ..schemas import Health, Readiness
from ..services import state

bp = Blueprint("health", __name__)


@bp.get("/healthz")
@responds(200, Health)
def healthz() -> Health:
    """Liveness: the process is up; touches nothing else."""
    return Health(status="ok")


@bp.get("/readyz")
@responds(200, Readiness, errors=(503,))
def readyz() -> Readiness:
    """Readiness: the database answers `SELECT 1` and the broker is reachable."""
    problems = []
    try:
        with Session() as session:
            session.execute(text("SELECT 1"))
    except Exception as exc:  # any failure means not ready; the message says which
        problems.append(f"database unreachable: {type(exc).__name__}: {exc}")
    broker = state().broker.problem()
    if broker is not None:
        problems.append(broker)
    if problems:
        raise ApiError(503, "not_ready", "; ".join(problems))
    return Readiness(status="ok", checks={"database": "ok", "broker": "ok"})
