"""Request and response bodies of reservations, the ledger and the gap report."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from sequences.schemas import Reference
from storage import LedgerEntry

DEFAULT_TTL_SECONDS = 900
MAX_TTL_SECONDS = 86_400
REASON_MAX = 500
RESERVATION_PATTERN = r"^rsv_[A-Za-z0-9_-]{16,64}$"

State = Literal["reserved", "committed", "voided", "expired"]


class ReserveRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    ttl_seconds: Annotated[int, Field(strict=True, ge=1, le=MAX_TTL_SECONDS)] = DEFAULT_TTL_SECONDS
    reference: Reference | None = None


class CommitRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reference: Reference | None = None


class VoidRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: Annotated[str, StringConstraints(min_length=1, max_length=REASON_MAX)]


class ReservationOut(BaseModel):
    id: str
    sequence: str
    value: int
    formatted: str | None
    period: str | None
    state: State
    expires_at: datetime
    reference: str | None
    closed_at: datetime | None = Field(description="When it was committed, voided or expired.")
    reason: str | None = Field(description="Why it was voided ('expired' for a lapse).")

    @classmethod
    def of(cls, entry: LedgerEntry) -> ReservationOut:
        return cls(
            id=entry.reservation or "",
            sequence=entry.sequence,
            value=entry.value,
            formatted=entry.formatted,
            period=entry.period or None,
            state=entry.state,  # type: ignore[arg-type]
            expires_at=entry.expires_at or entry.issued_at,
            reference=entry.reference,
            closed_at=entry.closed_at,
            reason=entry.reason,
        )


class EntryOut(BaseModel):
    value: int
    formatted: str | None
    period: str | None
    state: State
    reference: str | None
    actor: str = Field(description="Who took the number (the token's subject).")
    issued_at: datetime
    expires_at: datetime | None
    reservation: str | None
    closed_at: datetime | None
    closed_by: str | None
    reason: str | None

    @classmethod
    def of(cls, entry: LedgerEntry) -> EntryOut:
        return cls(
            value=entry.value,
            formatted=entry.formatted,
            period=entry.period or None,
            state=entry.state,  # type: ignore[arg-type]
            reference=entry.reference,
            actor=entry.actor,
            issued_at=entry.issued_at,
            expires_at=entry.expires_at,
            reservation=entry.reservation,
            closed_at=entry.closed_at,
            closed_by=entry.closed_by,
            reason=entry.reason,
        )


class LedgerPage(BaseModel):
    items: list[EntryOut]
    next_cursor: str | None = Field(description="Pass as ?after= to get the next page.")


class Gap(BaseModel):
    value: int
    formatted: str | None
    state: State
    reason: str | None
    at: datetime = Field(description="When it was voided or expired (reserved: issued).")
    reservation: str | None

    @classmethod
    def of(cls, entry: LedgerEntry) -> Gap:
        return cls(
            value=entry.value,
            formatted=entry.formatted,
            state=entry.state,  # type: ignore[arg-type]
            reason=entry.reason,
            at=entry.closed_at or entry.issued_at,
            reservation=entry.reservation,
        )


class GapReport(BaseModel):
    period: str | None
    first: int | None
    last: int | None
    issued: int = Field(description="Numbers the counter issued in this period.")
    committed: int
    voided: int
    expired: int
    reserved: int
    unaccounted: int = Field(description="Issued numbers without an entry: always 0.")
    gaps: list[Gap] = Field(description="Every issued number that is not committed.")
