"""Bearer API keys: every endpoint but health answers only to a known owner.

Another owner's ids answer 404 exactly as missing ones do, because every query
the views make is scoped to :func:`owner`.
"""

from __future__ import annotations

import threading
import time

from flask import g, request

from store import Session
from store import queries as q

from .errors import ApiError

# Reachable without a key: liveness and readiness probes, and the API's own description.
PUBLIC_ENDPOINTS = frozenset(
    {
        "health.healthz",
        "health.readyz",
        "openapi.openapi_json",
        "metrics.metrics_text",
        # page shells and their assets; the data they show needs the key
        "ui.dashboard",
        "ui.docs",
        "ui.asset",
    }
)


class KeyCache:
    """Owners of recently seen keys, so a busy predict path does not query per request.

    A revoked key stops working within ``ttl`` seconds.
    """

    def __init__(self, ttl: float = 5.0) -> None:
        self.ttl = ttl
        self._owners: dict[str, tuple[str, float]] = {}
        self._lock = threading.Lock()

    def owner(self, key: str) -> str | None:
        digest = q.hash_key(key)
        now = time.monotonic()
        with self._lock:
            hit = self._owners.get(digest)
        if hit is not None and now - hit[1] < self.ttl:
            return hit[0]
        with Session.begin() as session:
            owner = q.owner_of_key(session, key)
        with self._lock:
            if owner is None:
                self._owners.pop(digest, None)
            else:
                self._owners[digest] = (owner, now)
        return owner


def unauthorized(message: str) -> ApiError:
    return ApiError(401, "unauthorized", message)


def key_owner(keys: KeyCache) -> str:
    """The owner of the request's bearer key; ApiError 401 without a known key.

    The lookup reads the database: when it does not answer, the error goes on to
    the app's handler, which answers 503 (not a 401: the key may well be good).
    """
    scheme, _, key = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not key.strip():
        raise unauthorized("send the API key as 'Authorization: Bearer <key>'")
    owner = keys.owner(key.strip())
    if owner is None:
        raise unauthorized("the API key is unknown or revoked")
    return owner


def authenticate(keys: KeyCache) -> None:
    """Run before each request: find the caller's owner or answer 401."""
    if request.endpoint is None or request.endpoint in PUBLIC_ENDPOINTS:
        return  # unknown URLs get their 404; public ones need no key
    g.owner = key_owner(keys)


def owner() -> str:
    """The owner of the current request's key."""
    return str(g.owner)
