"""What only the Bigtable backend has: its URL, deadlines, stale cell versions, and
increments whose outcome is unknown. Against Google's emulator (tests/bigtable_emulator.py).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from google.api_core import exceptions as gexc
from google.cloud.bigtable.data import SetCell
from google.cloud.bigtable.data.read_modify_write_rules import IncrementRule

from api.app import create_app
from core.settings import Settings, SettingsError, load_settings
from storage import Counter, StoreUnavailable, open_store
from storage.bigtable import BigtableStore
from storage.bigtable_rows import COUNTS, RECORDS, BigtableURL, i64, key, parse_url
from tests.bigtable_emulator import emulator
from tests.conftest import app_token, bearer
from tests.contract.test_store import make_record

pytestmark = pytest.mark.bigtable


def test_url_names_project_instance_and_options() -> None:
    url = parse_url("bigtable://my-project/tally-prod?app_profile=tally-rw&table_prefix=eu_")
    assert url == BigtableURL("my-project", "tally-prod", "tally-rw", "eu_")
    assert url.table == "eu_tally"
    assert parse_url("bigtable://p-123456/inst-1") == BigtableURL("p-123456", "inst-1")


@pytest.mark.parametrize(
    "url",
    [
        "bigtable://only-project",
        "bigtable://p/i/extra",
        "bigtable://p/i?profile=x",
        "bigtable://p/i?table_prefix=a%23b",
    ],
)
def test_a_malformed_url_is_refused_with_a_reason(url: str) -> None:
    with pytest.raises(ValueError, match=r"bigtable://|option|table_prefix"):
        parse_url(url)


def test_settings_select_bigtable_and_refuse_a_bad_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TALLY_STORE_URL", "bigtable://my-project/tally-prod?app_profile=rw")
    settings = load_settings()
    assert settings.store_kind == "bigtable"
    store = open_store(settings)
    assert isinstance(store, BigtableStore) and store.url.app_profile == "rw"
    assert store.timeout == 5.0
    monkeypatch.setenv("TALLY_STORE_URL", "bigtable://my-project")
    with pytest.raises(SettingsError, match=r"TALLY_STORE_URL.*bigtable://PROJECT/INSTANCE"):
        load_settings()


@pytest.fixture
def own_emulator(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """An emulator of this test's own, so the test may stop it."""
    ctx = emulator(tmp_path)
    host = ctx.__enter__()
    monkeypatch.setenv("BIGTABLE_EMULATOR_HOST", host)
    state = {"ctx": ctx, "stopped": False}

    def stop() -> None:
        if not state["stopped"]:
            state["stopped"] = True
            ctx.__exit__(None, None, None)

    yield stop
    stop()


@pytest.fixture
async def bt_store(bigtable_host: str) -> AsyncIterator[BigtableStore]:
    store = BigtableStore(BigtableURL("tally-test", "tally", None, f"x{uuid.uuid4().hex[:10]}_"))
    await store.start()
    try:
        yield store
    finally:
        await store.close()


async def test_start_without_a_service_is_store_unavailable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with __import__("socket").socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("BIGTABLE_EMULATOR_HOST", f"127.0.0.1:{port}")  # nothing listens
    store = BigtableStore(BigtableURL("p-test", "i-test"), timeout=0.5)
    with pytest.raises(StoreUnavailable):
        await store.start()
    await store.close()


async def test_start_creates_the_table_once_and_again_is_harmless(bt_store: BigtableStore) -> None:
    await bt_store.start()  # a second process starting against the same table
    await bt_store.create_sequence("acme", make_record())
    again = BigtableStore(bt_store.url)
    await again.start()
    try:
        assert await again.get_sequence("acme", "invoices") is not None
    finally:
        await again.close()


async def test_a_closed_store_refuses_every_call_as_not_started(bigtable_host: str) -> None:
    store = BigtableStore(BigtableURL("tally-test", "tally", None, f"x{uuid.uuid4().hex[:10]}_"))
    await store.start()
    await store.close()
    now = datetime.now(UTC)
    calls = [
        store.get_sequence("acme", "invoices"),
        store.read_counter("acme", "invoices"),
        store.release_idempotency("acme", "k-1"),
        store.sweep_idempotency(now),
    ]
    for call in calls:
        with pytest.raises(StoreUnavailable, match="not started"):
            await call


async def test_a_lost_emulator_answers_503_with_retry_after(
    own_emulator: Any, settings: Settings
) -> None:
    store = BigtableStore(BigtableURL("p-test", "i-test"), timeout=1.0)
    await store.start()
    app = create_app(settings, store=store)
    try:
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
                h = bearer(app_token(app))
                r = await c.post("/v1/sequences", json={"name": "invoices"}, headers=h)
                assert r.status_code == 201, r.text
                r = await c.post("/v1/sequences/invoices/next", headers=h)
                assert r.json()["value"] == 1
                own_emulator()
                ready = await c.get("/readyz")
                nxt = await c.post("/v1/sequences/invoices/next", headers=h)
    finally:
        await store.close()
    for r in (ready, nxt):
        assert r.status_code == 503, r.text
        assert r.headers["content-type"] == "application/problem+json"
        assert int(r.headers["retry-after"]) >= 1


