"""bench.engine: the allocation engine's CPU an allocation, this checkout against another."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Sequence
from pathlib import Path

import pytest

from bench import engine
from storage.base import Increment

ROOT = Path(__file__).resolve().parents[1]


def test_it_reports_both_rows_for_both_checkouts() -> None:
    report = asyncio.run(engine.measure(["strict", "spread"], 2, 300, ROOT))
    lines = report.splitlines()
    assert [line.split(": ", 1)[0] for line in lines] == [
        f"strict, other ({ROOT})",
        "strict, this checkout",
        f"spread, other ({ROOT})",
        "spread, this checkout",
    ]
    for line in lines:
        low, median = (float(x) for x in re.findall(r"\d+\.\d+", line.split(": ", 1)[1]))
        assert 0 < low <= median


def test_a_round_fails_when_its_allocations_and_the_numbers_taken_disagree(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert asyncio.run(engine._round(engine.this_allocator, "spread", 200)) > 0
    original = engine._MemoryStore.allocate_many

    async def one_more(self: engine._MemoryStore, items: Sequence[Increment]) -> list[int | None]:
        out = await original(self, items)
        self.ticks[("t0", "lost")] = self.ticks.get(("t0", "lost"), 0) + 1
        return out

    monkeypatch.setattr(engine._MemoryStore, "allocate_many", one_more)
    with pytest.raises(RuntimeError, match="200 allocations took"):
        asyncio.run(engine._round(engine.this_allocator, "spread", 200))
