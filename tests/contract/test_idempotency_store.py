"""The idempotency-key contract, on every backend."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from storage import IdempotencyRecord, Store
from tests.contract.test_tenant_store import make_tenant

# The real present: MongoDB's TTL index (and mongomock's) deletes by the wall clock.
NOW = datetime.now(UTC).replace(microsecond=0)


def claim(key: str = "k-1", at: datetime = NOW, fingerprint: str = "fp") -> IdempotencyRecord:
    return IdempotencyRecord(
        key=key,
        fingerprint=fingerprint,
        created_at=at,
        expires_at=at + timedelta(hours=24),
        locked_until=at + timedelta(seconds=60),
    )


async def test_first_claim_wins_and_the_second_sees_it(store: Store) -> None:
    assert await store.claim_idempotency("acme", claim()) is None
    held = await store.claim_idempotency("acme", claim(fingerprint="other"))
    assert held is not None and held.fingerprint == "fp" and not held.completed
    assert held.locked_until == NOW + timedelta(seconds=60)
    assert held.allocation is None


async def test_keys_are_scoped_by_tenant(store: Store) -> None:
    assert await store.claim_idempotency("acme", claim()) is None
    assert await store.claim_idempotency("globex", claim(fingerprint="theirs")) is None
    mine = await store.claim_idempotency("acme", claim(fingerprint="x"))
    assert mine is not None and mine.fingerprint == "fp"


async def test_completed_response_round_trips(store: Store) -> None:
    await store.claim_idempotency("acme", claim("a/b c"))
    body = b'{"value": 1}\xff'
    await store.complete_idempotency(
        "acme", "a/b c", status=201, body=body, content_type="application/json"
    )
    got = await store.claim_idempotency("acme", claim("a/b c"))
    assert got is not None and got.completed
    assert (got.status, got.body, got.content_type) == (201, body, "application/json")


async def test_release_forgets_only_an_uncompleted_claim(store: Store) -> None:
    await store.claim_idempotency("acme", claim("open"))
    await store.release_idempotency("acme", "open")
    assert await store.claim_idempotency("acme", claim("open")) is None
    await store.complete_idempotency("acme", "open", status=200, body=b"{}", content_type="x")
    await store.release_idempotency("acme", "open")
    kept = await store.claim_idempotency("acme", claim("open"))
    assert kept is not None and kept.completed


async def test_relock_is_compare_and_set_on_an_open_claim(store: Store) -> None:
    await store.claim_idempotency("acme", claim())
    held = await store.claim_idempotency("acme", claim())
    assert held is not None
    later = NOW + timedelta(minutes=5)
    assert await store.relock_idempotency(
        "acme", "k-1", expected=held.locked_until, locked_until=later
    )
    assert not await store.relock_idempotency(
        "acme", "k-1", expected=held.locked_until, locked_until=later
    )
    again = await store.claim_idempotency("acme", claim())
    assert again is not None and again.locked_until == later
    await store.complete_idempotency("acme", "k-1", status=200, body=b"", content_type="x")
    assert not await store.relock_idempotency(
        "acme", "k-1", expected=later, locked_until=later + timedelta(seconds=1)
    )


async def test_an_expired_record_is_absent_and_swept(store: Store) -> None:
    await store.claim_idempotency("acme", claim("old"))
    await store.claim_idempotency("acme", claim("new", at=NOW + timedelta(hours=23)))
    day_later = NOW + timedelta(hours=24)
    # Expired at exactly its expires_at: a new claim replaces it.
    assert (
        await store.claim_idempotency("acme", claim("old", at=day_later, fingerprint="2")) is None
    )
    replaced = await store.claim_idempotency("acme", claim("old", at=day_later))
    assert replaced is not None and replaced.fingerprint == "2"
    assert await store.sweep_idempotency(NOW + timedelta(hours=47, minutes=30)) == 1
    assert await store.claim_idempotency("acme", claim("new", at=NOW + timedelta(hours=48))) is None
    assert await store.claim_idempotency("acme", claim("old", at=day_later)) is not None


async def test_deleting_a_tenant_with_data_drops_its_keys(store: Store) -> None:
    await store.create_tenant("acme", make_tenant("acme"))
    await store.claim_idempotency("acme", claim())
    await store.claim_idempotency("globex", claim())
    assert await store.delete_tenant("acme")
    assert await store.claim_idempotency("acme", claim(fingerprint="new")) is None
    assert await store.claim_idempotency("globex", claim()) is not None
