"""Query parameters every paginated list of the API takes."""

from __future__ import annotations

from typing import Annotated

from fastapi import Query

AfterQuery = Annotated[
    str | None, Query(max_length=64, description="`next_cursor` of the previous page.")
]
LimitQuery = Annotated[int, Query(ge=1, le=500)]
