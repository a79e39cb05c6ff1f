"""The hot routes, answered before FastAPI's router, in a few lines of ASGI:
``POST /v1/sequences/{name}/next`` and the seed API's ``GET /getCounter``.

Measured in-process on the benchmark machine, FastAPI spends more per request on
routing, its per-route exit stacks and ``solve_dependencies`` than Tally spends
allocating (a py-spy profile of ``/getCounter`` under load: 51 % of its samples inside
the router, against 6 % for ``next`` on this path). This ASGI middleware recognises the
hot routes by their shape and runs the very steps their registered endpoints run
(``auth.dependencies.bearer`` and ``tenant_scoped``, ``sequences.dependencies.read_next``,
``sequences.router.issue`` and ``seed_number``), reading the headers straight from the
ASGI scope and sending the answer as two ASGI messages: no Starlette ``Request``,
``Headers`` or ``Response`` per request (in-process, a cached ``next`` went from 48 to
39 µs; docs/performance.md). A ``next`` with an ``Idempotency-Key`` goes through the
registered endpoint itself (``next_numbers``), as does everything with the fast path
switched off (``TALLY_FAST_PATH=false``). Errors are answered by the app's own
exception handlers (RFC 9457 problem+json), with a ``Request`` made only then;
tests/api/test_fastpath.py checks that every answer matches the router's byte for byte.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.datastructures import State
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, HTTPExceptionHandler, Receive, Scope, Send

from auth.dependencies import bearer, tenant_scoped
from sequences.dependencies import read_next
from sequences.router import issue, seed_number

Endpoint = Callable[[Request], Awaitable[Response]]

# Any segment: the endpoint itself answers 422 problem+json for a name it refuses,
# exactly as through the router.
_NEXT = re.compile(r"/v1/sequences/([^/]+)/next")
NEXT_ROUTE = "/v1/sequences/{name}/next"  # the templates, as metrics and logs label them
SEED_ROUTE = "/getCounter"
_SCOPE = "sequences:next"
# As Starlette's Response and PlainTextResponse would send them.
_JSON = b"application/json"
_TEXT = b"text/plain; charset=utf-8"


class FastPath:
    def __init__(
        self,
        app: ASGIApp,
        *,
        state: State,
        next_endpoint: Endpoint,
        handlers: dict[Any, HTTPExceptionHandler],
    ) -> None:
        self.app = app
        self.state = state
        self.next_endpoint = next_endpoint  # what a keyed `next` goes through
        self.handlers = handlers

    def hot(self, method: str, path: str) -> tuple[str | None, str] | None:
        """``(name, route)`` of a hot request (name None: ``/getCounter``), else None."""
        if method == "POST" and (match := _NEXT.fullmatch(path)) is not None:
            return match[1], NEXT_ROUTE
        if method == "GET" and path == SEED_ROUTE:
            return None, SEED_ROUTE
        return None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        root: str = scope.get("root_path", "")
        if root and path.startswith(root):
            path = path[len(root) :]
        hot = self.hot(scope["method"], path)
        if hot is None:
            await self.app(scope, receive, send)
            return
        name, route = hot
        scope["path_params"] = {"name": name} if name is not None else {}
        # For api.metrics and api.access: no router sets scope["route"].
        scope["tally.route"] = route
        # What the hot routes read of the head, in one pass over it (ASGI names are
        # lower-case; values decoded as Starlette's Headers decode them).
        authorization: list[str] = []
        content_type: str | None = None
        keyed = False
        for key, value in scope["headers"]:
            if key == b"authorization":
                authorization.append(value.decode("latin-1"))
            elif key == b"content-type":
                if content_type is None:  # Headers.get: the first one
                    content_type = value.decode("latin-1")
            elif key == b"idempotency-key":
                keyed = name is not None  # /getCounter has no keyed form
        response: Response | None = None
        try:
            if keyed:
                response = await self.next_endpoint(Request(scope, receive))
            else:
                body, media = await self.answer(receive, name, authorization, content_type)
        except Exception as exc:
            response = await self.error(scope, receive, exc)
        if response is not None:
            await response(scope, receive, send)
            return
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-length", b"%d" % len(body)), (b"content-type", media)],
            }
        )
        await send({"type": "http.response.body", "body": body})

    async def answer(
        self,
        receive: Receive,
        name: str | None,
        authorization: list[str],
        content_type: str | None,
    ) -> tuple[bytes, bytes]:
        """The 200 answer's body and media type; raises what the endpoints raise.
        (Also api.rsgi's, with the head read from RSGI's scope.)"""
        state = self.state
        principal = tenant_scoped(await bearer(state, authorization), _SCOPE)
        if name is None:
            return (await seed_number(state, principal)).encode(), _TEXT
        call = await read_next(state, principal, name, content_type, receive)
        return await issue(state, call, None), _JSON

    async def error(self, scope: Scope, receive: Receive, exc: Exception) -> Response:
        """The app's answer to ``exc``. Outside ServerErrorMiddleware (api.app.TallyApp),
        an unexpected error gets the app's handler for Exception (500 problem+json, the
        traceback logged once), as through the router; re-raised if none handles it."""
        handler = self._handler_for(exc)
        if handler is None:
            raise exc
        answer = handler(Request(scope, receive), exc)
        return await answer if inspect.isawaitable(answer) else answer

    def _handler_for(self, exc: Exception) -> HTTPExceptionHandler | None:
        for cls in type(exc).__mro__:
            if cls in self.handlers:
                return self.handlers[cls]
        return None
