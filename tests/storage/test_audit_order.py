"""An audit entry is in its trail before any later number is taken, so a reader that
pages with ``after`` (tailing the trail) never passes an entry still being written."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from storage import Store
from storage.bigtable import BigtableStore
from storage.mongo import MongoStore
from tests.contract.test_store import make_entry


class HoldsFirstEntry:
    """Forwards to a driver object; its first write of an audit entry waits for ``go``."""

    def __init__(self, inner: Any, methods: set[str], is_entry: Any) -> None:
        self.inner, self.methods, self.is_entry = inner, methods, is_entry
        self.reached, self.go = asyncio.Event(), asyncio.Event()
        self.held = False

    def __getattr__(self, name: str) -> Any:
        real = getattr(self.inner, name)
        if name not in self.methods:
            return real

        async def write(*args: Any, **kwargs: Any) -> Any:
            if not self.held and self.is_entry(*args):
                self.held = True
                self.reached.set()
                await self.go.wait()
            return await real(*args, **kwargs)

        return write


def hold_first_entry(store: Store) -> HoldsFirstEntry:
    if isinstance(store, MongoStore):
        store.audit = hold = HoldsFirstEntry(store.audit, {"insert_one"}, lambda doc: True)
        return hold
    if isinstance(store, BigtableStore):
        hold = HoldsFirstEntry(
            store.table, {"mutate_row", "check_and_mutate_row"}, lambda row, *_: b"#aud#" in row
        )
        store._table = hold
        return hold
    pytest.skip("SQLite numbers an entry in the transaction that writes it")


async def test_a_tailing_reader_gets_an_entry_whose_write_was_slow(store: Store) -> None:
    hold = hold_first_entry(store)
    slow = asyncio.create_task(store.append_audit("acme", make_entry("slow")))
    await asyncio.wait_for(hold.reached.wait(), 10)  # its write under way
    await store.append_audit("acme", make_entry("quick"))
    seen = await store.list_audit("acme", after=None, limit=10)
    hold.go.set()
    await slow
    # The tail goes on after the last entry it saw, and meets the slow one.
    tail = await store.list_audit("acme", after=seen[-1].id, limit=10)
    assert [e.action for e in seen] == ["quick"]
    assert [e.action for e in tail] == ["slow"]
    trail = await store.list_audit("acme", after=None, limit=10)
    assert [(e.id, e.action) for e in trail] == [(f"{1:019d}", "quick"), (f"{2:019d}", "slow")]
