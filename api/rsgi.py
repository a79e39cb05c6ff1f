"""Tally on granian's RSGI interface: the hot routes answered natively, the rest of the
ASGI app through a small bridge.

``make bench`` measured granian's ASGI exchange (the scope dict, ``receive``, two
``send`` messages crossing into Rust) at ~10 µs of a raw request's 27 µs (the
``rsgi-limit`` row: 1.60 times the ASGI counter), and the ASGI layers a hot request still
passes (FastAPI's and Starlette's ``__call__``, the access-log wrapper, the fast path's
dispatch) at as much again. Here a plain ``POST /v1/sequences/{name}/next`` and
``GET /getCounter`` skip all of it: the head is read from RSGI's scope, the endpoints'
own steps run (``api.fastpath.FastPath.answer``), and the answer is one
``proto.response_bytes``. The access log, the request id and the request histogram
are kept exactly as ``api.access.AccessLog`` keeps them (``AccessLog.begin`` /
``finish``), and errors are answered by the app's own exception handlers.

A keyed ``next`` runs its endpoint (``next_numbers``) here too. Everything else (every
other route, ``TALLY_FAST_PATH=false``) goes
through ``bridge``: an ASGI scope, ``receive`` and ``send`` made of RSGI's, to the very
ASGI app the tests drive in-process. The ASGI lifespan runs from RSGI's start and stop
hooks (``Lifespan``). Starlette and FastAPI speak only ASGI (encode/starlette
discussion 2287). The one adapter on PyPI (``rsgiadapter`` 0.0.6) never reports a
client's disconnect, buffers whole responses, and runs a lifespan only if one is
passed to it, at import and at interpreter exit rather than in each worker.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

from granian.rsgi import ProtocolClosed  # type: ignore[attr-defined]  # re-exported
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message

from api.access import AccessLog
from api.fastpath import FastPath
from sequences.dependencies import MAX_NEXT_BODY

_ASGI = {"version": "3.0", "spec_version": "2.3"}
_errors = logging.getLogger("tally.errors")  # (``log`` names the access log here)


class Lifespan:
    """The ASGI lifespan protocol driven from RSGI's synchronous hooks, which granian
    calls on the worker's loop before it serves and after it stopped serving."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._task: asyncio.Task[None] | None = None

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        self._inbox: asyncio.Queue[Message] = asyncio.Queue()
        self._outbox: asyncio.Queue[Message] = asyncio.Queue()
        scope = {"type": "lifespan", "asgi": _ASGI, "state": {}}
        self._task = loop.create_task(self._run(scope))
        self._expect(loop, "startup")

    async def _run(self, scope: dict[str, Any]) -> None:
        await self.app(scope, self._inbox.get, self._outbox.put)

    def stop(self, loop: asyncio.AbstractEventLoop) -> None:
        if self._task is not None and not self._task.done():
            self._expect(loop, "shutdown")

    def _expect(self, loop: asyncio.AbstractEventLoop, phase: str) -> None:
        self._inbox.put_nowait({"type": f"lifespan.{phase}"})
        answer = loop.run_until_complete(self._answer())
        if answer.get("type") != f"lifespan.{phase}.complete":
            raise RuntimeError(f"lifespan {phase} failed: {answer.get('message', answer)}")

    async def _answer(self) -> Message:
        assert self._task is not None
        reply = asyncio.ensure_future(self._outbox.get())
        await asyncio.wait({reply, self._task}, return_when=asyncio.FIRST_COMPLETED)
        if reply.done():
            return reply.result()
        reply.cancel()
        self._task.result()  # raises what the app raised
        return {"type": "lifespan.ended", "message": "the app returned"}


