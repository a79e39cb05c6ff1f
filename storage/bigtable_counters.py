"""Counters on Bigtable: ReadModifyWriteRow increments with the bounds kept by Tally.

A counter is one row, ``<tenant>#ctr#<key>``, with three cells in family ``c``:

* ``t``  ticks issued, an 8-byte big-endian counter moved by ``IncrementRule`` (and set
  by the compare-and-sets below); read unsigned, so a sum past 2^63-1 that the
  increment wrapped to a negative int64 still reads as the true, too large, sum;
* ``s``  ``b"<base>,<step>,<cap>,<incarnation>"`` (ASCII);
* ``g``  a generation, ``b"<16 random hex>:<floor>"``, new whenever ``t`` is set rather
  than added to. ``floor`` is the ticks ``t`` was set to: nothing lowers the ticks
  issued below it while the generation lasts, so it is a lower bound of them even
  while ``t`` holds an overshoot. (A generation without ``:`` is older: floor 0.)

Bigtable's increment is unconditional and wraps silently at 2^63-1. An allocation of
``n`` is one ``ReadModifyWriteRow`` that adds ``n`` to ``t`` and appends ``b""`` to ``s``
and ``g``, which returns their values from the same atomic row operation, unchanged:

1. Same shape and incarnation, new ``t <= cap``: ticks ``t-n .. t-1`` are the caller's.
2. New ``t > cap`` and start ``t-n <= cap``: the first increment past ``cap``. While
   ``t`` is above ``cap`` nothing can be issued, so it sets ``t`` back to its start and
   writes a new generation with that start as its floor (a compare-and-set on ``g`` and
   ``t > start``), and refuses: the batch does not fit.
3. Start above ``cap`` too: an increment during the first one's overshoot. The ticks
   issued are the first one's start, at least the generation's floor: if ``floor + n >
   cap`` the batch cannot fit and is refused at once (the first one's reset takes this
   increment back with its own). Otherwise it may fit: it waits (reading) until the
   generation changes or ``t`` is back at or below ``cap``, and decides on what it read
   (refused if that shows too few ticks left, exactly or by the new floor; tried again
   if it shows room; waits on if a new overshoot is under way), so a batch that fits
   is never refused because of another's. If the first one died before its reset, a
   waiter that saw the same generation over ``cap`` for its whole deadline sets ``t``
   to ``cap``: nothing was issued above ``cap``, so that reissues nothing; its
   held-back numbers are a gap.
4. Another shape or incarnation (the caller's is stale): refused; the increment is taken
   back only while nothing came after it (compare-and-set ``t == mine -> mine - n``).
   Taking it back from below a later increment would hand that one's ticks out again,
   so otherwise it stays a gap.

Every refusal for room is thus decided on a state the counter was in during the call,
as SQLite's conditional update is, and consumes nothing. A client also remembers, per
counter, how many ticks were left when it last refused there (``_left``, a hint only):
a batch larger than that reads the row first and is refused without an increment if
the row shows it cannot fit, so callers that keep asking an exhausted counter do not
keep it over ``cap`` and starve those whose batches still fit. Every read of the row
replaces the hint and a replace (a cycle, an advance) drops it, so after a cycle a
batch does not pay a read the others skip.

An increment whose outcome is unknown (deadline, lost connection) is not retried,
neither by the client library (``retry=None`` for ReadModifyWriteRow) nor here: the
caller gets 503 and the ticks it may have taken are a gap.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Awaitable, Callable
from typing import Any

from google.cloud.bigtable.data import (
    DeleteAllFromFamily,
    DeleteAllFromRow,
    DeleteRangeFromColumn,
    SetCell,
)
from google.cloud.bigtable.data import row_filters as rf
from google.cloud.bigtable.data.read_modify_write_rules import AppendValueRule, IncrementRule

from storage.base import Counter
from storage.bigtable_rows import (
    COUNTS,
    all_of,
    at_least,
    cells,
    equals,
    i64,
    non_empty,
    parse_shape,
    shape_bytes,
    shape_of,
    u64,
)
from storage.errors import StoreUnavailable

TICKS, SHAPE, GEN = b"t", b"s", b"g"
_POLL = 0.002  # seconds between reads while waiting for an overshoot to be taken back
_HINTS = 4096  # counters a client remembers the ticks left of (oldest forgotten first)

_COUNTER_CELLS = rf.RowFilterChain([rf.FamilyNameRegexFilter(COUNTS), rf.CellsColumnLimitFilter(1)])

Call = Callable[[Awaitable[Any]], Awaitable[Any]]
Live = Callable[[str], Awaitable[bool]]  # is the definition of this incarnation stored?


def set_ticks(value: int) -> list[DeleteRangeFromColumn | SetCell]:
    # Delete first: an increment stamps its cell with the server's time, which may be
    # ahead of this client's, and the newest timestamp is what everyone reads.
    return [DeleteRangeFromColumn(COUNTS, TICKS), SetCell(COUNTS, TICKS, i64(value))]


def new_generation(floor: int) -> bytes:
    """A generation for ticks just set to ``floor``."""
    return f"{secrets.token_hex(8)}:{floor}".encode()


def floor_of(gen: bytes) -> int:
    """The ticks ``gen`` started at; 0 for a generation written before floors existed."""
    _, colon, floor = gen.partition(b":")
    return int(floor) if colon and floor.isdigit() else 0


def issued_at_least(row: dict[bytes, bytes], cap: int) -> int:
    """Ticks the row's counter has issued: exactly ``t`` at or below ``cap``; during an
    overshoot (``t`` above ``cap``) at least its generation's floor."""
    ticks = u64(row.get(TICKS, b""))
    return ticks if ticks <= cap else floor_of(row.get(GEN, b""))


