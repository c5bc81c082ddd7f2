"""``GET /jobs/<id>/events``: a job's epochs and status changes as Server-Sent Events.

Each ``epochs`` event carries the epochs recorded since the last one and has the
last epoch's number as its id, so a client that reconnects with
``Last-Event-ID`` misses nothing and sees nothing twice. A ``status`` event
follows every status change. The stream ends once the job has finished and
its last epochs are sent, or after ``BACKPROP_SSE_SECONDS`` (the browser's
EventSource then reconnects on its own).

Streams are cheap to hold open: the API runs under gevent (see ``cli.api_command``),
so an open stream is a greenlet waiting on an event, not a server thread. A
stream reads the database only to catch up when it starts; after that one
poller per API process asks the database, once per tick, which of the watched
jobs changed (one small query whatever the number of streams), reads the new
epochs of each changed job once, and hands them to every stream of that job.
Each key may hold ``BACKPROP_SSE_PER_KEY`` streams per API process; one more
is answered 429 with ``Retry-After``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import threading
import time
from collections import Counter, OrderedDict, deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, fields
from typing import Any

from flask import Blueprint, Response, request
from sqlalchemy import select
from sqlalchemy.orm import Session as OrmSession

from store import Epoch, Job, JobKind, Session
from store import queries as q

from ..auth import owner
from ..decorators import responds
from ..errors import error_response, invalid
from ..schemas import MAX_ID, EpochOut
from ..services import state
from .jobs import job_out
from .rows import mine

log = logging.getLogger(__name__)

bp = Blueprint("events", __name__)

# How often the poller asks which watched jobs changed: a worker writes its epochs
# every BACKPROP_EPOCH_FLUSH_SECONDS (0.25 s by default).
POLL_SECONDS = 0.25
# A closed connection is noticed only when written to: an idle stream's heartbeat is
# what frees its place under BACKPROP_SSE_PER_KEY once its client has gone.
HEARTBEAT_SECONDS = 3.0
PAGE = 1000
# A stream that meets the per-key cap may try again after this long (an old stream
# of the same key ends within BACKPROP_SSE_SECONDS at the latest).
RETRY_AFTER_SECONDS = 5
# Digits of MAX_ID: anything longer cannot be an epoch and is refused unparsed.
MAX_DIGITS = len(str(MAX_ID))


def _event(kind: str, data: object, ident: int | None = None) -> str:
    head = f"id: {ident}\n" if ident is not None else ""
    # allow_nan=False: a NaN that slipped past the schemas fails here rather than
    # reaching a client as JSON it cannot parse.
    text = json.dumps(data, separators=(",", ":"), allow_nan=False)
    return f"{head}event: {kind}\ndata: {text}\n\n"


def _epochs_event(epochs: list[dict[str, Any]]) -> str:
    return _event("epochs", {"epochs": epochs}, epochs[-1]["epoch"])


# The columns of an epoch as EpochOut has them, read as plain rows: building a
# pydantic object per epoch would cost more than the rest of a stream's work.
EPOCH_FIELDS = tuple(f.name for f in fields(EpochOut))
EPOCH_COLUMNS = tuple(getattr(Epoch, name) for name in EPOCH_FIELDS)


def _json_number(value: Any) -> Any:
    # As EpochOut in JSON: a number that is not finite is null.
    return None if isinstance(value, float) and not math.isfinite(value) else value


def epoch_page(session: OrmSession, job_id: int, after: int) -> list[dict[str, Any]]:
    """Up to PAGE epochs after ``after`` as EpochOut JSON, in order."""
    rows = session.execute(
        select(*EPOCH_COLUMNS)
        .where(Epoch.job_id == job_id, Epoch.epoch > after)
        .order_by(Epoch.epoch)
        .limit(PAGE)
    )
    return [
        {name: _json_number(value) for name, value in zip(EPOCH_FIELDS, row, strict=True)}
        for row in rows
    ]


class Pages:
    """Full pages of epochs already sent as events, shared by the streams of a process.

    Recorded epochs never change, so the ``epochs`` event of a full page (PAGE
    epochs after a given one) is the same for every stream that catches up through
    it: many clients following a long job from its start read and encode each page
    once. A page being read is read by one stream while the others wait for it.
    """

    def __init__(self, capacity: int = 64) -> None:
        self.capacity = capacity
        self._lock = threading.Lock()
        self._pages: OrderedDict[tuple[int, int], tuple[str, int]] = OrderedDict()
        self._reading: dict[tuple[int, int], threading.Lock] = {}

    def page(self, job_id: int, after: int) -> tuple[str | None, int, bool]:
        """(the ``epochs`` event of the epochs after ``after``, or None if there are
        none; the last epoch in it; whether the page is full)."""
        key = (job_id, after)
        with self._lock:
            hit = self._pages.get(key)
            if hit is not None:
                self._pages.move_to_end(key)
                return hit[0], hit[1], True
            gate = self._reading.setdefault(key, threading.Lock())
        with gate:
            with self._lock:
                hit = self._pages.get(key)
            if hit is not None:
                return hit[0], hit[1], True
            try:
                with Session.begin() as session:
                    epochs = epoch_page(session, job_id, after)
            finally:
                with self._lock:
                    self._reading.pop(key, None)
            if not epochs:
                return None, after, False
            text, last = _epochs_event(epochs), epochs[-1]["epoch"]
            if len(epochs) == PAGE:
                with self._lock:
                    self._pages[key] = (text, last)
                    while len(self._pages) > self.capacity:
                        self._pages.popitem(last=False)
            return text, last, len(epochs) == PAGE


def _last_event_id() -> int:
    """The epoch a reconnecting client has seen, 0 for none; 422 for anything but an epoch."""
    raw = request.headers.get("Last-Event-ID", "0").strip() or "0"
    # isdigit() alone takes '²' (the byte 0xB2 as Werkzeug decodes headers) and other
    # digits int() refuses; a number past the database's integers fails its query.
    if not (raw.isascii() and raw.isdigit() and len(raw) <= MAX_DIGITS and int(raw) <= MAX_ID):
        shown = raw if len(raw) <= 40 else raw[:40] + "..."
        raise invalid(
            "Last-Event-ID", f"expected the number of an epoch (0 to {MAX_ID}), got {shown!r}"
        )
    return int(raw)


@dataclass
class Update:
    """What one tick of the poller learned about one job, shared by all its streams."""

    # the new epochs (EpochOut as JSON), all after ``after``
    epochs: list[dict[str, Any]]
    after: int
    # the job as JobOut JSON when its status changed, else None
    job: dict[str, Any] | None = None
    # the job has finished (its last epochs are in this update) or was deleted
    ended: bool = False
    _text: str | None = None

    def epochs_text(self, seen: int) -> str | None:
        """The ``epochs`` event for a stream that has sent every epoch up to ``seen``."""
        if not self.epochs or self.epochs[-1]["epoch"] <= seen:
            return None
        if seen <= self.after:  # the usual case: one text for every stream of the job
            if self._text is None:
                self._text = _epochs_event(self.epochs)
            return self._text
        return _epochs_event([e for e in self.epochs if e["epoch"] > seen])


@dataclass(eq=False)
class Listener:
    """One open stream's mailbox."""

    updates: deque[Update] = field(default_factory=deque)
    wake: threading.Event = field(default_factory=threading.Event)

    def deliver(self, update: Update) -> None:
        self.updates.append(update)
        self.wake.set()


