"""``tally migrate`` on Bigtable: the ``storage.admin.StoreAdmin`` of this backend."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from google.cloud.bigtable.data import ReadRowsQuery, RowRange, SetCell

from storage.bigtable import BigtableStore
from storage.bigtable_rows import LATEST, RECORDS, BigtableURL, after
from storage.bigtable_schema import FAMILIES
from storage.errors import UsersNotSupported

_LEDGER = b"!migration#"


class BigtableAdmin:
    """``tally migrate`` on Bigtable (``storage.admin.StoreAdmin``): the migration ledger
    in rows ``!migration#<id>``, the table's column families as its "indexes". Access
    is IAM's (``roles/bigtable.user`` for the workload), so there are no users here."""

    kind = "bigtable"

    def __init__(self, url: BigtableURL, *, timeout: float = 5.0) -> None:
        self.url = url
        self._store = BigtableStore(url, timeout=timeout)
        self._started = False

    async def _table(self) -> Any:
        if not self._started:
            await self._store.start()
            self._started = True
        return self._store.table

    async def applied_migrations(self) -> set[str]:
        table = await self._table()
        query = ReadRowsQuery(row_ranges=RowRange(_LEDGER, after(_LEDGER)), row_filter=LATEST)
        rows = await self._store._call(table.read_rows(query))
        return {r.row_key[len(_LEDGER) :].decode() for r in rows}

    async def record_migration(self, migration_id: str, at: datetime) -> None:
        table = await self._table()
        cell = SetCell(RECORDS, b"at", at.isoformat().encode())
        # Insert-if-absent: a concurrent run's record wins and is kept.
        await self._store._call(
            table.check_and_mutate_row(
                _LEDGER + migration_id.encode(), None, false_case_mutations=[cell]
            )
        )

    async def indexes(self) -> dict[str, list[str]]:
        await self._table()
        return {self.url.table: sorted(FAMILIES)}

    async def ensure_user(self, user: str, password: str, database: str) -> Any:
        raise UsersNotSupported(
            "Bigtable has no database users: grant the instance's service account"
            " roles/bigtable.user on the instance (see docs/bigtable.md)"
        )

    async def get_user(self, user: str) -> Any:
        raise UsersNotSupported("Bigtable has no database users (access is IAM's)")

    async def close(self) -> None:
        await self._store.close()
