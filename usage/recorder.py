"""Counting issued numbers without a store write per request.

Each process adds up ``next`` calls and numbers per (tenant, sequence, UTC hour) in
memory, and every ``interval`` seconds (and at shutdown) adds those totals to the
store, one increment per (tenant, sequence, hour), all of a tenant's in one store
call. Processes add, never overwrite, so any number of them can share a store. Usage
is statistics, not the ledger (the counters are): a process killed without a shutdown
loses at most its last interval, and a store error that strikes after a write applied
can count that one row twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

from storage import Store, UsageRow
from storage.errors import UsagePartlyWritten

log = logging.getLogger("tally.usage")

HOUR = 3600


class UsageRecorder:
    def __init__(self, store: Store, *, interval: float = 10.0) -> None:
        self.store = store
        self.interval = interval
        # (tenant, sequence, hours since the epoch) -> [requests, numbers]
        self._pending: dict[tuple[str, str, int], list[int]] = {}
        self._task: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()
        # Lifetime totals of this process, for the metrics endpoint.
        self.requests_total = 0
        self.numbers_total = 0
        self.numbers_by_mode: dict[str, int] = {}
        self.flush_failures = 0
        self._lock = asyncio.Lock()
        # Flushes begun, and the one under way: see counted().
        self._flushes = 0
        self._in_flight: asyncio.Event | None = None

    def record(
        self, tenant: str, sequence: str, numbers: int, at: datetime, mode: str = "strict"
    ) -> None:
        """One ``next`` call that issued ``numbers`` at ``at`` (on the hot path: no I/O)."""
        self.requests_total += 1
        self.numbers_total += numbers
        by_mode = self.numbers_by_mode
        by_mode[mode] = by_mode.get(mode, 0) + numbers
        key = (tenant, sequence, int(at.timestamp()) // HOUR)
        totals = self._pending.get(key)
        if totals is None:
            self._pending[key] = [1, numbers]
        else:
            totals[0] += 1
            totals[1] += numbers

    def pending(self, tenant: str) -> list[UsageRow]:
        """This process's counts for ``tenant`` that are not in the store yet."""
        return [
            UsageRow(seq, _hour(h), requests, numbers)
            for (t, seq, h), (requests, numbers) in self._pending.items()
            if t == tenant
        ]

    async def counted(
        self, tenant: str, read: Callable[[], Awaitable[list[UsageRow]]]
    ) -> list[UsageRow]:
        """The rows ``read()`` gets from the store plus this process's ``pending`` ones.

        While a flush's write is under way, the counts it carries are in neither (and,
        once it lands, in both until the flush notes it): a read that overlaps one of
        this process's flushes is done again after it, so every count is in it once.
        """
        for _ in range(3):
            while self._in_flight is not None:
                await self._in_flight.wait()
            begun = self._flushes
            rows = await read()
            if self._flushes == begun:
                return [*rows, *self.pending(tenant)]
        async with self._lock:  # flushes keep overlapping the read: hold the next one off
            return [*await read(), *self.pending(tenant)]

    async def flush(self) -> None:
        """Add everything counted so far to the store; what fails stays for next time."""
        async with self._lock:  # never cancelled midway: see close()
            if not self._pending:
                return
            self._flushes += 1
            self._in_flight = in_flight = asyncio.Event()
            try:
                await self._flush()
            finally:
                self._in_flight = None
                in_flight.set()

    async def _flush(self) -> None:
        pending, self._pending = self._pending, {}
        by_tenant: dict[str, list[tuple[tuple[str, str, int], list[int]]]] = {}
        for key, totals in pending.items():
            by_tenant.setdefault(key[0], []).append((key, totals))
        tenants = list(by_tenant.items())
        # One store call per tenant (one transaction on SQLite): a flush of a thousand
        # counters was a thousand fsync'ed commits holding the writer from allocations.
        for done, (tenant, items) in enumerate(tenants):
            rows = [UsageRow(seq, _hour(h), r, n) for (_, seq, h), (r, n) in items]
            try:
                await self.store.add_usage(tenant, rows)
            except Exception as exc:
                # The store is likely down: keep what was not written for the next
                # flush rather than wait out a timeout per tenant (shutdown would hang).
                written = exc.written if isinstance(exc, UsagePartlyWritten) else 0
                kept = items[written:] + [it for _, rest in tenants[done + 1 :] for it in rest]
                log.warning("usage flush failed, %d rows kept for the next one: %s", len(kept), exc)
                self.flush_failures += 1
                for key, (r, n) in kept:
                    totals = self._pending.setdefault(key, [0, 0])
                    totals[0] += r
                    totals[1] += n
                return

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def close(self) -> None:
        """Stop the periodic flush and flush what is left.

        The loop is asked to stop rather than cancelled: a write cancelled midway may
        still land, and putting its row back would count it twice.
        """
        self._stopping.set()
        if self._task is not None:
            await self._task
            self._task = None
        await self.flush()

    async def _run(self) -> None:
        while not self._stopping.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), self.interval)
            await self.flush()


def _hour(hours_since_epoch: int) -> datetime:
    return datetime.fromtimestamp(hours_since_epoch * HOUR, UTC)
