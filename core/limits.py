"""Caps on request bodies: their size, for every route whose body FastAPI parses, and
the time they may take to arrive, for every body Tally reads (``BodyDeadline``).

Tally's bodies are small JSON documents; without a cap, an unauthenticated client could
make the server buffer hundreds of megabytes before the 401 (FastAPI reads a declared
body before it runs the auth dependency). ``BodyLimitedRoute`` answers 413 for a
declared ``Content-Length`` over ``TALLY_MAX_BODY_BYTES`` at once, and stops a chunked
body at the cap. Routes without a parsed body (GETs, and the hot ``/next``, which
reads its few bytes itself with its own cap, as ``/oauth/token`` does) are left
untouched, so the cap costs the hot path nothing — an ASGI middleware would cost
every request a layer (measured: ~5 % of cached-mode throughput).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Coroutine
from contextlib import suppress
from typing import Any

from fastapi import Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException
from starlette.types import Message

from core.errors import RequestTimeout

Handler = Callable[[Request], Coroutine[Any, Any, Response]]


def _too_large(limit: int) -> HTTPException:
    # An HTTPException, because FastAPI turns any other error raised while it reads a
    # body into a 400; api.problems renders it as problem+json.
    return HTTPException(413, f"Request bodies are limited to {limit} bytes.")


class BodyDeadline:
    """Cuts off a request body that has not arrived within ``seconds`` of its first read.

    The HTTP server has no body deadline (hyper times only the head), so a client could
    hold a handler, and its connection, for ever by sending a body one byte a minute.
    A timer per request would cost the hot path ~10 µs (``asyncio.timeout`` under
    uvloop, measured); instead a read registers its deadline in a dict and one sweep,
    a few times a second, cancels the reads that are overdue.
    """

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._reads: dict[asyncio.Task[Any], float] = {}
        self._overdue: set[asyncio.Task[Any]] = set()

    def start(self) -> float:
        """The deadline of a body whose reading starts now."""
        return time.monotonic() + self.seconds

    async def receive(self, receive: Callable[[], Awaitable[Message]], deadline: float) -> Message:
        """``await receive()``, raising ``RequestTimeout`` once ``deadline`` has passed."""
        task = asyncio.current_task()
        assert task is not None
        self._reads[task] = deadline
        try:
            return await receive()
        except asyncio.CancelledError:
            if task not in self._overdue:
                raise  # cancelled by someone else: not ours to swallow
            task.uncancel()
            raise RequestTimeout(self.seconds) from None
        finally:
            del self._reads[task]
            self._overdue.discard(task)

    async def sweep(self) -> None:
        """Run for ever: cancel every read past its deadline (the app's lifespan task)."""
        interval = min(0.25, self.seconds / 4)
        while True:
            await asyncio.sleep(interval)
            now = time.monotonic()
            for task, deadline in list(self._reads.items()):
                # While registered, a task is suspended in its read's ``await``: that is
                # where the cancellation lands.
                if deadline <= now and task not in self._overdue:
                    self._overdue.add(task)
                    task.cancel()

    async def stop(self, sweeper: asyncio.Task[None]) -> None:
        sweeper.cancel()
        with suppress(asyncio.CancelledError):
            await sweeper


def is_json(content_type: str | None) -> bool:
    """``application/json`` or ``application/<anything>+json``, parameters aside."""
    media = (content_type or "").split(";", 1)[0].strip().lower()
    return media == "application/json" or (
        media.startswith("application/") and media.endswith("+json")
    )


def has_body(request: Request) -> bool:
    length = request.headers.get("content-length")
    return (length is not None and length != "0") or "transfer-encoding" in request.headers


JSON_ONLY = "Send the body as application/json."


def _not_utf8(exc: UnicodeDecodeError) -> RequestValidationError:
    return RequestValidationError(
        [
            {
                "type": "json_invalid",
                "loc": ("body", exc.start),
                "msg": "JSON decode error: the body is not UTF-8",
                "input": {},
            }
        ]
    )


def body_deadline(request: Request) -> BodyDeadline:
    deadline: BodyDeadline = request.app.state.body_deadline
    return deadline


class BodyLimitedRoute(APIRoute):
    def get_route_handler(self) -> Handler:
        handler: Handler = super().get_route_handler()
        if self.body_field is None:
            return handler

        async def limited_handler(request: Request) -> Response:
            limit: int = request.app.state.settings.max_body_bytes
            length = request.headers.get("content-length")
            if length is not None and (not length.isdigit() or int(length) > limit):
                raise _too_large(limit)
            if has_body(request) and not is_json(request.headers.get("content-type")):
                raise HTTPException(415, JSON_ONLY)
            receive = request.receive
            received = 0
            deadline = body_deadline(request)
            until = 0.0

            async def limited() -> Message:
                nonlocal received, until
                until = until or deadline.start()
                try:
                    message = await deadline.receive(receive, until)
                except RequestTimeout as exc:
                    # FastAPI turns anything but an HTTPException into a 400.
                    raise HTTPException(408, exc.detail, headers=exc.headers) from None
                if message["type"] == "http.request":
                    received += len(message.get("body", b""))
                    if received > limit:
                        raise _too_large(limit)
                return message

            request._receive = limited
            try:
                return await handler(request)
            except HTTPException as exc:
                if exc.status_code == 400 and isinstance(exc.__cause__, UnicodeDecodeError):
                    # FastAPI answers a body that is not UTF-8 with a bare 400, where
                    # malformed JSON gets a 422: it is the same bad input, so the same answer.
                    raise _not_utf8(exc.__cause__) from None
                raise

        return limited_handler