def counter_of(row: dict[bytes, bytes]) -> Counter | None:
    """The counter a row holds; ``ticks`` read above ``cap`` (an overshoot) shows ``cap``."""
    shape = parse_shape(row.get(SHAPE, b""))
    if shape is None:
        return None
    base, step, cap, incarnation = shape
    return Counter(base, step, cap, min(u64(row.get(TICKS, b"")), cap), incarnation)


def counter_cells(counter: Counter) -> list[SetCell | DeleteAllFromFamily]:
    # Delete first: the new cells are then the only versions, whatever their timestamps.
    return [
        DeleteAllFromFamily(COUNTS),
        SetCell(COUNTS, SHAPE, shape_bytes(counter)),
        SetCell(COUNTS, GEN, new_generation(counter.ticks)),
        SetCell(COUNTS, TICKS, i64(counter.ticks)),
    ]


class Counters:
    """The counter operations of ``BigtableStore`` on one table."""

    def __init__(self, table: Any, call: Call, timeout: float) -> None:
        self._table = table
        self._call = call
        self._timeout = timeout
        # Per counter row: ticks left when this client last found too few (a hint).
        self._left: dict[bytes, int] = {}

    async def read(self, row_key: bytes) -> dict[bytes, bytes]:
        row = cells(await self._call(self._table.read_row(row_key, row_filter=_COUNTER_CELLS)))
        if row_key in self._left:
            # What a read shows replaces the hint: after a cycle or an advance (a read
            # of the caller's, before it tries again), no needless read before the
            # increment, which would leave the batch behind every other.
            shape = parse_shape(row.get(SHAPE, b""))
            if shape is None:
                del self._left[row_key]
            else:
                self._left[row_key] = shape[2] - issued_at_least(row, shape[2])
        return row

    async def create_if_missing(self, row_key: bytes, counter: Counter) -> bool:
        """Found the counter unless one exists; True if this call founded it."""
        matched = await self._call(
            self._table.check_and_mutate_row(
                row_key, non_empty(COUNTS, SHAPE), false_case_mutations=counter_cells(counter)
            )
        )
        return not matched

    async def delete_if(self, row_key: bytes, counter: Counter) -> bool:
        """Delete the counter if it still has ``counter``'s shape and incarnation."""
        return bool(
            await self._call(
                self._table.check_and_mutate_row(
                    row_key,
                    equals(COUNTS, SHAPE, shape_bytes(counter)),
                    true_case_mutations=[DeleteAllFromRow()],
                )
            )
        )

    async def _found(self, row_key: bytes, counter: Counter, live: Live) -> bool:
        """Found the counter if missing; keep it only while its incarnation is live.

        Bigtable has no transaction across the definition's row and the counter's, so
        the check a transaction would make first is made after the write: a DELETE
        that ran before it finds no definition here, one that runs after deletes the
        counter itself. True: a counter of the incarnation stands (ours or another's).
        """
        if not await self.create_if_missing(row_key, counter):
            return True
        if await live(counter.incarnation):
            return True
        await self.delete_if(row_key, counter)
        return False

    async def replace(
        self, row_key: bytes, expected: Counter | None, new: Counter, live: Live
    ) -> bool:
        # The counter is being moved (a cycle, an advance, a new shape), by this call or
        # by whoever beat it: what the hint says of ticks left is old news.
        self._left.pop(row_key, None)
        if expected is None:
            if not await self.create_if_missing(row_key, new):
                return False
            if await live(new.incarnation):
                return True
            await self.delete_if(row_key, new)
            return False
        # A counter read at cap may hold an overshoot above it (it reads as cap).
        ticks = (
            at_least(COUNTS, TICKS, i64(expected.cap))
            if expected.ticks == expected.cap
            else equals(COUNTS, TICKS, i64(expected.ticks))
        )
        predicate = all_of(equals(COUNTS, SHAPE, shape_bytes(expected)), ticks)
        if not await self._call(
            self._table.check_and_mutate_row(
                row_key, predicate, true_case_mutations=counter_cells(new)
            )
        ):
            return False
        if await live(new.incarnation):
            return True
        await self.delete_if(row_key, new)
        return False

    async def allocate(
        self, row_key: bytes, shape: Counter, n: int, *, create: Live | None
    ) -> int | None:
        """``create``: found a missing counter if its incarnation is live (``live``)."""
        if n < 1 or n > shape.cap:
            return None
        if create is not None and not await self._found(row_key, shape.bare(), create):
            return None
        if n > self._left.get(row_key, shape.cap) and await self._cannot_fit(row_key, shape, n):
            return None
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._timeout
        first: bytes | None = None  # the generation over cap this call first waited on
        while True:
            row = await self._call(
                self._table.read_modify_write_row(
                    row_key,
                    [
                        IncrementRule(COUNTS, TICKS, n),
                        AppendValueRule(COUNTS, SHAPE, b""),
                        AppendValueRule(COUNTS, GEN, b""),
                    ],
                )
            )
            got = cells(row)
            post, gen = u64(got.get(TICKS, b"")), got.get(GEN, b"")
            found = parse_shape(got.get(SHAPE, b""))
            if found is None:
                # No counter: the increment made a row of its own; remove it unless a
                # real counter was founded meanwhile.
                await self._drop_stray(row_key)
                return None
            cap, pre = found[2], post - n
            if post <= cap:
                if found == shape_of(shape):
                    if row_key in self._left:
                        self._left[row_key] = cap - post
                    return post
                # Another shape: take the increment back if nothing came after it.
                await self._take_back(row_key, gen, post, n)
                return None
            if pre <= cap:
                # The first increment past cap: nothing can be issued until it is undone,
                # so put back the count it found, under a new generation that voids
                # every later overshoot.
                await self._reset(row_key, gen, pre)
                self._remember(row_key, cap - pre)
                return None
            if found != shape_of(shape):
                return None
            # During another's overshoot: at least the floor of its generation is issued.
            # Refused at once if even that leaves too few; else wait for the reset (or a
            # replace) and decide on what is there then, so a batch that fits is never
            # refused because of another's overshoot.
            while (left := cap - floor_of(gen)) >= n:
                if first is None:
                    first = gen
                now = await self._settle(row_key, gen, cap, deadline, stale=gen == first)
                if parse_shape(now.get(SHAPE, b"")) != found:
                    return None  # deleted or replaced by another shape: the caller re-reads
                ticks, gen = u64(now.get(TICKS, b"")), now.get(GEN, b"")
                if ticks <= cap:
                    left = cap - ticks
                    break
                # A new overshoot already (a new generation): wait for its reset too.
            if left < n:
                self._remember(row_key, left)
                return None

    async def _cannot_fit(self, row_key: bytes, shape: Counter, n: int) -> bool:
        """True if the row shows too few ticks left for ``n`` (then nothing is written).

        Only asked when this client last found fewer than ``n`` left: a batch that
        cannot fit then adds no overshoot to the counter. Another shape, or no counter,
        is left to the increment (cases 4 and "no counter").
        """
        row = await self.read(row_key)  # which replaces the hint
        if parse_shape(row.get(SHAPE, b"")) != shape_of(shape):
            return False
        return shape.cap - issued_at_least(row, shape.cap) < n

    def _remember(self, row_key: bytes, left: int) -> None:
        self._left.pop(row_key, None)
        if len(self._left) >= _HINTS:
            del self._left[next(iter(self._left))]
        self._left[row_key] = left

    async def _drop_stray(self, row_key: bytes) -> None:
        await self._call(
            self._table.check_and_mutate_row(
                row_key, non_empty(COUNTS, SHAPE), false_case_mutations=[DeleteAllFromRow()]
            )
        )

    async def _take_back(self, row_key: bytes, gen: bytes, post: int, n: int) -> None:
        """Undo an increment of ``n`` that ended at ``post`` if it is still on top.

        Below a later increment it stays: undoing it would reissue the later one's ticks.
        """
        mine = all_of(equals(COUNTS, GEN, gen), equals(COUNTS, TICKS, i64(post)))
        await self._call(
            self._table.check_and_mutate_row(row_key, mine, true_case_mutations=set_ticks(post - n))
        )

    async def _reset(self, row_key: bytes, gen: bytes, ticks: int) -> None:
        """Set ticks back to ``ticks`` if the counter is still above cap at ``gen``."""
        over = all_of(equals(COUNTS, GEN, gen), at_least(COUNTS, TICKS, i64(ticks + 1)))
        await self._call(
            self._table.check_and_mutate_row(
                row_key,
                over,
                true_case_mutations=[
                    *set_ticks(ticks),
                    DeleteRangeFromColumn(COUNTS, GEN),
                    SetCell(COUNTS, GEN, new_generation(ticks)),
                ],
            )
        )

    async def _settle(
        self, row_key: bytes, gen: bytes, cap: int, deadline: float, *, stale: bool
    ) -> dict[bytes, bytes]:
        """The row once the counter was reset (or replaced) or is back at or below ``cap``.

        ``stale``: ``gen`` is the generation this call has waited on since its first
        increment; still over ``cap`` at the deadline, whoever overshot first there died.
        """
        loop = asyncio.get_running_loop()
        while True:
            now = await self.read(row_key)
            if now.get(GEN) != gen or u64(now.get(TICKS, b"")) <= cap:
                return now
            if loop.time() > deadline:
                if stale:
                    # Whoever overshot first died before its reset. Above cap nothing was
                    # issued after it, so cap reissues nothing; its held-back numbers are
                    # a gap. A generation that came later may still be reset by its own
                    # first overshooter: it is left alone.
                    await self._reset(row_key, gen, cap)
                # This request still gets 503: its deadline has passed.
                raise StoreUnavailable("The Bigtable counter stayed over its cap; try again.")
            await asyncio.sleep(_POLL)