def asgi_scope(scope: Any, app: Any, items: list[tuple[str, str]] | None = None) -> dict[str, Any]:
    """The ASGI HTTP scope of an RSGI one (its path is already percent-decoded);
    ``items``: its ``header_items``, if they were read already."""
    path: str = scope.path
    return {
        "type": "http",
        "asgi": _ASGI,
        "http_version": scope.http_version,
        "method": scope.method,
        "scheme": scope.scheme,
        "path": path,
        # granian decodes both from UTF-8 (a query's percent-escapes stay as sent): back
        # to those bytes. "replace" only for what no encoder can take (lone surrogates).
        "raw_path": path.encode("utf-8", "replace"),
        "query_string": scope.query_string.encode("utf-8", "replace"),
        "root_path": "",
        "headers": [
            (k.encode("latin-1"), v.encode("latin-1"))
            for k, v in (header_items(scope) if items is None else items)
        ],
        "client": _address(scope.client),
        "server": _address(scope.server),
        "app": app,
    }


# What stands for a header value granian's RSGI could not give as text (anything but
# visible ASCII: RFC 9110's obs-text): it leaves the name in ``keys()`` and the value
# out of ``items()``, and ``get()`` is None when it was the name's first value. On ASGI
# the app saw those bytes and refused them where it reads them (a 400 for such an
# Idempotency-Key, a 401 for such a token, "exactly one" when it came with another); a
# value that is no printable ASCII keeps that, where dropping it would ignore a
# client's key or let a second Authorization header pass.
UNREADABLE = "\x7f"
# The headers the app reads: for these, a first value granian left out is found even
# when a readable one of the same name follows it. An unreadable value after a readable
# one cannot be seen through RSGI at all: the app sees only the readable ones.
_READ = ("authorization", "idempotency-key", "content-type", "x-request-id")


def header_items(scope: Any) -> list[tuple[str, str]]:
    """The head as (name, value) pairs, with ``UNREADABLE`` for what RSGI left out: first
    among its name's values, as a name's first value is the one a single read takes."""
    headers = scope.headers
    items: list[tuple[str, str]] = headers.items()
    given = {k for k, _ in items}
    left_out = [(k, UNREADABLE) for k in headers.keys() if k not in given]  # noqa: SIM118 - not a dict
    left_out += [(k, UNREADABLE) for k in _READ if k in given and headers.get(k) is None]
    return left_out + items if left_out else items


def first_value(items: list[tuple[str, str]], name: str) -> str | None:
    """The first value of header ``name`` (lower case) in ``items``, as Starlette's
    ``Headers.get`` gives it on the bridge."""
    for k, v in items:
        if k == name:
            return v
    return None


def _address(value: str | None) -> tuple[str, int] | None:
    if not value:
        return None
    host, _, port = value.rpartition(":")
    return host.strip("[]"), int(port) if port.isdigit() else 0


def _receiver(proto: Any, whole: bool = False) -> Any:
    """ASGI ``receive`` over RSGI: the body chunk by chunk (never all of it at once: a
    route caps what it reads), then ``http.disconnect`` once the client has gone. With
    ``whole`` (a declared ``Content-Length`` the route accepts; hyper delivers no more
    than that), the body in one message: one call into granian instead of two."""
    chunks: Any = None  # made on first use: after it, granian refuses proto()
    done = False

    async def receive() -> Message:
        nonlocal done, chunks
        try:
            if whole and not done:
                done = True
                return {"type": "http.request", "body": await proto(), "more_body": False}
            if not done:
                if chunks is None:
                    chunks = proto.__aiter__()
                try:
                    chunk = await chunks.__anext__()
                except StopAsyncIteration:
                    done = True
                    return {"type": "http.request", "body": b"", "more_body": False}
                return {"type": "http.request", "body": bytes(chunk), "more_body": True}
            await proto.client_disconnect()
        except ProtocolClosed:
            done = True  # the client left mid-body: what ASGI calls a disconnect
        return {"type": "http.disconnect"}

    return receive


def _within(scope: Any, limit: int) -> bool:
    """Whether the request declares a ``Content-Length`` of at most ``limit`` bytes."""
    length: str | None = scope.headers.get("content-length")
    return length is not None and length.isdigit() and int(length) <= limit


def _headers(raw: Any) -> list[tuple[str, str]]:
    return [(k.decode("latin-1"), v.decode("latin-1")) for k, v in raw]


