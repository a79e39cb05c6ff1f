"""Idempotency-Key on the write API: replays, refusals, tenants, restarts, expiry."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from starlette.requests import Request

from core.clock import FrozenClock
from core.settings import Settings
from idempotency.dependencies import fingerprint
from idempotency.service import LEASE_SECONDS, SWEEP_SECONDS
from storage import Store, StoreUnavailable
from tests.sequences.support import Api, running_api


@pytest.fixture
def now_clock() -> FrozenClock:
    # The real present: MongoDB's (and mongomock's) TTL index expires by the wall clock.
    return FrozenClock(datetime.now(UTC).replace(microsecond=0))


@pytest.fixture
async def api(settings: Settings, now_clock: FrozenClock, store: Store) -> AsyncIterator[Api]:
    async with running_api(settings, now_clock, store=store) as running:
        yield running


async def post(
    api: Api, path: str, key: str | None, body: Any = None, tenant: str = "acme"
) -> httpx.Response:
    headers = api.headers(tenant)
    if key is not None:
        headers["Idempotency-Key"] = key
    return await api.client.post(path, json=body, headers=headers)


async def held_first_next(api: Api, key: str) -> tuple[asyncio.Task[httpx.Response], asyncio.Event]:
    """A keyed next that holds its key until the returned event is set (it waits before
    allocating), started and holding it: the second of the same key gets 409 meanwhile."""
    service = api.app.state.sequences
    release = asyncio.Event()
    real_next = service.next

    async def slow_next(*args: Any, **kwargs: Any) -> Any:
        await release.wait()
        service.next = real_next
        return await real_next(*args, **kwargs)

    service.next = slow_next
    first = asyncio.create_task(post(api, "/v1/sequences/inv/next", key))
    for _ in range(100):  # until the first request holds the key
        await asyncio.sleep(0.01)
        second = await post(api, "/v1/sequences/inv/next", key)
        if second.status_code == 409:
            return first, release
    raise AssertionError(f"the first request never held the key: {second.status_code}")


async def test_a_replayed_next_answers_the_same_numbers_and_consumes_nothing(api: Api) -> None:
    await api.create(name="inv", format="INV-{n:04}")
    first = await post(api, "/v1/sequences/inv/next", "order-17", {"count": 3})
    assert first.status_code == 200 and "idempotent-replayed" not in first.headers
    again = await post(api, "/v1/sequences/inv/next", "order-17", {"count": 3})
    assert again.status_code == 200
    assert again.headers["idempotent-replayed"] == "true"
    assert again.content == first.content
    assert again.json()["formatted_range"] == ["INV-0001", "INV-0002", "INV-0003"]
    assert (await api.peek("inv"))["next"] == 4  # nothing more was taken
    other = await post(api, "/v1/sequences/inv/next", "order-18", {"count": 3})
    assert other.json()["value"] == 4


async def test_the_same_key_with_another_body_or_path_is_a_422(api: Api) -> None:
    await api.create(name="inv")
    await api.create(name="other")
    assert (await post(api, "/v1/sequences/inv/next", "k", {"count": 2})).status_code == 200
    for path, body in [
        ("/v1/sequences/inv/next", {"count": 3}),
        ("/v1/sequences/other/next", {"count": 2}),
    ]:
        r = await post(api, path, "k", body)
        assert r.status_code == 422
        assert r.headers["content-type"] == "application/problem+json"
        assert r.json()["type"] == "/problems/idempotency-key-reused"
    # Spacing and key order are not a different body.
    h = {**api.headers(), "Idempotency-Key": "k", "Content-Type": "application/json"}
    r = await api.client.post("/v1/sequences/inv/next", content=b'{ "count" : 2 }', headers=h)
    assert r.status_code == 200 and r.headers["idempotent-replayed"] == "true"
    assert (await api.peek("inv"))["next"] == 3
    assert (await api.peek("other"))["next"] == 1


async def test_a_retry_while_the_first_is_running_is_a_409(api: Api) -> None:
    await api.create(name="inv")
    first, release = await held_first_next(api, "k")
    second = await post(api, "/v1/sequences/inv/next", "k")
    assert second.status_code == 409
    assert second.json()["type"] == "/problems/idempotency-in-flight"
    assert second.headers["retry-after"] == "1"
    release.set()
    assert (await first).json()["value"] == 1
    third = await post(api, "/v1/sequences/inv/next", "k")
    assert third.json()["value"] == 1 and third.headers["idempotent-replayed"] == "true"
    assert (await api.peek("inv"))["next"] == 2


async def test_keys_of_two_tenants_are_independent(api: Api) -> None:
    for tenant in ("acme", "globex"):
        await api.create(tenant, name="inv")
    await post(api, "/v1/sequences/inv/next", "k", {"count": 5}, tenant="acme")
    theirs = await post(api, "/v1/sequences/inv/next", "k", {"count": 2}, tenant="globex")
    assert theirs.status_code == 200 and "idempotent-replayed" not in theirs.headers
    assert (theirs.json()["value"], theirs.json()["last"]) == (1, 2)


@pytest.mark.parametrize(
    "key",
    ["", "x" * 256, "tab\there", "caf\u00e9", "new\nline"],
    ids=["empty", "long", "tab", "latin1", "nl"],
)
async def test_a_malformed_key_is_a_400_and_takes_nothing(api: Api, key: str) -> None:
    await api.create(name="inv")
    headers: list[tuple[str, str | bytes]] = [*api.headers().items()]
    headers.append(("Idempotency-Key", key.encode("latin-1")))
    try:
        r = await api.client.post("/v1/sequences/inv/next", headers=headers)
    except httpx.LocalProtocolError:
        return  # httpx itself refuses a header with a newline: it cannot reach us
    assert r.status_code == 400, r.text
    assert r.json()["type"] == "/problems/invalid-idempotency-key"
    assert (await api.peek("inv"))["next"] == 1


async def test_two_keys_in_one_request_are_a_400(api: Api) -> None:
    await api.create(name="inv")
    headers = [*api.headers().items(), ("Idempotency-Key", "a"), ("Idempotency-Key", "b")]
    r = await api.client.post("/v1/sequences/inv/next", headers=headers)
    assert r.status_code == 400


async def test_the_longest_key_works(api: Api) -> None:
    await api.create(name="inv")
    key = "~ !" + "x" * 252
    assert (await post(api, "/v1/sequences/inv/next", key)).status_code == 200
    assert (await post(api, "/v1/sequences/inv/next", key)).headers["idempotent-replayed"] == "true"


async def test_a_failed_request_is_not_stored_and_its_retry_runs_again(api: Api) -> None:
    missing = await post(api, "/v1/sequences/inv/next", "k")
    assert missing.status_code == 404
    await api.create(name="inv")
    retry = await post(api, "/v1/sequences/inv/next", "k")
    assert retry.status_code == 200 and "idempotent-replayed" not in retry.headers


async def test_creating_a_sequence_twice_with_a_key_creates_it_once(api: Api) -> None:
    body = {"name": "inv", "format": "I-{n}"}
    first = await post(api, "/v1/sequences", "create-inv", body)
    assert first.status_code == 201
    again = await post(api, "/v1/sequences", "create-inv", body)
    assert again.status_code == 201 and again.headers["idempotent-replayed"] == "true"
    assert again.content == first.content
    other = await post(api, "/v1/sequences", "create-inv", {"name": "inv2"})
    assert other.status_code == 422
    trail = await api.client.get("/v1/audit", headers=api.headers())
    assert [e["action"] for e in trail.json()["items"]] == ["sequence.created"]


async def test_an_expired_key_is_a_new_request(api: Api, now_clock: FrozenClock) -> None:
    await api.create(name="inv")
    await post(api, "/v1/sequences/inv/next", "k")
    now_clock.advance(api.settings.idempotency_ttl_seconds)
    r = await post(api, "/v1/sequences/inv/next", "k")
    assert r.json()["value"] == 2 and "idempotent-replayed" not in r.headers


async def test_a_claim_left_by_a_dead_process_is_taken_over_after_its_lease(
    api: Api, now_clock: FrozenClock
) -> None:
    await api.create(name="inv")
    # What a process killed mid-request leaves: a claim, no response.
    scope = {"type": "http", "method": "POST", "path": "/v1/sequences/inv/next", "headers": []}
    claim = await api.app.state.idempotency.begin("acme", "k", fingerprint(Request(scope), b""))
    assert claim.key == "k"
    assert (await post(api, "/v1/sequences/inv/next", "k")).status_code == 409
    now_clock.advance(LEASE_SECONDS + 1)
    r = await post(api, "/v1/sequences/inv/next", "k")
    assert r.status_code == 200 and r.json()["value"] == 1
    assert (await post(api, "/v1/sequences/inv/next", "k")).headers["idempotent-replayed"] == "true"


async def test_a_request_without_the_header_makes_no_idempotency_write(api: Api) -> None:
    await api.create(name="inv")
    calls: list[str] = []
    store = api.store
    for name in ("claim_idempotency", "complete_idempotency", "release_idempotency"):
        real = getattr(store, name)

        async def spy(*args: Any, _real: Any = real, _name: str = name, **kwargs: Any) -> Any:
            calls.append(_name)
            return await _real(*args, **kwargs)

        setattr(store, name, spy)
    await post(api, "/v1/sequences/inv/next", None)
    await post(api, "/v1/sequences", None, {"name": "more"})
    assert calls == []
    await post(api, "/v1/sequences/inv/next", "k")
    assert calls == ["claim_idempotency", "complete_idempotency"]


async def test_a_replay_after_a_restart_answers_the_first_response(
    settings: Settings, now_clock: FrozenClock
) -> None:
    async with running_api(settings, now_clock) as api:
        await api.create(name="inv")
        first = await post(api, "/v1/sequences/inv/next", "k", {"count": 2})
    async with running_api(settings, now_clock) as api:  # a new process, the same file
        again = await post(api, "/v1/sequences/inv/next", "k", {"count": 2})
        assert again.headers["idempotent-replayed"] == "true"
        assert again.content == first.content
        assert (await api.peek("inv"))["next"] == 3


async def test_sqlite_sweeps_expired_keys(settings: Settings, now_clock: FrozenClock) -> None:
    async with running_api(settings, now_clock) as api:
        await api.create(name="inv")
        await post(api, "/v1/sequences/inv/next", "old")
        now_clock.advance(max(SWEEP_SECONDS, api.settings.idempotency_ttl_seconds) + 1)
        await post(api, "/v1/sequences/inv/next", "new")  # due: starts a sweep
        await api.app.state.idempotency.close()
        rows = await api.store._reader.run(  # type: ignore[attr-defined]
            lambda c: c.execute("SELECT key FROM idempotency ORDER BY key").fetchall()
        )
        assert rows == [("new",)]


async def test_advance_patch_and_delete_with_a_key_are_done_once_and_replayed(api: Api) -> None:
    """Every write that changes something takes a key (README): a retried advance is not
    refused because numbers were taken since, a retried DELETE is not a 404, and the key
    with another body is refused."""
    await api.create(name="inv")
    h = {**api.headers(), "Idempotency-Key": "adv-1"}
    first = await api.client.post("/v1/sequences/inv/advance", json={"to": 100}, headers=h)
    assert first.status_code == 200 and first.json()["next"] == 100
    assert (await api.next("inv")).json()["value"] == 100  # taken since: next is 101
    again = await api.client.post("/v1/sequences/inv/advance", json={"to": 100}, headers=h)
    assert again.status_code == 200 and again.headers["idempotent-replayed"] == "true"
    assert again.content == first.content
    other = await api.client.post("/v1/sequences/inv/advance", json={"to": 500}, headers=h)
    assert other.status_code == 422 and other.json()["type"] == "/problems/idempotency-key-reused"
    assert (await api.peek("inv"))["next"] == 101

    h = {**api.headers(), "Idempotency-Key": "patch-1"}
    first = await api.client.patch("/v1/sequences/inv", json={"max": 1000}, headers=h)
    assert first.status_code == 200 and first.json()["max"] == 1000
    again = await api.client.patch("/v1/sequences/inv", json={"max": 1000}, headers=h)
    assert again.headers["idempotent-replayed"] == "true" and again.content == first.content
    other = await api.client.patch("/v1/sequences/inv", json={"max": 5000}, headers=h)
    assert other.status_code == 422
    assert (await api.peek("inv"))["max"] == 1000

    h = {**api.headers(), "Idempotency-Key": "delete-1"}
    gone = await api.client.delete("/v1/sequences/inv", headers=h)
    assert gone.status_code == 204
    again = await api.client.delete("/v1/sequences/inv", headers=h)
    assert again.status_code == 204 and again.headers["idempotent-replayed"] == "true"
    unkeyed = await api.client.delete("/v1/sequences/inv", headers=api.headers())
    assert unkeyed.status_code == 404


async def test_a_request_running_past_its_lease_keeps_its_claim(
    api: Api, now_clock: FrozenClock
) -> None:
    """The claim is renewed while its request runs: a retry after LEASE_SECONDS of a
    slow first attempt is still a 409, not a take-over that takes numbers twice."""
    await api.create(name="inv")
    api.app.state.idempotency.renew_seconds = 0.05
    first, release = await held_first_next(api, "k")
    now_clock.advance(LEASE_SECONDS + 1)  # the first lease has run out
    await asyncio.sleep(0.3)  # renewals, on the clock's present
    retry = await asyncio.wait_for(post(api, "/v1/sequences/inv/next", "k"), 5)
    assert retry.status_code == 409 and retry.json()["type"] == "/problems/idempotency-in-flight"
    release.set()
    assert (await first).json()["value"] == 1
    again = await post(api, "/v1/sequences/inv/next", "k")
    assert again.json()["value"] == 1 and again.headers["idempotent-replayed"] == "true"
    assert (await api.peek("inv"))["next"] == 2


async def test_a_keyed_next_that_fails_after_its_numbers_were_taken_answers_them_on_retry(
    api: Api, store: Store
) -> None:
    """The increment landed (with the key's note, in its transaction or its counter's
    journal) and then a later step failed: the 503 is not the last word, the retry
    answers those numbers at once and takes no new ones."""
    if not getattr(store, "atomic_riders", False):
        pytest.skip(f"the {store.kind} store cannot note the numbers on the key with them")
    await api.create(name="inv")
    # MongoDB: copying the journal's note onto the key fails, once. SQLite (the note is
    # in the increment's own transaction): storing the answer fails, once.
    step = "_settle_journal" if store.kind == "mongodb" else "complete_idempotency"
    real = getattr(store, step)
    calls = 0

    async def fails_once(*args: Any, **kwargs: Any) -> None:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise StoreUnavailable(f"injected: {step} failed")
        await real(*args, **kwargs)

    setattr(store, step, fails_once)
    first = await post(api, "/v1/sequences/inv/next", "order-1", {"count": 2})
    assert first.status_code == 503
    retry = await post(api, "/v1/sequences/inv/next", "order-1", {"count": 2})
    assert retry.status_code == 200, retry.text
    assert (retry.json()["value"], retry.json()["last"]) == (1, 2)
    assert (await api.peek("inv"))["next"] == 3
