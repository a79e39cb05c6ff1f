"""Request and response bodies of the sequences API."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StringConstraints,
    field_validator,
    model_validator,
)

from core.openapi import omit_only
from sequences.formatting import MAX_TEMPLATE_LENGTH, TEMPLATE_PATTERN, TemplateError, parse
from sequences.periods import Reset

INT64_MAX = 2**63 - 1
INT64_MIN = -(2**63) + 1
NAME_PATTERN = r"^[a-z0-9][a-z0-9._-]{0,63}$"
NAME_MAX = 64
HARD_MAX_BATCH = 10_000_000
FORMATTED_RANGE_LIMIT = 1000
# A ledger sequence writes one entry per number in the increment's transaction.
LEDGER_MAX_BATCH = 1000
REFERENCE_MAX = 200

Reference = Annotated[str, StringConstraints(min_length=1, max_length=REFERENCE_MAX)]

SequenceName = Annotated[str, StringConstraints(pattern=NAME_PATTERN, max_length=NAME_MAX)]
Int64 = Annotated[int, Field(strict=True, ge=INT64_MIN, le=INT64_MAX)]
# The pattern only documents the grammar: check_template refuses with a clearer message.
Template = Annotated[
    str,
    StringConstraints(max_length=MAX_TEMPLATE_LENGTH),
    Field(
        json_schema_extra={"pattern": TEMPLATE_PATTERN},
        description="e.g. INV-{yyyy}-{n:06}: exactly one {n} or {n:0W} (W up to 20), date"
        " tokens {yyyy} {yy} {mm} {dd} {ww} {gggg} {ddd}, {{ and }} for braces.",
    ),
]


class Mode(StrEnum):
    strict = "strict"
    cached = "cached"


class SequenceSettings(BaseModel):
    """Everything about a sequence that PATCH may change."""

    model_config = ConfigDict(extra="forbid")

    step: Annotated[int, Field(strict=True, ge=1, le=1_000_000_000)] = 1
    min: Int64 | None = None
    max: Int64 | None = None
    cycle: StrictBool = False
    format: Template | None = None

    @field_validator("format")
    @classmethod
    def _check_format(cls, value: str | None) -> str | None:
        return check_template(value)

    @model_validator(mode="after")
    def _check_min_max(self) -> SequenceSettings:
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError("min must not be greater than max")
        return self


class SequenceCreate(SequenceSettings):
    name: SequenceName
    start: Int64 = 1
    reset: Reset = Reset.never
    mode: Mode = Mode.strict
    ledger: StrictBool = Field(
        default=False,
        description="Keep one ledger entry per number (strict mode only; never cycles).",
    )

    @model_validator(mode="after")
    def _check_ledger(self) -> SequenceCreate:
        if self.ledger and self.mode is not Mode.strict:
            raise ValueError("a ledger sequence must be strict (cached blocks leave gaps)")
        if self.ledger and self.cycle:
            raise ValueError("a ledger sequence cannot cycle (a number is never issued twice)")
        return self

    @model_validator(mode="after")
    def _check_bounds(self) -> SequenceCreate:
        if self.min is not None and self.start < self.min:
            raise ValueError("start must not be less than min")
        if self.max is not None and self.start > self.max:
            raise ValueError("start must not be greater than max")
        return self


class SequencePatch(BaseModel):
    """Partial update: only the fields sent change; ``null`` clears min, max or format.

    The result is validated exactly like a creation (``SequenceCreate``) by the service.
    """

    model_config = ConfigDict(extra="forbid")

    step: Annotated[int, Field(strict=True, ge=1, le=1_000_000_000)] | None = Field(
        default=None, json_schema_extra=omit_only
    )
    min: Int64 | None = None
    max: Int64 | None = None
    cycle: StrictBool | None = Field(default=None, json_schema_extra=omit_only)
    format: Template | None = None

    @field_validator("format")
    @classmethod
    def _check_format(cls, value: str | None) -> str | None:
        return check_template(value)

    @model_validator(mode="after")
    def _no_null_for_required(self) -> SequencePatch:
        for name in ("step", "cycle"):
            if name in self.model_fields_set and getattr(self, name) is None:
                raise ValueError(f"{name} cannot be null")
        return self


def check_template(value: str | None) -> str | None:
    """Refuse a bad template when settings are made, so allocation never meets one."""
    if value is not None:
        try:
            parse(value)
        except TemplateError as exc:
            raise ValueError(str(exc)) from None
    return value


class SequenceOut(BaseModel):
    name: str
    start: int
    step: int
    min: int | None
    max: int | None
    cycle: bool
    format: str | None
    reset: Reset
    mode: Mode
    ledger: bool = False
    period: str | None = Field(description="The current reset period ('YYYY', 'YYYY-MM', ...).")
    last: int | None = Field(description="The last number issued in this period, if any.")
    next: int | None = Field(description="What the next call would return (null if exhausted).")
    next_formatted: str | None
    created_at: datetime
    updated_at: datetime


class SequencePage(BaseModel):
    items: list[SequenceOut]
    next_cursor: str | None = Field(description="Pass as ?after= to get the next page.")


class NextRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    count: Annotated[int, Field(strict=True, ge=1, le=HARD_MAX_BATCH)] = 1
    reference: Reference | None = Field(
        default=None, description="Ledger sequences: recorded with the numbers (an invoice id)."
    )


class NextOut(BaseModel):
    sequence: str
    value: int
    last: int
    count: int
    formatted: str | None = None
    formatted_range: list[str] | None = Field(
        default=None,
        description=f"All formatted values, for batches of up to {FORMATTED_RANGE_LIMIT}.",
    )
    period: str | None = None


class AdvanceRequest(BaseModel):
    """Move the current period's counter forward: the next number issued will be ``to``."""

    model_config = ConfigDict(extra="forbid")

    to: Int64


def dump(model: BaseModel) -> dict[str, Any]:
    return model.model_dump(mode="json")


class SequenceHeadroom(BaseModel):
    """A bounded sequence and how many numbers its current period has left."""

    sequence: str
    period: str | None = Field(description="The reset period the counter belongs to, if any.")
    max: int
    cycle: bool = Field(description="At the end it starts again from `start` (not a 409).")
    capacity: int = Field(description="Numbers the period's counter can issue in all.")
    remaining: int = Field(description="Numbers it can still issue.")
    headroom_percent: float = Field(description="`remaining` as a percentage of `capacity`.")
