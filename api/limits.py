"""A cap on request bodies, for every route, before anything reads them.

Tally's bodies are small JSON documents; without a cap, an unauthenticated client could
make the server buffer hundreds of megabytes before the 401. A declared
``Content-Length`` over the cap is answered 413 at once; a chunked body is counted as
it is read and stopped at the cap (the route then answers 413).
"""

from __future__ import annotations

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.problems import problem


class BodyLimit:
    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope["headers"]:
            if name == b"content-length":
                if not value.isdigit() or int(value) > self.max_bytes:
                    response = problem(
                        413,
                        "payload-too-large",
                        "Payload too large",
                        f"Request bodies are limited to {self.max_bytes} bytes.",
                        instance=scope.get("path"),
                    )
                    await response(scope, receive, send)
                    return
                break
        received = 0
        limit = self.max_bytes

        async def limited() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    # An HTTPException, because FastAPI turns any other error raised while
                    # it reads a body into a 400; api.problems renders it as problem+json.
                    raise HTTPException(413, f"Request bodies are limited to {limit} bytes.")
            return message

        await self.app(scope, limited, send)
