"""make bench's report: each row's "x limit" divides by the raw ASGI counter on the same
server with as many workers, so a two-worker row is not flattered by a one-worker limit."""

from __future__ import annotations

from bench.report import Result, add_ratios
from bench.run import configurations


def row(name: str, rps: float, workers: int = 1, server: str = "granian") -> Result:
    return Result(name, "", server, workers, 1, rps, rps, 1.0, 2.0, int(rps), 0, 0, 0.0)


# What markdown() needs of a run's meta.
META = {
    "machine": {"cpus": 2, "cpu_model": "x", "memory": "1 GiB", "python": "3"},
    "started": "now",
    "commit": "abc",
    "connections": 64,
    "duration": 5,
    "warmup": 1,
    "load_start": 0.5,
    "command": "python -m bench.run --rounds 3",
}


def test_a_row_is_a_fraction_of_the_limit_with_as_many_workers() -> None:
    results = [
        row("asgi-limit", 1000),
        row("asgi-limit-x2", 1600, workers=2),
        row("cached", 500),
        row("cached-x2", 800, workers=2),
        row("redis-1key", 9000, server="redis-server"),
    ]
    add_ratios(results)
    ratios = {r.name: r.x_limit for r in results}
    assert ratios == {
        "asgi-limit": 1.0,
        "asgi-limit-x2": 1.0,
        "cached": 0.5,
        "cached-x2": 0.5,
        "redis-1key": None,
    }


def test_a_two_worker_row_without_its_limit_in_the_run_has_no_ratio() -> None:
    results = [row("asgi-limit", 1000), row("strict-x2", 800, workers=2)]
    add_ratios(results)
    assert results[1].x_limit is None


def test_workers_2_adds_the_raw_counter_on_two_workers_with_the_tally_rows() -> None:
    two = {c.name: c for c in configurations(2) if c.workers == 2}
    assert set(two) == {"asgi-limit-x2", "strict-x2", "cached-x2", "spread-x2"}
    assert two["asgi-limit-x2"].app == "bench.asgi_counter:create_app"
    assert not any(c.workers > 1 for c in configurations(1))


def test_rounds_report_the_median_round_whole_with_every_round_beside_it() -> None:
    from bench.report import markdown, median

    runs = [row("cached", 900), row("cached", 1200), row("cached", 1000)]
    runs[2].p99_ms = 7.5  # the median round's own figures travel with it
    middle = median(runs)
    assert middle.requests_per_s == 1000 and middle.p99_ms == 7.5
    assert middle.rounds == [900, 1200, 1000]
    assert median([row("a", 3), row("a", 1), row("a", 4), row("a", 2)]).requests_per_s == 2
    assert median([row("one", 5)]).rounds == []  # one round: nothing beside it
    table = markdown([middle], META | {"rounds": 3})
    assert "| cached | granian | 1,000 (900-1,200) |" in table
    assert "Each row run 3 times" in table


def test_strict_rows_report_their_group_commits_per_commit() -> None:
    from bench.report import Groups, markdown

    strict = row("strict", 10_000)
    strict.answered = 28_000
    strict.groups = Groups(commits=1_000, increments=1_000, seconds=2.5)
    spread = row("spread", 8_000)
    spread.answered = 24_000
    spread.groups = Groups(commits=1_000, increments=24_000, seconds=3.0)
    cached = row("cached", 14_000)  # no group commits: not in the table
    idle = row("strict-idle", 1)
    idle.groups = Groups(commits=0, increments=0, seconds=0.0)  # nothing to divide by
    table = markdown([strict, spread, cached, idle], META)
    assert "| strict | 1,000 | 28.0 | 1.0 | 2.50 |" in table
    assert "| spread | 1,000 | 24.0 | 24.0 | 3.00 |" in table
    group_rows = table.split("ms per commit |")[1]
    assert "| cached |" not in group_rows and "strict-idle" not in group_rows


def test_rounds_below_one_are_refused() -> None:
    import pytest

    from bench.run import main

    with pytest.raises(SystemExit) as exc:
        main(["--rounds", "0"])
    assert exc.value.code == 2


def test_a_one_worker_server_gets_one_cpu_and_the_load_the_others() -> None:
    from bench.servers import Placement, placement

    assert placement({1, 0, 2}, share=False, taskset=True) == Placement((0,), (1, 2))
    # Nothing to split, no taskset, or asked to share: every process on every CPU.
    assert placement({0}, share=False, taskset=True) == Placement()
    assert placement({0, 1}, share=False, taskset=False) == Placement()
    assert placement({0, 1}, share=True, taskset=True) == Placement()
    assert "on CPU 0 " in Placement((0,), (1,)).describe()
    assert "sharing" in Placement().describe()


def test_a_command_on_cpus_runs_there_and_so_do_its_children() -> None:
    import os
    import shutil
    import subprocess
    import sys

    from bench.servers import on_cpus
    from tests.tools import missing

    assert on_cpus(["wrk"], ()) == ["wrk"]
    cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    if shutil.which("taskset") is None or len(cpus) < 2:
        missing("taskset (util-linux) and two CPUs are needed to pin the bench's processes")
    # A child of the bound process: granian's workers are children of `tally serve`.
    grandchild = "import os; print(sorted(os.sched_getaffinity(0)))"
    child = f"import subprocess, sys; subprocess.run([sys.executable, '-c', {grandchild!r}])"
    out = subprocess.run(
        on_cpus([sys.executable, "-c", child], (cpus[-1],)),
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.strip() == f"[{cpus[-1]}]"
