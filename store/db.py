"""The one sessionmaker, bound to the engine named by the settings.

Sessions are opened at the edge (a request, a task) with ``Session.begin()``;
query functions take a session and never commit on their own.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, make_url
from sqlalchemy.orm import sessionmaker

Session = sessionmaker(expire_on_commit=False)

_engines: dict[str, Engine] = {}


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # WAL lets the API read while a worker writes; foreign keys are off by default in SQLite.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.close()


# libpq's connection options, unless the URL sets them: a connection attempt to an
# unreachable host fails after seconds rather than minutes, and a connection whose
# peer vanished without a word (a failover, a cut network) is found dead by TCP
# keepalives, so the worker's retries see an error instead of a query that hangs.
_LIBPQ = {
    "connect_timeout": 10,
    "keepalives": 1,
    "keepalives_idle": 10,
    "keepalives_interval": 5,
    "keepalives_count": 3,
}


def _server_args(url: str) -> dict[str, Any]:
    parsed = make_url(url)
    if parsed.get_backend_name() != "postgresql":
        return {}
    return {key: value for key, value in _LIBPQ.items() if key not in parsed.query}


def engine_for(url: str) -> Engine:
    """One engine per URL and process."""
    if url not in _engines:
        if url.startswith("sqlite:///"):
            Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        if url.startswith("sqlite"):
            engine = create_engine(url, connect_args={"timeout": 10})
            event.listen(engine, "connect", _sqlite_pragmas)
        else:
            # A pooled connection the server dropped (a restart, pg_terminate_backend)
            # is found dead when checked out and replaced, not handed to a query.
            engine = create_engine(url, pool_pre_ping=True, connect_args=_server_args(url))
        _engines[url] = engine
    return _engines[url]


def configure(url: str) -> Engine:
    """Bind the sessionmaker to ``url``; called once at process start."""
    engine = engine_for(url)
    Session.configure(bind=engine)
    return engine
