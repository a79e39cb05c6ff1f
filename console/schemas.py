"""From console forms to the API's own request models, with the API's own messages.

A form sends text; the API's models want integers, booleans and ``None``. These turn
the one into the other, then let the same pydantic models judge, so a field shows the
message the API would have answered with.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from console.dependencies import Form
from core.errors import TallyError

NOT_AN_INTEGER = "Input should be a valid integer"
M = TypeVar("M", bound=BaseModel)


@dataclass
class Problems:
    """Messages by form field, and one for the form as a whole."""

    fields: dict[str, str] = field(default_factory=dict)
    form: str = ""

    def __bool__(self) -> bool:
        return bool(self.fields or self.form)

    def add(self, where: str, message: str, known: Iterable[str]) -> None:
        message = message.removeprefix("Value error, ")
        if where in known:
            self.fields.setdefault(where, message)
        else:
            self.form = f"{self.form} {message}".strip() if self.form else message


def read_values(
    form: Form,
    *,
    integers: Iterable[str] = (),
    texts: Iterable[str] = (),
    flags: Iterable[str] = (),
    problems: Problems,
) -> dict[str, Any]:
    """Form text as model input: blank integers and texts are ``None``, a checkbox is a bool."""
    values: dict[str, Any] = {}
    for name in integers:
        raw = form.get(name).strip().replace(",", "").replace("_", "")
        if not raw:
            values[name] = None
            continue
        try:
            values[name] = int(raw)
        except ValueError:
            problems.fields[name] = NOT_AN_INTEGER
    for name in texts:
        text = form.get(name).strip()
        values[name] = text or None
    for name in flags:
        values[name] = form.has(name)
    return values


def validate(
    model: type[M], values: dict[str, Any], problems: Problems, known: Iterable[str]
) -> M | None:
    """The model, or ``None`` with its errors added to ``problems`` (as the API words them)."""
    if problems:
        return None
    try:
        return model.model_validate(values)
    except ValidationError as exc:
        known = tuple(known)
        for error in exc.errors(include_url=False):
            where = ".".join(str(p) for p in error["loc"])
            problems.add(where, str(error["msg"]), known)
        return None


def from_error(exc: TallyError, problems: Problems, known: Iterable[str]) -> Problems:
    """A service's error shown where it belongs: per field when it names fields."""
    known = tuple(known)
    errors = exc.extra.get("errors") if isinstance(exc.extra, dict) else None
    if errors:
        for e in errors:
            problems.add(str(e.get("field", "")), str(e.get("message", "")), known)
    else:
        problems.add("", exc.detail, known)
    return problems


def without_none(values: dict[str, Any], keep: Iterable[str] = ()) -> dict[str, Any]:
    """Drop blank fields, so the model's defaults apply (except those in ``keep``)."""
    kept = set(keep)
    return {k: v for k, v in values.items() if v is not None or k in kept}
