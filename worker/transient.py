"""Telling a passing outage of the database or broker from a job's own failure.

A dropped connection, a database restarting, failing over or refusing
connections, SQLite's "database is locked" and a broker connection reset are
transient: the same write made again a moment later succeeds. The worker makes
such writes again with capped, jittered backoff (:func:`retrying`) and never
ends a job because of one. Every error the worker stores on a job goes through
:func:`describe` first, so that it is one short sentence: never SQL text or the
statement's parameters, which SQLAlchemy puts in its exceptions' messages.
"""

from __future__ import annotations

import logging
import random
import sqlite3
import time
from collections.abc import Callable
from typing import TypeVar

import kombu.exceptions
import psycopg
import redis.exceptions
from sqlalchemy import exc as sa

T = TypeVar("T")

# The first pause between two tries and the longest (seconds). The longest bounds
# how late a worker notices that the database is back: well under the 5 s in which
# a running job should resume.
FIRST_PAUSE = 0.05
LONGEST_PAUSE = 1.0
# The longest error stored on a job, in characters.
MAX_ERROR = 300

# Errors whose statement may succeed when made again on a new connection.
_DATABASE = (
    sa.OperationalError,
    sa.DisconnectionError,
    sa.InterfaceError,
    sa.TimeoutError,  # no pooled connection came free in time
    psycopg.OperationalError,
    psycopg.InterfaceError,
)
_BROKER = (
    kombu.exceptions.OperationalError,
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
)


class Unavailable(Exception):
    """The database or broker stayed unreachable for the whole time allowed; the
    message is :func:`describe`'s of the last error, which is chained."""


def _chain(exc: BaseException) -> list[BaseException]:
    """``exc``, the DBAPI error SQLAlchemy wraps and the causes, outermost first."""
    seen: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in seen and len(seen) < 8:
        seen.append(current)
        orig = getattr(current, "orig", None)
        current = orig if isinstance(orig, BaseException) else current.__cause__
    return seen


def _sqlite_busy(exc: BaseException) -> bool:
    # Another connection holds the file past the busy timeout, or the file cannot be
    # opened for the moment.
    text = str(exc).lower()
    return any(word in text for word in ("locked", "busy", "unable to open"))


def outage(exc: BaseException) -> str | None:
    """Which dependency a transient error says is unreachable, ``"database"`` or
    ``"broker"`` (following wrapped DBAPI errors and ``raise ... from`` causes), or
    None for any other error (a bug, bad data, a missing table). The worker retries
    such errors; the API answers them with 503."""
    for link in _chain(exc):
        if isinstance(link, Unavailable):
            return "database" if str(link).startswith("database") else "broker"
        if isinstance(link, sqlite3.OperationalError):
            # SQLite's operational errors are also "no such table" and the like:
            # only a lock held by another connection passes.
            return "database" if _sqlite_busy(link) else None
        if isinstance(link, sa.DBAPIError) and link.connection_invalidated:
            return "database"
        if isinstance(link, _BROKER):
            return "broker"
    for link in _chain(exc):
        if isinstance(link, _DATABASE):
            return "database"
        if isinstance(link, ConnectionError):  # a socket reset or refused, e.g. by a broker
            return "broker"
    return None


def is_transient(exc: BaseException) -> bool:
    """Whether ``exc`` is an outage that making the same call again may outlive."""
    return outage(exc) is not None


def _first_line(exc: BaseException) -> str:
    # The DBAPI's own message: SQLAlchemy's adds the statement and its parameters.
    orig = getattr(exc, "orig", None)
    source = orig if isinstance(orig, BaseException) else exc
    lines = [line.strip() for line in str(source).splitlines() if line.strip()]
    return lines[0] if lines else type(source).__name__


def _clip(text: str, limit: int = MAX_ERROR) -> str:
    return text if len(text) <= limit else text[: limit - 3].rstrip() + "..."


def describe(exc: BaseException) -> str:
    """One short line for people: ``database unavailable: connection refused`` for an
    outage, else the error's class and the first line of its message (the driver's
    message for a database error, without SQL or parameters), at most
    :data:`MAX_ERROR` characters."""
    if isinstance(exc, Unavailable):
        return _clip(str(exc))
    kind = outage(exc)
    if kind is not None:
        return _clip(f"{kind} unavailable: {_first_line(exc)}")
    if isinstance(exc, sa.StatementError):
        orig = exc.orig if isinstance(exc.orig, BaseException) else exc
        return _clip(f"database error: {type(orig).__name__}: {_first_line(exc)}")
    return _clip(f"{type(exc).__name__}: {_first_line(exc)}")


class Backoff:
    """Pauses between tries: doubling from :data:`FIRST_PAUSE` up to
    :data:`LONGEST_PAUSE` seconds, each drawn at random from its upper half, so that
    workers that failed together do not keep trying in step."""

    def __init__(self, first: float = FIRST_PAUSE, longest: float = LONGEST_PAUSE) -> None:
        self.next_pause = first
        self.longest = longest

    def pause(self) -> float:
        pause = self.next_pause
        self.next_pause = min(self.longest, pause * 2)
        return random.uniform(pause / 2, pause)


def retrying(
    action: Callable[[], T],
    *,
    patience: float,
    what: str,
    log: logging.Logger,
    give_up: Callable[[], bool] = lambda: False,
) -> T:
    """``action()``, made again after each transient error (:func:`is_transient`) with
    :class:`Backoff` pauses for up to ``patience`` seconds; it is always tried once.

    Any other error goes on at once. After ``patience`` seconds, or as soon as
    ``give_up()`` says so, the last transient error is raised as
    :class:`Unavailable`. ``what`` names the action in the log: one warning when the
    outage starts, one line when it ends.
    """
    deadline = time.monotonic() + patience
    backoff = Backoff()
    failures = 0
    started = time.monotonic()
    while True:
        try:
            result = action()
        except Exception as exc:
            if not is_transient(exc):
                raise
            failures += 1
            pause = backoff.pause()
            if time.monotonic() + pause > deadline or give_up():
                raise Unavailable(describe(exc)) from exc
            if failures == 1:
                log.warning("%s: %s; trying again", what, describe(exc))
            time.sleep(pause)
            continue
        if failures:
            log.info(
                "%s: done after %s tries in %.1f s", what, failures + 1, time.monotonic() - started
            )
        return result
