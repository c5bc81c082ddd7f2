"""gunicorn's configuration of the API (``backprop api`` passes this file's path with ``-c``).

It is loaded by path, not imported as part of ``api``, so gunicorn's master
process imports neither Flask nor the app's dependencies: the workers import the
app after gevent has patched them (see ``cli.api_command``).

gunicorn answers a request it cannot parse -- a request line past
``limit_request_line`` (414), a header past ``limit_request_field_size`` or more
than ``limit_request_fields`` headers (431), a malformed request (400) -- before
the app sees it, with an HTML page. Here those answers are the API's JSON error
shape instead, so that every error the service emits is JSON.
"""

from __future__ import annotations

import json
import socket
from typing import Any

import gunicorn.util  # type: ignore[import-untyped]

# gunicorn's own maximum: a longer request line is refused whatever is configured
# (0 would lift the limit and let one request line fill memory).
limit_request_line = 8190
# gunicorn's defaults, stated: at most 100 headers of at most 8190 bytes each, so
# one request's head is at most about 800 KB in memory.
limit_request_fields = 100
limit_request_field_size = 8190

CODES = {
    400: "bad_request",
    403: "forbidden",
    414: "uri_too_long",
    417: "expectation_failed",
    431: "header_fields_too_large",
    500: "internal_error",
    501: "not_implemented",
}
MESSAGES = {
    414: f"the request line (method, path and query string) is longer than "
    f"{limit_request_line} bytes",
    431: f"a request header is longer than {limit_request_field_size} bytes, or there are "
    f"more than {limit_request_fields} headers",
    500: "internal server error",
}
# gunicorn's message can quote the request it could not parse.
MAX_MESSAGE = 200


def json_error_page(status: int, reason: str, message: str) -> bytes:
    """The whole HTTP answer gunicorn sends for a request it refuses, as API JSON."""
    message = MESSAGES.get(status, message)
    if len(message) > MAX_MESSAGE:
        message = message[: MAX_MESSAGE - 3] + "..."
    body = json.dumps({"error": {"code": CODES.get(status, "http_error"), "message": message}})
    head = (
        f"HTTP/1.1 {status} {reason}\r\nConnection: close\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    return head.encode("latin-1") + body.encode()


def write_error(sock: socket.socket, status_int: int, reason: str, mesg: str) -> None:
    # gunicorn's workers call gunicorn.util.write_error(sock, status, reason, message)
    # for every request they refuse themselves (tests/service/test_stream_load.py
    # checks that these answers are JSON).
    gunicorn.util.write_nonblock(sock, json_error_page(status_int, reason, mesg))


gunicorn.util.write_error = write_error


def post_worker_init(worker: Any) -> None:
    """A worker stopping gracefully (SIGTERM) waits for its open requests, and an event
    stream lasts up to BACKPROP_SSE_SECONDS: the streams end as the stop begins."""
    from api.routes.events import stop_streams_with

    stop_streams_with(lambda: bool(worker.alive))
