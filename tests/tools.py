"""Finding the external tools some tests drive (chromium, promtool, redis-server, wrk,
the Bigtable emulator, terraform, ...).

A missing tool skips its tests with the reason, except under ``CI=true``, where it fails
them: CI must prove what a laptop may skip. ``.ci/run`` installs the Debian ones.
"""

from __future__ import annotations

import os
import shutil
from typing import NoReturn

import pytest


def missing(reason: str) -> NoReturn:
    """Skip for a missing tool, or fail when CI must have it."""
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{reason} (required under CI=true)")
    pytest.skip(reason)


def require_tool(name: str, *, env_var: str | None = None, hint: str = "") -> str:
    """The path of ``name`` (or of ``$env_var`` when set), or skip/fail as ``missing`` does."""
    override = os.environ.get(env_var) if env_var else None
    path = override or shutil.which(name)
    if not path or not os.path.exists(path):
        where = f" (set {env_var})" if env_var else ""
        missing(f"{name} not found{where}{': ' + hint if hint else ''}")
    return path
