"""Sending work to the workers: ids only, JSON, after the commit; and which jobs'
messages the broker still holds."""

from __future__ import annotations

import base64
import json
import logging
import time
from collections.abc import Iterable
from typing import Any

import redis
from celery import Celery

from store.settings import Settings

log = logging.getLogger(__name__)

# The name the training task is registered and sent under.
TRAIN_TASK = "backprop.train"


def enqueue_training(job_id: int, app: Celery) -> None:
    """Queue a committed job through ``app``; call only after the transaction commits.

    ``app`` comes from :func:`worker.app.make_celery`, made from the caller's own
    settings, so a message goes where those settings say.
    """
    app.send_task(TRAIN_TASK, args=[job_id])


def _job_id(message: Any) -> int | None:
    """The job id a kombu message (its JSON envelope, as the broker keeps it) carries,
    or None for anything else."""
    try:
        if isinstance(message, bytes | str):
            message = json.loads(message)
        if message.get("headers", {}).get("task") != TRAIN_TASK:
            return None
        body = message["body"]
        if message.get("properties", {}).get("body_encoding") == "base64":
            body = base64.b64decode(body)
        args = json.loads(body)[0]
        return int(args[0])
    except (ValueError, TypeError, KeyError, IndexError, AttributeError):
        return None


def _ids(messages: Iterable[Any]) -> set[int]:
    return {job_id for job_id in map(_job_id, messages) if job_id is not None}


def messages_held(settings: Settings, delivered_within: float) -> set[int] | None:
    """The ids of the jobs whose message the broker holds now: waiting in the queue,
    or delivered to a worker less than ``delivered_within`` seconds ago and not yet
    acknowledged. None when this broker cannot be looked into.

    Workers acknowledge a message when its task returns and reserve no others
    (``task_acks_late``, one message per job running: see :mod:`worker.app`), so a
    queued job's message is in the queue, or with a worker for the moment it takes
    to take the job's lease. Read from where the transports keep them: for Redis,
    the queue's lists (one per priority step) and the hash of unacknowledged
    messages of kombu's Redis transport, whose index gives the delivery times; for
    the filesystem broker, the files of the queue in its folder (a delivered
    message's file is deleted at once).
    """
    if settings.broker_is_filesystem:
        folder = settings.broker_folder
        found = []
        for path in folder.glob(f"*.{settings.queue}.msg"):
            try:
                found.append(path.read_bytes())
            except FileNotFoundError:  # taken by a worker just now
                continue
        return _ids(found)
    if not settings.broker_url.startswith(("redis://", "rediss://")):
        return None
    client = redis.Redis.from_url(settings.broker_url, socket_timeout=5)
    try:
        prefix = settings.broker_prefix
        # kombu's priority steps: queue, queue\x06\x163, \x06\x166, \x06\x169
        lists = [settings.queue] + [f"{settings.queue}\x06\x16{step}" for step in (3, 6, 9)]
        waiting: list[Any] = []
        for name in lists:
            waiting.extend(client.lrange(prefix + name, 0, -1))
        since = time.time() - delivered_within
        tags: list[Any] = list(client.zrangebyscore(prefix + "unacked_index", since, "+inf"))
        delivered: list[Any] = list(client.hmget(prefix + "unacked", tags)) if tags else []
        held = _ids(waiting)
        for entry in delivered:
            if entry is not None:
                # [message, exchange, routing key]
                job_id = _job_id(json.loads(entry)[0])
                if job_id is not None:
                    held.add(job_id)
        return held
    finally:
        client.close()
