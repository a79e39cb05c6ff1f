"""Usage charts as server-rendered SVG: no chart library, no script, nothing to load.

``bar_chart`` computes the geometry; ``templates/_chart.html`` draws it (autoescaped)
with a text alternative and a data table beside it for screen readers.
"""

from __future__ import annotations

from dataclasses import dataclass

from usage.schemas import Granularity, UsageOut

WIDTH, HEIGHT = 720, 220
LEFT, RIGHT, TOP, BOTTOM = 56, 8, 12, 28  # room for the axis labels


@dataclass(frozen=True, slots=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    label: str  # the bucket, e.g. "2026-12-01" or "2026-12-01 14:00"
    numbers: int
    requests: int


@dataclass(frozen=True, slots=True)
class Tick:
    position: float
    label: str


@dataclass(frozen=True, slots=True)
class Chart:
    width: int
    height: int
    bars: list[Bar]
    x_ticks: list[Tick]
    y_ticks: list[Tick]
    baseline: float
    left: int
    right: float
    summary: str  # the chart in one sentence (its accessible description)
    granularity: str


def nice_ceiling(value: int) -> int:
    """The smallest 1, 2 or 5 times a power of ten at or above ``value`` (at least 1)."""
    if value <= 1:
        return 1
    magnitude = 1
    while True:
        for factor in (1, 2, 5):
            if factor * magnitude >= value:
                return factor * magnitude
        magnitude *= 10


def _label(usage: UsageOut, i: int) -> str:
    start = usage.points[i].start
    if usage.granularity is Granularity.hour:
        return start.strftime("%Y-%m-%d %H:00")
    return start.strftime("%Y-%m-%d")


def bar_chart(usage: UsageOut) -> Chart:
    """Numbers issued per bucket (every bucket of the range, zeros included)."""
    n = max(1, len(usage.points))
    top = nice_ceiling(max((p.numbers for p in usage.points), default=0))
    plot_w = WIDTH - LEFT - RIGHT
    plot_h = HEIGHT - TOP - BOTTOM
    slot = plot_w / n
    gap = min(2.0, slot * 0.2)
    bars = []
    for i, point in enumerate(usage.points):
        h = plot_h * point.numbers / top
        bars.append(
            Bar(
                x=round(LEFT + i * slot + gap / 2, 2),
                y=round(TOP + plot_h - h, 2),
                width=round(max(slot - gap, 0.5), 2),
                height=round(h, 2),
                label=_label(usage, i),
                numbers=point.numbers,
                requests=point.requests,
            )
        )
    every = max(1, n // 6)
    x_ticks = [
        Tick(
            round(LEFT + i * slot + slot / 2, 2),
            _label(usage, i)[5:] if usage.granularity is Granularity.day else _label(usage, i)[11:],
        )
        for i in range(0, len(usage.points), every)
    ]
    y_ticks = [
        Tick(round(TOP + plot_h - plot_h * f, 2), f"{round(top * f):,}") for f in (0, 0.5, 1)
    ]
    unit = "hour" if usage.granularity is Granularity.hour else "day"
    busiest = max(usage.points, key=lambda p: p.numbers, default=None)
    summary = f"{usage.numbers:,} numbers issued over {len(usage.points)} {unit}s"
    if busiest is not None and busiest.numbers:
        summary += f"; the busiest {unit} had {busiest.numbers:,}"
    return Chart(
        width=WIDTH,
        height=HEIGHT,
        bars=bars,
        x_ticks=x_ticks,
        y_ticks=y_ticks,
        baseline=TOP + plot_h,
        left=LEFT,
        right=WIDTH - RIGHT,
        summary=summary + ".",
        granularity=unit,
    )
