"""One JSON error shape for every failure: ``{"error": {"code", "message", "field"?}}``.

Werkzeug's own HTTP errors (404, 405, 413, 415...) and unexpected exceptions are
turned into the same shape, so a client never has to parse an HTML page. A
database or broker that does not answer is a 503 ``service_unavailable`` with
``Retry-After``, not a 500; no message carries SQL, parameters or addresses.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from typing import Any

from flask import Flask, Response, current_app, jsonify, request
from pydantic import ValidationError
from werkzeug.exceptions import HTTPException, MethodNotAllowed, NotFound

from worker.transient import outage

log = logging.getLogger(__name__)

# Messages can quote user input (core's SpecError does); a huge body must not echo back.
MAX_MESSAGE = 500

# What a client is told to wait (the Retry-After header, in seconds) when the database
# or the broker does not answer: a restart or failover takes a few seconds, and the
# pool checks a connection before reusing it, so the first request after is served.
RETRY_AFTER_SECONDS = 5

HTTP_CODES = {
    400: "bad_request",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "validation_error",
    500: "internal_error",
    503: "service_unavailable",
}


class ApiError(Exception):
    """An error the API answers with on purpose."""

    def __init__(self, status: int, code: str, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.field = field


def invalid(field: str | None, message: str) -> ApiError:
    return ApiError(422, "validation_error", message, field)


def limit_exceeded(field: str | None, message: str) -> ApiError:
    return ApiError(422, "limit_exceeded", message, field)


def too_large(limit: int | None, setting: str) -> ApiError:
    """413 for a body past ``limit`` bytes, naming the setting that sets it."""
    return ApiError(
        413, "payload_too_large", f"the request body is larger than {limit} bytes ({setting})"
    )


def not_found(what: str, ident: int) -> ApiError:
    return ApiError(404, "not_found", f"no {what} with id {ident}")


def conflict(message: str) -> ApiError:
    return ApiError(409, "conflict", message)


def field_path(loc: Sequence[int | str]) -> str | None:
    """``("layers", 0, "units")`` -> ``layers[0].units``.

    Parts in angle brackets are pydantic union tags (see schemas), not fields.
    """
    path = ""
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        elif part.startswith("<"):
            continue
        else:
            path += f".{part}" if path else part
    return path or None


def from_validation_error(exc: ValidationError, prefix: str | None = None) -> ApiError:
    """The first problem of a pydantic error, as a 422 pointing at its field."""
    first = exc.errors(include_url=False, include_input=False)[0]
    field = field_path(first["loc"])
    if prefix:
        field = f"{prefix}.{field}" if field else prefix
    return invalid(field, first["msg"])


# What SQLAlchemy appends to a database error's text: the statement, its bound
# parameters (rows of user data) and a link. None of it belongs in an answer.
_SQL_DETAIL = re.compile(r"\s*(\[SQL: |\[parameters: |\(Background on this error at: ).*", re.S)


def public_message(message: str) -> str:
    """``message`` without what a database error carries besides its reason: the
    statement, its parameters, the server's DETAIL lines (which quote row values).

    Applied to every error body and to the stored ``error`` of a job, so text made
    from an exception can never show SQL, even if it was stored before workers
    stopped storing it.
    """
    cut = _SQL_DETAIL.search(message)
    if cut is None:
        return message
    # The reason is the first line: psycopg and sqlite3 put DETAIL/HINT lines after it.
    return message[: cut.start()].split("\n", 1)[0].rstrip() or "a database error"


def service_unavailable(what: str) -> Response:
    """503 for an unreachable dependency, named only: no host, port or statement."""
    return error_response(
        503,
        "service_unavailable",
        f"the {what} is not answering; try again in {RETRY_AFTER_SECONDS} s",
        headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
    )


def error_response(
    status: int, code: str, message: str, field: str | None = None, headers: Any = None
) -> Response:
    message = public_message(message)
    if len(message) > MAX_MESSAGE:
        message = message[: MAX_MESSAGE - 3] + "..."
    body: dict[str, Any] = {"code": code, "message": message}
    if field is not None:
        body["field"] = field
    response = jsonify({"error": body})
    response.status_code = status
    if headers:
        response.headers.update(headers)
    return response


def _api_error(exc: ApiError) -> Response:
    headers: dict[str, str] | None = None
    if exc.status == 401:
        headers = {"WWW-Authenticate": "Bearer"}
    elif exc.status == 503:
        headers = {"Retry-After": str(RETRY_AFTER_SECONDS)}
    return error_response(exc.status, exc.code, exc.message, exc.field, headers)


def _allowed_nowhere(exc: MethodNotAllowed) -> bool:
    """Whether no method the 405 names reaches a view either. Werkzeug answers 405 when
    a path matches the pattern of a rule for another method, before that rule's
    converter has refused the value (``/models/0`` has a GET and a DELETE rule, and
    ``id`` takes no 0): such a path names nothing, whatever the method."""
    adapter = current_app.url_map.bind_to_environ(request.environ)
    for method in exc.valid_methods or ():
        if method in ("HEAD", "OPTIONS"):
            continue
        try:
            adapter.match(request.path, method=method)
        except HTTPException:
            continue
        return False
    return True


def _http_error(exc: HTTPException) -> Response:
    if isinstance(exc, MethodNotAllowed) and _allowed_nowhere(exc):
        exc = NotFound()
    status = exc.code or 500
    headers = {}
    if isinstance(exc, MethodNotAllowed) and exc.valid_methods:
        headers["Allow"] = ", ".join(exc.valid_methods)
    message = exc.description or exc.name
    if status == 404:
        message = f"no such resource: {request.path}"
    elif status == 405:
        message = f"{request.method} is not allowed on {request.path}"
    elif status == 413:
        limit = current_app.config.get("MAX_CONTENT_LENGTH")
        message = too_large(limit, "BACKPROP_MAX_BODY_BYTES").message
    return error_response(status, HTTP_CODES.get(status, "http_error"), message, headers=headers)


def _unexpected(exc: Exception) -> Response:
    what = outage(exc)
    if what is not None:
        # One line, not a traceback per request: an outage fails every request at once.
        reason = public_message(str(exc)).partition("\n")[0]
        log.warning("%s unavailable: %s: %s", what, type(exc).__name__, reason)
        return service_unavailable(what)
    log.exception("unhandled error", exc_info=exc)
    return error_response(500, "internal_error", "internal server error")


def register_error_handlers(app: Flask) -> None:
    app.register_error_handler(ApiError, _api_error)
    app.register_error_handler(HTTPException, _http_error)
    # Flask picks the most specific handler, so this only sees what the others do not.
    app.register_error_handler(Exception, _unexpected)
