"""The bench's results: ratios, targets (issue 11 and earlier) and the Markdown table."""

from __future__ import annotations

import os
import platform
import subprocess
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from bench.servers import Placement


@dataclass
class Groups:
    """A strict row's group commits (warm-up included), from the server's own metrics."""

    commits: int
    increments: int  # coalescing makes a hot counter's whole flight one increment
    seconds: float  # summed: each from leaving the event loop to its results back


@dataclass
class Result:
    name: str
    description: str
    server: str
    workers: int
    count: int
    requests_per_s: float
    numbers_per_s: float
    p50_ms: float
    p99_ms: float
    requests: int
    status_errors: int
    socket_errors: int
    load_before: float
    # Strict rows: numbers the store issued vs. 2xx answers wrk received (warm-up
    # included); issued may exceed acknowledged by what was in flight when wrk stopped.
    issued: int | None = None
    acknowledged: int | None = None
    answered: int | None = None  # 2xx answers, warm-up included
    groups: Groups | None = None
    x_limit: float | None = None  # / the raw ASGI counter on the same server
    # With --rounds N: every round's req/s; the row's figures are the median round's.
    rounds: list[float] = field(default_factory=list)


def group_line(r: Result) -> str:
    g = r.groups
    assert g is not None and g.commits
    answers = f"{r.answered / g.commits:.1f}" if r.answered is not None else "—"
    return (
        f"| {r.name} | {g.commits:,} | {answers} | {g.increments / g.commits:.1f}"
        f" | {g.seconds / g.commits * 1000:.2f} |"
    )


