"""Cloud Bigtable backend, on the async data client (``BigtableDataClientAsync``).

Selected by ``TALLY_STORE_URL=bigtable://PROJECT/INSTANCE[?app_profile=…&table_prefix=…]``;
``BIGTABLE_EMULATOR_HOST`` (the client library's own variable) points it at an emulator.

Schema: one table for every tenant, ``<table_prefix>tally``, two column families, each
keeping one version (older versions linger until garbage collection, so every read and
every predicate filters to the newest cell):

=======================================  =====  =========================================
row key                                  cells  content
=======================================  =====  =========================================
``!tenant#<slug>``                       d:doc  tenant JSON {config, created_at, updated_at}
                                         d:rev  revision, int64 big-endian
``<tenant>#seq#<name>``                  d:doc  definition JSON, same shape
                                         d:rev  revision; d:inc incarnation (never rewritten)
``<tenant>#ctr#<name>[/<period>]``       c:t    ticks issued, int64 (ReadModifyWriteRow)
                                         c:s    ``<base>,<step>,<cap>,<incarnation>`` ASCII
                                         c:g    generation (random, new on every replace)
``<tenant>#cli#<client_id>``             d:doc  client JSON (name, scopes, created_at)
                                         d:hash secret hash; d:revoked / d:used ISO times
``<tenant>#aud#<id:019d>``               d:doc  audit entry JSON
``<tenant>#meta``                        c:aud  last audit id (ReadModifyWriteRow)
``<tenant>#use#<yyyymmddhh>#<sequence>`` c:r    requests, int64; c:n numbers, int64
``<tenant>#idem#<key>``                  d:…    an idempotency key (storage.bigtable_idempotency)
``!idem-exp#<expires>#<row key>``        d:exp  index of keys by expiry, for the sweep
=======================================  =====  =========================================

Platform-admin clients (tenant ``""``) use the prefix ``!platform#``. Slugs and
sequence names never contain ``#`` or ``/``, so every tenant is one contiguous key
range (``acme#`` … ``acme$``) and a tenant's data is deleted range by range; the
registry is its own range so listing tenants never scans their data.

Every write that must not clobber a concurrent one is a ``CheckAndMutateRow`` whose
predicate reads the newest cell only (``CellsColumnLimitFilter(1)``): without it, a
version that a later write replaced still matches until garbage collection removes
it. Allocation is described in ``storage.bigtable_counters``. Every call has the
deadline ``TALLY_BIGTABLE_TIMEOUT_MS``; a passed deadline or an unreachable service is
``StoreUnavailable`` (503 with ``Retry-After``).
"""

from __future__ import annotations

import asyncio
import logging
import warnings
from collections.abc import Awaitable, Collection, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from google.api_core import exceptions as gexc
from google.cloud.bigtable.data import (
    BigtableDataClientAsync,
    DeleteAllFromRow,
    ReadRowsQuery,
    RowMutationEntry,
    RowRange,
)
from google.cloud.bigtable.data.read_modify_write_rules import IncrementRule

from storage.base import (
    GROUP_CONCURRENCY,
    AuditEntry,
    ClientRecord,
    Counter,
    IdempotencyRecord,
    Increment,
    LedgerCounts,
    LedgerEntry,
    Rider,
    SequenceRecord,
    TenantRecord,
    UsageRow,
    allocate_concurrently,
    audit_id,
    audit_number,
)
from storage.bigtable_counters import Counters, counter_of
from storage.bigtable_idempotency import IdempotencyRows
from storage.bigtable_rows import (
    COUNTS,
    KEYS_ONLY,
    LATEST,
    RECORDS,
    REGISTRY,
    BigtableURL,
    after,
    cells,
    doc,
    emulator_host,
    equals,
    i64,
    key,
    prefix,
    replace_cell,
    u64,
    undoc,
    unwhen,
    when,
)
from storage.bigtable_schema import ensure_table
from storage.errors import AlreadyExists, InvalidCursor, StoreUnavailable, UsagePartlyWritten

log = logging.getLogger("tally.storage.bigtable")

DOC, REV, INCARNATION = b"doc", b"rev", b"inc"
HASH, REVOKED, USED = b"hash", b"revoked", b"used"
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


