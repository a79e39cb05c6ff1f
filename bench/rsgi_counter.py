"""The raw counter of ``bench.asgi_counter`` on granian's RSGI interface instead of ASGI.

``make bench`` serves it with ``tally serve --app bench.rsgi_counter:create_app
--interface rsgi`` (the same server, options and logging) as the row ``rsgi-limit``:
what granian's own side of a request costs without the ASGI exchange (its scope dict,
``receive`` and two ``send`` messages): the limit of Tally's native hot routes
(``api.rsgi``), as ``asgi-limit`` is of the ASGI app (docs/performance.md). Same body
shape, and the request body is read (and dropped), as Tally must.
"""

from __future__ import annotations

import itertools
from typing import Any

from bench.asgi_counter import answer

_HEADERS = [("content-type", "application/json")]


class Counter:
    def __init__(self) -> None:
        self.counter = itertools.count(1)

    def __rsgi_init__(self, loop: Any) -> None:  # granian's hooks: nothing to set up
        pass

    def __rsgi_del__(self, loop: Any) -> None:
        pass

    async def __rsgi__(self, scope: Any, protocol: Any) -> None:
        if scope.proto != "http":
            return
        await protocol()  # the whole body
        protocol.response_bytes(200, _HEADERS, answer(next(self.counter)))


def create_app() -> Counter:
    return Counter()
