"""Bigtable: what every part of ``BigtableStore`` shares.

The table and the started-or-not checks (``table``, ``counters``, ``idempotency``),
``_call`` with its mapping of every Google API error to ``StoreUnavailable``, the row
operations every part is made of (read one row, scan a range, create a row only if it
has no cell, delete one row or a range, compare-and-set a revision) and the cells of
a versioned document (``_set``, ``_versioned``). The parts (``storage.bigtable_registry``,
``bigtable_audit``, ``bigtable_usage``, ``bigtable_ledger``) subclass ``BigtableBase``;
``storage.bigtable.BigtableStore`` combines them. The row keys and cells are documented
in ``storage.bigtable``.
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any

from google.api_core import exceptions as gexc
from google.cloud.bigtable.data import (
    BigtableDataClientAsync,
    DeleteAllFromRow,
    ReadRowsQuery,
    RowMutationEntry,
    RowRange,
)

from storage.base import SequenceRecord, TenantRecord
from storage.bigtable_counters import Counters
from storage.bigtable_idempotency import IdempotencyRows
from storage.bigtable_rows import (
    KEYS_ONLY,
    LATEST,
    RECORDS,
    BigtableURL,
    after,
    cells,
    doc,
    equals,
    i64,
    replace_cell,
    when,
)
from storage.errors import StoreUnavailable

DOC, REV = b"doc", b"rev"
_DELETE_BATCH = 1000


def _set(qualifier: bytes, value: bytes) -> list[Any]:
    return replace_cell(RECORDS, qualifier, value)


def _dated(record: SequenceRecord | TenantRecord) -> dict[str, Any]:
    return {
        "config": record.config,
        "created_at": when(record.created_at),
        "updated_at": when(record.updated_at),
    }


def _versioned(record: SequenceRecord | TenantRecord) -> list[Any]:
    return [*_set(DOC, doc(_dated(record))), *_set(REV, i64(record.revision))]


def _after(start: bytes) -> bytes:
    # Callers have a parameter ``after`` (the cursor), which hides the function's name.
    return after(start)


class BigtableBase:
    def __init__(self, url: BigtableURL, *, timeout: float = 5.0) -> None:
        self.url = url
        self.timeout = timeout
        self._client: BigtableDataClientAsync | None = None
        self._table: Any = None
        self._counters: Counters | None = None
        self._idempotency: IdempotencyRows | None = None

    # -- plumbing ------------------------------------------------------------------
    async def _call(self, awaitable: Awaitable[Any]) -> Any:
        try:
            return await awaitable
        except gexc.GoogleAPIError as exc:
            # Deadline, unavailable, permission... the outcome of a write may be unknown,
            # and nothing here retries a non-idempotent one.
            raise StoreUnavailable(f"Bigtable store unavailable ({type(exc).__name__})") from exc

    @property
    def table(self) -> Any:
        if self._table is None:
            raise StoreUnavailable("Bigtable store not started")
        return self._table

    @property
    def counters(self) -> Counters:
        if self._counters is None:
            raise StoreUnavailable("Bigtable store not started")
        return self._counters

    @property
    def idempotency(self) -> IdempotencyRows:
        if self._idempotency is None:
            raise StoreUnavailable("Bigtable store not started")
        return self._idempotency

    async def _read(self, row_key: bytes) -> dict[bytes, bytes]:
        return cells(await self._call(self.table.read_row(row_key, row_filter=LATEST)))

    async def _scan(
        self,
        start: bytes,
        end: bytes,
        *,
        start_inclusive: bool = True,
        limit: int | None = None,
        row_filter: Any = LATEST,
    ) -> list[Any]:
        query = ReadRowsQuery(
            row_ranges=RowRange(start, end, start_is_inclusive=start_inclusive),
            limit=limit,
            row_filter=row_filter,
        )
        return list(await self._call(self.table.read_rows(query)))

    async def _create(self, row_key: bytes, mutations: list[Any]) -> bool:
        """Write ``mutations`` unless the row has any cell; True if written."""
        matched = await self._call(
            self.table.check_and_mutate_row(row_key, None, false_case_mutations=mutations)
        )
        return not matched

    async def _delete(self, row_key: bytes, only: Any = None) -> bool:
        """Delete the row if it exists (and matches the filter ``only``, if given)."""
        return bool(
            await self._call(
                self.table.check_and_mutate_row(
                    row_key, only, true_case_mutations=[DeleteAllFromRow()]
                )
            )
        )

    async def _delete_range(self, start: bytes, end: bytes) -> None:
        rows = await self._scan(start, end, row_filter=KEYS_ONLY)
        for i in range(0, len(rows), _DELETE_BATCH):
            batch = rows[i : i + _DELETE_BATCH]
            entries = [RowMutationEntry(r.row_key, DeleteAllFromRow()) for r in batch]
            await self._call(self.table.bulk_mutate_rows(entries))

    async def _update_versioned(self, row_key: bytes, record: Any, expected_revision: int) -> bool:
        return bool(
            await self._call(
                self.table.check_and_mutate_row(
                    row_key,
                    equals(RECORDS, REV, i64(expected_revision)),
                    true_case_mutations=_versioned(record),
                )
            )
        )
