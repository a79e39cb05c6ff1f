"""The hot route, dispatched before FastAPI's router: ``POST /v1/sequences/{name}/next``.

Measured in-process on the benchmark machine, FastAPI spends more per request on
routing, its per-route exit stacks and ``solve_dependencies`` than Tally spends
allocating. This ASGI middleware recognises the one hot path by its shape and calls
the very same endpoint function the registered route calls (``next_numbers``), with
errors answered by the very same exception handlers (RFC 9457 problem+json). The
registered route stays: it documents the operation in OpenAPI and serves it when the
fast path is switched off (``TALLY_FAST_PATH=false``).
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, HTTPExceptionHandler, Receive, Scope, Send

Endpoint = Callable[[Request], Awaitable[Response]]

# Any segment: the endpoint itself answers 422 problem+json for a name it refuses,
# exactly as through the router.
_NEXT = re.compile(r"/v1/sequences/([^/]+)/next")
NEXT_ROUTE = "/v1/sequences/{name}/next"  # the template, as metrics label it


class NextFastPath:
    def __init__(
        self, app: ASGIApp, *, endpoint: Endpoint, handlers: dict[Any, HTTPExceptionHandler]
    ) -> None:
        self.app = app
        self.endpoint = endpoint
        self.handlers = handlers

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        root: str = scope.get("root_path", "")
        if root and path.startswith(root):
            path = path[len(root) :]
        match = _NEXT.fullmatch(path)
        if match is None:
            await self.app(scope, receive, send)
            return
        scope["path_params"] = {"name": match[1]}
        scope["tally.route"] = NEXT_ROUTE  # for api.metrics: no router sets scope["route"]
        request = Request(scope, receive)
        try:
            response = await self.endpoint(request)
        except Exception as exc:
            handler = self._handler_for(exc)
            if handler is None:
                raise  # to ServerErrorMiddleware: 500 problem+json, as via the router
            answer = handler(request, exc)
            response = await answer if inspect.isawaitable(answer) else answer
        await response(scope, receive, send)

    def _handler_for(self, exc: Exception) -> HTTPExceptionHandler | None:
        for cls in type(exc).__mro__:
            if cls is Exception:
                return None
            if cls in self.handlers:
                return self.handlers[cls]
        return None