async def bridge(app: ASGIApp, scope: dict[str, Any], proto: Any, whole: bool = False) -> None:
    """Serve one request of the ASGI ``app`` on RSGI's ``proto``; ``whole`` as for
    ``_receiver``."""
    started: Message | None = None
    stream: Any = None

    async def send(message: Message) -> None:
        nonlocal started, stream
        if message["type"] == "http.response.start":
            started = message
            return
        if message["type"] != "http.response.body" or started is None:
            return
        body = message.get("body", b"")
        if stream is None and not message.get("more_body", False):
            proto.response_bytes(started["status"], _headers(started.get("headers", ())), body)
            return
        if stream is None:
            stream = proto.response_stream(started["status"], _headers(started.get("headers", ())))
        if body:
            await stream.send_bytes(body)

    try:
        await app(scope, _receiver(proto, whole), send)
    except Exception:
        if started is None:
            raise  # nothing answered: granian answers 500 and logs it
        if started["status"] != 500:
            _errors.exception("error after answering %s %s", scope["method"], scope["path"])
        # Else Starlette's ServerErrorMiddleware answered with the app's 500 handler,
        # which logged the traceback, and re-raised it for the server to log again:
        # granian would, a second time and without the request id.


class TallyRSGI:
    """What ``tally serve`` hands granian: the ASGI ``app`` on the RSGI interface."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.lifespan = Lifespan(app)
        self.log: AccessLog | None = None
        self.fast: FastPath | None = None
        # A body no larger than this (TALLY_MAX_BODY_BYTES: no route accepts more) is
        # read in one call into granian when its Content-Length declares so.
        self.max_body = 0

    def __rsgi_init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.lifespan.start(loop)
        self.max_body = self.app.state.settings.max_body_bytes  # set by the lifespan
        stack = self.app.middleware_stack  # built by the lifespan's first call
        if isinstance(stack, AccessLog) and isinstance(stack.app, FastPath):
            self.log, self.fast = stack, stack.app

    def __rsgi_del__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.lifespan.stop(loop)

    async def __rsgi__(self, scope: Any, proto: Any) -> None:
        if scope.proto != "http":  # no websockets here (api.server turns them off)
            return
        fast, log = self.fast, self.log
        if fast is not None and log is not None:
            hot = fast.hot(scope.method, scope.path)
            if hot is not None:
                await self._hot(scope, proto, fast, log, *hot)
                return
        await bridge(self.app, asgi_scope(scope, self.app), proto, _within(scope, self.max_body))

    async def _hot(
        self,
        scope: Any,
        proto: Any,
        fast: FastPath,
        log: AccessLog,
        name: str | None,
        route: str,
    ) -> None:
        headers = scope.headers
        items = header_items(scope)
        info, token = log.begin(first_value(items, "x-request-id"))
        started = time.perf_counter()
        status = 500
        receive = _receiver(proto, _within(scope, MAX_NEXT_BODY))
        try:
            authorization = [v for k, v in items if k == "authorization"]
            response: Response | None = None
            # The ASGI view of the request, made only for what needs a Request: a keyed
            # next, or an error's handler. path_params as the fast path sets them.
            params = {"name": name} if name is not None else {}
            asgi: dict[str, Any] | None = None
            try:
                if name is not None and "idempotency-key" in headers:
                    # A keyed next: the endpoint itself, as on ASGI (api.fastpath).
                    asgi = {**asgi_scope(scope, self.app, items), "path_params": params}
                    response = await fast.next_endpoint(Request(asgi, receive))
                else:
                    body, media = await fast.answer(
                        receive, name, authorization, first_value(items, "content-type")
                    )
                    status = 200
                    response_headers = [("content-type", media.decode("latin-1"))]
            except Exception as exc:
                if asgi is None:
                    asgi = {**asgi_scope(scope, self.app, items), "path_params": params}
                response = await fast.error(asgi, receive, exc)
            if response is not None:
                status, body = response.status_code, bytes(response.body)
                response_headers = [
                    h for h in _headers(response.raw_headers) if h[0] != "content-length"
                ]
            response_headers.append(("x-request-id", info.request_id))
            with contextlib.suppress(ProtocolClosed):  # the client left: no one to answer
                proto.response_bytes(status, response_headers, body)
        finally:
            log.finish(scope.method, route, status, started, info, token)
