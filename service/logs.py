"""JSON log lines: one object per line, easy to ship and query (`jq`, Loki, CloudWatch).

Structured fields travel in `extra={"fields": {...}}` and are merged into the object.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import uuid
from datetime import UTC, datetime

from starlette.datastructures import Headers
from starlette.types import Scope

REQUEST_ID = re.compile(r"[A-Za-z0-9._:\-]{1,128}")  # echoed only if harmless in a header and a log


def request_id(scope: Scope) -> str:
    """The id that ties a response to its log lines: the client's `X-Request-ID` when harmless,
    else a new one."""
    incoming = Headers(scope=scope).get("x-request-id", "")
    return incoming if REQUEST_ID.fullmatch(incoming) else uuid.uuid4().hex


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            line.update(fields)
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False, default=str)


def configure_logging(level: str) -> None:
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # uvicorn's loggers go through ours; its access log is off (we log each request ourselves).
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
