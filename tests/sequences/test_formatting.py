"""Number templates: parsing, rendering, and rendering in the tenant's time zone."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest

from core.clock import FrozenClock
from core.settings import Settings
from sequences.formatting import TemplateError, parse
from storage import Store
from tests.sequences.support import Api, running_api

AT = datetime(2026, 3, 7, 9, 5, tzinfo=UTC)


@pytest.mark.parametrize(
    ("template", "number", "expected"),
    [
        ("{n}", 42, "42"),
        ("INV-{yyyy}-{n:06}", 123, "INV-2026-000123"),
        ("{yy}{mm}{dd}/{n:04}", 7, "260307/0007"),
        ("W{gggg}-{ww}-{n}", 1, "W2026-10-1"),
        ("D{ddd}.{n:03}", 9, "D066.009"),
        ("{{literal}} {n} }}", 5, "{literal} 5 }"),
        ("{n:01}", 12345, "12345"),  # a width never truncates
        ("{n:00}", 3, "3"),
        ("{n:020}", 2**63 - 1, "09223372036854775807"),
        ("N{n:05}", -42, "N-0042"),
        ("ticket #{n} ✓", 3, "ticket #3 ✓"),
    ],
)
def test_templates_render_as_documented(template: str, number: int, expected: str) -> None:
    assert parse(template).render(number, AT) == expected


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ("INV-{yyyy}", "exactly once"),
        ("{n}-{n}", "exactly once"),
        ("{n:6}", "unknown token"),
        ("{n:021}", "at most 20"),
        ("{nn}", "unknown token"),
        ("{YYYY}-{n}", "unknown token"),
        ("{}{n}", "unknown token"),
        ("{n", "unbalanced"),
        ("n}", "unbalanced"),
        ("{n}\n", "control characters"),
        ("x" * 129 + "{n}", "longer than"),
    ],
)
def test_invalid_templates_are_refused_with_a_reason(template: str, message: str) -> None:
    with pytest.raises(TemplateError, match=message):
        parse(template)


@pytest.mark.parametrize(
    ("day", "expected"),
    [
        # ISO weeks: 1 Jan 2027 is a Friday, still week 53 of ISO year 2026.
        (datetime(2026, 12, 31), "2026 2026-W53 365"),
        (datetime(2027, 1, 1), "2027 2026-W53 001"),
        (datetime(2027, 1, 4), "2027 2027-W01 004"),
        (datetime(2024, 12, 31), "2024 2025-W01 366"),
    ],
)
def test_iso_week_tokens_follow_iso_8601(day: datetime, expected: str) -> None:
    template = parse("{yyyy} {gggg}-W{ww} {ddd} {n}")
    assert template.render(1, day.replace(tzinfo=UTC)) == f"{expected} 1"


@pytest.fixture
async def api(settings: Settings, clock: FrozenClock, store: Store) -> AsyncIterator[Api]:
    tz = {"kiwi": "Pacific/Auckland", "angeleno": "America/Los_Angeles"}
    async with running_api(settings, clock, store=store, tz=tz) as a:
        yield a


async def test_two_tenants_at_the_same_utc_instant_format_their_own_local_date(
    api: Api,
) -> None:
    fmt = "{yyyy}-{mm}-{dd} W{ww} D{ddd} #{n:03}"
    for tenant in ("kiwi", "angeleno", "utc-co"):
        assert (await api.create(tenant, name="inv", format=fmt)).status_code == 201
    # 11:30 UTC on 31 Dec 2026: already 00:30 on 1 Jan 2027 in Auckland (UTC+13),
    # still 03:30 on 31 Dec in Los Angeles (UTC-8).
    api.clock.set(datetime(2026, 12, 31, 11, 30, tzinfo=UTC))
    kiwi = (await api.next("inv", "kiwi")).json()
    angeleno = (await api.next("inv", "angeleno")).json()
    utc = (await api.next("inv", "utc-co")).json()
    assert kiwi["formatted"] == "2027-01-01 W53 D001 #001"
    assert angeleno["formatted"] == "2026-12-31 W53 D365 #001"
    assert utc["formatted"] == "2026-12-31 W53 D365 #001"


async def test_a_yearly_sequence_is_in_a_new_year_in_auckland_but_not_in_los_angeles(
    api: Api,
) -> None:
    for tenant in ("kiwi", "angeleno"):
        await api.create(tenant, name="inv", format="INV-{yyyy}-{n:04}", reset="yearly")
    api.clock.set(datetime(2026, 12, 31, 10, 59, 59, tzinfo=UTC))  # 23:59:59 in Auckland
    assert (await api.next("inv", "kiwi")).json()["formatted"] == "INV-2026-0001"
    assert (await api.next("inv", "angeleno")).json()["formatted"] == "INV-2026-0001"
    api.clock.set(datetime(2026, 12, 31, 11, 0, tzinfo=UTC))  # midnight in Auckland
    kiwi = (await api.next("inv", "kiwi")).json()
    assert (kiwi["formatted"], kiwi["period"]) == ("INV-2027-0001", "2027")
    angeleno = (await api.next("inv", "angeleno")).json()
    assert (angeleno["formatted"], angeleno["period"]) == ("INV-2026-0002", "2026")
    api.clock.set(datetime(2027, 1, 1, 7, 59, 59, tzinfo=UTC))  # 23:59:59 in Los Angeles
    assert (await api.next("inv", "angeleno")).json()["formatted"] == "INV-2026-0003"
    api.clock.set(datetime(2027, 1, 1, 8, 0, tzinfo=UTC))  # midnight in Los Angeles
    assert (await api.next("inv", "angeleno")).json()["formatted"] == "INV-2027-0001"
    assert (await api.next("inv", "kiwi")).json()["formatted"] == "INV-2027-0002"


async def test_dates_follow_daylight_saving_in_the_tenants_zone(api: Api) -> None:
    await api.create("kiwi", name="day", format="{dd}/{mm} {n}", reset="daily")
    # Auckland leaves daylight saving at 03:00 NZDT on 5 Apr 2026 (UTC+13 -> UTC+12).
    api.clock.set(datetime(2026, 4, 4, 11, 30, tzinfo=UTC))  # 00:30 NZDT, 5 Apr
    assert (await api.next("day", "kiwi")).json()["formatted"] == "05/04 1"
    api.clock.set(datetime(2026, 4, 5, 11, 30, tzinfo=UTC))  # 23:30 NZST, still 5 Apr
    assert (await api.next("day", "kiwi")).json()["formatted"] == "05/04 2"
    api.clock.set(datetime(2026, 4, 5, 12, 0, tzinfo=UTC))  # 00:00 NZST, 6 Apr
    assert (await api.next("day", "kiwi")).json()["formatted"] == "06/04 1"


async def test_a_batch_formats_every_number_up_to_the_documented_limit(api: Api) -> None:
    await api.create(name="inv", format="INV-{yyyy}-{n:04}", start=998)
    api.clock.set(datetime(2026, 6, 1, tzinfo=UTC))
    one = (await api.next("inv")).json()
    assert (one["formatted"], one["formatted_range"]) == ("INV-2026-0998", ["INV-2026-0998"])
    three = (await api.next("inv", count=3)).json()
    assert three["formatted_range"] == ["INV-2026-0999", "INV-2026-1000", "INV-2026-1001"]
    full = (await api.next("inv", count=1000)).json()
    assert len(full["formatted_range"]) == 1000 and full["formatted_range"][-1] == "INV-2026-2001"
    big = (await api.next("inv", count=1001)).json()
    assert big["formatted"] == "INV-2026-2002" and big["formatted_range"] is None


async def test_a_stepped_batch_formats_each_stepped_number(api: Api) -> None:
    await api.create(name="odd", format="O{n}", start=1, step=2)
    r = (await api.next("odd", count=3)).json()
    assert r["formatted_range"] == ["O1", "O3", "O5"]


async def test_peek_shows_the_next_formatted_value_in_the_tenants_zone(api: Api) -> None:
    await api.create("kiwi", name="inv", format="{yyyy}{mm}{dd}-{n}")
    api.clock.set(datetime(2026, 12, 31, 11, 30, tzinfo=UTC))
    peek = await api.peek("inv", "kiwi")
    assert (peek["next"], peek["next_formatted"]) == (1, "20270101-1")
