"""Logging set-up for `tally serve`: human text, or JSON with one object per line (TALLY_LOG_FORMAT=json).

A JSON line has `time` (RFC 3339, UTC), `level`, `logger`, `message`, and when known `request_id` and
`tenant` (of the RPC being served) and `trace_id` (of the current span, when tracing is on); `exception`
holds a traceback. The auth interceptor sets the RPC's context (`rpc_context`); threads started with
asyncio.to_thread inherit it."""

from __future__ import annotations

import logging
import sys
from contextvars import ContextVar
from datetime import UTC, datetime

import orjson
from opentelemetry import trace

# (tenant, request_id) of the RPC this task serves.
rpc_context: ContextVar[tuple[str, str]] = ContextVar("tally_rpc_context", default=("", ""))
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
MESSAGE_CHARS_MAX = 8192  # a log line stays readable and bounded, whatever a message carries


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage()[:MESSAGE_CHARS_MAX],
        }
        tenant, request_id = rpc_context.get()
        if tenant:
            line["tenant"] = tenant
        if request_id:
            line["request_id"] = request_id
        span = trace.get_current_span().get_span_context()
        if span.is_valid:
            line["trace_id"] = format(span.trace_id, "032x")
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(line).decode()


def configure(level: str, fmt: str) -> None:
    """One handler on the root logger, on stderr; replaces what was there."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter(TEXT_FORMAT))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
