"""The yardstick: a minimal FastAPI app on Tally's stack, no auth, no store.

Its POST endpoint answers an in-memory counter in the shape of Tally's ``next``,
the way the Go service Tally grew from did. Written the idiomatic minimal way (a
path parameter, a dict returned), neither tuned nor burdened.
"""

from __future__ import annotations

import itertools
from typing import Any

from fastapi import FastAPI

app = FastAPI(title="baseline")
_counter = itertools.count(1)


@app.post("/v1/sequences/{name}/next")
async def next_number(name: str) -> dict[str, Any]:
    """The next value of an in-memory counter."""
    value = next(_counter)
    return {"sequence": name, "value": value, "last": value, "count": 1}


def create_app() -> FastAPI:
    """For ``tally serve --app bench.baseline_app:create_app`` (the server takes factories)."""
    return app
