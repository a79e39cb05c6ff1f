"""Logging set-up: one JSON object per line in production, readable text in development.

``tally serve`` applies ``logging_config(settings)`` itself and hands the same dict to
the HTTP server (granian applies it again in every worker process), so the server's
own lines, the application's and the access lines all share one format. The server's
access logger is switched off: ``api.access.AccessLog`` writes the access line, with
the route template rather than the URL, so no query string is ever logged.

Every line written while a request is being served carries its request id (read from
``core.requestctx`` when the line is formatted).
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

from core.requestctx import current_request_id
from core.settings import Settings

ACCESS_LOGGER = "tally.access"
_LEVELS = {"WARNING": "warning", "CRITICAL": "critical"}


_MILLIS = [f".{i:03d}Z" for i in range(1000)]


def utc_stamp(created: float, _cache: list[Any] = [-1, ""]) -> str:  # noqa: B006
    """``2026-12-01T06:49:35.123Z``; the part up to the second is reused within a second."""
    second = int(created)
    if second != _cache[0]:
        _cache[0], _cache[1] = second, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
    return str(_cache[1]) + _MILLIS[int((created - second) * 1000)]


def _request_id(record: logging.LogRecord) -> str | None:
    rid = current_request_id()
    if rid is None and record.exc_info and record.exc_info[1] is not None:
        # The server logs an escaped exception after the request's context is gone;
        # AccessLog left the id on the exception.
        rid = getattr(record.exc_info[1], "tally_request_id", None)
    return rid


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time, level, logger, message, request_id[, exc]."""

    def format(self, record: logging.LogRecord) -> str:
        if record.name == ACCESS_LOGGER:
            return str(record.msg)  # preformatted by AccessLog, already one JSON object
        out: dict[str, Any] = {
            "time": utc_stamp(record.created),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": _request_id(record),
        }
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        if record.stack_info:
            out["stack"] = self.formatStack(record.stack_info)
        return json.dumps(out, default=str, separators=(",", ":"))


class TextFormatter(logging.Formatter):
    """``time LEVEL logger [request id] message`` for a developer's terminal."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s%(rid)s %(message)s")

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        return utc_stamp(record.created)

    def format(self, record: logging.LogRecord) -> str:
        rid = _request_id(record)
        record.rid = f" [{rid}]" if rid else ""
        return super().format(record)


def log_format(settings: Settings) -> str:
    """``json`` or ``text``: as set, else json in production and text in development."""
    if settings.log_format is not None:
        return settings.log_format
    return "json" if settings.environment == "production" else "text"


def logging_config(settings: Settings) -> dict[str, Any]:
    """A ``logging.config.dictConfig`` dict for the server process and its workers."""
    level = settings.log_level.upper()
    handler = {
        "class": "logging.StreamHandler",
        "formatter": log_format(settings),
        "stream": "ext://sys.stdout",
    }
    quiet = {"handlers": [], "propagate": True}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {
            "json": {"()": "api.logs.JsonFormatter"},
            "text": {"()": "api.logs.TextFormatter"},
        },
        "handlers": {"default": handler},
        # Everything goes to the root's one handler; the server's loggers lose their own.
        "root": {"handlers": ["default"], "level": level},
        "loggers": {
            "_granian": {**quiet, "level": level},
            "granian.access": {**quiet, "level": "WARNING"},  # AccessLog writes those
        },
    }
