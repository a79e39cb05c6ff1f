"""Query and response shapes of the usage API."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, Field

from sequences.schemas import SequenceHeadroom


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


class TenantVolume(BaseModel):
    slug: str
    name: str
    numbers_today: int = Field(description="Numbers issued since 00:00 UTC.")
    numbers_30d: int = Field(description="Numbers issued in the last 30 UTC days, today included.")


class NearExhaustion(SequenceHeadroom):
    tenant: str


class TenantCounts(BaseModel):
    total: int
    by_status: dict[str, int] = Field(description="Tenants per status (`active`, `suspended`).")


class NumbersIssued(BaseModel):
    today: int = Field(description="Since 00:00 UTC, all tenants.")
    last_30_days: int = Field(description="The last 30 UTC days, today included, all tenants.")


class OverviewOut(BaseModel):
    generated_at: datetime
    tenants: TenantCounts
    numbers: NumbersIssued
    top_tenants: list[TenantVolume] = Field(description="By numbers in the last 30 days.")
    near_exhaustion: list[NearExhaustion] = Field(
        description="Sequences with a `max` and at most 10 % of the current period's numbers"
        " left, least headroom first."
    )
