"""Logging set-up for ``tally serve``: uvicorn's, minus query strings in access logs.

A query string can carry what must never be logged (a client secret sent there by
mistake is refused by /oauth/token, but uvicorn would still log the URL), so access
log lines show the path only.
"""

from __future__ import annotations

import copy
import logging
from typing import Any


class StripQuery(logging.Filter):
    """Drop the query string from uvicorn access records (args[2] is the full path)."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) >= 3 and isinstance(args[2], str):
            record.args = (*args[:2], args[2].split("?", 1)[0], *args[3:])
        return True


def uvicorn_log_config() -> dict[str, Any]:
    """uvicorn's default logging config with ``StripQuery`` on the access handler."""
    from uvicorn.config import LOGGING_CONFIG

    config: dict[str, Any] = copy.deepcopy(LOGGING_CONFIG)
    config.setdefault("filters", {})["strip_query"] = {"()": "api.logs.StripQuery"}
    config["handlers"]["access"]["filters"] = ["strip_query"]
    return config
