"""Sequence logic: definitions, peeking and allocating numbers.

Every public method takes the tenant first; the API passes the tenant from the
verified token, never from the request.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import dataclasses
import json
import logging
import random
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from pydantic import ValidationError

from audit.service import SYSTEM, Actor, AuditLog
from core.clock import Clock, SystemClock
from core.errors import Unavailable, Unprocessable
from core.singleflight import SingleFlight
from sequences.allocator import Allocator, BlockPolicy
from sequences.errors import (
    CounterMoved,
    InvalidSequence,
    LedgerKept,
    NotALedger,
    SequenceExhausted,
    SequenceExists,
    SequenceNotFound,
)
from sequences.group import GroupCommit
from sequences.models import Allocation, Sequence, capacity
from sequences.periods import Reset, counter_key, local_time, period_of
from sequences.schemas import (
    FORMATTED_RANGE_LIMIT,
    LEDGER_MAX_BATCH,
    Mode,
    NextOut,
    SequenceCreate,
    SequenceHeadroom,
    SequenceOut,
    SequencePatch,
)
from storage import (
    COMMITTED,
    RESERVED,
    AlreadyExists,
    Counter,
    Increment,
    LedgerDraft,
    Rider,
    SequenceRecord,
    Store,
)
from usage.recorder import UsageRecorder

log = logging.getLogger("tally.sequences")

DEFAULT_SEQUENCE = "default"
_MAX_ATTEMPTS = 32
_SCAN_PAGE = 500  # sequences per store read when a tenant's are all scanned


async def _backoff(attempt: int) -> None:
    """Jittered exponential pause between compare-and-set retries (up to 50 ms).

    Administrative moves (PATCH, advance) compare-and-set the whole counter; under a
    steady stream of allocations the counter changes every few milliseconds, so retrying
    at once would keep losing the race.
    """
    if attempt:
        cap = min(0.05, 0.001 * 2**attempt)
        await asyncio.sleep(random.uniform(cap / 2, cap))  # noqa: S311 - jitter, not crypto


# How long a process trusts its cached copy of a definition changed by *another*
# process (changes made through this process invalidate at once).
DEFINITION_TTL_SECONDS = 5.0
# An expired definition is read again together with the tenant's other cached ones that
# would expire within half a TTL, so a tenant's definitions come to be refreshed
# together: a load over many of them reads each tenant once a TTL, not each of its
# sequences. At most this many in one read: parsing a record costs the event loop
# ~20 µs, so a read of 32 holds it ~0.6 ms.
REFRESH_BATCH = 32

UTC_ZONE = ZoneInfo("UTC")
TimezoneLookup = Callable[[str], Awaitable[ZoneInfo]]


async def _utc(_tenant: str) -> ZoneInfo:
    return UTC_ZONE


@dataclass(frozen=True, slots=True)
class Hold:
    """A reservation to take: its (unguessable) id and when it lapses."""

    id: str
    expires_at: datetime


def _unformatted(_value: int) -> str | None:
    return None


def _version(seq: Sequence) -> tuple[int, datetime, str]:
    return (seq.revision, seq.created_at, seq.incarnation)


class SequenceService:
    def __init__(
        self,
        store: Store,
        *,
        clock: Clock | None = None,
        timezone_of: TimezoneLookup = _utc,
        max_batch: int = 100_000,
        coalesce: bool = True,
        group_commit: bool = True,
        block_policy: BlockPolicy | None = None,
        audit: AuditLog | None = None,
        usage: UsageRecorder | None = None,
    ) -> None:
        self.store = store
        self.usage = usage
        self.clock = clock or SystemClock()
        self.audit = audit or AuditLog(store, clock=self.clock)
        self.timezone_of = timezone_of
        self.max_batch = max_batch
        self._definitions: dict[tuple[str, str], tuple[float, Sequence]] = {}
        self._names: dict[str, set[str]] = {}  # each tenant's names in _definitions
        self._reads = SingleFlight()
        self._shapes: dict[tuple[str, str], Counter] = {}
        self.group = GroupCommit(store, enabled=group_commit)
        self.atomic_riders: bool = getattr(store, "atomic_riders", False)
        self.allocator = Allocator(self, coalesce=coalesce, policy=block_policy, clock=self.clock)

    # -- definitions -----------------------------------------------------------------
    async def create(self, tenant: str, spec: SequenceCreate, *, actor: Actor = SYSTEM) -> Sequence:
        """Create a sequence; 409 if the name is taken, 422 for a ledger the store cannot keep."""
        if spec.ledger and not self.atomic_riders:
            raise InvalidSequence(
                f"ledger: the {self.store.kind} store cannot write ledger entries atomically"
                " with the increment, so it keeps no ledger sequences. Run Tally on SQLite"
                " or MongoDB (TALLY_STORE_URL) for ledger sequences."
            )
        now = self.clock.now()
        config: dict[str, Any] = spec.model_dump(mode="json", exclude={"name"})
        record = SequenceRecord(
            name=spec.name,
            config=config,
            created_at=now,
            updated_at=now,
            incarnation=uuid.uuid4().hex,
        )
        try:
            await self.store.create_sequence(tenant, record)
        except AlreadyExists:
            raise SequenceExists(spec.name) from None
        seq = Sequence.from_record(record)
        self._remember(tenant, seq)
        await self.audit.record(
            tenant, actor, "sequence.created", _target(spec.name), before=None, after=config
        )
        return seq

    async def get(self, tenant: str, name: str, *, fresh: bool = False) -> Sequence:
        """The definition; 404 if unknown (for this tenant)."""
        if fresh:
            return await self._read(tenant, name)
        cached = self._definitions.get((tenant, name))
        if cached and cached[0] > self.clock.monotonic():
            return cached[1]
        # An expired definition under load: one store read for all who want it, and
        # they go on in the order they asked (a counter's arrival order).
        return await self._reads.do((tenant, name), lambda: self._refresh(tenant, name))

    async def _refresh(self, tenant: str, name: str) -> Sequence:
        """``_read``, with the tenant's cached definitions that are due soon in the same
        store read (docs/performance.md, 2026-12-04)."""
        soon = self.clock.monotonic() + DEFINITION_TTL_SECONDS / 2
        held: dict[str, Sequence] = {}  # the other names due soon: what the cache held
        for other in self._names.get(tenant, ()):
            if len(held) == REFRESH_BATCH - 1:
                break
            expires, seq = self._definitions[(tenant, other)]
            if other != name and expires <= soon:
                held[other] = seq
        if not held:
            return await self._read(tenant, name)
        records = await self.store.get_sequences(tenant, [name, *held])
        for other, before in held.items():
            known = self._definitions.get((tenant, other))
            if known is None or known[1] is not before:
                continue  # changed or deleted here while the read was under way
            record = records.get(other)
            if record is None:
                self._forget(tenant, other)  # deleted (perhaps by another process)
            else:
                self._remember(tenant, Sequence.from_record(record))
        return self._cache(tenant, name, records.get(name))

    async def _read(self, tenant: str, name: str) -> Sequence:
        return self._cache(tenant, name, await self.store.get_sequence(tenant, name))

    def _cache(self, tenant: str, name: str, record: SequenceRecord | None) -> Sequence:
        """The definition just read for ``name``, remembered; 404 (and forgotten) if none."""
        if record is None:
            self._forget(tenant, name)
            raise SequenceNotFound(name)
        seq = Sequence.from_record(record)
        self._remember(tenant, seq)
        return seq

    async def list(self, tenant: str, *, after: str | None, limit: int) -> list[Sequence]:
        records = await self.store.list_sequences(tenant, after=after, limit=limit)
        return [Sequence.from_record(r) for r in records]

    async def delete(self, tenant: str, name: str, *, actor: Actor = SYSTEM) -> None:
        """Delete a sequence and its counters; 404 if unknown, 409 if it keeps a ledger."""
        for _ in range(_MAX_ATTEMPTS):
            record = await self.store.get_sequence(tenant, name)
            if record is not None and record.config.get("ledger"):
                raise LedgerKept(name)
            if record is None:
                self._forget(tenant, name)
                raise SequenceNotFound(name)
            # Only the incarnation checked above: the name may have been deleted and
            # created again since (perhaps as a ledger sequence, which is kept).
            if await self.store.delete_sequence(tenant, name, incarnation=record.incarnation):
                break
        else:
            raise Unavailable("The sequence is being changed concurrently; try again.")
        self._forget(tenant, name)
        await self.audit.record(
            tenant, actor, "sequence.deleted", _target(name), before=record.config, after=None
        )

    def _remember(self, tenant: str, seq: Sequence) -> None:
        known = self._definitions.get((tenant, seq.name))
        if known is not None and _version(known[1]) != _version(seq):
            # Changed here or by another process: leased blocks follow the old settings.
            self.allocator.forget(tenant, seq.name)
        expires = self.clock.monotonic() + DEFINITION_TTL_SECONDS
        self._definitions[(tenant, seq.name)] = (expires, seq)
        if known is None:
            self._names.setdefault(tenant, set()).add(seq.name)

    def _forget(self, tenant: str, name: str) -> None:
        if self._definitions.pop((tenant, name), None) is not None:
            names = self._names[tenant]
            names.discard(name)
            if not names:
                del self._names[tenant]
        for key in [k for k in self._shapes if k[0] == tenant and k[1].split("/")[0] == name]:
            del self._shapes[key]
        self.allocator.forget(tenant, name)

    # -- reading -----------------------------------------------------------------------
    async def describe(self, tenant: str, name: str) -> SequenceOut:
        """Settings plus last issued and the next value, without consuming one."""
        seq = await self.get(tenant, name, fresh=True)
        return (await self.describe_many(tenant, [seq]))[0]

    async def describe_many(
        self, tenant: str, seqs: builtins.list[Sequence]
    ) -> builtins.list[SequenceOut]:
        """``describe`` for definitions just read, with one store read for all counters."""
        local = local_time(self.clock.now(), await self.timezone_of(tenant))
        periods = [period_of(seq.reset, local) for seq in seqs]
        keys = [counter_key(seq.name, period) for seq, period in zip(seqs, periods, strict=True)]
        counters = await self.store.read_counters(tenant, keys) if seqs else {}
        out: builtins.list[SequenceOut] = []
        for seq, period, key in zip(seqs, periods, keys, strict=True):
            counter = seq.owns(counters.get(key))
            last: int | None = None
            nxt: int | None = seq.start
            if counter is not None:
                last = counter.value_at(counter.ticks - 1) if counter.ticks else None
                if counter.ticks < counter.cap:
                    nxt = counter.value_at(counter.ticks)
                else:
                    nxt = seq.start if seq.cycle else None
            out.append(to_out(seq, period=period, last=last, nxt=nxt, at=local))
        return out

    async def inventory(
        self, tenant: str, *, within: float = 0.10
    ) -> tuple[int, builtins.list[SequenceHeadroom]]:
        """How many sequences ``tenant`` has, and those with a ``max`` whose current
        period has at most ``within`` of its numbers left (for the admin overview).

        Cached-mode counters count leased blocks as used: the headroom is what no
        process can issue any more, the conservative side.
        """
        local = local_time(self.clock.now(), await self.timezone_of(tenant))
        count, near, after = 0, [], None
        while True:
            seqs = await self.list(tenant, after=after, limit=_SCAN_PAGE)
            count += len(seqs)
            bounded = [seq for seq in seqs if seq.max is not None]
            periods = [period_of(seq.reset, local) for seq in bounded]
            keys = [counter_key(s.name, p) for s, p in zip(bounded, periods, strict=True)]
            counters = await self.store.read_counters(tenant, keys) if keys else {}
            for seq, period, key in zip(bounded, periods, keys, strict=True):
                counter = counters.get(key) or seq.fresh_counter()
                if counter.remaining <= counter.cap * within:
                    near.append(headroom_of(seq, period, counter))
            if len(seqs) < _SCAN_PAGE:
                return count, near
            after = seqs[-1].name

    # -- allocating --------------------------------------------------------------------
    async def next(
        self,
        tenant: str,
        name: str,
        count: int = 1,
        *,
        actor: Actor = SYSTEM,
        reference: str | None = None,
        hold: Hold | None = None,
        idempotency_key: str | None = None,
    ) -> Allocation:
        """Allocate ``count`` contiguous numbers, persisted before this returns.

        On a ledger sequence each number gets its entry in the same store write:
        committed (with ``reference``), or reserved until ``hold.expires_at``. An
        ``idempotency_key`` (already claimed) records the numbers in that write too.
        """
        seq = await self.get(tenant, name)
        at = self.clock.now()
        if seq.reset is Reset.never and seq.template is None and not seq.ledger:
            # Nothing reads the tenant's local time (no period, format or entry): skip
            # its zone lookup and conversion on the hot path; the instant is the same.
            local, period = at, ""
        else:
            local = local_time(at, await self.timezone_of(tenant))
            period = period_of(seq.reset, local)
        rider: Rider | None = None
        if seq.ledger:
            if count > LEDGER_MAX_BATCH:
                raise Unprocessable(
                    f"count must be at most {LEDGER_MAX_BATCH} on a ledger sequence."
                )
            template = seq.template
            draft = LedgerDraft(
                sequence=name,
                period=period,
                state=RESERVED if hold else COMMITTED,
                actor=actor.subject,
                issued_at=at,
                render=(lambda v: template.render(v, local)) if template else _unformatted,
                reference=reference,
                expires_at=hold.expires_at if hold else None,
                reservation=hold.id if hold else None,
            )
            rider = Rider(count, draft)
        elif reference is not None or hold is not None:
            raise NotALedger(name)
        if idempotency_key is not None and seq.mode is Mode.strict and self.atomic_riders:
            note = {"period": period, "at": local.isoformat(), "count": count}
            if hold is not None:
                note["reservation"] = hold.id
            draft_of = rider.ledger if rider else None
            rider = Rider(count, draft_of, idempotency_key, note)
        first, last = await self.allocate(
            tenant, seq, counter_key(name, period), count, rider=rider
        )
        if self.usage is not None:
            self.usage.record(tenant, name, count, at, seq.mode)
        return Allocation(first=first, last=last, count=count, period=period, at=local)

    async def next_default(self, tenant: str) -> Allocation:
        """The seed service's counter: the tenant's ``default`` sequence, made on first use."""
        try:
            return await self.next(tenant, DEFAULT_SEQUENCE)
        except SequenceNotFound:
            # Another request may create it first; either way it exists now.
            with contextlib.suppress(SequenceExists):
                await self.create(tenant, SequenceCreate(name=DEFAULT_SEQUENCE))
            return await self.next(tenant, DEFAULT_SEQUENCE)

    async def allocate(
        self, tenant: str, seq: Sequence, key: str, n: int, *, rider: Rider | None = None
    ) -> tuple[int, int]:
        """``n`` contiguous numbers: coalesced (strict) or from a leased block (cached)."""
        return await self.allocator.allocate(tenant, seq, key, n, rider=rider)

    async def remaining(self, tenant: str, seq: Sequence, key: str) -> int:
        """How many numbers the counter has left before ``max`` (without cycling)."""
        current = seq.owns(await self.store.read_counter(tenant, key))
        return seq.fresh_counter().cap if current is None else current.remaining

    async def increment(
        self,
        tenant: str,
        seq: Sequence,
        key: str,
        n: int,
        *,
        wrap: bool = True,
        riders: builtins.list[Rider] | None = None,
    ) -> tuple[int, int]:
        """One conditional increment of the counter by ``n``; re-read and retry on a miss.

        ``wrap=False`` raises ``SequenceExhausted`` instead of cycling (the allocator's
        coalesced batches use it to fall back to one request at a time).
        """
        # Only a definition read from the store in this call may found a counter (or
        # wrap one): a cached definition may be up to DEFINITION_TTL_SECONDS old, and a
        # counter made from it would keep its outdated start/step/max for good.
        cached = seq.owns(self._shapes.get((tenant, key)))
        shape = cached or seq.fresh_counter()
        verified = False
        for attempt in range(_MAX_ATTEMPTS):
            if attempt > 4:
                await asyncio.sleep(0.001 * attempt)  # heavy contention: back off a little
            item = Increment(
                tenant, key, seq.name, shape, n, create=verified, riders=tuple(riders or ())
            )
            ticks = await self.group.allocate(item)
            if ticks is not None:
                self._shapes[(tenant, key)] = shape
                first = shape.value_at(ticks - n)
                return first, first + (n - 1) * shape.step
            current = await self.store.read_counter(tenant, key)
            if current is None:
                seq = await self.get(tenant, seq.name, fresh=True)  # 404 if it was deleted
                verified = True
                shape = seq.fresh_counter()
                if n > shape.cap:  # even a fresh counter cannot hold this batch
                    raise SequenceExhausted(
                        f"Sequence '{seq.name}' holds {shape.cap} number(s); {n} requested."
                    )
                continue
            if current.incarnation != shape.incarnation:
                # Either our definition is stale (the name was deleted and created again)
                # or the counter is a leftover of an incarnation that no longer exists.
                seq = await self.get(tenant, seq.name, fresh=True)  # 404 if it was deleted
                verified = True
                if seq.owns(current) is not None:
                    shape = current.bare()
                    continue
                shape = seq.fresh_counter()
                if n > shape.cap:
                    raise SequenceExhausted(
                        f"Sequence '{seq.name}' holds {shape.cap} number(s); {n} requested."
                    )
                # Never used, only replaced (the store refuses if seq was deleted again).
                await self.store.replace_counter(tenant, key, seq.name, current, shape)
                continue
            if current.shape != shape.shape:
                if not _fits(seq, current):
                    # The counter disagrees with the definition we hold: ours is stale
                    # (another process changed it), or a PATCH is between its counter
                    # and its definition write (or failed there and could not undo).
                    # Only a counter that fits the stored definition is ever used.
                    seq = await self.get(tenant, seq.name, fresh=True)
                    verified = True
                    if not _fits(seq, current):
                        await _backoff(min(attempt + 1, 6))
                        continue
                shape = current.bare()
                continue
            if current.remaining >= n:
                # Same shape and room: it changed between our two reads (e.g. another
                # request created it after our create=False miss). Just try again.
                continue
            # Same shape, too few numbers left.
            if wrap and seq.cycle:
                seq = await self.get(tenant, seq.name, fresh=True)
                wrapped = seq.fresh_counter()
                if seq.cycle and n <= wrapped.cap:
                    # Wrap to start; a batch that does not fit the tail skips it.
                    await self.store.replace_counter(tenant, key, seq.name, current, wrapped)
                    shape = wrapped
                    continue
            raise SequenceExhausted(
                f"Sequence '{seq.name}' has {current.remaining} number(s) left below its"
                f" maximum; {n} requested."
            )
        raise Unavailable("The counter is under heavy contention; try again.")

    # -- administration ----------------------------------------------------------------
    async def update(
        self, tenant: str, name: str, patch: SequencePatch, *, actor: Actor = SYSTEM
    ) -> SequenceOut:
        """Change settings (validated like a creation); a new step or max rebases the counter.

        The current period's counter is rebased first, with a compare-and-set that
        refuses a ``max`` below the last number issued, then the definition is
        written at its revision. Nothing allocates from the rebased counter before
        the definition agrees with it (``increment`` only uses a counter that fits
        the stored definition), and if the definition write fails or loses the
        revision race, the rebase is undone, so the two change together or not at
        all. After a lost race the patch is applied again on top of the winner.
        """
        changes = patch.model_dump(mode="json", exclude_unset=True)
        for _ in range(_MAX_ATTEMPTS):
            record = await self.store.get_sequence(tenant, name)
            if record is None:
                self._forget(tenant, name)
                raise SequenceNotFound(name)
            try:
                spec = SequenceCreate.model_validate({**record.config, **changes, "name": name})
            except ValidationError as exc:
                raise _invalid(exc) from None
            config: dict[str, Any] = spec.model_dump(mode="json", exclude={"name"})
            if config == record.config:
                return await self.describe(tenant, name)
            old = Sequence.from_record(record)
            if old.ledger:
                _refuse_renumbering(old, config)
            updated = dataclasses.replace(
                record, config=config, updated_at=self.clock.now(), revision=record.revision + 1
            )
            seq = Sequence.from_record(updated)
            rebased = None
            if (seq.step, seq.upper) != (old.step, old.upper):
                rebased = await self._rebase(tenant, seq)
            try:
                written = await self.store.update_sequence(
                    tenant, updated, expected_revision=record.revision
                )
            except BaseException:
                await self._undo(tenant, old, rebased)
                raise
            if not written:  # another change won the revision: undo, apply on top of it
                await self._undo(tenant, old, rebased)
                continue
            self._forget(tenant, name)
            self._remember(tenant, seq)
            if (seq.step, seq.upper) != (old.step, old.upper):
                await self._follow_period(tenant, seq)
            await self.audit.record(
                tenant, actor, "sequence.updated", _target(name), before=record.config, after=config
            )
            return await self.describe(tenant, name)
        raise Unavailable("The sequence is being changed concurrently; try again.")

    async def _rebase(self, tenant: str, seq: Sequence) -> _Rebased | None:
        """Give the current period's counter ``seq``'s step and max, never going back.

        A counter that has issued numbers restarts at its last issued number as its
        tick 0 (already consumed), so the next number is ``last + step`` with the new
        step, as PostgreSQL's ALTER SEQUENCE does, and nothing issued is reissued.
        Returns what it replaced (for ``_undo``), or None if the counter already fit.
        """
        _period, key = await self._current_key(tenant, seq)
        for attempt in range(_MAX_ATTEMPTS):
            await _backoff(attempt)
            current = await self.store.read_counter(tenant, key)
            mine = seq.owns(current)  # a leftover of an earlier incarnation is replaced
            if mine is None:
                # Pin the new shape now, so no process with the old definition cached
                # starts this period's counter with the old step or max.
                new = seq.fresh_counter()
            else:
                last = mine.value_at(mine.ticks - 1) if mine.ticks else None
                if last is not None and last > seq.upper:
                    raise CounterMoved(
                        f"max {seq.upper} is below {last}, the last number issued"
                        f" by sequence '{seq.name}'."
                    )
                base, ticks = (last, 1) if last is not None else (mine.base, 0)
                cap = capacity(base, seq.step, seq.upper)
                new = Counter(base, seq.step, cap, ticks, seq.incarnation)
                if new == mine:
                    return None
            if await self.store.replace_counter(tenant, key, seq.name, current, new):
                return _Rebased(key, current, new)
        raise Unavailable("The counter is under heavy contention; try again.")

    async def _follow_period(self, tenant: str, seq: Sequence) -> None:
        """Rebase the current period's counter again, after the definition write.

        A reset period that began while the PATCH was between its rebase and its
        definition write may have had its counter founded from the old definition (the
        stored one then). Rebased now, it follows the new step and max. (One that
        issued past the new max within that window cannot be rebased: that is logged,
        and requests that hold the new definition refuse it, 503, until the next
        period.)
        """
        try:
            await self._rebase(tenant, seq)
        except (CounterMoved, Unavailable) as exc:
            log.warning("could not rebase the new period of %s/%s: %s", tenant, seq.name, exc)

    async def _undo(self, tenant: str, old: Sequence, rebased: _Rebased | None) -> None:
        """Align the counter ``_rebase`` replaced with the definition now stored, this
        PATCH's own having not been written (an error, or a lost revision race).

        Usually the stored one is still ``old``'s numbering, and the counter is put back
        as it was: nothing can have allocated from the rebased counter meanwhile (it
        does not fit the stored definition), so the compare-and-set finds it as it was
        left. But the race may have been lost to the same change (a client retrying a
        PATCH, two admins): that one found the counter already rebased, so it rebased
        nothing, and its definition counts on this counter. Then the counter stays.
        If the undo fails too (the store is down), allocations keep refusing that
        counter (503) until the PATCH is retried; they never issue from it.
        """
        if rebased is None:
            return
        try:
            record = await self.store.get_sequence(tenant, old.name)
            if record is None:
                return  # deleted since: its counters went with it
            stored = Sequence.from_record(record)
            if stored.incarnation == old.incarnation and _fits(stored, rebased.after):
                return  # what the stored definition says: another PATCH's, the same change
            before = old.owns(rebased.before) or old.fresh_counter()  # none yet: a fresh one
            await self.store.replace_counter(tenant, rebased.key, old.name, rebased.after, before)
        except Exception:  # the caller's own error is the one to report
            log.warning("could not undo the rebase of %s/%s", tenant, rebased.key, exc_info=True)

    async def advance(
        self, tenant: str, name: str, to: int, *, actor: Actor = SYSTEM
    ) -> SequenceOut:
        """Move the current period's counter forward so that the next number is ``to``.

        ``to`` must be at least the number peek shows as ``next`` (so above every
        number already issued); equal is a no-op. Backwards is a 409, outside
        ``min``..``max`` a 422.
        """
        seq = await self.get(tenant, name, fresh=True)
        if seq.ledger:
            raise CounterMoved(
                f"Sequence '{name}' keeps a ledger: its numbers are continuous, so it cannot"
                " skip ahead."
            )
        if to > seq.upper or (seq.min is not None and to < seq.min):
            low = seq.min if seq.min is not None else "-"
            raise InvalidSequence(f"to must be within min..max ({low}..{seq.upper}).")
        period, key = await self._current_key(tenant, seq)
        for attempt in range(_MAX_ATTEMPTS):
            await _backoff(attempt)
            current = await self.store.read_counter(tenant, key)
            mine = seq.owns(current)
            nxt = next_value(seq, mine)
            last = mine.value_at(mine.ticks - 1) if mine and mine.ticks else None
            if nxt is None:
                raise CounterMoved(
                    f"Sequence '{name}' is exhausted at {last}; raise its max first."
                )
            if to < nxt:
                issued = f"; {last} was the last number issued" if last is not None else ""
                raise CounterMoved(
                    f"The counter only moves forward: to must be at least {nxt}, the next"
                    f" number{issued}."
                )
            if to == nxt:
                return await self.describe(tenant, name)
            new = Counter(to, seq.step, capacity(to, seq.step, seq.upper), 0, seq.incarnation)
            if await self.store.replace_counter(tenant, key, seq.name, current, new):
                break
        else:
            raise Unavailable("The counter is under heavy contention; try again.")
        await self._bump_revision(tenant, name)
        self._forget(tenant, name)
        where = {"period": period} if period else {}
        await self.audit.record(
            tenant,
            actor,
            "sequence.advanced",
            _target(name),
            before={**where, "last": last, "next": nxt},
            after={**where, "next": to},
        )
        return await self.describe(tenant, name)

    async def _bump_revision(self, tenant: str, name: str) -> None:
        """Give the definition a new revision, so other processes (which compare it when
        their definition cache refreshes, within DEFINITION_TTL_SECONDS) drop cached-mode
        blocks leased before the counter moved."""
        for _ in range(_MAX_ATTEMPTS):
            record = await self.store.get_sequence(tenant, name)
            if record is None:
                return
            bumped = dataclasses.replace(
                record, updated_at=self.clock.now(), revision=record.revision + 1
            )
            if await self.store.update_sequence(tenant, bumped, expected_revision=record.revision):
                return

    async def current_period(self, tenant: str, seq: Sequence) -> str:
        """The reset period a number taken now would belong to ("" for never)."""
        period, _key = await self._current_key(tenant, seq)
        return period

    async def _current_key(self, tenant: str, seq: Sequence) -> tuple[str, str]:
        local = local_time(self.clock.now(), await self.timezone_of(tenant))
        period = period_of(seq.reset, local)
        return period, counter_key(seq.name, period)


@dataclass(frozen=True, slots=True)
class _Rebased:
    key: str
    before: Counter | None
    after: Counter


def _fits(seq: Sequence, counter: Counter) -> bool:
    """Whether ``counter`` has ``seq``'s step and max (every counter Tally writes does)."""
    return counter.step == seq.step and counter.cap == capacity(counter.base, seq.step, seq.upper)


