"""The engine's view of a sequence: a parsed definition and what an allocation returns.

Shared by the service and the allocator (which only needs the shape), so neither imports
the other's module.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sequences.formatting import Template, parse
from sequences.periods import Reset
from sequences.schemas import INT64_MAX, Mode
from storage import Counter, SequenceRecord


@dataclass(frozen=True, slots=True)
class Sequence:
    """A definition as the engine uses it (parsed template, effective bounds)."""

    name: str
    start: int
    step: int
    min: int | None
    max: int | None
    cycle: bool
    format: str | None
    reset: Reset
    mode: Mode
    ledger: bool
    created_at: datetime
    updated_at: datetime
    revision: int
    template: Template | None
    # Which creation of this name (see storage.base): counters of another one are not its.
    incarnation: str = ""

    @classmethod
    def from_record(cls, record: SequenceRecord) -> Sequence:
        c = record.config
        fmt = c.get("format")
        return cls(
            name=record.name,
            start=int(c["start"]),
            step=int(c["step"]),
            min=c.get("min"),
            max=c.get("max"),
            cycle=bool(c.get("cycle", False)),
            format=fmt,
            reset=Reset(c.get("reset", "never")),
            mode=Mode(c.get("mode", "strict")),
            ledger=bool(c.get("ledger", False)),
            created_at=record.created_at,
            updated_at=record.updated_at,
            revision=record.revision,
            template=parse(fmt) if fmt else None,
            incarnation=record.incarnation,
        )

    @property
    def upper(self) -> int:
        return self.max if self.max is not None else INT64_MAX

    def fresh_counter(self) -> Counter:
        """The counter a new period (or a cycle) starts from."""
        return Counter(
            base=self.start,
            step=self.step,
            cap=capacity(self.start, self.step, self.upper),
            incarnation=self.incarnation,
        )

    def owns(self, counter: Counter | None) -> Counter | None:
        """``counter`` if it belongs to this incarnation; a leftover of another is None."""
        return counter if counter is not None and counter.incarnation == self.incarnation else None


def capacity(base: int, step: int, upper: int) -> int:
    """How many numbers ``base, base+step, ...`` fit at or below ``upper``.

    Capped at 2^63-1 so a counter always fits a signed 64-bit column: from a very
    negative ``start`` the true count can exceed it, and no counter lives that long.
    """
    return 0 if base > upper else min((upper - base) // step + 1, INT64_MAX)


@dataclass(frozen=True, slots=True)
class Allocation:
    first: int
    last: int
    count: int
    period: str
    at: datetime
