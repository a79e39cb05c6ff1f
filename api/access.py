"""The access line and the request id: one pure ASGI middleware, outermost of all.

It wraps even Starlette's ``ServerErrorMiddleware`` (see ``api.app.TallyApp``), so a
500 is logged and carries its ``X-Request-ID`` like any other answer, and it sees the
fast path (``api.fastpath``) exactly as it sees routed requests.

``X-Request-ID`` is taken from the request when it is at most 128 characters of
``A-Z a-z 0-9 . _ : / + = @ -``, generated otherwise, echoed on the response and kept
in ``core.requestctx`` for every log line of the request.

The line is built as one preformatted string (JSON, or text in development) and handed
to the logging handlers as a ready ``LogRecord``: no dict, no ``json.dumps``, no caller
lookup per request. It names the route template, never the URL: no path parameter
values beyond the template, no query string; and no header is ever copied into it.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import itertools
import logging
import os
import re
import time
import weakref
from collections.abc import Callable
from contextvars import Token
from json.encoder import encode_basestring
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.logs import ACCESS_LOGGER, JsonFormatter, utc_stamp
from core.requestctx import CURRENT, RequestInfo

HEADER = b"x-request-id"
_SANE_ID = re.compile(rb"[A-Za-z0-9._:/+=@-]{1,128}")
_PLAIN = re.compile(r"[A-Za-z0-9._:@/-]+")
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


# Generated ids: a random per-process prefix and a counter, 32 hex digits like a
# random one. Unique across processes and restarts (the prefix), and no getrandom()
# syscall per request: the profile of a spread load had os.urandom at 20 µs a call,
# mostly waiting to get the GIL back from the store thread. An id names a request; it
# is no secret, so it need not be unpredictable.
_PREFIX = os.urandom(8).hex()
_SERIAL = itertools.count()


def _reseed() -> None:
    global _PREFIX, _SERIAL
    _PREFIX, _SERIAL = os.urandom(8).hex(), itertools.count()


os.register_at_fork(after_in_child=_reseed)  # a forked worker is another process


def _new_id() -> str:
    return f"{_PREFIX}{next(_SERIAL) & 0xFFFFFFFFFFFFFFFF:016x}"


def request_id_of(scope: Scope) -> str:
    """The client's ``X-Request-ID`` if it is sane, else a new one (``_new_id``)."""
    for key, value in scope["headers"]:
        if key == HEADER:
            return request_id(value)
    return _new_id()


def request_id(value: bytes | None) -> str:
    """The id for a request whose first ``X-Request-ID`` header is ``value``."""
    if value is not None and _SANE_ID.fullmatch(value):
        return str(value.decode("ascii"))
    return _new_id()


def route_of(scope: Scope) -> str:
    # FastAPI's router leaves the matched route in the scope; the fast path (which
    # skips the router) leaves its template under "tally.route".
    route = scope.get("route")
    return getattr(route, "path", None) or scope.get("tally.route") or "unmatched"


def _json_or_null(value: str) -> str:
    return str(encode_basestring(value)) if value else "null"


def _text_value(value: str) -> str:
    if not value:
        return "-"
    return value if _PLAIN.fullmatch(value) else str(encode_basestring(value))


class AccessRecord(logging.LogRecord):
    """A LogRecord made with one dict update: what no handler reads about an access
    line (source line, thread, process) is the same for every one, prepared once.
    Formatters read records through ``__dict__``, so every field is set there."""

    def __init__(self, level: int, line: str, created: float) -> None:
        self.__dict__.update(_FIXED)
        self.levelno = level
        self.levelname = logging.getLevelName(level)
        self.msg = line
        self.created = created
        self.msecs = (created - int(created)) * 1000
        self.relativeCreated = (created - _START) * 1000


_FIXED: dict[str, Any] = vars(logging.LogRecord(ACCESS_LOGGER, logging.INFO, "", 0, "", (), None))
_START: float = logging._startTime  # type: ignore[attr-defined]


