"""The hot routes, dispatched before FastAPI's router: ``POST /v1/sequences/{name}/next``
and the seed API's ``GET /getCounter``.

Measured in-process on the benchmark machine, FastAPI spends more per request on
routing, its per-route exit stacks and ``solve_dependencies`` than Tally spends
allocating (a py-spy profile of ``/getCounter`` under load: 51 % of its samples inside
the router, against 6 % for ``next`` on this path). This ASGI middleware recognises the
hot routes by their shape and calls the very same endpoint functions the registered
routes call (``next_numbers``, ``seed_counter``), with errors answered by the very same
exception handlers (RFC 9457 problem+json). The registered routes stay: they document
the operations in OpenAPI and serve them when the fast path is switched off
(``TALLY_FAST_PATH=false``).
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
NEXT_ROUTE = "/v1/sequences/{name}/next"  # the templates, as metrics and logs label them
SEED_ROUTE = "/getCounter"


class FastPath:
    def __init__(
        self,
        app: ASGIApp,
        *,
        next_endpoint: Endpoint,
        seed_endpoint: Endpoint,
        handlers: dict[Any, HTTPExceptionHandler],
    ) -> None:
        self.app = app
        self.next_endpoint = next_endpoint
        self.seed_endpoint = seed_endpoint
        self.handlers = handlers

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        method: str = scope["method"]
        path: str = scope["path"]
        root: str = scope.get("root_path", "")
        if root and path.startswith(root):
            path = path[len(root) :]
        if method == "POST" and (match := _NEXT.fullmatch(path)) is not None:
            scope["path_params"] = {"name": match[1]}
            # For api.metrics and api.access: no router sets scope["route"].
            scope["tally.route"] = NEXT_ROUTE
            endpoint = self.next_endpoint
        elif method == "GET" and path == SEED_ROUTE:
            scope["path_params"] = {}
            scope["tally.route"] = SEED_ROUTE
            endpoint = self.seed_endpoint
        else:
            await self.app(scope, receive, send)
            return
        request = Request(scope, receive)
        try:
            response = await endpoint(request)
        except Exception as exc:
            # Outside ServerErrorMiddleware (api.app.TallyApp): an unexpected error gets
            # the app's handler for Exception (500 problem+json, the traceback logged
            # once), as through the router.
            handler = self._handler_for(exc)
            if handler is None:
                raise
            answer = handler(request, exc)
            response = await answer if inspect.isawaitable(answer) else answer
        await response(scope, receive, send)

    def _handler_for(self, exc: Exception) -> HTTPExceptionHandler | None:
        for cls in type(exc).__mro__:
            if cls in self.handlers:
                return self.handlers[cls]
        return None