def next_value(seq: Sequence, counter: Counter | None) -> int | None:
    """What the next allocation of one number would return (None: exhausted)."""
    counter = seq.owns(counter)
    if counter is None:
        return seq.start
    if counter.ticks < counter.cap:
        return counter.value_at(counter.ticks)
    return seq.start if seq.cycle else None


def _refuse_renumbering(old: Sequence, config: dict[str, Any]) -> None:
    """A ledger sequence's numbering is fixed: its gap report counts on an unbroken
    counter (a new step or bound rebases it). Its format may change."""
    numbering = ("step", "min", "max")
    current = {"step": old.step, "min": old.min, "max": old.max}
    changed = [k for k in numbering if config.get(k) != current[k]]
    if changed:
        raise InvalidSequence(
            f"{', '.join(changed)}: a ledger sequence's numbering cannot change (only its"
            " format can)."
        )


def _target(name: str) -> str:
    return f"sequences/{name}"


def _invalid(exc: ValidationError) -> InvalidSequence:
    errors = [
        {"field": ".".join(str(p) for p in e["loc"]) or "body", "message": e["msg"]}
        for e in exc.errors()
    ]
    detail = "; ".join(f"{e['field']}: {e['message']}" for e in errors[:5])
    return InvalidSequence(detail, extra={"errors": errors})