def median(runs: list[Result]) -> Result:
    """The round with the median req/s (the lower of the two middle ones for an even
    count), all its figures kept together, with every round's req/s beside them."""
    if len(runs) == 1:
        return runs[0]
    ordered = sorted(runs, key=lambda r: r.requests_per_s)
    return replace(ordered[(len(ordered) - 1) // 2], rounds=[r.requests_per_s for r in runs])


LIMIT = {"granian": "asgi-limit"}


def limit_of(r: Result) -> str | None:
    """The row ``r`` is a fraction of: the raw ASGI counter on the same server, with as
    many workers (``asgi-limit-x2`` for a ``--workers 2`` row)."""
    base = LIMIT.get(r.server)
    if base is None:
        return None
    return base if r.workers == 1 else f"{base}-x{r.workers}"


def add_ratios(results: list[Result]) -> None:
    by = {r.name: r for r in results}
    for r in results:
        name = limit_of(r)
        limit = by.get(name) if name is not None else None
        if limit is not None and limit.requests_per_s:
            r.x_limit = r.requests_per_s / limit.requests_per_s


def targets(results: list[Result]) -> list[tuple[str, str, bool]]:
    by = {r.name: r for r in results}
    rows: list[tuple[str, str, bool]] = []

    def ratio(a: str, b: str) -> float | None:
        if a in by and b in by and by[b].requests_per_s:
            return by[a].requests_per_s / by[b].requests_per_s
        return None

    def add(label: str, value: float | None, goal: float, fmt: str = "{:.2f} x") -> None:
        if value is not None:
            rows.append((label, fmt.format(value), value >= goal))

    # Issue 11: all with access logging on, as shipped.
    add("strict (hot) >= 0.5 x raw ASGI counter", ratio("strict", "asgi-limit"), 0.5)
    add("spread (1,000 counters) >= 0.8 x strict (hot)", ratio("spread", "strict"), 0.8)
    add("/getCounter >= 0.9 x strict (hot)", ratio("getcounter", "strict"), 0.9)
    add("cached >= 0.6 x raw ASGI counter", ratio("cached", "asgi-limit"), 0.6)
    # Issue 14: the access log costs at most 10 % against logging off.
    for row in ("strict", "cached"):
        quiet = ratio(row, f"{row}-quiet")
        if quiet is not None:
            cost = 1 - quiet
            rows.append((f"{row}: access log costs <= 10 %", f"{cost:.1%}", cost <= 0.10))
    # Issue 10: a ledger entry per number stays within 0.7 x of a plain strict next.
    add("strict-ledger >= 0.7 x strict", ratio("strict-ledger", "strict"), 0.7)
    # Earlier issues' targets, still claimed.
    add("strict >= 5 x strict-naive", ratio("strict", "strict-naive"), 5.0, "{:.1f} x")
    if "batch" in by:
        add("batch >= 10,000,000 numbers/s", by["batch"].numbers_per_s, 1e7, "{:,.0f}")
    uncached = ratio("strict-uncached-jwt", "strict")
    if uncached is not None:
        cost = 1 - uncached
        rows.append(("ES256 verification <= 5 % (uncached vs cached)", f"{cost:.1%}", cost <= 0.05))
    return rows


def comparisons(results: list[Result]) -> list[tuple[str, str]]:
    """Informational ratios: Tally against what users pick instead, and its switches."""
    by = {r.name: r for r in results}
    pairs = [
        ("raw counter on RSGI / on ASGI (same server)", "rsgi-limit", "asgi-limit"),
        ("strict / Redis INCR, 1 key", "strict", "redis-1key"),
        ("spread / Redis INCR, 1,000 keys", "spread", "redis-1000keys"),
        ("strict / bare FastAPI", "strict", "fastapi"),
        ("spread / spread without group commit", "spread", "spread-no-group"),
        ("cached / bare FastAPI", "cached", "fastapi"),
        ("strict / strict without access log", "strict", "strict-quiet"),
        ("cached / cached without access log", "cached", "cached-quiet"),
        ("cached / cached through FastAPI's router", "cached", "cached-routed"),
        ("next with an Idempotency-Key / strict", "strict-idempotent", "strict"),
    ]
    out = []
    for label, a, b in pairs:
        if a in by and b in by and by[b].requests_per_s:
            out.append((label, f"{by[a].requests_per_s / by[b].requests_per_s:.2f} x"))
    return out


def _version(cmd: list[str]) -> str:
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=10, check=False)
    except OSError:
        return "not installed"
    return (out.stdout or out.stderr).strip().splitlines()[0] if (out.stdout or out.stderr) else ""


def machine() -> dict[str, Any]:
    model = "unknown"
    memory = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                memory = f"{int(line.split()[1]) / 1024 / 1024:.0f} GiB"
                break
    except OSError:
        pass
    return {
        "cpus": os.cpu_count(),
        "cpu_model": model,
        "memory": memory,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "wrk": _version(["wrk", "-v"]),
        "redis": _version(["redis-server", "--version"]),
    }


def markdown(results: list[Result], meta: dict[str, Any]) -> str:
    m = meta["machine"]
    lines = [
        f"Tally benchmark, {meta['started']}, commit {meta['commit']} — {m['cpus']} cores "
        f"({m['cpu_model']}), {m['memory']}, Python {m['python']}; wrk "
        f"{meta['connections']} connections, {meta['duration']} s after {meta['warmup']} s "
        f"warm-up; {meta.get('placement') or Placement().describe()}"
        f" (load average {meta['load_start']:.2f} at the start)."
        + (
            f" Each row run {meta['rounds']} times, interleaved with the others; req/s is"
            " the median round's, every round's range beside it, and the other figures"
            " are that round's."
            if meta.get("rounds", 1) > 1
            else ""
        ),
        "",
        f"Command: `{meta['command']}`. Tally as shipped: `tally serve` "
        "(TALLY_ENVIRONMENT=production, access log on, Prometheus metrics on as the chart "
        f"runs it), store: {meta.get('store', 'sqlite (WAL, synchronous=FULL)')}; Redis with"
        " appendfsync always.",
        "",
        "| row | server | req/s | numbers/s | p50 ms | p99 ms | x limit | errors | what |",
        "|---|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in results:
        ratio = f"{r.x_limit:.2f}" if r.x_limit is not None else "—"
        rps = f"{r.requests_per_s:,.0f}"
        if r.rounds:
            rps += f" ({min(r.rounds):,.0f}-{max(r.rounds):,.0f})"
        lines.append(
            f"| {r.name} | {r.server} | {rps} | {r.numbers_per_s:,.0f} | "
            f"{r.p50_ms:.2f} | {r.p99_ms:.2f} | {ratio} | "
            f"{r.status_errors + r.socket_errors} | {r.description} |"
        )
    rows = meta.get("targets") or []
    if rows:
        lines += ["", "| target | measured | met |", "|---|---:|:---:|"]
        lines += [f"| {label} | {value} | {'yes' if ok else 'no'} |" for label, value, ok in rows]
    comps = meta.get("comparisons") or []
    if comps:
        lines += ["", "| comparison | ratio |", "|---|---:|"]
        lines += [f"| {label} | {value} |" for label, value in comps]
    checks = [r for r in results if r.issued is not None]
    if checks:
        lines += [
            "",
            "Strict rows, numbers issued by the store vs. 2xx answers received (warm-up "
            "included; the difference is what was in flight when wrk stopped):",
            "",
            "| row | issued | acknowledged |",
            "|---|---:|---:|",
        ]
        lines += [f"| {r.name} | {r.issued:,} | {r.acknowledged:,} |" for r in checks]
    grouped = [r for r in results if r.groups is not None and r.groups.commits]
    if grouped:
        lines += [
            "",
            "Strict rows, group commits (from the server's metrics, warm-up included; a "
            "commit's time runs from its group leaving the event loop to its results "
            "coming back, so it holds the fsync and the waits for the writer thread):",
            "",
            "| row | commits | answers per commit | increments per commit | ms per commit |",
            "|---|---:|---:|---:|---:|",
        ]
        lines += [group_line(r) for r in grouped]
    return "\n".join(lines) + "\n"
