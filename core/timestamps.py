"""Timestamps in query strings: RFC 3339 with an offset, nothing else.

pydantic alone would also read ``to=0.5`` as a Unix time and ``from=2026-01-01`` as a
naive midnight; every ``from``/``to`` of the API takes this type instead.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from fastapi import Query
from pydantic import AwareDatetime, BeforeValidator

RFC_3339 = r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$"
_RFC_3339 = re.compile(RFC_3339)


def _rfc3339(value: object) -> object:
    if isinstance(value, str) and not _RFC_3339.match(value):
        raise ValueError("must be an RFC 3339 date-time with an offset, e.g. 2026-12-01T00:00:00Z")
    return value


Timestamp = Annotated[AwareDatetime, BeforeValidator(_rfc3339)]


def timestamp_query(description: str, *, alias: str | None = None) -> Any:
    """The ``Query`` of an optional ``Timestamp`` parameter, its pattern documented."""
    return Query(alias=alias, description=description, json_schema_extra={"pattern": RFC_3339})