def to_out(
    seq: Sequence, *, period: str, last: int | None, nxt: int | None, at: datetime
) -> SequenceOut:
    return SequenceOut(
        name=seq.name,
        start=seq.start,
        step=seq.step,
        min=seq.min,
        max=seq.max,
        cycle=seq.cycle,
        format=seq.format,
        reset=seq.reset,
        mode=seq.mode,
        ledger=seq.ledger,
        period=period or None,
        last=last,
        next=nxt,
        next_formatted=seq.template.render(nxt, at) if seq.template and nxt is not None else None,
        created_at=seq.created_at,
        updated_at=seq.updated_at,
    )


def headroom_of(seq: Sequence, period: str, counter: Counter) -> SequenceHeadroom:
    remaining = max(counter.remaining, 0)
    return SequenceHeadroom(
        sequence=seq.name,
        period=period or None,
        max=seq.upper,
        cycle=seq.cycle,
        capacity=counter.cap,
        remaining=remaining,
        headroom_percent=round(100 * remaining / counter.cap, 2) if counter.cap else 0.0,
    )


def recorded_allocation(note: dict[str, Any]) -> Allocation:
    """The allocation an idempotency key's record holds (see ``next``'s note)."""
    return Allocation(
        first=int(note["first"]),
        last=int(note["last"]),
        count=int(note["count"]),
        period=str(note["period"]),
        at=datetime.fromisoformat(note["at"]),
    )