@dataclass(eq=False)
class Feed:
    """The watched state of one job: what the poller last saw and who listens."""

    # epochs up to this one have been read and handed out
    position: int
    # (status, epochs_completed, finished) when last read; None: read at the next tick
    token: tuple[str, int, bool] | None = None
    status: str | None = None
    listeners: set[Listener] = field(default_factory=set)


class Watch:
    """The streams of one API process: the jobs they watch, one poller, per-key counts.

    Under gevent the poller is a greenlet and the events are gevent's; in a
    threaded server (or a test client) they are threads and thread events.
    """

    def __init__(self, poll_seconds: float = POLL_SECONDS) -> None:
        self.poll_seconds = poll_seconds
        self._lock = threading.Lock()
        self._feeds: dict[int, Feed] = {}
        self._per_key: Counter[str] = Counter()
        self._poller: threading.Thread | None = None
        # False once the server process is stopping (see stop_streams_with).
        self.serving: Callable[[], bool] = lambda: True

    def open(self, key: str, cap: int) -> Callable[[], None] | None:
        """Count one more stream of ``key``; returns its release, or None past ``cap``."""
        with self._lock:
            if self._per_key[key] >= cap:
                return None
            self._per_key[key] += 1
        released = False

        def release() -> None:
            nonlocal released
            with self._lock:
                if not released:
                    released = True
                    self._per_key[key] -= 1
                    if not self._per_key[key]:
                        del self._per_key[key]

        return release

    def subscribe(self, job_id: int, seen: int, listener: Listener) -> int:
        """Listen to the job's updates; returns the epoch up to which the feed has read
        (the stream reads any epochs between ``seen`` and that itself)."""
        with self._lock:
            feed = self._feeds.get(job_id)
            if feed is None:
                feed = self._feeds[job_id] = Feed(position=seen)
            feed.listeners.add(listener)
            if self._poller is None or not self._poller.is_alive():
                self._poller = threading.Thread(target=self._poll, name="sse-poller", daemon=True)
                self._poller.start()
            return feed.position

    def unsubscribe(self, job_id: int, listener: Listener) -> None:
        with self._lock:
            feed = self._feeds.get(job_id)
            if feed is not None:
                feed.listeners.discard(listener)
                if not feed.listeners:
                    del self._feeds[job_id]

    def _poll(self) -> None:
        while True:
            with self._lock:
                watched = dict(self._feeds)
                if not watched:
                    self._poller = None
                    return
            if not self.serving():
                # A graceful stop waits for open requests: end the streams now rather than
                # at their deadline (clients reconnect with Last-Event-ID elsewhere).
                for feed in watched.values():
                    self._publish(feed, Update([], feed.position, ended=True))
            else:
                try:
                    self.tick(watched)
                except Exception:  # the database is away: streams heartbeat; try again
                    log.exception("event streams could not poll the database")
            time.sleep(self.poll_seconds)

    def tick(self, watched: dict[int, Feed]) -> None:
        """One poll: a query for the change tokens of every watched job, then for each
        changed job its new epochs (and its state if its status changed)."""
        with Session.begin() as session:
            rows = session.execute(
                select(Job.id, Job.status, Job.epochs_completed, Job.finished_at).where(
                    Job.id.in_(watched)
                )
            ).all()
        tokens = {
            row.id: (row.status.value, row.epochs_completed, row.finished_at is not None)
            for row in rows
        }
        for job_id, feed in watched.items():
            token = tokens.get(job_id)
            if token is None:  # deleted
                self._publish(feed, Update([], feed.position, ended=True))
            elif token != feed.token:
                self._refresh(job_id, feed, token)

    def _refresh(self, job_id: int, feed: Feed, token: tuple[str, int, bool]) -> None:
        # The job's row is read before its epochs: a job seen finished has all its
        # epochs committed already (they are written with its final status).
        with Session.begin() as session:
            job = q.get_job(session, job_id)
            if job is None:
                self._publish(feed, Update([], feed.position, ended=True))
                return
            current = job_out(session, job).model_dump(mode="json")
            status_changed = current["status"] != feed.status
            finished = current["finished_at"] is not None
            while True:
                new = epoch_page(session, job_id, feed.position)
                last_page = len(new) < PAGE
                update = Update(new, feed.position)
                if last_page:
                    update.job = current if status_changed else None
                    update.ended = finished
                if new:
                    feed.position = new[-1]["epoch"]
                if new or update.job is not None or update.ended:
                    self._publish(feed, update)
                if last_page:
                    break
        feed.status = current["status"]
        # The token read above may be older than the row just read; either way the
        # next tick compares against it and, at worst, reads once more for nothing.
        feed.token = token

    def _publish(self, feed: Feed, update: Update) -> None:
        with self._lock:
            listeners = list(feed.listeners)
        for listener in listeners:
            listener.deliver(update)


