"""make bench's report: each row's "x limit" divides by the raw ASGI counter on the same
server with as many workers, so a two-worker row is not flattered by a one-worker limit."""

from __future__ import annotations

from bench.report import Result, add_ratios
from bench.run import configurations


def row(name: str, rps: float, workers: int = 1, server: str = "granian") -> Result:
    return Result(name, "", server, workers, 1, rps, rps, 1.0, 2.0, int(rps), 0, 0, 0.0)


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
    meta = {
        "machine": {"cpus": 2, "cpu_model": "x", "memory": "1 GiB", "python": "3"},
        "started": "now",
        "commit": "abc",
        "connections": 64,
        "duration": 5,
        "warmup": 1,
        "load_start": 0.5,
        "command": "python -m bench.run --rounds 3",
        "rounds": 3,
    }
    table = markdown([middle], meta)
    assert "| cached | granian | 1,000 (900-1,200) |" in table
    assert "Each row run 3 times" in table


def test_rounds_below_one_are_refused() -> None:
    import pytest

    from bench.run import main

    with pytest.raises(SystemExit) as exc:
        main(["--rounds", "0"])
    assert exc.value.code == 2