def next_json(seq: Sequence, alloc: Allocation) -> bytes:
    """``next_out(seq, alloc).model_dump_json()``, byte for byte, without pydantic in the
    common case (no format): a model and its serialiser per request, where one
    ``%`` does (a sequence name never needs escaping: see ``NAME_PATTERN``)."""
    if seq.template is not None:
        return next_out(seq, alloc).model_dump_json().encode()
    period = json.dumps(alloc.period) if alloc.period else "null"
    return (
        b'{"sequence":"%s","value":%d,"last":%d,"count":%d,'
        b'"formatted":null,"formatted_range":null,"period":%s}'
        % (seq.name.encode(), alloc.first, alloc.last, alloc.count, period.encode())
    )


def next_out(seq: Sequence, alloc: Allocation) -> NextOut:
    formatted: str | None = None
    formatted_range: list[str] | None = None
    if seq.template is not None:
        formatted = seq.template.render(alloc.first, alloc.at)
        if alloc.count <= FORMATTED_RANGE_LIMIT:
            # The step the counter actually used (another process may have changed it).
            step = (alloc.last - alloc.first) // (alloc.count - 1) if alloc.count > 1 else 1
            formatted_range = [
                seq.template.render(alloc.first + i * step, alloc.at) for i in range(alloc.count)
            ]
    return NextOut(
        sequence=seq.name,
        value=alloc.first,
        last=alloc.last,
        count=alloc.count,
        formatted=formatted,
        formatted_range=formatted_range,
        period=alloc.period or None,
    )