_watch = Watch()
_pages = Pages()


def stop_streams_with(serving: Callable[[], bool]) -> None:
    """End this process's streams within a poll once ``serving()`` is False (gunicorn:
    the worker's ``alive``, cleared by a graceful stop; api/gunicorn_conf.py)."""
    _watch.serving = serving


def _key_digest() -> str:
    # authenticate() has checked the key; only its digest is kept.
    key = request.headers.get("Authorization", "").partition(" ")[2].strip()
    return hashlib.sha256(key.encode()).hexdigest()


def _current(job_id: int, who: str) -> dict[str, Any] | None:
    """The job as JobOut JSON, or None if it is gone."""
    with Session.begin() as session:
        job = q.get_job(session, job_id, owner=who)
        return None if job is None else job_out(session, job).model_dump(mode="json")


def _catch_up(job_id: int, after: int, until: int | None, sent: list[int]) -> Iterator[str]:
    """Events of the epochs after ``after`` (up to ``until``, or all there are), a page
    at a time, each read in a session of its own; ``sent[0]`` follows the last epoch."""
    sent[:] = [after]
    while until is None or sent[0] < until:
        text, last, full = _pages.page(job_id, sent[0])
        if text is None:
            return
        if until is not None and last > until:
            # Only when the feed has read less than a page ahead of this stream.
            with Session.begin() as session:
                epochs = [e for e in epoch_page(session, job_id, sent[0]) if e["epoch"] <= until]
            if epochs:
                sent[0] = epochs[-1]["epoch"]
                yield _epochs_event(epochs)
            return
        sent[0] = last
        yield text
        if not full:
            return


