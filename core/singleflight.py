"""Concurrent misses of one cache key share one store read (a "single flight").

When a cached entry expires under load, every request in flight would otherwise read
the store at once; with one shared read they also resume in the order they asked,
which keeps arrival order intact for what they do next (the allocator serves a
counter's requests in the order they reach it).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable
from typing import Any, TypeVar

T = TypeVar("T")


class SingleFlight:
    def __init__(self) -> None:
        self._inflight: dict[Hashable, asyncio.Future[Any]] = {}

    async def do(self, key: Hashable, load: Callable[[], Awaitable[T]]) -> T:
        """``await load()``, or the result of the one already running for ``key``.

        The shared read is shielded: a caller that is cancelled does not cancel it for
        the others. Its exception, if any, reaches every caller.
        """
        future = self._inflight.get(key)
        if future is None:
            future = asyncio.ensure_future(load())
            self._inflight[key] = future
            future.add_done_callback(lambda done: self._done(key, done))
        result: T = await asyncio.shield(future)
        return result

    def _done(self, key: Hashable, future: asyncio.Future[Any]) -> None:
        if self._inflight.get(key) is future:
            del self._inflight[key]
        if not future.cancelled():
            future.exception()  # retrieved: no warning if every caller went away
