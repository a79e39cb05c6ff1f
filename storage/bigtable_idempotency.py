"""Idempotency keys on Bigtable: one row per key, every change a single-row CheckAndMutate.

``<tenant>#idem#<key>`` holds, in family ``d``: ``idoc`` (fingerprint, created_at,
JSON), ``exp`` and ``lock`` (fixed-width UTC times, so byte order is time order and
a ``ValueRangeFilter`` compares them), ``status`` (ASCII, empty while in flight),
``body``, ``ctype`` and ``alloc`` (JSON, empty when none). A claim is a
CheckAndMutateRow whose predicate is "an ``exp`` later than now": if it matches, the
live record stands; if not, the row is rewritten whole. So a key is claimed once per
lifetime, as on the other backends.

Sweeping needs every tenant's expired keys without scanning their data, so each
claim also writes ``!idem-exp#<exp>#<tenant>#<key>`` (an index row, written after the
claim: a crash in between leaves a record that only reads as absent once expired and is
rewritten by the next claim). The sweep walks the index up to now and deletes a record
only if its ``exp`` is still the indexed one.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from google.cloud.bigtable.data import (
    DeleteAllFromRow,
    ReadRowsQuery,
    RowMutationEntry,
    RowRange,
    SetCell,
)
from google.cloud.bigtable.data import row_filters as rf

from storage.base import IdempotencyRecord
from storage.bigtable_counters import Call
from storage.bigtable_rows import (
    LATEST,
    RECORDS,
    all_of,
    cells,
    column,
    equals,
    key,
    replace_cell,
)
from storage.errors import StoreUnavailable

IDOC, EXP, LOCK, STATUS, BODY, CTYPE, ALLOC = (
    b"idoc",
    b"exp",
    b"lock",
    b"status",
    b"body",
    b"ctype",
    b"alloc",
)
INDEX = b"!idem-exp#"


def stamp(value: datetime) -> bytes:
    v = value.astimezone(UTC)
    return (
        f"{v.year:04d}-{v.month:02d}-{v.day:02d}T{v.hour:02d}:{v.minute:02d}:{v.second:02d}"
        f".{v.microsecond:06d}Z"
    ).encode()


def unstamp(raw: bytes) -> datetime:
    return datetime.strptime(raw.decode(), "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)


def _set(qualifier: bytes, value: bytes) -> SetCell:
    return SetCell(RECORDS, qualifier, value)


def _replace(qualifier: bytes, value: bytes) -> list[Any]:
    return replace_cell(RECORDS, qualifier, value)


def _record(name: str, row: dict[bytes, bytes]) -> IdempotencyRecord:
    d = json.loads(row[IDOC])
    status = row.get(STATUS, b"")
    alloc = row.get(ALLOC, b"")
    return IdempotencyRecord(
        key=name,
        fingerprint=d["fingerprint"],
        created_at=unstamp(d["created_at"].encode()),
        expires_at=unstamp(row[EXP]),
        locked_until=unstamp(row[LOCK]),
        status=int(status) if status else None,
        body=row.get(BODY) if status else None,
        content_type=row.get(CTYPE, b"").decode() if status else None,
        allocation=json.loads(alloc) if alloc else None,
    )


class IdempotencyRows:
    def __init__(self, table: Any, call: Call) -> None:
        self._table = table
        self._call = call

    async def claim(self, tenant: str, record: IdempotencyRecord) -> IdempotencyRecord | None:
        row_key = key(tenant, "idem", record.key)
        live = rf.RowFilterChain(
            [column(RECORDS, EXP), rf.ValueRangeFilter(stamp(record.created_at), None, False)]
        )
        body = json.dumps(
            {"fingerprint": record.fingerprint, "created_at": stamp(record.created_at).decode()}
        ).encode()
        fresh = [
            DeleteAllFromRow(),
            _set(IDOC, body),
            _set(EXP, stamp(record.expires_at)),
            _set(LOCK, stamp(record.locked_until)),
            _set(STATUS, b""),
            _set(ALLOC, b""),
        ]
        for _ in range(10):
            held = await self._call(
                self._table.check_and_mutate_row(row_key, live, false_case_mutations=fresh)
            )
            if not held:
                index = INDEX + stamp(record.expires_at) + b"#" + row_key
                await self._call(self._table.mutate_row(index, _set(EXP, b"")))
                return None
            row = cells(await self._call(self._table.read_row(row_key, row_filter=LATEST)))
            if IDOC in row:
                return _record(record.key, row)
            # Released between the two calls: claim again.
        raise StoreUnavailable("The idempotency key kept changing; try again.")

    async def relock(
        self, tenant: str, name: str, *, expected: datetime, locked_until: datetime
    ) -> bool:
        predicate = all_of(equals(RECORDS, LOCK, stamp(expected)), equals(RECORDS, STATUS, b""))
        return bool(
            await self._call(
                self._table.check_and_mutate_row(
                    key(tenant, "idem", name),
                    predicate,
                    true_case_mutations=_replace(LOCK, stamp(locked_until)),
                )
            )
        )

    async def complete(
        self, tenant: str, name: str, *, status: int, body: bytes, content_type: str
    ) -> None:
        await self._call(
            self._table.check_and_mutate_row(
                key(tenant, "idem", name),
                column(RECORDS, IDOC),
                true_case_mutations=[
                    *_replace(STATUS, str(status).encode()),
                    *_replace(BODY, body),
                    *_replace(CTYPE, content_type.encode()),
                ],
            )
        )

    async def release(self, tenant: str, name: str) -> None:
        open_claim = all_of(equals(RECORDS, STATUS, b""), equals(RECORDS, ALLOC, b""))
        await self._call(
            self._table.check_and_mutate_row(
                key(tenant, "idem", name), open_claim, true_case_mutations=[DeleteAllFromRow()]
            )
        )

    async def sweep(self, now: datetime) -> int:
        query = ReadRowsQuery(row_ranges=RowRange(INDEX, INDEX + stamp(now)), row_filter=LATEST)
        removed = 0
        done: list[RowMutationEntry] = []
        for entry in await self._call(self._table.read_rows(query)):
            expiry, row_key = entry.row_key[len(INDEX) :].split(b"#", 1)
            if await self._call(
                self._table.check_and_mutate_row(
                    row_key,
                    equals(RECORDS, EXP, expiry),
                    true_case_mutations=[DeleteAllFromRow()],
                )
            ):
                removed += 1
            done.append(RowMutationEntry(entry.row_key, DeleteAllFromRow()))
        for i in range(0, len(done), 1000):
            await self._call(self._table.bulk_mutate_rows(done[i : i + 1000]))
        return removed