@bp.get("/jobs/<id:job_id>/events")
@responds(200, errors=(404, 422, 429), media="text/event-stream")
def job_events(job_id: int) -> Response:
    """Live epochs and status changes of a job (text/event-stream)."""
    after = _last_event_id()
    who = owner()
    with Session.begin() as session:
        mine(session, "job", job_id, q.get_job, kind=JobKind.TRAINING)
    settings = state().settings
    release = _watch.open(_key_digest(), settings.sse_per_key)
    if release is None:
        return error_response(
            429,
            "too_many_streams",
            f"this API key already holds {settings.sse_per_key} event streams on this server "
            "process (BACKPROP_SSE_PER_KEY); close one or try again later",
            headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
        )
    response = Response(
        _stream(job_id, who, after, settings.sse_seconds),
        mimetype="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
    # Released when the server closes the response, even one never iterated.
    response.call_on_close(release)
    return response


def _stream(job_id: int, who: str, seen: int, limit: float) -> Iterator[str]:
    deadline = time.monotonic() + limit
    yield "retry: 1000\n\n"
    # The job's state is read before its epochs: a job seen finished here has all its
    # epochs written already (with its final status), so the catch-up sends them all.
    current = _current(job_id, who)
    if current is None:  # deleted meanwhile
        return
    sent = [seen]
    yield from _catch_up(job_id, seen, None, sent)
    seen = sent[0]
    status = current["status"]
    yield _event("status", current, seen)
    if current["finished_at"] is not None:
        return
    listener = Listener()
    position = _watch.subscribe(job_id, seen, listener)
    try:
        if position > seen:  # the feed read further before this stream joined it
            yield from _catch_up(job_id, seen, position, sent)
            seen = sent[0]
        last_sent = time.monotonic()
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return
            listener.wake.wait(min(left, HEARTBEAT_SECONDS))
            listener.wake.clear()
            if not listener.updates:
                if time.monotonic() - last_sent >= HEARTBEAT_SECONDS:
                    yield ": heartbeat\n\n"
                    last_sent = time.monotonic()
                continue
            while listener.updates:
                update = listener.updates.popleft()
                text = update.epochs_text(seen)
                if text is not None:
                    seen = update.epochs[-1]["epoch"]
                    yield text
                if update.job is not None and update.job["status"] != status:
                    status = update.job["status"]
                    yield _event("status", update.job, seen)
                if update.ended:
                    return
            last_sent = time.monotonic()
    finally:
        _watch.unsubscribe(job_id, listener)