def _hour_key(hour: datetime) -> str:
    h = hour.astimezone(UTC)
    return f"{h.year:04d}{h.month:02d}{h.day:02d}{h.hour:02d}"


class BigtableStore:
    kind = "bigtable"

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

    async def start(self) -> None:
        try:
            # The admin client retries on its own; bound the whole check, not each try.
            async with asyncio.timeout(self.timeout * 2):
                await ensure_table(self.url, deadline=self.timeout)
        except TimeoutError as exc:
            raise StoreUnavailable("Bigtable did not answer the table check in time") from exc
        except gexc.GoogleAPIError as exc:
            raise StoreUnavailable(f"Bigtable table check failed ({type(exc).__name__})") from exc
        if self._client is None:
            with warnings.catch_warnings():
                # The client warns on every construction that it talks to an emulator.
                warnings.simplefilter("ignore", RuntimeWarning)
                self._client = BigtableDataClientAsync(project=self.url.project)
            t = self.timeout
            self._table = self._client.get_table(
                self.url.instance,
                self.url.table,
                app_profile_id=self.url.app_profile,
                default_operation_timeout=t,
                default_attempt_timeout=t,
                default_read_rows_operation_timeout=t,
                default_read_rows_attempt_timeout=t,
                default_mutate_rows_operation_timeout=t,
                default_mutate_rows_attempt_timeout=t,
            )
            self._counters = Counters(self._table, self._call, self.timeout)
            self._idempotency = IdempotencyRows(self._table, self._call)
        if emulator_host():
            log.info("Bigtable store on the emulator at %s", emulator_host())

    async def close(self) -> None:
        if self._client is not None:
            client, self._client, self._table, self._counters = self._client, None, None, None
            await client.close()

    async def ping(self) -> None:
        await self._call(self.table.row_exists(b"!ping"))

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

    async def _delete(self, row_key: bytes) -> bool:
        return bool(
            await self._call(
                self.table.check_and_mutate_row(
                    row_key, None, true_case_mutations=[DeleteAllFromRow()]
                )
            )
        )

    async def _delete_range(self, start: bytes, end: bytes) -> None:
        rows = await self._scan(start, end, row_filter=KEYS_ONLY)
        for i in range(0, len(rows), _DELETE_BATCH):
            entries = [RowMutationEntry(r.row_key, DeleteAllFromRow()) for r in rows[i : i + 1000]]
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

    # -- sequences -------------------------------------------------------------------
    async def create_sequence(self, tenant: str, record: SequenceRecord) -> None:
        # The incarnation has a cell of its own: updates rewrite the document, never it.
        cells_ = [*_versioned(record), *_set(INCARNATION, record.incarnation.encode())]
        if not await self._create(key(tenant, "seq", record.name), cells_):
            raise AlreadyExists(record.name)
        await self._purge(tenant, record.name)

    async def get_sequence(self, tenant: str, name: str) -> SequenceRecord | None:
        row = await self._read(key(tenant, "seq", name))
        return _sequence(name, row) if DOC in row else None

    async def _live(self, tenant: str, name: str, incarnation: str) -> bool:
        row = await self._read(key(tenant, "seq", name))
        return DOC in row and row.get(INCARNATION, b"").decode() == incarnation

    async def _purge(self, tenant: str, name: str) -> None:
        """Remove counters of ``name`` whose incarnation is not the stored definition's.

        Counters are read before the definition: a counter exists only after its
        definition did, so an incarnation not live at the second read was deleted for
        good. Each removal is a compare-and-set on the shape read, so a counter that
        changed meanwhile is left alone.
        """
        exact, periods = key(tenant, "ctr", name), key(tenant, "ctr", f"{name}/")
        query = ReadRowsQuery(
            row_keys=[exact], row_ranges=[RowRange(periods, _after(periods))], row_filter=LATEST
        )
        found = [
            (row.row_key, counter)
            for row in await self._call(self.table.read_rows(query))
            if (counter := counter_of(cells(row))) is not None
        ]
        if not found:
            return
        definition = await self._read(key(tenant, "seq", name))
        live = definition.get(INCARNATION, b"").decode() if DOC in definition else None
        for row_key, counter in found:
            if counter.incarnation != live:
                await self.counters.delete_if(row_key, counter)

    async def list_sequences(
        self, tenant: str, *, after: str | None, limit: int
    ) -> list[SequenceRecord]:
        base = key(tenant, "seq")
        rows = await self._scan(
            base + (after or "").encode(),
            _after(base),
            start_inclusive=not after,
            limit=limit,
        )
        return [_sequence(r.row_key[len(base) :].decode(), cells(r)) for r in rows]

    async def update_sequence(
        self, tenant: str, record: SequenceRecord, *, expected_revision: int
    ) -> bool:
        return await self._update_versioned(
            key(tenant, "seq", record.name), record, expected_revision
        )

    async def delete_sequence(self, tenant: str, name: str) -> bool:
        # Two steps, definition first: cut short in between, what is left are counters
        # of a dead incarnation, which nothing uses and the next call removes.
        existed = await self._delete(key(tenant, "seq", name))
        await self._purge(tenant, name)
        return existed

    # -- counters --------------------------------------------------------------------
    async def read_counter(self, tenant: str, key_: str) -> Counter | None:
        return counter_of(await self.counters.read(key(tenant, "ctr", key_)))

    async def read_counters(self, tenant: str, keys: Sequence[str]) -> dict[str, Counter]:
        wanted = list(dict.fromkeys(keys))
        if not wanted:
            return {}
        base = key(tenant, "ctr")
        query = ReadRowsQuery(row_keys=[base + k.encode() for k in wanted], row_filter=LATEST)
        rows = await self._call(self.table.read_rows(query))
        out: dict[str, Counter] = {}
        for row in rows:
            counter = counter_of(cells(row))
            if counter is not None:
                out[row.row_key[len(base) :].decode()] = counter
        return out

    async def allocate_many(self, items: Sequence[Increment]) -> list[int | None]:
        # No multi-row transaction: the counters' increments in flight at once.
        return await allocate_concurrently(self._allocate_item, items, limit=GROUP_CONCURRENCY)

    async def _allocate_item(self, it: Increment) -> int | None:
        return await self.allocate(it.tenant, it.key, it.seq, it.shape, it.n, create=it.create)

    async def allocate(
        self,
        tenant: str,
        key_: str,
        seq: str,
        shape: Counter,
        n: int,
        *,
        create: bool = True,
        riders: Sequence[Rider] = (),
    ) -> int | None:
        if any(r.writes for r in riders):
            # ReadModifyWriteRow changes one row: entries in other rows could not commit
            # with it. No atomic_riders, so the service never sends any (see Store).
            raise ValueError("Bigtable cannot write riders atomically with an increment")

        def live(incarnation: str) -> Awaitable[bool]:
            return self._live(tenant, seq, incarnation)

        row_key = key(tenant, "ctr", key_)
        return await self.counters.allocate(row_key, shape, n, create=live if create else None)

    async def replace_counter(
        self, tenant: str, key_: str, seq: str, expected: Counter | None, new: Counter
    ) -> bool:
        def live(incarnation: str) -> Awaitable[bool]:
            return self._live(tenant, seq, incarnation)

        return await self.counters.replace(key(tenant, "ctr", key_), expected, new, live)

    # -- usage -------------------------------------------------------------------------
    async def add_usage(self, tenant: str, rows: Sequence[UsageRow]) -> None:
        for done, row in enumerate(rows):
            try:
                await self._add_usage_row(tenant, row)
            except Exception as exc:
                raise UsagePartlyWritten(done, "Bigtable usage write failed") from exc

    async def _add_usage_row(self, tenant: str, row: UsageRow) -> None:
        # ReadModifyWriteRow adds atomically, so concurrent flushes never lose counts. It
        # is not retried: a flush whose outcome is unknown is reported, not doubled.
        await self._call(
            self.table.read_modify_write_row(
                key(tenant, "use", f"{_hour_key(row.hour)}#{row.sequence}"),
                [
                    IncrementRule(COUNTS, b"r", row.requests),
                    IncrementRule(COUNTS, b"n", row.numbers),
                ],
            )
        )

    async def read_usage(
        self, tenant: str, *, sequence: str | None, since: datetime, until: datetime
    ) -> list[UsageRow]:
        if until <= since:
            return []
        base = key(tenant, "use")
        end = _hour_key(until + timedelta(hours=1))
        rows = await self._scan(base + _hour_key(since).encode(), base + end.encode())
        out: list[UsageRow] = []
        for row in rows:
            hour_text, name = row.row_key[len(base) :].decode().split("#", 1)
            hour = datetime.strptime(hour_text, "%Y%m%d%H").replace(tzinfo=UTC)
            if not since <= hour < until or (sequence is not None and name != sequence):
                continue
            got = cells(row)
            out.append(UsageRow(name, hour, u64(got.get(b"r", b"")), u64(got.get(b"n", b""))))
        return out

    # -- audit trail ---------------------------------------------------------------------
    async def append_audit(self, tenant: str, entry: AuditEntry) -> str:
        # Numbers from a per-tenant ReadModifyWriteRow counter (the tenant's own row, so
        # no other tenant's writes move it): they sort in insertion order. A write that
        # fails after the increment leaves a gap in this tenant's numbers, nothing more.
        got = await self._call(
            self.table.read_modify_write_row(
                f"{prefix(tenant)}meta".encode(), IncrementRule(COUNTS, b"aud", 1)
            )
        )
        entry_id = audit_id(u64(cells(got)[b"aud"]))
        body = {
            "at": when(entry.at),
            "actor": entry.actor,
            "client_id": entry.client_id,
            "action": entry.action,
            "target": entry.target,
            "before": entry.before,
            "after": entry.after,
        }
        await self._call(self.table.mutate_row(key(tenant, "aud", entry_id), _set(DOC, doc(body))))
        return entry_id

    async def list_audit(self, tenant: str, *, after: str | None, limit: int) -> list[AuditEntry]:
        if after is not None and audit_number(after) is None:
            raise InvalidCursor(after)
        base = key(tenant, "aud")
        rows = await self._scan(
            base + (after or "").encode(), _after(base), start_inclusive=after is None, limit=limit
        )
        entries = []
        for row in rows:
            d = undoc(cells(row)[DOC])
            at = unwhen(d["at"])
            assert at is not None
            entries.append(
                AuditEntry(
                    id=row.row_key[len(base) :].decode(),
                    tenant=tenant,
                    at=at,
                    actor=d["actor"],
                    client_id=d["client_id"],
                    action=d["action"],
                    target=d["target"],
                    before=d["before"],
                    after=d["after"],
                )
            )
        return entries

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

    # -- idempotency keys (storage.bigtable_idempotency) ---------------------------------
    async def claim_idempotency(
        self, tenant: str, record: IdempotencyRecord
    ) -> IdempotencyRecord | None:
        return await self.idempotency.claim(tenant, record)

    async def relock_idempotency(
        self, tenant: str, key: str, *, expected: datetime, locked_until: datetime
    ) -> bool:
        return await self.idempotency.relock(
            tenant, key, expected=expected, locked_until=locked_until
        )

    async def complete_idempotency(
        self, tenant: str, key: str, *, status: int, body: bytes, content_type: str
    ) -> None:
        await self.idempotency.complete(
            tenant, key, status=status, body=body, content_type=content_type
        )

    async def release_idempotency(self, tenant: str, key: str) -> None:
        await self.idempotency.release(tenant, key)

    async def sweep_idempotency(self, now: datetime) -> int:
        return await self.idempotency.sweep(now)

    # -- tenants (registry) ----------------------------------------------------------------
    async def create_tenant(self, tenant: str, record: TenantRecord) -> None:
        if not await self._create(f"{REGISTRY}{tenant}".encode(), _versioned(record)):
            raise AlreadyExists(tenant)

    async def get_tenant(self, tenant: str) -> TenantRecord | None:
        row = await self._read(f"{REGISTRY}{tenant}".encode())
        return _tenant(tenant, row) if DOC in row else None

    async def list_tenants(self, *, after: str | None, limit: int) -> list[TenantRecord]:
        base = REGISTRY.encode()
        rows = await self._scan(
            base + (after or "").encode(), _after(base), start_inclusive=not after, limit=limit
        )
        return [_tenant(r.row_key[len(base) :].decode(), cells(r)) for r in rows]

    async def update_tenant(
        self, tenant: str, record: TenantRecord, *, expected_revision: int
    ) -> bool:
        return await self._update_versioned(
            f"{REGISTRY}{tenant}".encode(), record, expected_revision
        )

    async def delete_tenant(self, tenant: str, *, with_data: bool = True) -> bool:
        existed = await self._delete(f"{REGISTRY}{tenant}".encode())
        kinds = ["cli", "seq", "ctr", "idem"] if with_data else ["cli"]
        for kind in kinds:
            start = key(tenant, kind)
            await self._delete_range(start, _after(start))
        return existed

    # -- API clients ---------------------------------------------------------------------
    async def create_client(self, tenant: str, record: ClientRecord) -> None:
        body = {
            "name": record.name,
            "scopes": list(record.scopes),
            "created_at": when(record.created_at),
        }
        mutations = [
            *_set(DOC, doc(body)),
            *_set(HASH, record.secret_hash.encode()),
            *_set(REVOKED, (when(record.revoked_at) or "").encode()),
            *_set(USED, (when(record.last_used_at) or "").encode()),
        ]
        if not await self._create(key(tenant, "cli", record.client_id), mutations):
            raise AlreadyExists(record.client_id)

    async def get_client(self, tenant: str, client_id: str) -> ClientRecord | None:
        row = await self._read(key(tenant, "cli", client_id))
        return _client(tenant, client_id, row) if DOC in row else None

    async def list_clients(self, tenant: str) -> list[ClientRecord]:
        base = key(tenant, "cli")
        rows = await self._scan(base, _after(base))
        return [_client(tenant, r.row_key[len(base) :].decode(), cells(r)) for r in rows]

    async def _if_active(self, tenant: str, client_id: str, mutations: list[Any]) -> bool:
        return bool(
            await self._call(
                self.table.check_and_mutate_row(
                    key(tenant, "cli", client_id),
                    equals(RECORDS, REVOKED, b""),
                    true_case_mutations=mutations,
                )
            )
        )

    async def set_client_secret(self, tenant: str, client_id: str, secret_hash: str) -> bool:
        return await self._if_active(tenant, client_id, _set(HASH, secret_hash.encode()))

    async def revoke_client(self, tenant: str, client_id: str, at: datetime) -> bool:
        return await self._if_active(tenant, client_id, _set(REVOKED, (when(at) or "").encode()))

    async def touch_client(self, tenant: str, client_id: str, at: datetime) -> None:
        # Only an existing client: a plain write would found a row of its own.
        await self._call(
            self.table.check_and_mutate_row(
                key(tenant, "cli", client_id),
                None,
                true_case_mutations=_set(USED, (when(at) or "").encode()),
            )
        )


