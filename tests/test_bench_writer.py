"""bench.writer: the SQLite writer's CPU a counter, on the real store."""

from __future__ import annotations

import asyncio
from pathlib import Path

from bench import writer


def test_it_times_every_counter_of_the_measured_groups(
    tmp_path: Path,
) -> None:
    cost = asyncio.run(writer.measure(writer.WARMUP + 5, tmp_path))
    assert cost.counters == 5 * writer.GROUP
    # The writer's transactions are part of the process's CPU.
    assert 0 < cost.writer_us <= cost.process_us
    assert list(tmp_path.iterdir()) == []  # its file went with its directory
