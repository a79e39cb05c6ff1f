"""The server's limit: a raw ASGI counter, no framework, no auth, no store.

``make bench`` serves it with ``tally serve --app bench.asgi_counter:create_app``, so
it runs on exactly the server, options and logging Tally runs on; whatever Tally
measures below it is what Tally itself costs. It answers every request with the body
shape of Tally's ``next`` and reads (and drops) the request body, as Tally must.
"""

from __future__ import annotations

import itertools
from collections.abc import Awaitable, Callable
from typing import Any

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

_HEADERS = [(b"content-type", b"application/json")]


def answer(value: int) -> bytes:
    """The body of ``next``'s shape for ``value`` (bench.rsgi_counter answers the same)."""
    return b'{"sequence":"orders","value":"%d","first":%d,"last":%d,"count":1}' % (
        value,
        value,
        value,
    )


def create_app() -> Callable[[Scope, Receive, Send], Awaitable[None]]:
    counter = itertools.count(1)

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                kind = message["type"].rsplit(".", 1)[-1]  # startup | shutdown
                await send({"type": f"lifespan.{kind}.complete"})
                if kind == "shutdown":
                    return
        if scope["type"] != "http":
            return
        message = await receive()
        while message.get("more_body"):
            message = await receive()
        body = answer(next(counter))
        await send({"type": "http.response.start", "status": 200, "headers": _HEADERS})
        await send({"type": "http.response.body", "body": body})

    return app
