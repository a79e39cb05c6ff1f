"""The contract suite runs once more on MongoDB as a sharded cluster would see it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from storage import Store
from storage.mongo import MongoStore
from tests.conftest import _backends, make_store
from tests.contract.shard_check import ShardCheckedDatabase


@pytest.fixture(params=[*_backends(), "mongomock-sharded"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    if request.param == "mongomock-sharded":
        from mongomock_motor import AsyncMongoMockClient

        s: Store = MongoStore(ShardCheckedDatabase(AsyncMongoMockClient()["tally"]))
        await s.start()
    else:
        if request.param == "bigtable":
            request.getfixturevalue("bigtable_host")
        s = await make_store(request.param, tmp_path)
    try:
        yield s
    finally:
        await s.close()
