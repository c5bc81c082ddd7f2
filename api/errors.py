"""One JSON error shape for every failure: ``{"error": {"code", "message", "field"?}}``.

Werkzeug's own HTTP errors (404, 405, 413, 415...) and unexpected exceptions are
turned into the same shape, so a client never has to parse an HTML page.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from flask import Flask, Response, current_app, jsonify, request
from pydantic import ValidationError
from werkzeug.exceptions import HTTPException, MethodNotAllowed

log = logging.getLogger(__name__)

# Messages can quote user input (core's SpecError does); a huge body must not echo back.
MAX_MESSAGE = 500

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


def error_response(
    status: int, code: str, message: str, field: str | None = None, headers: Any = None
) -> Response:
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
    headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
    return error_response(exc.status, exc.code, exc.message, exc.field, headers)


def _http_error(exc: HTTPException) -> Response:
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
    log.exception("unhandled error", exc_info=exc)
    return error_response(500, "internal_error", "internal server error")


def register_error_handlers(app: Flask) -> None:
    app.register_error_handler(ApiError, _api_error)
    app.register_error_handler(HTTPException, _http_error)
    # Flask picks the most specific handler, so this only sees what the others do not.
    app.register_error_handler(Exception, _unexpected)
