"""Log lines as JSON objects (one per line) or plain text, for every process.

Fields: time, level, logger, message, and request_id / job_id when the line
concerns a request or a job. Nothing here ever writes request headers, so API
keys cannot reach the logs.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime

CONTEXT_FIELDS = ("request_id", "job_id", "method", "route", "status", "duration_ms")


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name in CONTEXT_FIELDS:
            value = getattr(record, name, None)
            if value is not None:
                line[name] = value
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str)


def configure_logging(style: str = "json", level: int = logging.INFO) -> None:
    """Send the root logger's lines to stderr in ``style`` ("json" or "text")."""
    handler = logging.StreamHandler(sys.stderr)
    if style == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    for existing in list(root.handlers):
        if getattr(existing, "backprop", False):
            root.removeHandler(existing)
    handler.backprop = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(level)
