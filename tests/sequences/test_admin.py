"""Safe administration: PATCH, advance, peek, validation, on every store backend."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from core.clock import FrozenClock
from core.settings import Settings
from storage import Counter, Store
from tests.sequences.support import Api, running_api, stored_counter

INT64_MAX = 2**63 - 1


@pytest.fixture
async def api(settings: Settings, clock: FrozenClock, store: Store) -> AsyncIterator[Api]:
    async with running_api(settings, clock, store=store) as a:
        yield a


async def patch(api: Api, name: str, tenant: str = "acme", **body: Any) -> httpx.Response:
    return await api.client.patch(f"/v1/sequences/{name}", json=body, headers=api.headers(tenant))


async def advance(api: Api, name: str, to: Any, tenant: str = "acme") -> httpx.Response:
    return await api.client.post(
        f"/v1/sequences/{name}/advance", json={"to": to}, headers=api.headers(tenant)
    )


# -- peek ---------------------------------------------------------------------------


async def test_peek_never_consumes(api: Api) -> None:
    await api.create(name="inv", format="INV-{n:04}")
    await api.next("inv", count=2)
    for _ in range(5):
        peek = await api.peek("inv")
        assert (peek["last"], peek["next"], peek["next_formatted"]) == (2, 3, "INV-0003")
    assert await stored_counter(api, "acme", "inv") == Counter(1, 1, INT64_MAX, 2)
    assert (await api.next("inv")).json()["formatted"] == "INV-0003"


# -- creation continuing an old system ----------------------------------------------


async def test_creating_with_start_continues_from_an_old_system(api: Api) -> None:
    r = await api.create(name="legacy", start=48_213, format="ORD-{n:07}")
    assert (r.json()["next"], r.json()["next_formatted"]) == (48_213, "ORD-0048213")
    assert (await api.next("legacy")).json()["formatted"] == "ORD-0048213"


# -- PATCH ----------------------------------------------------------------------------


async def test_patch_changes_format_bounds_and_cycle(api: Api) -> None:
    await api.create(name="t", max=10)
    await api.next("t", count=2)
    r = await patch(api, "t", format="T-{n:03}", max=20, min=0, cycle=True)
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["format"], body["max"], body["min"], body["cycle"]) == ("T-{n:03}", 20, 0, True)
    assert (body["last"], body["next"], body["next_formatted"]) == (2, 3, "T-003")
    assert (await api.next("t")).json()["formatted"] == "T-003"


async def test_patch_with_null_clears_max_and_format(api: Api) -> None:
    await api.create(name="t", max=2, format="T{n}")
    await api.next("t", count=2)
    assert (await api.next("t")).status_code == 409
    r = await patch(api, "t", max=None, format=None)
    assert (r.json()["max"], r.json()["format"], r.json()["next"]) == (None, None, 3)
    r = await api.next("t")
    assert (r.json()["value"], r.json()["formatted"]) == (3, None)


async def test_patch_changes_only_the_fields_sent(api: Api) -> None:
    await api.create(name="t", start=5, step=2, max=99, format="{n}", cycle=True)
    r = await patch(api, "t", format="X{n}")
    body = r.json()
    assert (body["start"], body["step"], body["max"], body["cycle"]) == (5, 2, 99, True)


async def test_a_new_step_continues_from_the_last_issued_number(api: Api) -> None:
    await api.create(name="t", start=10, step=10)
    assert (await api.next("t", count=3)).json()["last"] == 30
    r = await patch(api, "t", step=1)
    assert (r.json()["step"], r.json()["last"], r.json()["next"]) == (1, 30, 31)
    assert await api.values("t", 2) == [31, 32]
    counter = await stored_counter(api, "acme", "t")
    assert counter == Counter(30, 1, INT64_MAX - 29, 3)


async def test_a_step_change_before_any_number_applies_from_start(api: Api) -> None:
    await api.create(name="t", start=100)
    await patch(api, "t", step=5)
    assert await api.values("t", 3) == [100, 105, 110]


async def test_lowering_max_below_the_last_issued_409s_and_changes_nothing(api: Api) -> None:
    await api.create(name="t", max=100, format="{n}")
    await api.next("t", count=10)
    before = await stored_counter(api, "acme", "t")
    r = await patch(api, "t", max=9, format="N{n}")
    assert r.status_code == 409 and r.json()["type"].endswith("/counter-conflict")
    assert "below 10" in r.json()["detail"]
    assert await stored_counter(api, "acme", "t") == before
    peek = await api.peek("t")
    assert (peek["max"], peek["format"], peek["next"]) == (100, "{n}", 11)


async def test_lowering_max_to_the_last_issued_exhausts_the_sequence(api: Api) -> None:
    await api.create(name="t", max=100)
    await api.next("t", count=10)
    r = await patch(api, "t", max=10)
    assert (r.status_code, r.json()["next"]) == (200, None)
    assert (await api.next("t")).status_code == 409


async def test_raising_max_resumes_an_exhausted_sequence_without_repeats(api: Api) -> None:
    await api.create(name="t", max=3)
    assert await api.values("t", 3) == [1, 2, 3]
    assert (await api.next("t")).status_code == 409
    await patch(api, "t", max=5)
    assert await api.values("t", 2) == [4, 5]
    assert (await api.next("t")).status_code == 409


async def test_patch_of_a_reset_sequence_rebases_only_the_current_period(api: Api) -> None:
    await api.create(name="r", reset="monthly", start=1, step=1)
    api.clock.set(datetime(2026, 1, 31, tzinfo=UTC))
    await api.next("r", count=3)
    api.clock.set(datetime(2026, 2, 1, tzinfo=UTC))
    await api.next("r", count=3)
    january = await stored_counter(api, "acme", "r/2026-01")
    await patch(api, "r", step=10)
    assert await stored_counter(api, "acme", "r/2026-01") == january
    assert await api.values("r", 1) == [13]
    api.clock.set(datetime(2026, 3, 1, tzinfo=UTC))
    assert await api.values("r", 2) == [1, 11]


async def test_a_patch_racing_allocations_never_repeats_a_number(api: Api) -> None:
    await api.create(name="t", step=1)
    nexts = [api.next("t") for _ in range(200)]
    patches = [patch(api, "t", step=s) for s in (3, 7, 2)]
    results = await asyncio.gather(*nexts, *patches)
    assert all(r.status_code == 200 for r in results), [r.text for r in results[-3:]]
    values = [r.json()["value"] for r in results[:200]]
    assert len(set(values)) == 200


async def test_concurrent_patches_of_different_fields_both_apply(api: Api) -> None:
    await api.create(name="t")
    a, b = await asyncio.gather(patch(api, "t", format="A{n}"), patch(api, "t", max=50))
    assert (a.status_code, b.status_code) == (200, 200)
    peek = await api.peek("t")
    assert (peek["format"], peek["max"]) == ("A{n}", 50)


async def test_patch_of_an_unknown_or_another_tenants_sequence_404s(api: Api) -> None:
    await api.create("globex", name="theirs")
    assert (await patch(api, "theirs", max=5)).status_code == 404
    assert (await patch(api, "missing", max=5)).status_code == 404
    assert (await api.peek("theirs", "globex"))["max"] is None


async def test_admin_operations_need_the_write_scope(api: Api) -> None:
    await api.create(name="t")
    weak = api.headers(scopes="sequences:read sequences:next")
    r = await api.client.patch("/v1/sequences/t", json={"max": 5}, headers=weak)
    assert r.status_code == 403
    r = await api.client.post("/v1/sequences/t/advance", json={"to": 5}, headers=weak)
    assert r.status_code == 403
    assert (await api.peek("t"))["max"] is None


# -- advance ----------------------------------------------------------------------------


async def test_advance_makes_to_the_next_number_issued(api: Api) -> None:
    await api.create(name="t", format="T{n}")
    await api.next("t", count=3)
    r = await advance(api, "t", 1000)
    assert r.status_code == 200
    assert (r.json()["next"], r.json()["next_formatted"]) == (1000, "T1000")
    assert await api.values("t", 2) == [1000, 1001]


async def test_advance_on_a_new_sequence_skips_ahead_of_start(api: Api) -> None:
    await api.create(name="t", start=10, step=5)
    assert (await advance(api, "t", 501)).json()["next"] == 501
    assert await api.values("t", 2) == [501, 506]


@pytest.mark.parametrize("to", [1, 3, 5])
async def test_advance_at_or_below_the_highest_issued_409s(api: Api, to: int) -> None:
    await api.create(name="t")
    await api.next("t", count=5)
    r = await advance(api, "t", to)
    assert r.status_code == 409 and r.json()["type"].endswith("/counter-conflict")
    assert "at least 6" in r.json()["detail"]
    assert await stored_counter(api, "acme", "t") == Counter(1, 1, INT64_MAX, 5)
    assert (await api.next("t")).json()["value"] == 6


async def test_advance_never_moves_back_below_a_previous_advance(api: Api) -> None:
    await api.create(name="t")
    await api.next("t")
    await advance(api, "t", 100)
    assert (await advance(api, "t", 50)).status_code == 409
    assert (await api.next("t")).json()["value"] == 100


async def test_advance_to_the_next_number_is_a_no_op(api: Api) -> None:
    await api.create(name="t")
    await api.next("t", count=2)
    before = await stored_counter(api, "acme", "t")
    r = await advance(api, "t", 3)
    assert (r.status_code, r.json()["next"], r.json()["last"]) == (200, 3, 2)
    assert await stored_counter(api, "acme", "t") == before


@pytest.mark.parametrize("to", [1001, -5, 1.5, "20", None])
async def test_advance_outside_the_bounds_or_not_an_integer_422s(api: Api, to: Any) -> None:
    await api.create(name="t", start=10, min=0, max=1000)
    r = await advance(api, "t", to)
    assert r.status_code == 422 and r.headers["content-type"] == "application/problem+json"


async def test_advance_on_an_exhausted_sequence_409s(api: Api) -> None:
    await api.create(name="t", max=2)
    await api.next("t", count=2)
    r = await advance(api, "t", 2)
    assert r.status_code == 409 and "exhausted" in r.json()["detail"]


async def test_advance_within_a_cycling_sequence_counts_from_start_after_the_wrap(
    api: Api,
) -> None:
    await api.create(name="c", start=1, max=10, cycle=True)
    await api.next("c", count=10)  # exhausted: the next number would be 1 again
    assert (await advance(api, "c", 4)).json()["next"] == 4
    assert await api.values("c", 2) == [4, 5]


async def test_advance_of_a_reset_sequence_moves_only_the_current_period(api: Api) -> None:
    await api.create(name="r", reset="yearly")
    api.clock.set(datetime(2026, 7, 1, tzinfo=UTC))
    await advance(api, "r", 500)
    assert (await api.next("r")).json()["value"] == 500
    api.clock.set(datetime(2027, 1, 1, tzinfo=UTC))
    assert (await api.next("r")).json()["value"] == 1


async def test_advance_racing_allocations_never_repeats_a_number(api: Api) -> None:
    await api.create(name="t")
    nexts = [api.next("t") for _ in range(200)]
    results = await asyncio.gather(*nexts, advance(api, "t", 150))
    advanced = results[-1]
    values = [r.json()["value"] for r in results[:-1]]
    assert len(set(values)) == 200
    below, above = sorted(v for v in values if v < 150), sorted(v for v in values if v >= 150)
    assert below == list(range(1, len(below) + 1))
    if advanced.status_code == 200:  # from then on, numbers continue at 150
        assert above == list(range(150, 150 + len(above)))
    else:  # 150 or more numbers were issued before the advance ran
        assert advanced.status_code == 409 and len(below) == 149


# -- validation -------------------------------------------------------------------------


INVALID_SETTINGS: list[tuple[dict[str, Any], str]] = [
    ({"format": "INV-{yyyy}"}, "format"),
    ({"format": "{n}{n}"}, "format"),
    ({"format": "{n:6}"}, "format"),
    ({"format": "{q}{n}"}, "format"),
    ({"format": "{n"}, "format"),
    ({"format": 12}, "format"),
    ({"min": 10, "max": 5}, "min must not be greater than max"),
    ({"step": 0}, "step"),
    ({"step": -1}, "step"),
    ({"step": 1.5}, "step"),
    ({"cycle": "yes"}, "cycle"),
]


@pytest.mark.parametrize(("body", "where"), INVALID_SETTINGS)
async def test_invalid_settings_at_creation_422(api: Api, body: dict[str, Any], where: str) -> None:
    r = await api.create(name="t", **body)
    assert r.status_code == 422 and r.headers["content-type"] == "application/problem+json"
    assert where in r.json()["detail"]


@pytest.mark.parametrize("reset", ["weekly", "Yearly", "", None, 1])
async def test_unknown_reset_values_422(api: Api, reset: Any) -> None:
    r = await api.create(name="t", reset=reset)
    assert r.status_code == 422 and "reset" in r.json()["detail"]


@pytest.mark.parametrize(("body", "where"), INVALID_SETTINGS)
async def test_invalid_settings_in_a_patch_422_and_change_nothing(
    api: Api, body: dict[str, Any], where: str
) -> None:
    await api.create(name="t", format="{n}", max=100)
    r = await patch(api, "t", **body)
    assert r.status_code == 422 and r.headers["content-type"] == "application/problem+json"
    assert where in r.json()["detail"]
    peek = await api.peek("t")
    assert (peek["format"], peek["max"], peek["step"], peek["min"]) == ("{n}", 100, 1, None)


@pytest.mark.parametrize(
    ("created", "body", "where"),
    [
        ({"max": 100}, {"min": 101}, "min must not be greater than max"),
        ({"start": 50}, {"max": 49}, "start must not be greater than max"),
        ({"start": 50}, {"min": 51}, "start must not be less than min"),
        ({}, {"step": None}, "step cannot be null"),
        ({}, {"cycle": None}, "cycle cannot be null"),
        ({}, {"reset": "daily"}, "reset"),
        ({}, {"start": 5}, "start"),
        ({}, {"mode": "cached"}, "mode"),
    ],
)
async def test_a_patch_is_validated_against_the_whole_resulting_sequence(
    api: Api, created: dict[str, Any], body: dict[str, Any], where: str
) -> None:
    await api.create(name="t", **created)
    r = await patch(api, "t", **body)
    assert r.status_code == 422 and where in r.json()["detail"], r.text
