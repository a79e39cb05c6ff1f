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
                                         c:g    generation ``<random>:<floor>``, new on every set
``<tenant>#cli#<client_id>``             d:doc  client JSON (name, scopes, created_at)
                                         d:hash secret hash; d:revoked / d:used ISO times
``<tenant>#aud#<id:019d>``               d:doc  audit entry JSON
``<tenant>#meta``                        c:aud  highest audit number taken (a hint)
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

The store is one class made of parts, each over the table, ``_call`` and the row
operations of ``storage.bigtable_base``: the registry of tenants and API clients
(``bigtable_registry``), the audit trail (``bigtable_audit``), usage
(``bigtable_usage``) and the refused ledger (``bigtable_ledger``). This module holds
its lifecycle and what allocation is: sequences, counters and their incarnations, with
the counters' rows in ``bigtable_counters``; and the entry points of idempotency keys,
whose rows are ``bigtable_idempotency``'s.
"""

from __future__ import annotations

import asyncio
import logging
import warnings
from collections.abc import Awaitable, Sequence
from datetime import datetime

from google.api_core import exceptions as gexc
from google.cloud.bigtable.data import BigtableDataClientAsync, ReadRowsQuery, RowRange

from storage.base import (
    GROUP_CONCURRENCY,
    Counter,
    IdempotencyRecord,
    Increment,
    Rider,
    SequenceRecord,
    allocate_concurrently,
)
from storage.bigtable_audit import BigtableAudit
from storage.bigtable_base import DOC, REV, _after, _set, _versioned
from storage.bigtable_counters import Counters, counter_of
from storage.bigtable_idempotency import IdempotencyRows
from storage.bigtable_ledger import BigtableLedger
from storage.bigtable_registry import BigtableRegistry
from storage.bigtable_rows import (
    LATEST,
    RECORDS,
    cells,
    emulator_host,
    equals,
    key,
    u64,
    undoc,
    unwhen,
)
from storage.bigtable_schema import ensure_table
from storage.bigtable_usage import BigtableUsage
from storage.errors import AlreadyExists, StoreUnavailable

log = logging.getLogger("tally.storage.bigtable")

INCARNATION = b"inc"


class BigtableStore(BigtableRegistry, BigtableAudit, BigtableUsage, BigtableLedger):
    kind = "bigtable"

    # -- lifecycle -------------------------------------------------------------------
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
            client, self._client, self._table = self._client, None, None
            self._counters = self._idempotency = None  # "not started" again, not a closed channel
            await client.close()

    async def ping(self) -> None:
        await self._call(self.table.row_exists(b"!ping"))

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

    async def get_sequences(self, tenant: str, names: Sequence[str]) -> dict[str, SequenceRecord]:
        wanted = list(dict.fromkeys(names))
        if not wanted:
            return {}
        base = key(tenant, "seq")
        query = ReadRowsQuery(row_keys=[base + n.encode() for n in wanted], row_filter=LATEST)
        out: dict[str, SequenceRecord] = {}
        for row in await self._call(self.table.read_rows(query)):
            found = cells(row)
            if DOC in found:
                name = row.row_key[len(base) :].decode()
                out[name] = _sequence(name, found)
        return out

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

    async def delete_sequence(
        self, tenant: str, name: str, *, incarnation: str | None = None
    ) -> bool:
        # Two steps, definition first: cut short in between, what is left are counters
        # of a dead incarnation, which nothing uses and the next call removes.
        # "" (a definition from before incarnations) has no cell to compare: as before.
        only = equals(RECORDS, INCARNATION, incarnation.encode()) if incarnation else None
        existed = await self._delete(key(tenant, "seq", name), only)
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


def _sequence(name: str, row: dict[bytes, bytes]) -> SequenceRecord:
    d = undoc(row[DOC])
    created, updated = unwhen(d["created_at"]), unwhen(d["updated_at"])
    assert created is not None and updated is not None
    incarnation = row.get(INCARNATION, b"").decode()
    return SequenceRecord(name, dict(d["config"]), created, updated, u64(row[REV]), incarnation)
