"""The allocation engine: coalesced strict increments and leased cached blocks.

``strict`` (coalescing on): per (tenant, counter key) at most one store increment is
in flight in this process. Requests that arrive meanwhile queue; the next flight takes
all of them with one increment of their total and hands each its own contiguous slice
in arrival order. Nothing is handed out before the increment is durable. If the
increment fails, every waiter of that flight gets the error (a non-domain error becomes
503) and none of them gets a number. If the combined total does not fit below ``max``
(or, for a cycling sequence, would wrap), the flight falls back to one increment per
waiter in arrival order, so every request gets exactly what it would have got alone:
the earlier ones that fit succeed, the others get 409 (or wrap, if cycling).

``cached``: each process leases blocks of numbers (one increment of the block size,
durable before any of it is served) and serves from memory. When the current block
falls below ``LOW_WATER`` of its size (or below the size of the request just served),
the next block is fetched in the background, so in steady state no request waits on
the store. The block size doubles when a block
lasted less than the target time and halves when it lasted more than twice that,
within ``[min_block, max_block]``. Numbers are unique across processes and restarts
because blocks are reservations in the durable counter; what a process had leased but
not served when it stopped (at most its current and its prefetched block) is a gap,
never a duplicate. A batch larger than what is left in the current block is one direct
increment, so it is still contiguous. Near ``max`` a block shrinks to what is left; once
the counter and the memory are empty the sequence is exhausted (409), or with ``cycle``
the next block starts again from ``start``.

Counter keys include the reset period, so periods never share a lane or a block.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, Protocol

from core.clock import Clock, SystemClock
from core.errors import TallyError, Unavailable
from sequences.errors import SequenceExhausted
from sequences.models import Sequence
from sequences.schemas import Mode
from storage import Rider

log = logging.getLogger("tally.allocator")

# Prefetch the next block when less than this fraction of the current one is left.
LOW_WATER = 0.2
# Near max, how often a block fetch tries again for what is left when other takes of
# the same counter keep getting there first.
_FETCH_ATTEMPTS = 32


class Incrementer(Protocol):
    """What the engine needs from the service: the store-level conditional increment."""

    async def increment(
        self,
        tenant: str,
        seq: Sequence,
        key: str,
        n: int,
        *,
        wrap: bool = True,
        riders: list[Rider] | None = None,
    ) -> tuple[int, int]:
        """Durably take ``n`` contiguous numbers; ``wrap=False`` never cycles (409 instead).

        ``riders`` (ledger entries, idempotency notes) are written in the same store
        operation as the increment.
        """
        ...

    async def remaining(self, tenant: str, seq: Sequence, key: str) -> int:
        """How many numbers the counter has left before ``max`` (no wrap)."""
        ...


@dataclass(frozen=True, slots=True)
class BlockPolicy:
    """Bounds and pace of cached-mode blocks."""

    min_block: int = 100
    max_block: int = 1_000_000
    target_seconds: float = 2.0

    def next_size(self, size: int, lasted: float) -> int:
        if lasted < self.target_seconds:
            return min(size * 2, self.max_block)
        if lasted > 2 * self.target_seconds:
            return max(size // 2, self.min_block)
        return size


@dataclass(slots=True)
class _Waiter:
    n: int
    seq: Sequence
    future: asyncio.Future[tuple[int, int]]
    rider: Rider | None = None


def _riders(batch: list[_Waiter]) -> list[Rider] | None:
    """One rider per waiter, in arrival order, if any of them carries something."""
    if all(w.rider is None for w in batch):
        return None
    return [w.rider or Rider(w.n) for w in batch]


@dataclass(slots=True)
class _Lane:
    queue: list[_Waiter] = field(default_factory=list)


@dataclass(slots=True)
class _Block:
    next: int
    step: int
    left: int
    size: int


@dataclass(slots=True)
class _Lease:
    size: int
    started: float
    current: _Block | None = None
    spare: _Block | None = None
    fetch: asyncio.Task[None] | None = None


def _settle(waiter: _Waiter, result: tuple[int, int]) -> None:
    if not waiter.future.done():  # a cancelled request leaves its slice unused (a gap)
        waiter.future.set_result(result)


def _fail(waiter: _Waiter, exc: BaseException) -> None:
    if waiter.future.done():
        return
    if isinstance(exc, TallyError):
        waiter.future.set_exception(exc)
        return
    err = Unavailable("The store increment failed; no number was issued. Try again.")
    err.__cause__ = exc
    waiter.future.set_exception(err)


class Allocator:
    """Routes each allocation through coalescing (strict) or a leased block (cached)."""

    def __init__(
        self,
        backend: Incrementer,
        *,
        coalesce: bool = True,
        policy: BlockPolicy | None = None,
        clock: Clock | None = None,
    ) -> None:
        self.backend = backend
        self.coalesce = coalesce
        self.policy = policy or BlockPolicy()
        self.clock = clock or SystemClock()
        self._lanes: dict[tuple[str, str], _Lane] = {}
        self._leases: dict[tuple[str, str], _Lease] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._closed = False
        # Store increments issued by the engine and the seconds they took (metrics, tests).
        self.increments = 0
        self.increment_seconds = 0.0

    async def allocate(
        self, tenant: str, seq: Sequence, key: str, n: int, *, rider: Rider | None = None
    ) -> tuple[int, int]:
        """``n`` contiguous numbers as ``(first, last)``.

        A ``rider`` (strict mode only) is written in the increment's own store operation,
        also when the increment is coalesced with others.
        """
        if self._closed:
            raise Unavailable("The server is shutting down; try again.")
        if seq.mode is Mode.cached:
            return await self._from_lease(tenant, seq, key, n)
        if not self.coalesce:
            riders = None if rider is None else [rider]
            return await self._increment(tenant, seq, key, n, riders=riders)
        lane = self._lanes.get((tenant, key))
        if lane is None:
            return await self._lead(tenant, seq, key, n, rider)
        future: asyncio.Future[tuple[int, int]] = asyncio.get_running_loop().create_future()
        lane.queue.append(_Waiter(n, seq, future, rider))
        return await future

    def forget(self, tenant: str, name: str) -> None:
        """Drop leased blocks of a sequence (its definition changed or it was deleted)."""
        for k in [k for k in self._leases if k[0] == tenant and k[1].split("/")[0] == name]:
            del self._leases[k]

    def lease_count(self) -> int:
        return len(self._leases)

    def block_size(self, tenant: str, key: str) -> int | None:
        lease = self._leases.get((tenant, key))
        return lease.size if lease else None

    async def close(self) -> None:
        """Stop: cancel background work and answer every waiter, then drop the lanes.

        A waiter whose flight was cut short gets 503 (its numbers, if the store applied
        the increment, are a gap, never reissued). A drain task cancelled before it ever
        ran cannot answer its waiters itself, so they are answered here; every request
        after this gets 503 at once.
        """
        self._closed = True
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        stopped = Unavailable("The server is shutting down; no number was issued. Try again.")
        for lane in self._lanes.values():
            for waiter in lane.queue:
                _fail(waiter, stopped)
            lane.queue.clear()
        self._lanes.clear()
        self._leases.clear()

    # -- plumbing --------------------------------------------------------------------
    def _spawn(self, coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _increment(
        self,
        tenant: str,
        seq: Sequence,
        key: str,
        n: int,
        *,
        wrap: bool = True,
        riders: list[Rider] | None = None,
    ) -> tuple[int, int]:
        self.increments += 1
        started = time.perf_counter()
        try:
            if riders is None:  # the hot path (and test doubles without riders)
                return await self.backend.increment(tenant, seq, key, n, wrap=wrap)
            return await self.backend.increment(tenant, seq, key, n, wrap=wrap, riders=riders)
        finally:
            self.increment_seconds += time.perf_counter() - started

    # -- strict: coalescing ---------------------------------------------------------------
    async def _lead(
        self, tenant: str, seq: Sequence, key: str, n: int, rider: Rider | None
    ) -> tuple[int, int]:
        """No request of this counter is queued or in flight: this one opens its lane.

        The requests of the counter that arrive in this loop turn join it; then, if it
        is still alone (under a load spread over many counters, nearly always), it
        flies its own increment on its own task: no drain task to create, run and
        finish, and no hand-over of its answer from that task (~2 µs a request,
        docs/performance.md, 2026-12-04). Otherwise, and for whatever arrives while
        it flies, a drain task takes the lane as before, so a request that is
        cancelled never fails another's flight.
        """
        lane = self._lanes[(tenant, key)] = _Lane()
        future: asyncio.Future[tuple[int, int]] = asyncio.get_running_loop().create_future()
        me = _Waiter(n, seq, future, rider)
        lane.queue.append(me)
        try:
            await asyncio.sleep(0)
        except BaseException:
            future.cancel()
            if lane.queue and lane.queue[0] is me:
                del lane.queue[0]
            self._hand_off(tenant, key, lane)
            raise
        if future.done():  # close() answered it meanwhile
            return future.result()
        if len(lane.queue) > 1:
            self._spawn(self._drain(tenant, key, lane))
            return await future
        lane.queue.clear()
        try:
            return await self._increment(
                tenant, seq, key, n, riders=None if rider is None else [rider]
            )
        except TallyError:
            raise
        except Exception as exc:
            raise Unavailable(
                "The store increment failed; no number was issued. Try again."
            ) from exc
        finally:
            self._hand_off(tenant, key, lane)

    def _hand_off(self, tenant: str, key: str, lane: _Lane) -> None:
        """A leader is done: a drain task takes what queued meanwhile, or the lane goes.

        No await between the caller's last one and here, so no arrival is stranded.
        """
        if self._lanes.get((tenant, key)) is not lane:
            return  # close() dropped it and answered its waiters
        if lane.queue:
            self._spawn(self._drain(tenant, key, lane))
        else:
            del self._lanes[(tenant, key)]

    async def _drain(self, tenant: str, key: str, lane: _Lane) -> None:
        batch: list[_Waiter] = []
        try:
            while lane.queue:
                batch, lane.queue = lane.queue, []
                await self._flight(tenant, key, batch)
        except BaseException as exc:  # cancelled at shutdown: nobody may hang
            for waiter in [*batch, *lane.queue]:
                _fail(waiter, exc)
            raise
        finally:
            # No await between the empty-queue check and here, so no arrival is lost.
            if self._lanes.get((tenant, key)) is lane:
                del self._lanes[(tenant, key)]

    async def _flight(self, tenant: str, key: str, batch: list[_Waiter]) -> None:
        seq = batch[-1].seq  # the freshest definition any waiter brought
        if len(batch) == 1:
            await self._alone(tenant, key, batch[0])
            return
        total = sum(w.n for w in batch)
        try:
            first, last = await self._increment(
                tenant, seq, key, total, wrap=False, riders=_riders(batch)
            )
        except SequenceExhausted:
            # The total does not fit (or would wrap): serve each as if it came alone.
            for waiter in batch:
                await self._alone(tenant, key, waiter)
            return
        except BaseException as exc:
            for waiter in batch:
                _fail(waiter, exc)
            if not isinstance(exc, Exception):
                raise
            return
        step = (last - first) // (total - 1)  # total >= 2 here
        at = first
        for waiter in batch:
            end = at + (waiter.n - 1) * step
            _settle(waiter, (at, end))
            at = end + step

    async def _alone(self, tenant: str, key: str, waiter: _Waiter) -> None:
        try:
            result = await self._increment(
                tenant, waiter.seq, key, waiter.n, riders=_riders([waiter])
            )
        except BaseException as exc:
            _fail(waiter, exc)
            if not isinstance(exc, Exception):
                raise
            return
        _settle(waiter, result)

    # -- cached: leased blocks -----------------------------------------------------------
    def _lease(self, tenant: str, seq: Sequence, key: str) -> _Lease:
        lease = self._leases.get((tenant, key))
        if lease is None:
            # A new period (or a first use): older periods' leases of this sequence are done.
            self.forget(tenant, seq.name)
            lease = _Lease(size=self.policy.min_block, started=self.clock.monotonic())
            self._leases[(tenant, key)] = lease
        return lease

    async def _from_lease(self, tenant: str, seq: Sequence, key: str, n: int) -> tuple[int, int]:
        lease = self._lease(tenant, seq, key)
        while True:
            block = lease.current
            if block is not None and block.left >= n:
                first = block.next
                block.next += n * block.step
                block.left -= n
                # Low water, or too little left for another request like this one.
                low = block.left < max(block.size * LOW_WATER, n)
                if low and lease.spare is None:
                    self._prefetch(tenant, seq, key, lease)
                return first, first + (n - 1) * block.step
            if block is not None and block.left > 0:
                # A batch bigger than what is left: one direct increment keeps it contiguous.
                return await self._increment(tenant, seq, key, n)
            if lease.spare is not None:
                if block is not None:
                    lasted = self.clock.monotonic() - lease.started
                    lease.size = self.policy.next_size(lease.size, lasted)
                lease.current, lease.spare = lease.spare, None
                lease.started = self.clock.monotonic()
                continue
            fetch = self._prefetch(tenant, seq, key, lease)
            try:
                # shield: a cancelled request must not cancel the fetch others wait for.
                await asyncio.shield(fetch)
            except asyncio.CancelledError:
                current = asyncio.current_task()
                if not fetch.cancelled() or (current is not None and current.cancelling()):
                    raise  # this request itself was cancelled
                # The fetch was cancelled under us (close()): an answer, not a hang.
                raise Unavailable("The server is shutting down; try again.") from None
            except Exception as exc:
                if isinstance(exc, TallyError):
                    raise
                raise Unavailable("Could not lease a block of numbers; try again.") from exc
            if self._leases.get((tenant, key)) is not lease:
                lease = self._lease(tenant, seq, key)

    def _prefetch(self, tenant: str, seq: Sequence, key: str, lease: _Lease) -> asyncio.Task[None]:
        # A finished fetch stays in ``lease.fetch`` until its done callback runs, one loop
        # turn later. Requests in that window must start a new fetch: handing them the
        # finished one makes ``_from_lease`` await a done task, which never yields, so it
        # would spin forever with the event loop blocked.
        if lease.fetch is None or lease.fetch.done():
            lease.fetch = self._spawn(self._fetch(tenant, seq, key, lease))
            lease.fetch.add_done_callback(_clear_fetch(lease))
        return lease.fetch

    async def _fetch(self, tenant: str, seq: Sequence, key: str, lease: _Lease) -> None:
        size = lease.size
        for _ in range(_FETCH_ATTEMPTS):
            try:
                first, last = await self._increment(tenant, seq, key, size, wrap=False)
                break
            except SequenceExhausted:
                left = await self.backend.remaining(tenant, seq, key)
                if left > 0:
                    # Near max, a smaller block: what is left, unless another take (a
                    # batch, another process) gets there first; then what is left then.
                    size = min(size, left)
                    continue
                if not seq.cycle:
                    raise
                size = min(size, seq.fresh_counter().cap)
                first, last = await self._increment(tenant, seq, key, size, wrap=True)
                break
        else:
            raise Unavailable("The counter is under heavy contention; try again.")
        step = seq.step if size == 1 else (last - first) // (size - 1)
        lease.spare = _Block(next=first, step=step, left=size, size=size)


def _clear_fetch(lease: _Lease) -> Callable[[asyncio.Task[None]], None]:
    def done(task: asyncio.Task[None]) -> None:
        if lease.fetch is task:
            lease.fetch = None
        if not task.cancelled() and task.exception() is not None:
            # Waiters (if any) got it through the shield; a background prefetch only logs.
            log.warning("cached block fetch failed: %s", task.exception())

    return done