async def test_predicates_see_only_the_newest_cell(bt_store: BigtableStore) -> None:
    # Versions a later write replaced stay readable until garbage collection: a
    # compare-and-set must not match them.
    await bt_store.create_sequence("acme", make_record())
    record = await bt_store.get_sequence("acme", "invoices")
    assert record is not None
    row = key("acme", "seq", "invoices")
    # An older version of the revision cell, as a write from another client left it.
    await bt_store.table.mutate_row(row, SetCell(RECORDS, b"rev", i64(7), timestamp_micros=1000))
    bumped = type(record)("invoices", record.config, record.created_at, record.updated_at, 8)
    assert not await bt_store.update_sequence("acme", bumped, expected_revision=7)
    assert await bt_store.update_sequence("acme", bumped, expected_revision=1)

    await bt_store.create_sequence("acme", make_record("k"))
    shape = Counter(1, 1, 100)
    assert await bt_store.allocate("acme", "k", "k", shape, 5) == 5
    ctr = key("acme", "ctr", "k")
    await bt_store.table.mutate_row(ctr, SetCell(COUNTS, b"t", i64(2), timestamp_micros=1000))
    assert not await bt_store.replace_counter("acme", "k", "k", Counter(1, 1, 100, 2), shape)
    assert await bt_store.read_counter("acme", "k") == Counter(1, 1, 100, 5)


