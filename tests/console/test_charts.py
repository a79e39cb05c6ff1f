"""Server-rendered usage charts and the headroom column."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from console.charts import bar_chart, nice_ceiling
from console.service import headroom
from sequences.periods import Reset
from sequences.schemas import Mode, SequenceOut
from usage.schemas import Granularity, UsageOut, UsagePoint

T0 = datetime(2026, 12, 1, tzinfo=UTC)


def usage(numbers: list[int], granularity: Granularity = Granularity.hour) -> UsageOut:
    step = timedelta(hours=1) if granularity is Granularity.hour else timedelta(days=1)
    points = [UsagePoint(start=T0 + i * step, requests=n, numbers=n) for i, n in enumerate(numbers)]
    return UsageOut(
        tenant="acme",
        sequence=None,
        granularity=granularity,
        start=T0,
        end=T0 + len(numbers) * step,
        points=points,
        requests=sum(numbers),
        numbers=sum(numbers),
        sequences=[],
    )


@pytest.mark.parametrize(
    ("value", "ceiling"), [(0, 1), (1, 1), (3, 5), (7, 10), (10, 10), (11, 20), (4_100, 5_000)]
)
def test_the_y_axis_tops_at_a_round_number(value: int, ceiling: int) -> None:
    assert nice_ceiling(value) == ceiling


def test_bars_are_proportional_and_every_bucket_has_one() -> None:
    chart = bar_chart(usage([0, 5, 10, 0]))
    assert len(chart.bars) == 4
    heights = [b.height for b in chart.bars]
    assert heights[0] == 0 and heights[3] == 0
    assert heights[2] == pytest.approx(2 * heights[1])
    assert chart.bars[2].y + chart.bars[2].height == pytest.approx(chart.baseline)
    assert chart.bars[1].label == "2026-12-01 01:00"
    assert [t.label for t in chart.y_ticks] == ["0", "5", "10"]
    assert chart.summary == "15 numbers issued over 4 hours; the busiest hour had 10."
    xs = [b.x for b in chart.bars]
    assert xs == sorted(xs) and xs[-1] + chart.bars[-1].width <= chart.right


def test_an_empty_range_draws_flat_bars_and_says_so() -> None:
    chart = bar_chart(usage([0] * 30, Granularity.day))
    assert all(b.height == 0 for b in chart.bars)
    assert chart.summary == "0 numbers issued over 30 days."
    assert chart.x_ticks[0].label == "12-01"


def seq(**fields: object) -> SequenceOut:
    base: dict[str, object] = {
        "name": "s",
        "start": 1,
        "step": 1,
        "min": None,
        "max": None,
        "cycle": False,
        "format": None,
        "reset": Reset.never,
        "mode": Mode.strict,
        "period": None,
        "last": None,
        "next": 1,
        "next_formatted": None,
        "created_at": T0,
        "updated_at": T0,
    }
    return SequenceOut.model_validate({**base, **fields})


def test_headroom_counts_the_numbers_left_below_max() -> None:
    assert headroom(seq()) is None  # no max: unbounded
    assert headroom(seq(max=10, next=1)) == 10
    assert headroom(seq(max=10, next=10, last=9)) == 1
    assert headroom(seq(max=100, step=10, next=91, last=81)) == 1
    assert headroom(seq(max=10, next=None, last=10)) == 0  # exhausted
