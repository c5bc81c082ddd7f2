"""/healthz (the process answers) and /readyz (its database and broker answer).

Both are public, so neither says more than which dependency does not answer: the
reason (hosts, ports, folders) goes to the server's log.
"""

from __future__ import annotations

import logging

from flask import Blueprint
from sqlalchemy import text

from store import Session

from ..decorators import responds
from ..errors import ApiError, public_message
from ..schemas import Health, Readiness
from ..services import state

log = logging.getLogger(__name__)

bp = Blueprint("health", __name__)


@bp.get("/healthz")
@responds(200, Health)
def healthz() -> Health:
    """Liveness: the process is up; touches nothing else."""
    return Health(status="ok")


@bp.get("/readyz")
@responds(200, Readiness, errors=(503,))
def readyz() -> Readiness:
    """Readiness: the database answers `SELECT 1` and the broker is reachable.

    Not ready is a 503 `not_ready` (with `Retry-After`) naming the dependencies
    that do not answer, `database` and/or `broker`, never their addresses.
    """
    failing = []
    try:
        with Session() as session:
            session.execute(text("SELECT 1"))
    except Exception as exc:  # any failure means not ready; the log says which
        log.warning("not ready: database: %s", public_message(str(exc)).partition("\n")[0])
        failing.append("database")
    broker = state().broker.problem()
    if broker is not None:
        log.warning("not ready: %s", broker)
        failing.append("broker")
    if failing:
        raise ApiError(503, "not_ready", f"not ready; not answering: {', '.join(failing)}")
    return Readiness(status="ok", checks={"database": "ok", "broker": "ok"})