async def test_an_increment_of_unknown_outcome_is_503_and_a_gap_never_a_duplicate(
    bt_store: BigtableStore,
) -> None:
    gapic = bt_store.table.client._gapic_client
    real = gapic.read_modify_write_row
    calls = []

    async def applied_then_lost(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        await real(*args, **kwargs)  # the service applied it; the answer never came back
        raise gexc.DeadlineExceeded("deadline passed")

    await bt_store.create_sequence("acme", make_record("k"))
    shape = Counter(1, 1, 1000)
    assert await bt_store.allocate("acme", "k", "k", shape, 3) == 3
    gapic.read_modify_write_row = applied_then_lost
    try:
        with pytest.raises(StoreUnavailable):
            await bt_store.allocate("acme", "k", "k", shape, 2)
    finally:
        gapic.read_modify_write_row = real
    assert calls == [1]  # neither the client library nor the store retried it
    # The two ticks it took are a gap; the next allocation comes after them.
    assert await bt_store.allocate("acme", "k", "k", shape, 1) == 6


async def test_migrate_creates_the_table_and_keeps_a_ledger(bigtable_host: str) -> None:
    from ops.migrate import migrate
    from ops.migrations import Migration
    from storage.bigtable_admin import BigtableAdmin

    url = BigtableURL("tally-test", "tally", None, f"m{uuid.uuid4().hex[:10]}_")
    applied: list[str] = []

    async def backfill(store: Any) -> None:
        applied.append("ran")

    steps = (Migration("0001-test", "a test migration", backfill),)
    for _ in range(2):  # a second run finds it in the ledger
        admin, store = BigtableAdmin(url), BigtableStore(url)
        try:
            result = await migrate(store, admin, database="tally", migrations=steps)
        finally:
            await store.close()
            await admin.close()
    assert applied == ["ran"]
    assert result.backend == "bigtable" and result.applied == []
    assert result.indexes == {url.table: ["c", "d"]}


async def test_start_adds_a_missing_column_family_to_an_existing_table(bigtable_host: str) -> None:
    from google.cloud.bigtable_admin_v2 import types

    from storage.bigtable_schema import _admin

    url = BigtableURL("tally-test", "tally", None, f"f{uuid.uuid4().hex[:10]}_")
    admin = _admin()
    parent = f"projects/{url.project}/instances/{url.instance}"
    try:
        only_d = types.Table(column_families={"d": types.ColumnFamily()})
        await admin.create_table(parent=parent, table_id=url.table, table=only_d)
        store = BigtableStore(url)
        await store.start()
        try:
            await store.create_sequence("acme", make_record("k"))
            assert await store.allocate("acme", "k", "k", Counter(1, 1, 10), 2) == 2  # family c
        finally:
            await store.close()
        table = await admin.get_table(name=f"{parent}/tables/{url.table}")
        assert sorted(table.column_families) == ["c", "d"]
    finally:
        await admin.transport.close()  # type: ignore[no-untyped-call]


async def _clients(url: BigtableURL, count: int, timeout: float) -> list[BigtableStore]:
    stores = [BigtableStore(url, timeout=timeout) for _ in range(count)]
    for s in stores:
        await s.start()
    return stores


async def test_batches_that_cannot_fit_are_refused_at_once_from_every_client(
    bt_store: BigtableStore,
) -> None:
    # Every increment of a counter at (or too near) its cap overshoots. Each caller must
    # be refused (None: 409) however many overshoot at once, not wait for a turn that
    # never comes: with a short deadline a starved caller shows up as StoreUnavailable.
    await bt_store.create_sequence("acme", make_record("k"))
    await bt_store.create_sequence("acme", make_record("full"))
    shape = Counter(1, 1, 50)
    assert await bt_store.allocate("acme", "k", "k", shape, 45) == 45  # 5 left
    assert await bt_store.allocate("acme", "full", "full", shape, 50) == 50  # none left
    clients = await _clients(bt_store.url, 3, timeout=0.5)
    try:

        async def caller(i: int) -> list[object]:
            store, out = clients[i % len(clients)], list[object]()
            for round_ in range(8):
                key_, n = ("k", 6 + (i + round_) % 10) if i % 2 else ("full", 1 + i % 3)
                try:
                    out.append(await store.allocate("acme", key_, key_, shape, n))
                except StoreUnavailable as exc:
                    out.append(exc)
            return out

        outcomes = [o for got in await asyncio.gather(*map(caller, range(48))) for o in got]
    finally:
        for c in clients:
            await c.close()
    assert [o for o in outcomes if o is not None] == []
    # Nothing was consumed or stranded: the 5 left are still there, and only them.
    assert await bt_store.read_counter("acme", "k") == Counter(1, 1, 50, 45)
    assert await bt_store.allocate("acme", "k", "k", shape, 6) is None
    assert await bt_store.allocate("acme", "k", "k", shape, 5) == 50
    assert await bt_store.read_counter("acme", "full") == Counter(1, 1, 50, 50)


async def test_batches_that_fit_are_not_starved_by_ones_that_cannot(
    bt_store: BigtableStore,
) -> None:
    # As on SQLite: while batches too big keep being refused, the numbers left go to the
    # batches that fit, each exactly once, and nobody waits out a deadline.
    await bt_store.create_sequence("acme", make_record("k"))
    shape = Counter(1, 1, 50)
    assert await bt_store.allocate("acme", "k", "k", shape, 40) == 40  # 10 left
    clients = await _clients(bt_store.url, 3, timeout=0.5)
    stop = asyncio.Event()
    try:

        async def big(i: int) -> list[object]:
            store, out = clients[i % len(clients)], list[object]()
            while not stop.is_set():
                try:
                    out.append(await store.allocate("acme", "k", "k", shape, 11 + i % 5))
                except StoreUnavailable as exc:
                    out.append(exc)
            return out

        async def small(i: int) -> list[object]:
            store, out = clients[i % len(clients)], list[object]()
            await asyncio.sleep(0.05)  # the big ones are at it already
            for _ in range(4):
                try:
                    out.append(await store.allocate("acme", "k", "k", shape, 1))
                except StoreUnavailable as exc:
                    out.append(exc)
            return out

        bigs = [asyncio.create_task(big(i)) for i in range(36)]
        smalls = await asyncio.gather(*map(small, range(3)))
        stop.set()
        refused = [o for got in await asyncio.gather(*bigs) for o in got]
    finally:
        for c in clients:
            await c.close()
    assert set(refused) == {None}
    got = [o for out in smalls for o in out]
    assert sorted(o for o in got if isinstance(o, int)) == list(range(41, 51))
    assert got.count(None) == 2  # the last two found nothing left
    assert await bt_store.read_counter("acme", "k") == Counter(1, 1, 50, 50)


async def test_an_overshoot_never_reset_refuses_what_cannot_fit_and_is_cleared_once(
    bt_store: BigtableStore,
) -> None:
    # Whoever overshot first died before its reset: the counter stays above its cap.
    await bt_store.create_sequence("acme", make_record("k"))
    shape = Counter(1, 1, 50)
    assert await bt_store.allocate("acme", "k", "k", shape, 45) == 45
    assert await bt_store.allocate("acme", "k", "k", shape, 10) is None  # resets: floor 45
    row = key("acme", "ctr", "k")
    await bt_store.table.read_modify_write_row(row, IncrementRule(COUNTS, b"t", 10))  # dies
    store = (await _clients(bt_store.url, 1, timeout=0.5))[0]
    try:
        # 45 are issued at least: a batch of 6 cannot fit and needs no wait.
        assert await asyncio.wait_for(store.allocate("acme", "k", "k", shape, 6), 0.4) is None
        # A batch of 5 might: it waits one deadline, then clears the overshoot to cap
        # (the dead request's 5 numbers are a gap, never reissued) and answers 503.
        with pytest.raises(StoreUnavailable):
            await store.allocate("acme", "k", "k", shape, 5)
        assert await bt_store.read_counter("acme", "k") == Counter(1, 1, 50, 50)
        assert await asyncio.wait_for(store.allocate("acme", "k", "k", shape, 1), 0.4) is None
    finally:
        await store.close()
