"""Group commit: every counter increment pending in this process, one store call.

Coalescing (``sequences.allocator``) merges the requests of *one* counter; a load
spread over many tenants' counters still paid one fsync'ed commit per counter. Here
the conditional increments of every counter, any tenant, sequence or period, queue
while a group is at the store; the next group takes them all in one
``Store.allocate_many`` (on SQLite one ``BEGIN IMMEDIATE`` ... ``COMMIT``: one fsync
for the group; on MongoDB the increments in flight together). At most one group is in
flight per process, so under load a group holds what arrived during the previous one.

Each item's result is exactly what its own ``Store.allocate`` would have returned, so
the service's retry logic (another shape, exhausted, a counter to create) is
unchanged and a miss affects only its own item. A store failure fails every item of
the group, and none of its results is handed out: on SQLite the transaction rolled
back; on MongoDB an increment that did apply is a gap, never reissued.
"""

from __future__ import annotations

import asyncio
import time

from core.errors import Unavailable
from storage import Increment, Store


class GroupCommit:
    def __init__(self, store: Store, *, enabled: bool = True) -> None:
        self.store = store
        self.enabled = enabled
        self._pending: list[tuple[Increment, asyncio.Future[int | None]]] = []
        self._flush: asyncio.Task[None] | None = None
        # Store calls made and the increments they carried (tests and metrics).
        self.groups = 0
        self.items = 0
        self.seconds = 0.0

    async def allocate(self, item: Increment) -> int | None:
        """``Store.allocate(item)``, committed together with every other one pending."""
        if not self.enabled:
            self.groups += 1
            self.items += 1
            if item.riders:
                return await self.store.allocate(
                    item.tenant,
                    item.key,
                    item.seq,
                    item.shape,
                    item.n,
                    create=item.create,
                    riders=item.riders,
                )
            return await self.store.allocate(
                item.tenant, item.key, item.seq, item.shape, item.n, create=item.create
            )
        future: asyncio.Future[int | None] = asyncio.get_running_loop().create_future()
        self._pending.append((item, future))
        if self._flush is None:
            # Started, not run: everything queued before the loop's next turn joins too.
            self._flush = asyncio.get_running_loop().create_task(self._run())
        return await future

    async def close(self) -> None:
        """Stop: the group at the store is cancelled and its requests answered 503
        (what it had applied, if anything, is a gap, never reissued); a store that no
        longer answers cannot hold up shutdown."""
        flush = self._flush
        if flush is not None:
            flush.cancel()
            await asyncio.gather(flush, return_exceptions=True)
        stopped = Unavailable("The server is shutting down; no number was issued.")
        for _, future in self._pending:
            if not future.done():
                future.set_exception(stopped)
        self._pending.clear()

    async def _run(self) -> None:
        try:
            while self._pending:
                group, self._pending = self._pending, []
                await self._commit(group)
        finally:
            # No await between the empty check and here: no arrival is stranded.
            self._flush = None

    async def _commit(self, group: list[tuple[Increment, asyncio.Future[int | None]]]) -> None:
        self.groups += 1
        self.items += len(group)
        started = time.perf_counter()
        try:
            results = await self.store.allocate_many([item for item, _ in group])
        except BaseException as exc:
            failure: BaseException = exc
            if not isinstance(exc, Exception):  # cancelled: still an answer for each
                failure = Unavailable("The server is shutting down; no number was issued.")
            for _, future in group:
                if not future.done():
                    future.set_exception(failure)
            if not isinstance(exc, Exception):
                raise
            return
        finally:
            self.seconds += time.perf_counter() - started
        for (_, future), result in zip(group, results, strict=True):
            if not future.done():  # a cancelled request leaves its slice unused (a gap)
                future.set_result(result)
