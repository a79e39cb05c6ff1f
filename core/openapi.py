"""How routes document the domain errors they give, for ``api.openapi``.

A route names its domain errors by class (``responses=errors(SequenceNotFound,
SequenceExhausted)``): the class carries the status and the problem ``type``, so the
document and the answer cannot drift apart. What every route of a kind gives (401/403
from its scope, 413/415/422 from its JSON body, 503 from the store, ...) is added by
``api.openapi`` from the route itself; routes declare only what is theirs alone.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from core.errors import TallyError

PROBLEM_JSON = "application/problem+json"
PROBLEM_REF = "#/components/schemas/Problem"
TYPE_BASE = "/problems/"  # problem ``type`` values are relative URIs under this


# The vendor extension listing the problem ``type`` values a response may carry.
TYPES_KEY = "x-problem-types"


def problem_response(title: str, types: list[str]) -> dict[str, Any]:
    """One OpenAPI response object: answered as a Problem of one of ``types``."""
    names = sorted({TYPE_BASE + t for t in types})
    return {
        "description": f"{title}: " + ", ".join(f"`{n}`" for n in names) + ".",
        "content": {PROBLEM_JSON: {"schema": {"$ref": PROBLEM_REF}}},
        TYPES_KEY: names,
    }


def status_title(kind: type[TallyError]) -> str:
    """The generic title of ``kind``'s status: its ``core.errors`` class's (``Conflict``)."""
    for cls in kind.__mro__:
        if TallyError in cls.__bases__ and issubclass(cls, TallyError):
            return cls.title
    return kind.title


def errors(*kinds: type[TallyError]) -> dict[int | str, dict[str, Any]]:
    """``responses=`` for FastAPI: each error's status, as a Problem naming its types."""
    by_status: dict[int, list[type[TallyError]]] = defaultdict(list)
    for kind in kinds:
        by_status[kind.status].append(kind)
    return {
        status: problem_response(status_title(group[0]), [k.type for k in group])
        for status, group in sorted(by_status.items())
    }


def omit_only(schema: dict[str, Any]) -> None:
    """``json_schema_extra`` for a field that may be left out but not sent as ``null``
    (a partial update's required settings): its schema without the null branch."""
    branches = [b for b in schema.pop("anyOf", []) if b != {"type": "null"}]
    if len(branches) == 1:
        schema.update(branches[0])
    elif branches:
        schema["anyOf"] = branches
    schema.pop("default", None)
