"""Bigtable: the number ledger, refused.

A ledger entry must commit with the increment it records, and ReadModifyWriteRow
changes one row only. So ``BigtableStore`` has no ``atomic_riders``, the service
refuses ledger sequences at creation (422), and these reads find nothing.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime

from storage.base import LedgerCounts, LedgerEntry
from storage.bigtable_base import BigtableBase


class BigtableLedger(BigtableBase):
    # -- the number ledger: refused ----------------------------------------------------
    # Without atomic_riders the service refuses ledger sequences at creation (422), so
    # there is never a ledger to read here.
    async def get_reservation(
        self, tenant: str, seq: str, reservation: str, *, now: datetime
    ) -> LedgerEntry | None:
        return None

    async def close_reservation(
        self,
        tenant: str,
        seq: str,
        reservation: str,
        *,
        state: str,
        at: datetime,
        actor: str,
        reference: str | None,
        reason: str | None,
    ) -> LedgerEntry | None:
        return None

    async def list_ledger(
        self,
        tenant: str,
        seq: str,
        *,
        period: str,
        now: datetime,
        states: Collection[str] | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        after: int | None = None,
        limit: int,
    ) -> list[LedgerEntry]:
        return []

    async def count_ledger(
        self, tenant: str, seq: str, *, period: str, now: datetime
    ) -> LedgerCounts:
        return LedgerCounts(first=None, last=None, states={})
