"""Query and response shapes of the usage API."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, Field


class Granularity(StrEnum):
    hour = "hour"
    day = "day"


class UsagePoint(BaseModel):
    start: datetime = Field(description="Start of the bucket (UTC).")
    requests: int = Field(description="`next` calls (and `/getCounter` calls) served.")
    numbers: int = Field(description="Numbers issued by those calls.")


class SequenceUsage(BaseModel):
    sequence: str
    requests: int
    numbers: int


class UsageOut(BaseModel):
    tenant: str
    sequence: str | None = Field(description="The one sequence asked for; null: all of them.")
    granularity: Granularity
    start: datetime = Field(description="First bucket's start (inclusive, UTC).")
    end: datetime = Field(description="Last bucket's end (exclusive, UTC).")
    points: list[UsagePoint] = Field(description="Every bucket in the range, zeros included.")
    requests: int = Field(description="Total over the range.")
    numbers: int = Field(description="Total over the range.")
    sequences: list[SequenceUsage] = Field(
        description="Totals over the range per sequence, most numbers first."
    )
