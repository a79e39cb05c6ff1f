"""Idempotency keys with the semantics of Stripe's API and the IETF draft
(draft-ietf-httpapi-idempotency-key-header).

A request with a key first *claims* it (one store write). The same key with the same
method, path and body then gets the stored response again, with
``Idempotent-Replayed: true``, and consumes nothing; with another path or body a 422;
while the first is still running a 409. Only successful (2xx) responses are stored: a
failed request consumed nothing (the allocator hands out no number from a failed
increment), so its key is released and a retry simply runs again.

A claim is *in flight* for ``LEASE_SECONDS``. A process killed mid-request leaves its
claim behind; after the lease, a retry takes it over. An allocation carrying the key
writes the numbers it took into the record in the increment's own transaction, so a
take-over after a crash answers those numbers instead of taking new ones.

Records are kept ``TALLY_IDEMPOTENCY_TTL_SECONDS`` (24 h by default); expired ones count
as absent, and are deleted by MongoDB's TTL index or by ``sweep_idempotency`` here.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from starlette.responses import Response

from core.clock import Clock, SystemClock
from idempotency.errors import IdempotencyKeyReused, RequestInFlight
from storage import IdempotencyRecord, Store

log = logging.getLogger("tally.idempotency")

LEASE_SECONDS = 60.0
SWEEP_SECONDS = 600.0
REPLAYED = "Idempotent-Replayed"


@dataclass(frozen=True, slots=True)
class Claim:
    """This request holds ``key``; ``allocation`` is what an earlier, interrupted attempt
    with the key already took (``{"first", "last", ...}``), if anything."""

    tenant: str
    key: str
    allocation: dict[str, Any] | None = None
    locked_until: datetime | None = None  # the lease this request holds


Run = Callable[[Claim], Awaitable[Response]]


class IdempotencyService:
    def __init__(
        self,
        store: Store,
        *,
        clock: Clock | None = None,
        ttl_seconds: int,
        renew_seconds: float = LEASE_SECONDS / 3,
    ) -> None:
        self.store = store
        self.clock = clock or SystemClock()
        self.ttl = timedelta(seconds=ttl_seconds)
        self.renew_seconds = renew_seconds
        self._next_sweep = 0.0
        self._tasks: set[asyncio.Task[None]] = set()

    async def guard(self, tenant: str, key: str, fingerprint: str, run: Run) -> Response:
        """Answer the request once: run it under a fresh claim, or replay what it got."""
        claim = await self.begin(tenant, key, fingerprint)
        if isinstance(claim, Response):
            return claim
        keeper = _Keeper(self, claim)
        try:
            response = await run(claim)
        except BaseException:
            keeper.stop()
            await self._release(claim, keeper.held)
            raise
        keeper.stop()
        if 200 <= response.status_code < 300:
            try:
                await self.store.complete_idempotency(
                    tenant,
                    key,
                    status=response.status_code,
                    body=bytes(response.body),
                    content_type=response.media_type or "application/json",
                )
            except BaseException:
                # Done, but its answer not stored: a retry must not wait out the lease,
                # and answers the numbers noted on the key, if it took any.
                await self._release(claim, keeper.held)
                raise
        else:
            await self._release(claim, keeper.held)
        return response

    async def begin(self, tenant: str, key: str, fingerprint: str) -> Claim | Response:
        """Claim ``key`` for this request, or the stored response to replay; 409/422 else."""
        now = self.clock.now()
        self._maybe_sweep()
        lease = self._lease(now)
        record = IdempotencyRecord(
            key=key,
            fingerprint=fingerprint,
            created_at=now,
            expires_at=now + self.ttl,
            locked_until=lease,
        )
        held = await self.store.claim_idempotency(tenant, record)
        if held is None:
            return Claim(tenant, key, locked_until=lease)
        if held.fingerprint != fingerprint:
            raise IdempotencyKeyReused()
        if held.completed:
            return replay(held)
        if held.locked_until > now:
            raise RequestInFlight()
        # The process that claimed it stopped before answering: take the claim over.
        if await self.store.relock_idempotency(
            tenant, key, expected=held.locked_until, locked_until=lease
        ):
            return Claim(tenant, key, held.allocation, lease)
        raise RequestInFlight()  # another retry took it over first

    @staticmethod
    def _lease(now: datetime) -> datetime:
        # Whole milliseconds: what MongoDB keeps of a date, so that a renewal's
        # compare-and-set finds the lease it wrote.
        lease = now + timedelta(seconds=LEASE_SECONDS)
        return lease.replace(microsecond=lease.microsecond // 1000 * 1000)

    async def _release(self, claim: Claim, lease: datetime | None) -> None:
        """Let the key go after a failed request: deleted if it took nothing, else (an
        allocation noted on it, then a failure) free to take over at once, so the retry
        answers those numbers. Best effort: if the store is down, the claim lapses after
        its lease anyway."""
        with contextlib.suppress(Exception):
            if lease is not None:
                await self.store.relock_idempotency(
                    claim.tenant, claim.key, expected=lease, locked_until=self.clock.now()
                )
            await self.store.release_idempotency(claim.tenant, claim.key)

    def _maybe_sweep(self) -> None:
        mono = self.clock.monotonic()
        if mono < self._next_sweep:
            return
        self._next_sweep = mono + SWEEP_SECONDS
        task = asyncio.get_running_loop().create_task(self._sweep())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _sweep(self) -> None:
        try:
            removed = await self.store.sweep_idempotency(self.clock.now())
        except Exception as exc:  # the next sweep tries again
            log.warning("idempotency sweep failed: %s", exc)
            return
        if removed:
            log.info("idempotency sweep removed %d expired key(s)", removed)

    async def close(self) -> None:
        """Wait for a running sweep (the store closes after this)."""
        await asyncio.gather(*self._tasks, return_exceptions=True)


class _Keeper:
    """Renews a claim's lease every ``renew_seconds`` while its request runs.

    Without it a request still running when its lease ran out (a store that answers
    slowly: TALLY_MONGO_TIMEOUT_MS allows two minutes a call) was taken over by a retry,
    and both took numbers. A process that died renews nothing, so its claim still lapses
    after ``LEASE_SECONDS``. Each renewal is a compare-and-set on the lease it holds: one
    that finds another lease (taken over while renewals failed) stops renewing.
    """

    def __init__(self, service: IdempotencyService, claim: Claim) -> None:
        self.service = service
        self.claim = claim
        self.held = claim.locked_until
        self.loop = asyncio.get_running_loop()
        self.task: asyncio.Task[None] | None = None
        self.timer: asyncio.TimerHandle | None = self.loop.call_later(
            service.renew_seconds, self._tick
        )

    def _tick(self) -> None:
        self.task = self.loop.create_task(self._renew())

    async def _renew(self) -> None:
        svc, claim = self.service, self.claim
        lease = svc._lease(svc.clock.now())
        try:
            assert self.held is not None
            renewed = await svc.store.relock_idempotency(
                claim.tenant, claim.key, expected=self.held, locked_until=lease
            )
        except Exception as exc:  # try again at the next tick, on the lease it holds
            log.warning("could not renew the claim on an Idempotency-Key: %s", exc)
            renewed = None
        if renewed is False:
            log.warning("a claim on an Idempotency-Key was taken over while its request ran")
            return
        if renewed:
            self.held = lease
        self.timer = self.loop.call_later(svc.renew_seconds, self._tick)

    def stop(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
        if self.task is not None:
            self.task.cancel()


def replay(record: IdempotencyRecord) -> Response:
    """The stored answer, marked as a replay."""
    return Response(
        content=record.body or b"",
        status_code=record.status or 200,
        media_type=record.content_type,
        headers={REPLAYED: "true"},
    )