def _after(start: bytes) -> bytes:
    return after(start)


def _sequence(name: str, row: dict[bytes, bytes]) -> SequenceRecord:
    d = undoc(row[DOC])
    created, updated = unwhen(d["created_at"]), unwhen(d["updated_at"])
    assert created is not None and updated is not None
    incarnation = row.get(INCARNATION, b"").decode()
    return SequenceRecord(name, dict(d["config"]), created, updated, u64(row[REV]), incarnation)


def _tenant(slug: str, row: dict[bytes, bytes]) -> TenantRecord:
    d = undoc(row[DOC])
    created, updated = unwhen(d["created_at"]), unwhen(d["updated_at"])
    assert created is not None and updated is not None
    return TenantRecord(slug, dict(d["config"]), created, updated, u64(row[REV]))


def _client(tenant: str, client_id: str, row: dict[bytes, bytes]) -> ClientRecord:
    d = undoc(row[DOC])
    created = unwhen(d["created_at"])
    assert created is not None
    return ClientRecord(
        client_id=client_id,
        tenant=tenant,
        name=d["name"],
        secret_hash=row.get(HASH, b"").decode(),
        scopes=tuple(d["scopes"]),
        created_at=created,
        last_used_at=unwhen(row.get(USED, b"").decode()),
        revoked_at=unwhen(row.get(REVOKED, b"").decode()),
    )
