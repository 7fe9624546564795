"""Structured JSON logs on stdout, with the active trace id (python-json-logger)."""

from __future__ import annotations

import logging
import sys
from datetime import UTC, datetime
from typing import Any

from opentelemetry import trace
from pythonjsonlogger.json import JsonFormatter as _JsonLinesFormatter


class JsonFormatter(_JsonLinesFormatter):
    """One JSON object per line: time, level, service, logger, message, trace id, `extra`
    fields and the formatted exception."""

    def __init__(self, service: str) -> None:
        super().__init__(
            "%(message)s",
            rename_fields={"exc_info": "exception"},
            json_default=str,
            json_ensure_ascii=False,
        )
        self._service = service

    def add_fields(
        self, log_data: dict[str, Any], record: logging.LogRecord, message_dict: dict[str, Any]
    ) -> None:
        """Puts the fixed fields first, then the message, `extra` and the exception."""
        log_data["time"] = datetime.fromtimestamp(record.created, UTC).isoformat(
            timespec="milliseconds"
        )
        log_data["level"] = record.levelname.lower()
        log_data["service"] = self._service
        log_data["logger"] = record.name
        span = trace.get_current_span().get_span_context()
        if span.is_valid:
            log_data["trace_id"] = format(span.trace_id, "032x")
        super().add_fields(log_data, record, message_dict)


def configure_logging(service: str, level: str = "INFO") -> None:
    """Routes all logging to stdout as JSON lines."""
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(JsonFormatter(service))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    logging.getLogger("nats").setLevel(logging.WARNING)
