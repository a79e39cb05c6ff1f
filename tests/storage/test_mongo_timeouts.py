"""Every MongoDB call is bounded: a store that never answers costs a 503, not a hang."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest
from mongomock_motor import AsyncMongoMockClient
from pymongo.errors import OperationFailure, PyMongoError, WriteConcernError

from core.clock import FrozenClock
from core.settings import Settings
from sequences.schemas import SequenceCreate
from sequences.service import SequenceService
from storage import Counter, StoreUnavailable
from storage.factory import open_store
from storage.mongo import MongoStore
from tests.sequences.support import running_api
from tests.storage.mongo_wire import stuck_primary

BOUND_MS = 500


async def test_against_a_primary_that_never_answers_each_call_ends_at_the_bound() -> None:
    with stuck_primary() as (url, seen):
        store = open_store(Settings(store_url=url, mongo_timeout_ms=BOUND_MS, _env_file=None))  # type: ignore[arg-type]
        try:
            for call in (
                store.allocate("acme", "inv", "inv", Counter(1, 1, 9), 1),
                store.read_counter("acme", "inv"),
                store.get_sequence("acme", "inv"),
            ):
                started = time.monotonic()
                with pytest.raises(StoreUnavailable) as err:
                    await asyncio.wait_for(call, 30)  # a regression fails, not hangs
                # Generous for a loaded machine; without timeoutMS this waits forever.
                assert time.monotonic() - started < 10
                # The driver's own timeoutMS ended it (not only our backstop).
                cause = err.value.__cause__
                assert isinstance(cause, PyMongoError) and cause.timeout, repr(cause)
            assert "findandmodify" in seen  # the command really was sent, then never answered
        finally:
            await store.close()


class Stalling:
    """A collection whose operations never answer while ``stalled`` (then do again)."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.stalled = True

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self.inner, name)
        if not callable(attr) or name in {"find"}:
            return attr

        async def call(*args: Any, **kwargs: Any) -> Any:
            if self.stalled:
                await asyncio.Event().wait()  # never set: no answer
            return await attr(*args, **kwargs)

        return call


async def test_a_stalled_store_gives_503_with_retry_after_and_the_next_request_is_served(
    settings: Settings, tmp_path: Path
) -> None:
    store = MongoStore(AsyncMongoMockClient()["tally"], timeout_ms=300)
    async with running_api(settings, FrozenClock(), store=store) as api:
        assert (await api.create(name="inv")).status_code == 201
        counters = store.counters = Stalling(store.counters)  # type: ignore[assignment]
        started = time.monotonic()
        # Coalesced into one stuck flight: every one of them gets an answer.
        rs = await asyncio.gather(*(api.next("inv") for _ in range(10)))
        assert time.monotonic() - started < 10
        assert {r.status_code for r in rs} == {503}
        assert all(r.headers.get("retry-after") for r in rs)
        assert all(r.headers["content-type"] == "application/problem+json" for r in rs)
        counters.stalled = False  # the store answers again
        r = await api.next("inv")
        assert r.status_code == 200 and r.json()["value"] == 1, r.text


class Refusing:
    """A collection whose ``method`` fails once with the given server error."""

    def __init__(self, inner: Any, method: str, error: PyMongoError) -> None:
        self.inner, self.method, self.error = inner, method, error

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self.inner, name)
        if name != self.method:
            return attr

        async def call(*args: Any, **kwargs: Any) -> Any:
            if self.error is not None:
                error, self.error = self.error, None
                raise error
            return await attr(*args, **kwargs)

        return call


@pytest.mark.parametrize(
    "error",
    [
        WriteConcernError("waiting for replication timed out", 64, {"codeName": "WTimeout"}),
        OperationFailure("not primary", 10107),
        OperationFailure("interrupted due to repl state change", 11602),
        OperationFailure("operation exceeded time limit", 262),
        OperationFailure("retry", 1, {"errorLabels": ["RetryableWriteError"]}),
    ],
    ids=["write-concern", "not-primary", "interrupted", "time-limit", "retryable-label"],
)
async def test_try_later_server_errors_are_503_everywhere(error: PyMongoError) -> None:
    store = MongoStore(AsyncMongoMockClient()["tally"])
    await store.start()
    service = SequenceService(store, clock=FrozenClock())
    await service.create("acme", SequenceCreate(name="inv"))
    store.counters = Refusing(store.counters, "find_one_and_update", error)  # type: ignore[assignment]
    with pytest.raises(StoreUnavailable):
        await service.next("acme", "inv")
    store.sequences = Refusing(store.sequences, "find_one", error)  # type: ignore[assignment]
    with pytest.raises(StoreUnavailable):  # a read with the same error: 503 too
        await store.get_sequence("acme", "inv")
    assert (await service.next("acme", "inv")).first == 1
