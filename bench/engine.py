"""The allocation engine's own CPU an allocation: coalescing and group commit, no store.

python -m bench.engine [--other CHECKOUT] [--rounds 12] [--allocations 20000]

Drives ``sequences.allocator.Allocator`` over the real ``sequences.group.GroupCommit``
from 64 concurrent callers on uvloop, for the bench's two strict loads: one hot counter
(``strict``) and 100 tenants x 10 counters picked at random (``spread``). The store is
in memory and takes 0.3 ms a group (about a commit's fsync), so the groups and
flights look like the server's; the backend builds each ``Increment`` as
``SequenceService.increment`` does on its hot path. Reports the event loop's CPU an
allocation, the minimum and the median over the rounds: the part of a request that
the engine's code decides, without the HTTP server, auth or SQLite around it.

With ``--other``, the allocator module of that checkout (e.g. a ``git worktree`` of
an older commit) runs in rounds alternating with this one's, in the same process, so
both meet the same host; the minimum is the steadier figure on a shared one.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import random
import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

import uvloop

from sequences import allocator as this_allocator
from sequences.group import GroupCommit
from sequences.schemas import Mode
from storage.base import Counter, Increment, Rider

CALLERS = 64
COMMIT_SECONDS = 0.0003
TENANTS, COUNTERS = 100, 10  # bench.run's spread row


class _MemoryStore:
    """``allocate_many`` in memory, one group at a time taking ``COMMIT_SECONDS``."""

    def __init__(self) -> None:
        self.ticks: dict[tuple[str, str], int] = {}

    async def allocate_many(self, items: Sequence[Increment]) -> list[int | None]:
        await asyncio.sleep(COMMIT_SECONDS)
        out: list[int | None] = []
        for item in items:
            ticks = self.ticks.get((item.tenant, item.key), 0) + item.n
            self.ticks[(item.tenant, item.key)] = ticks
            out.append(ticks)
        return out


class _Backend:
    """The service's increment on its hot path: a known shape, one group item."""

    def __init__(self) -> None:
        self.group = GroupCommit(_MemoryStore())  # type: ignore[arg-type]
        self.shape = Counter(1, 1, 2**62)

    async def increment(
        self,
        tenant: str,
        seq: Any,
        key: str,
        n: int,
        *,
        wrap: bool = True,
        riders: list[Rider] | None = None,
    ) -> tuple[int, int]:
        item = Increment(tenant, key, key, self.shape, n, create=False, riders=())
        ticks = await self.group.allocate(item)
        assert ticks is not None
        return ticks - n + 1, ticks

    async def remaining(self, tenant: str, seq: Any, key: str) -> int:
        return self.shape.cap


class _Strict:
    mode = Mode.strict


async def _round(module: ModuleType, row: str, allocations: int) -> float:
    engine = module.Allocator(_Backend())
    targets = [("t0", "s0")]
    if row == "spread":
        targets = [(f"t{t}", f"s{s}") for t in range(TENANTS) for s in range(COUNTERS)]
    seq, left = _Strict(), [allocations]

    async def caller() -> None:
        while left[0] > 0:
            left[0] -= 1
            tenant, key = random.choice(targets)  # noqa: S311 - load, not crypto
            await engine.allocate(tenant, seq, key, 1)

    started = time.thread_time()
    await asyncio.gather(*(caller() for _ in range(CALLERS)))
    took = (time.thread_time() - started) / allocations * 1e6
    taken = sum(engine.backend.group.store.ticks.values())
    if taken != allocations:  # a figure is only worth what it measured
        raise RuntimeError(f"{allocations} allocations took {taken} numbers")
    return took


def _load(checkout: Path) -> ModuleType:
    path = checkout / "sequences" / "allocator.py"
    spec = importlib.util.spec_from_file_location("bench_other_allocator", path)
    if spec is None or spec.loader is None:
        raise SystemExit(f"no allocator at {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


async def measure(rows: list[str], rounds: int, allocations: int, other: Path | None) -> str:
    versions: dict[str, ModuleType] = {"this checkout": this_allocator}
    if other is not None:
        versions = {f"other ({other})": _load(other), **versions}
    lines = []
    for row in rows:
        took: dict[str, list[float]] = {name: [] for name in versions}
        for _ in range(rounds):
            for name, module in versions.items():
                took[name].append(await _round(module, row, allocations))
        for name, us in took.items():
            lines.append(
                f"{row}, {name}: event loop {min(us):.2f} µs an allocation (minimum of"
                f" {rounds}), median {statistics.median(us):.2f}"
            )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("rows", nargs="*", help="strict, spread (default: both)")
    parser.add_argument("--other", type=Path, help="a checkout whose allocator to compare")
    parser.add_argument("--rounds", type=int, default=12)
    parser.add_argument("--allocations", type=int, default=20_000)
    args = parser.parse_args()
    rows = args.rows or ["strict", "spread"]
    if set(rows) - {"strict", "spread"}:
        parser.error("rows are strict and spread")
    print(uvloop.run(measure(rows, args.rounds, args.allocations, args.other)))


if __name__ == "__main__":
    main()
