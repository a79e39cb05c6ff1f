"""Bounds on every backend: max and exhaustion, cycling, and the 64-bit limit."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from core.clock import FrozenClock
from core.settings import Settings
from storage import Counter, Store
from tests.sequences.support import Api, running_api, stored_counter

INT64_MAX = 2**63 - 1
INT64_MIN = -(2**63) + 1


@pytest.fixture
async def api(settings: Settings, clock: FrozenClock, store: Store) -> AsyncIterator[Api]:
    async with running_api(settings, clock, store=store) as a:
        yield a


async def test_exhaustion_409s_and_leaves_the_counter_unchanged(api: Api) -> None:
    await api.create(name="t", max=3)
    assert await api.values("t", 3) == [1, 2, 3]
    before = await stored_counter(api, "acme", "t")
    for count in (1, 5):
        r = await api.next("t", count=count)
        assert r.status_code == 409
        assert r.headers["content-type"] == "application/problem+json"
        assert r.json()["type"].endswith("/sequence-exhausted")
    assert await stored_counter(api, "acme", "t") == before == Counter(1, 1, 3, 3)
    peek = await api.peek("t")
    assert (peek["last"], peek["next"]) == (3, None)


async def test_a_batch_crossing_max_is_refused_whole(api: Api) -> None:
    await api.create(name="t", start=10, step=5, max=40)  # 10, 15, ..., 40: seven numbers
    assert (await api.next("t", count=5)).json()["last"] == 30
    r = await api.next("t", count=3)
    assert r.status_code == 409 and "2 number(s) left" in r.json()["detail"]
    assert await stored_counter(api, "acme", "t") == Counter(10, 5, 7, 5)
    r = (await api.next("t", count=2)).json()
    assert (r["value"], r["last"]) == (35, 40)


async def test_cycling_wraps_to_start_after_max(api: Api) -> None:
    await api.create(name="c", start=1, max=3, cycle=True)
    assert await api.values("c", 7) == [1, 2, 3, 1, 2, 3, 1]
    peek = await api.peek("c")
    assert (peek["last"], peek["next"]) == (1, 2)


async def test_cycling_wraps_to_start_not_to_min(api: Api) -> None:
    await api.create(name="c", start=5, min=0, max=6, cycle=True)
    assert await api.values("c", 4) == [5, 6, 5, 6]


async def test_a_cycling_batch_that_does_not_fit_the_tail_starts_the_next_cycle(
    api: Api,
) -> None:
    await api.create(name="c", start=1, max=5, cycle=True)
    assert (await api.next("c", count=4)).json()["last"] == 4
    # Only 5 is left in this cycle; a batch of 2 must be contiguous, so it skips 5.
    r = (await api.next("c", count=2)).json()
    assert (r["value"], r["last"]) == (1, 2)
    assert await stored_counter(api, "acme", "c") == Counter(1, 1, 5, 2)


async def test_a_cycling_batch_larger_than_the_whole_cycle_is_refused(api: Api) -> None:
    await api.create(name="c", start=1, max=5, cycle=True)
    await api.next("c")
    r = await api.next("c", count=6)
    assert r.status_code == 409
    assert await stored_counter(api, "acme", "c") == Counter(1, 1, 5, 1)


async def test_the_last_64_bit_numbers_are_issued_exactly_then_refused(api: Api) -> None:
    await api.create(name="big", start=INT64_MAX - 2)
    r = await api.next("big", count=2)
    assert (r.json()["value"], r.json()["last"]) == (INT64_MAX - 2, INT64_MAX - 1)
    assert '"last":9223372036854775806' in r.text  # an exact integer, never a float
    r = await api.next("big", count=2)  # would cross 2^63-1: refused whole
    assert r.status_code == 409 and r.json()["type"].endswith("/sequence-exhausted")
    r = await api.next("big")
    assert r.json()["value"] == INT64_MAX and isinstance(r.json()["value"], int)
    for count in (1, 2):
        assert (await api.next("big", count=count)).status_code == 409
    counter = await stored_counter(api, "acme", "big")
    assert counter == Counter(INT64_MAX - 2, 1, 3, 3)
    peek = await api.peek("big")
    assert (peek["last"], peek["next"]) == (INT64_MAX, None)


async def test_a_large_step_near_the_64_bit_limit_never_overflows(api: Api) -> None:
    step = 1_000_000_000
    await api.create(name="big", start=INT64_MAX - 2 * step, step=step, format="{n:020}")
    r = (await api.next("big", count=3)).json()
    assert (r["value"], r["last"]) == (INT64_MAX - 2 * step, INT64_MAX)
    assert r["formatted_range"][-1] == "09223372036854775807"
    assert (await api.next("big")).status_code == 409


async def test_a_cycling_sequence_at_the_64_bit_limit_wraps_cleanly(api: Api) -> None:
    await api.create(name="c", start=INT64_MAX - 1, cycle=True)
    assert await api.values("c", 5) == [
        INT64_MAX - 1,
        INT64_MAX,
        INT64_MAX - 1,
        INT64_MAX,
        INT64_MAX - 1,
    ]


async def test_the_most_negative_start_fits_a_64_bit_counter(api: Api) -> None:
    await api.create(name="neg", start=INT64_MIN)
    r = (await api.next("neg", count=2)).json()
    assert (r["value"], r["last"]) == (INT64_MIN, INT64_MIN + 1)
    counter = await stored_counter(api, "acme", "neg")
    assert counter is not None and counter.cap == INT64_MAX


@pytest.mark.parametrize(
    "body",
    [
        {"start": 2**63},
        {"max": 2**63},
        {"min": -(2**63) - 1},
        {"start": 1.0},
        {"start": 1e3},
        {"max": "9223372036854775807"},
        {"step": 2**63},
    ],
)
async def test_values_outside_64_bits_or_not_integers_422(
    api: Api, body: dict[str, object]
) -> None:
    r = await api.create(name="x", **body)
    assert r.status_code == 422 and r.headers["content-type"] == "application/problem+json"
    assert (await api.client.get("/v1/sequences/x", headers=api.headers())).status_code == 404


async def test_advancing_to_the_last_64_bit_number_issues_it_once(api: Api) -> None:
    await api.create(name="big")
    r = await api.client.post(
        "/v1/sequences/big/advance", json={"to": INT64_MAX}, headers=api.headers()
    )
    assert r.status_code == 200 and r.json()["next"] == INT64_MAX
    assert (await api.next("big")).json()["value"] == INT64_MAX
    assert (await api.next("big")).status_code == 409
    r = await api.client.post(
        "/v1/sequences/big/advance", json={"to": 2**63}, headers=api.headers()
    )
    assert r.status_code == 422
