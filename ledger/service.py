"""Reservations, the ledger and the gap report of ledger sequences.

Numbers come from ``SequenceService.next`` (so reservations are coalesced, carry their
entry in the increment's own write, and honour idempotency keys like any ``next``);
this service closes them and reads the ledger. Every read passes the current instant
to the store, so a reservation is ``expired`` from its ``expires_at`` on, whether or
not anything has touched it since.
"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime, timedelta
from typing import Any

from audit.service import SYSTEM, Actor, AuditLog
from core.clock import Clock, SystemClock
from ledger.errors import ReservationClosed, ReservationNotFound
from ledger.schemas import Gap, GapReport
from sequences.errors import NotALedger
from sequences.models import Sequence
from sequences.periods import counter_key
from sequences.service import Hold, SequenceService
from storage import COMMITTED, EXPIRED, RESERVED, VOIDED, LedgerEntry, Store

GAP_STATES = (RESERVED, VOIDED, EXPIRED)
_GAP_PAGE = 1000


def _utc(at: datetime | None) -> datetime | None:
    """An instant in UTC (naive means UTC); the edges of datetime clamp, not overflow."""
    if at is None:
        return None
    if at.tzinfo is None:
        return at.replace(tzinfo=UTC)
    try:
        return at.astimezone(UTC)
    except OverflowError:  # 0001-01-01T00:00+14:00 is before datetime.min in UTC
        return (datetime.min if at.year == 1 else datetime.max).replace(tzinfo=UTC)


def new_reservation_id() -> str:
    """128 random bits: unguessable, so holding the id is the capability."""
    return "rsv_" + secrets.token_urlsafe(16)


class LedgerService:
    def __init__(
        self,
        store: Store,
        sequences: SequenceService,
        *,
        audit: AuditLog,
        clock: Clock | None = None,
    ) -> None:
        self.store = store
        self.sequences = sequences
        self.audit = audit
        self.clock = clock or SystemClock()

    async def ledger_sequence(self, tenant: str, name: str) -> Sequence:
        """The definition; 404 if unknown, 409 if it keeps no ledger."""
        seq = await self.sequences.get(tenant, name)
        if not seq.ledger:
            raise NotALedger(name)
        return seq

    # -- reservations ------------------------------------------------------------------
    async def reserve(
        self,
        tenant: str,
        name: str,
        *,
        ttl_seconds: int,
        reference: str | None,
        actor: Actor = SYSTEM,
        idempotency_key: str | None = None,
    ) -> LedgerEntry:
        """Take the next number as a reservation that lapses after ``ttl_seconds``."""
        await self.ledger_sequence(tenant, name)
        hold = Hold(new_reservation_id(), self.clock.now() + timedelta(seconds=ttl_seconds))
        await self.sequences.next(
            tenant,
            name,
            1,
            actor=actor,
            reference=reference,
            hold=hold,
            idempotency_key=idempotency_key,
        )
        return await self.get(tenant, name, hold.id)

    async def recorded(self, tenant: str, name: str, note: dict[str, Any]) -> LedgerEntry:
        """The reservation an interrupted attempt with an idempotency key took."""
        return await self.get(tenant, name, str(note["reservation"]))

    async def get(self, tenant: str, name: str, reservation: str) -> LedgerEntry:
        """The reservation as of now; 404 if it is not this tenant's and sequence's."""
        await self.ledger_sequence(tenant, name)
        entry = await self.store.get_reservation(tenant, name, reservation, now=self.clock.now())
        if entry is None:
            raise ReservationNotFound(reservation)
        return entry

    async def commit(
        self, tenant: str, name: str, reservation: str, *, reference: str | None, actor: Actor
    ) -> LedgerEntry:
        """Confirm the number (the invoice was issued); again: the same answer."""
        await self.ledger_sequence(tenant, name)
        closed = await self._close(tenant, name, reservation, COMMITTED, actor, reference, None)
        if closed is not None:
            return closed
        current = await self.get(tenant, name, reservation)
        if current.state == COMMITTED:
            return current
        raise ReservationClosed(reservation, current.state)

    async def void(
        self, tenant: str, name: str, reservation: str, *, reason: str, actor: Actor
    ) -> LedgerEntry:
        """Cancel the number for good: it stays on record as voided, with the reason."""
        await self.ledger_sequence(tenant, name)
        closed = await self._close(tenant, name, reservation, VOIDED, actor, None, reason)
        if closed is None:
            current = await self.get(tenant, name, reservation)
            if current.state == VOIDED and current.reason == reason:
                return current  # a retried void
            raise ReservationClosed(reservation, current.state)
        await self.audit.record(
            tenant,
            actor,
            "reservation.voided",
            f"sequences/{name}/reservations/{reservation}",
            before={"state": RESERVED, "value": closed.value, "period": closed.period},
            after={"state": VOIDED, "reason": reason},
        )
        return closed

    async def _close(
        self,
        tenant: str,
        name: str,
        reservation: str,
        state: str,
        actor: Actor,
        reference: str | None,
        reason: str | None,
    ) -> LedgerEntry | None:
        return await self.store.close_reservation(
            tenant,
            name,
            reservation,
            state=state,
            at=self.clock.now(),
            actor=actor.subject,
            reference=reference,
            reason=reason,
        )

    # -- the ledger and the gap report ----------------------------------------------
    async def period(self, tenant: str, seq: Sequence, period: str | None) -> str:
        return period if period is not None else await self.sequences.current_period(tenant, seq)

    async def entries(
        self,
        tenant: str,
        name: str,
        *,
        period: str | None,
        states: list[str] | None,
        since: datetime | None,
        until: datetime | None,
        after: int | None,
        limit: int,
    ) -> list[LedgerEntry]:
        """A page of the period's entries in number order (the current period by default)."""
        seq = await self.ledger_sequence(tenant, name)
        return await self.store.list_ledger(
            tenant,
            name,
            period=await self.period(tenant, seq, period),
            now=self.clock.now(),
            states=states,
            since=_utc(since),
            until=_utc(until),
            after=after,
            limit=limit,
        )

    async def gaps(self, tenant: str, name: str, *, period: str | None) -> GapReport:
        """Where every number of the period went: counts per state and each uncommitted one."""
        seq = await self.ledger_sequence(tenant, name)
        where = await self.period(tenant, seq, period)
        now = self.clock.now()
        # The counter first: entries are written with (or, on MongoDB, settled before
        # reading) their increment, so what it counts is never ahead of the entries.
        counter = await self.store.read_counter(tenant, counter_key(name, where))
        issued = counter.ticks if counter else 0
        counts = await self.store.count_ledger(tenant, name, period=where, now=now)
        gaps: list[Gap] = []
        after: int | None = None
        while True:
            page = await self.store.list_ledger(
                tenant, name, period=where, now=now, states=GAP_STATES, after=after, limit=_GAP_PAGE
            )
            gaps.extend(Gap.of(e) for e in page)
            if len(page) < _GAP_PAGE:
                break
            after = page[-1].value
        states = counts.states
        accounted = sum(states.values())
        return GapReport(
            period=where or None,
            first=counts.first,
            last=counts.last,
            issued=max(issued, accounted),
            committed=states.get(COMMITTED, 0),
            voided=states.get(VOIDED, 0),
            expired=states.get(EXPIRED, 0),
            reserved=states.get(RESERVED, 0),
            unaccounted=max(issued - accounted, 0),
            gaps=gaps,
        )