def _write_lines(handler: logging.StreamHandler[Any], lines: list[str]) -> None:
    """One ``write`` and ``flush`` for a batch of lines, to the handler's stream now."""
    data = "\n".join(lines) + "\n"
    handler.acquire()
    try:
        handler.stream.write(data)  # the handler's stream now (setStream)
        handler.stream.flush()
    except ValueError:  # the stream was closed under us (interpreter exit)
        pass
    except Exception:
        # What StreamHandler.emit does: report it on stderr, never fail the request
        # (or the timer) over a log that cannot be written (a full disk, a closed pipe).
        handler.handleError(AccessRecord(logging.INFO, lines[0], time.time()))
    finally:
        handler.release()


_LOGS: weakref.WeakSet[AccessLog] = weakref.WeakSet()


def flush() -> None:
    """Settle every pending request now (the app's lifespan calls it at shutdown)."""
    for log in list(_LOGS):
        log.settle()


atexit.register(flush)


# api.metrics.Metrics.observe: (method, route template, status, seconds).
Observe = Callable[[str, str, int, float], None]


# What a finished request leaves to settle: (time, method, route, status, seconds, info).
Entry = tuple[float, str, str, int, float, RequestInfo]


class AccessLog:
    """The access line, the request id and, with ``observe``, the request histogram:
    one layer and one ``send`` wrapper for all three (each layer costs every request
    a coroutine and a closure; measured in ``make bench``).

    With ``flush_seconds`` (production: ``TALLY_ACCESS_LOG_FLUSH_MS``, 50 ms) what a
    finished request leaves behind, its histogram observation and its access line, is
    settled in batches: at most ``flush_seconds`` after the first of them, or every
    ``MAX_PENDING`` requests, and a batch's JSON lines are one ``write`` per stream.
    Measured in ``make bench``, the same work done per request right after its response
    cost the server several times what it costs done for a batch (docs/performance.md).
    A 5xx settles at once, with everything before it, in order; the lifespan's end and
    the interpreter's exit settle what is pending; only a killed process loses its last
    ``flush_seconds``. With 0 (development) every request settles as it finishes.
    """

    MAX_PENDING = 512

    def __init__(
        self,
        app: ASGIApp,
        *,
        json: bool,
        enabled: bool = True,
        observe: Observe | None = None,
        flush_seconds: float = 0.0,
    ) -> None:
        self.app = app
        self.json = json
        self.enabled = enabled
        self.observe = observe
        self.flush_seconds = flush_seconds
        self.log = logging.getLogger(ACCESS_LOGGER)
        self._chain: tuple[logging.Handler, ...] | None = None
        self._direct: dict[int, list[logging.StreamHandler[Any]]] = {}  # by level
        self._pending: list[Entry] = []
        self._timer: asyncio.TimerHandle | None = None
        self._timer_loop: asyncio.AbstractEventLoop | None = None
        _LOGS.add(self)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        info = RequestInfo(request_id_of(scope))
        echo = (HEADER, info.request_id.encode("ascii"))
        status = 500  # what the client sees if nothing answers
        started = time.perf_counter()

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                # A new list: the response's own header list may be reused.
                message["headers"] = [*message.get("headers", ()), echo]
            await send(message)

        token = CURRENT.set(info)
        try:
            await self.app(scope, receive, sending)
        except BaseException as exc:
            # The server logs what escapes after this context is gone: leave it the id.
            with contextlib.suppress(AttributeError):  # an exception type with __slots__
                exc.tally_request_id = info.request_id  # type: ignore[attr-defined]
            raise
        finally:
            self.finish(scope["method"], route_of(scope), status, started, info, token)

    def begin(self, header: str | None) -> tuple[RequestInfo, Token[RequestInfo | None]]:
        """What ``__call__`` does before the app, for a server that calls no ASGI app
        (api.rsgi's hot routes): the request's id, from its first ``X-Request-ID``
        value ``header``, and its ``RequestInfo`` made current. Echo the id yourself."""
        info = RequestInfo(request_id(header.encode("latin-1") if header is not None else None))
        return info, CURRENT.set(info)

    def finish(
        self,
        method: str,
        route: str,
        status: int,
        started: float,
        info: RequestInfo,
        token: Token[RequestInfo | None],
    ) -> None:
        """After the app: the request observed and logged, its context reset (``__call__``
        and, for ``begin``'s request, api.rsgi's hot routes)."""
        try:
            seconds = time.perf_counter() - started
            label = method if method in _METHODS else "other"
            self._finished((time.time(), label, route, status, seconds, info))
        finally:
            CURRENT.reset(token)

    def _finished(self, entry: Entry) -> None:
        pending = self._pending
        pending.append(entry)
        if not self.flush_seconds or entry[3] >= 500 or len(pending) >= self.MAX_PENDING:
            self.settle()
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no loop (a synchronous caller): settle now
            self.settle()
            return
        # A timer of a loop that has stopped would never fire: schedule on this one.
        if self._timer is None or self._timer_loop is not loop:
            if self._timer is not None:
                self._timer.cancel()
            self._timer_loop = loop
            self._timer = loop.call_later(self.flush_seconds, self.settle)

    def settle(self) -> None:
        """Observe and write what finished requests left pending, in their order."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        entries, self._pending = self._pending, []
        if not entries:
            return
        if self.observe is not None:
            observe = self.observe
            for _, method, route, status, seconds, _ in entries:
                observe(method, route, status, seconds)
        if self.enabled:
            self._write(entries)

    def _write(self, entries: list[Entry]) -> None:
        batch: list[str] = []  # lines for the direct streams, written together
        direct: list[logging.StreamHandler[Any]] = []
        found: dict[int, list[logging.StreamHandler[Any]] | None] = {}  # by level
        for now, method, route, status, seconds, info in entries:
            level = logging.ERROR if status >= 500 else logging.INFO
            if not self.log.isEnabledFor(level):
                continue
            line = self._line(now, level, method, route, status, seconds, info)
            if level not in found:
                found[level] = self._direct_streams(level) if self.json else None
            streams = found[level]
            if streams:
                if streams != direct:
                    self._write_batch(direct, batch)
                    direct = streams
                batch.append(line)
                continue
            # Lines already batched go first: each stream keeps the requests' order.
            self._write_batch(direct, batch)
            # A ready record straight to the handlers: Logger.info would also look up
            # the caller's frame, and LogRecord.__init__ the process, thread and task.
            self.log.handle(AccessRecord(level, line, now))
        self._write_batch(direct, batch)

    @staticmethod
    def _write_batch(streams: list[logging.StreamHandler[Any]], batch: list[str]) -> None:
        if batch:
            for handler in streams:
                _write_lines(handler, batch)
            batch.clear()

    def _line(
        self,
        now: float,
        level: int,
        method: str,
        route: str,
        status: int,
        seconds: float,
        info: RequestInfo,
    ) -> str:
        ms = seconds * 1000
        if self.json:
            return (
                f'{{"time":"{utc_stamp(now)}",'
                f'"level":"{"error" if level == logging.ERROR else "info"}",'
                f'"logger":"{ACCESS_LOGGER}","message":"request",'
                f'"request_id":"{info.request_id}",'
                f'"tenant":{_json_or_null(info.tenant)},'
                f'"client_id":{_json_or_null(info.client_id)},'
                f'"route":{encode_basestring(route)},"method":"{method}",'
                f'"status":{status},"duration_ms":{ms:.3f},"numbers":{info.numbers}}}'
            )
        return (
            f"{method} {route} {status} {ms:.1f}ms tenant={_text_value(info.tenant)}"
            f" client={_text_value(info.client_id)} numbers={info.numbers}"
        )

    def _direct_streams(self, level: int) -> list[logging.StreamHandler[Any]] | None:
        """The streams the access line would reach, when the logging machinery would
        only copy it there: every handler on the way a plain StreamHandler with the
        JSON formatter (which passes access lines through unchanged), no filters,
        levels that admit it. Otherwise None (or empty), and the line goes through
        logging.

        Found again whenever the configuration changes (the handler chain is compared
        on every call: a tuple, not a walk through the records machinery)."""
        chain: list[logging.Handler] = []
        logger: logging.Logger | None = self.log
        while logger is not None:
            if logger.filters:
                return None
            chain += logger.handlers
            logger = logger.parent if logger.propagate else None
        key = tuple(chain)
        if key != self._chain:
            self._chain, self._direct = key, {}
        direct = self._direct.get(level)
        if direct is None:
            admitting = [h for h in chain if level >= h.level]
            direct = [
                h
                for h in admitting
                if type(h) is logging.StreamHandler
                and isinstance(h.formatter, JsonFormatter)
                and not h.filters
            ]
            if len(direct) != len(admitting):
                direct = []  # some handler needs the record itself
            self._direct[level] = direct
        return direct
