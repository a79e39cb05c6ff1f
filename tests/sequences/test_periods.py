"""Periodic resets: each period of the tenant's calendar is its own counter."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest

from core.clock import FrozenClock
from core.settings import Settings
from storage import Counter, Store
from tests.sequences.support import Api, running_api, stored_counter

INT64_MAX = 2**63 - 1


@pytest.fixture
async def api(settings: Settings, clock: FrozenClock, store: Store) -> AsyncIterator[Api]:
    async with running_api(settings, clock, store=store, tz={"kiwi": "Pacific/Auckland"}) as a:
        yield a


@pytest.mark.parametrize(
    ("reset", "first", "later", "old_key", "new_key"),
    [
        ("yearly", datetime(2026, 12, 31, 23, 59), datetime(2027, 1, 1), "r/2026", "r/2027"),
        ("monthly", datetime(2026, 3, 31, 23, 59), datetime(2026, 4, 1), "r/2026-03", "r/2026-04"),
        (
            "daily",
            datetime(2026, 3, 7, 23, 59),
            datetime(2026, 3, 8),
            "r/2026-03-07",
            "r/2026-03-08",
        ),
    ],
)
async def test_a_new_period_starts_again_and_leaves_the_old_counter_untouched(
    api: Api, reset: str, first: datetime, later: datetime, old_key: str, new_key: str
) -> None:
    await api.create(name="r", reset=reset)
    api.clock.set(first.replace(tzinfo=UTC))
    assert await api.values("r", 3) == [1, 2, 3]
    old = await stored_counter(api, "acme", old_key)
    assert old == Counter(base=1, step=1, cap=INT64_MAX, ticks=3)
    api.clock.set(later.replace(tzinfo=UTC))
    r = (await api.next("r")).json()
    assert (r["value"], r["period"]) == (1, new_key.split("/")[1])
    assert await stored_counter(api, "acme", old_key) == old
    assert await stored_counter(api, "acme", new_key) == Counter(1, 1, INT64_MAX, 1)
    assert await api.values("r", 2) == [2, 3]


async def test_a_reset_sequence_starts_each_period_at_start(api: Api) -> None:
    await api.create(name="r", reset="monthly", start=100, step=10)
    api.clock.set(datetime(2026, 1, 15, tzinfo=UTC))
    assert await api.values("r", 2) == [100, 110]
    api.clock.set(datetime(2026, 2, 15, tzinfo=UTC))
    assert await api.values("r", 2) == [100, 110]


async def test_periods_are_in_the_tenants_time_zone(api: Api) -> None:
    await api.create("kiwi", name="r", reset="daily")
    api.clock.set(datetime(2026, 6, 30, 11, 59, tzinfo=UTC))  # 23:59 NZST, 30 Jun
    r = (await api.next("r", "kiwi")).json()
    assert (r["value"], r["period"]) == (1, "2026-06-30")
    api.clock.set(datetime(2026, 6, 30, 12, 0, tzinfo=UTC))  # 00:00 NZST, 1 Jul
    r = (await api.next("r", "kiwi")).json()
    assert (r["value"], r["period"]) == (1, "2026-07-01")
    assert await stored_counter(api, "kiwi", "r/2026-06-30") == Counter(1, 1, INT64_MAX, 1)


async def test_a_never_resetting_sequence_has_one_counter_and_no_period(api: Api) -> None:
    await api.create(name="plain")
    api.clock.set(datetime(2026, 12, 31, 23, 59, tzinfo=UTC))
    await api.next("plain")
    api.clock.set(datetime(2027, 1, 1, tzinfo=UTC))
    r = (await api.next("plain")).json()
    assert (r["value"], r["period"]) == (2, None)
    assert await stored_counter(api, "acme", "plain") == Counter(1, 1, INT64_MAX, 2)


async def test_peek_shows_the_current_periods_counter(api: Api) -> None:
    await api.create(name="r", reset="yearly", format="{yyyy}/{n}")
    api.clock.set(datetime(2026, 5, 1, tzinfo=UTC))
    await api.values("r", 4)
    peek = await api.peek("r")
    assert (peek["period"], peek["last"], peek["next"], peek["next_formatted"]) == (
        "2026",
        4,
        5,
        "2026/5",
    )
    api.clock.set(datetime(2027, 5, 1, tzinfo=UTC))
    peek = await api.peek("r")
    assert (peek["period"], peek["last"], peek["next"], peek["next_formatted"]) == (
        "2027",
        None,
        1,
        "2027/1",
    )


async def test_deleting_a_reset_sequence_removes_every_periods_counter(api: Api) -> None:
    await api.create(name="r", reset="daily")
    for day in (1, 2, 3):
        api.clock.set(datetime(2026, 3, day, tzinfo=UTC))
        await api.next("r")
    r = await api.client.delete("/v1/sequences/r", headers=api.headers())
    assert r.status_code == 204
    for day in (1, 2, 3):
        assert await stored_counter(api, "acme", f"r/2026-03-0{day}") is None
    await api.create(name="r", reset="daily")
    assert (await api.next("r")).json()["value"] == 1
