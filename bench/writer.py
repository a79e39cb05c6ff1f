"""The SQLite writer's half of a spread load: CPU a counter increment costs in a group.

python -m bench.writer [--groups 3200] [--dir /dev/shm]

Opens the real ``SQLiteStore`` on a fresh file in ``--dir`` (default: the repository's
``data/``, the disk ``make run`` uses; ``/dev/shm`` leaves the fsync out), founds the
spread row's 100 tenants x 10 counters, then commits ``--groups`` groups of 18 random
counters each (about what a group holds under ``bench.run``'s spread row) through
``Store.allocate_many``, one group at a time. Reports the writer thread's CPU a
counter (``BEGIN IMMEDIATE`` to ``COMMIT``, timed on that thread) and the process's
CPU and wall time a counter. The first 200 groups warm up and are not counted. Like
every CPU figure on a shared host it moves with the neighbours: compare versions in
alternating runs, each from outside the checkouts (``cd /tmp && PYTHONPATH=CHECKOUT
python -m bench.writer``: ``-m`` puts the current directory first on the path).
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sqlite3
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar

from bench.run import ROOT, SPREAD_SEQUENCES, SPREAD_TENANTS
from storage.base import Counter, Increment, SequenceRecord
from storage.sqlite import SQLiteStore

T = TypeVar("T")
GROUP, WARMUP = 18, 200  # a spread group's size (answers per commit), warm-up groups
INCARNATION = "0123456789abcdef0123456789abcdef"


@dataclass(frozen=True)
class WriterCost:
    counters: int  # increments measured
    writer_us: float  # the writer thread's CPU a counter, in its transactions
    process_us: float  # the process's CPU a counter (event loop and writer)
    wall_us: float


async def measure(groups: int, directory: Path) -> WriterCost:
    timed = [0.0]

    def timing(store: SQLiteStore) -> None:
        """Time each call on the store's writer thread, there (a transaction's CPU)."""
        run = store._writer.run

        async def timed_run(fn: Callable[[sqlite3.Connection], T]) -> T:
            def op(conn: sqlite3.Connection) -> T:
                started = time.thread_time()
                try:
                    return fn(conn)
                finally:
                    timed[0] += time.thread_time() - started

            return await run(op)

        store._writer.run = timed_run  # type: ignore[method-assign]

    with tempfile.TemporaryDirectory(prefix="tally-writer-", dir=directory) as tmp:
        store = SQLiteStore(Path(tmp) / "writer.db")
        await store.start()
        now = datetime.now(UTC)
        tenants, sequences = range(SPREAD_TENANTS), range(SPREAD_SEQUENCES)
        keys = [(f"tenant-{t:03d}", f"s{s}") for t in tenants for s in sequences]
        for tenant, name in keys:
            record = SequenceRecord(name, {}, now, now, incarnation=INCARNATION)
            await store.create_sequence(tenant, record)
        shape = Counter(1, 1, 10**12, 0, INCARNATION)
        founded = await store.allocate_many([Increment(t, k, k, shape, 1) for t, k in keys])
        if None in founded:
            raise RuntimeError("a counter could not be founded")
        rnd = random.Random(5)  # noqa: S311 - load, not crypto
        batches = [
            [Increment(t, k, k, shape, 1, create=False) for t, k in rnd.sample(keys, GROUP)]
            for _ in range(groups)
        ]
        timing(store)
        try:
            for batch in batches[:WARMUP]:
                await store.allocate_many(batch)
            timed[0] = 0.0
            cpu, wall = time.process_time(), time.perf_counter()
            for batch in batches[WARMUP:]:
                if None in await store.allocate_many(batch):
                    raise RuntimeError("an increment missed")
            cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
        finally:
            await store.close()
    counters = (groups - WARMUP) * GROUP
    us = 1e6 / counters
    return WriterCost(counters, timed[0] * us, cpu * us, wall * us)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--groups", type=int, default=3_200)
    parser.add_argument("--dir", type=Path, default=ROOT / "data")
    args = parser.parse_args()
    if args.groups <= WARMUP:
        parser.error(f"--groups must be more than the {WARMUP} warm-up groups")
    args.dir.mkdir(parents=True, exist_ok=True)
    cost = asyncio.run(measure(args.groups, args.dir))
    checkout = Path(sys.modules[SQLiteStore.__module__].__file__ or "?").parent.parent
    print(
        f"{checkout}: {cost.counters} counters in groups of {GROUP};"
        f" writer {cost.writer_us:.2f} µs, process {cost.process_us:.2f} µs CPU,"
        f" wall {cost.wall_us:.2f} µs a counter"
    )


if __name__ == "__main__":
    main()
