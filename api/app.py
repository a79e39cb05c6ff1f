"""The app factory: wires settings, store, keys and routers. No logic lives here."""

from __future__ import annotations

import asyncio
import gc
import logging
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from wsgiref.simple_server import WSGIServer

from fastapi import FastAPI
from prometheus_client import start_http_server
from starlette.types import ASGIApp

from api import access, health, landing, openapi, problems
from api.access import AccessLog
from api.fastpath import FastPath
from api.logs import log_format
from api.metrics import Metrics, worker_count
from audit.router import admin_router as audit_admin_router
from audit.router import router as audit_router
from auth import router as oauth
from auth.errors import OAuthError
from auth.external import ExternalVerifier, JwksCache
from auth.keys import KeyRing
from auth.service import FailureThrottle, TokenIssuer
from auth.tokens import TokenVerifier
from console import docs as console_docs
from console import router as console
from console.headers import SecurityHeaders
from core.clock import Clock, SystemClock
from core.limits import BodyDeadline
from core.settings import Settings, get_settings
from idempotency.service import IdempotencyService
from ledger.router import admin_router as ledger_admin_router
from ledger.router import router as ledger_router
from ledger.service import LedgerService
from sequences.allocator import BlockPolicy
from sequences.router import admin_router as sequences_admin_router
from sequences.router import next_numbers, seed_router
from sequences.router import router as sequences_router
from sequences.service import SequenceService, TimezoneLookup
from storage import Store, open_store
from tenants.router import router as admin_router
from tenants.service import TenantService
from usage.overview import HeadroomWatch, OverviewService
from usage.recorder import UsageRecorder
from usage.router import admin_router as usage_admin_router
from usage.router import overview_router
from usage.router import router as usage_router
from usage.service import UsageService

log = logging.getLogger("tally")


class TallyApp(FastAPI):
    """FastAPI with two layers outside even Starlette's ``ServerErrorMiddleware``:

    - ``AccessLog`` outermost (the access line, the request id and the request
      histogram), so an unexpected 500 gets its line, its metric and ``X-Request-ID``;
    - inside it the fast path (``api.fastpath``), so the hot ``next`` and
      ``/getCounter`` skip the framework's own layers (server errors, exception
      telemetry, body limit, exception middleware, exit stack): measured in
      ``make bench``. It answers its own errors with the app's exception handlers.
    """

    log_json = False
    access_lines = True
    metrics: Metrics | None = None
    fast_path = True
    access_flush_seconds = 0.0

    def build_middleware_stack(self) -> ASGIApp:
        inner = super().build_middleware_stack()
        if self.fast_path:
            # The endpoints' own steps and exception handlers; FastAPI's routing skipped.
            inner = FastPath(
                inner,
                state=self.state,
                next_endpoint=next_numbers,
                handlers=self.exception_handlers,
            )
        return AccessLog(
            inner,
            json=self.log_json,
            enabled=self.access_lines,
            observe=self.metrics.observe if self.metrics is not None else None,
            flush_seconds=self.access_flush_seconds,
        )


def load_keys(settings: Settings) -> KeyRing:
    if settings.auto_create_keys:
        return KeyRing.load_or_create(settings.keys_dir)
    return KeyRing.load(settings.keys_dir)


def wire_tenants(app: FastAPI, settings: Settings, store: Store, clock: Clock) -> TenantService:
    """The tenant registry, its lifecycle check, external IdPs and the token endpoint."""
    tenants = TenantService(
        store,
        clock=clock,
        own_issuer=settings.jwt_issuer,
        status_ttl=settings.status_cache_seconds,
        allow_unregistered=settings.allow_unregistered_tenants,
        only_tenant=settings.tenant,
    )
    app.state.tenants = tenants
    app.state.admit = tenants.admit
    app.state.external = ExternalVerifier(
        JwksCache(
            clock=clock,
            ttl=settings.jwks_cache_seconds,
            cooldown=settings.jwks_refetch_cooldown_seconds,
        ),
        tenants.external_issuer,
        own_issuer=settings.jwt_issuer,
        cache_size=settings.token_cache_size,
    )
    app.state.token_issuer = TokenIssuer(
        tenants,
        app.state.verifier,
        issuer=settings.jwt_issuer,
        audience=settings.jwt_audience,
        ttl_seconds=settings.token_ttl_seconds,
        throttle=FailureThrottle(
            clock=clock,
            max_failures=settings.oauth_max_failures,
            address_max_failures=settings.oauth_address_max_failures,
            window=settings.oauth_lockout_seconds,
        ),
    )
    return tenants


def serve_metrics(
    app: FastAPI, metrics: Metrics, port: int, host: str, ports: int = 1
) -> WSGIServer | None:
    """Start the metrics listener (a thread) on the first free port of ``port`` and the
    ``ports - 1`` after it (``tally serve --workers N``: a port per worker); None if
    every one is taken."""
    metrics.watch(app)
    last = min(port + ports - 1, 65535)
    reason = ""
    for candidate in range(port, last + 1):
        try:
            server, _thread = start_http_server(candidate, addr=host, registry=metrics.registry)
        except OSError as exc:
            reason = exc.strerror or str(exc)
            continue
        if ports > 1:
            log.info("metrics of this worker (pid %d) on port %d", os.getpid(), candidate)
        return server
    span = f"{port}" if last == port else f"{port}-{last}"
    # Typically another worker (or another `tally serve`) already serves the port(s).
    log.warning(
        "metrics port %s unavailable (%s): this process's metrics are not exported;"
        " run one worker per metrics port",
        span,
        reason,
    )
    return None


# The young generation's collection threshold while serving (CPython's default: 700
# net allocations of tracked objects). The requests in flight hold over a thousand
# tracked objects between them (coroutines, futures, lanes, store items), so under a
# load spread over many counters the default was crossed every ~200 requests, and the
# collections took 2 to 5 µs a request, 3-5 % of its CPU (`python -m bench.inprocess
# spread --gc-young 700`; docs/performance.md). At 10,000 none happens in 30,000 such
# requests. Tally's answered requests leave no cyclic garbage (gc.collect() after
# 5,000 found none): what cyclic garbage there is (an error's traceback) waits longer.
GC_YOUNG_THRESHOLD = 10_000


def create_app(
    settings: Settings | None = None,
    *,
    store: Store | None = None,
    clock: Clock | None = None,
    timezone_of: TimezoneLookup | None = None,
) -> FastAPI:
    """Build the ASGI app; tests pass their own settings, store, clock and time zones."""
    settings = settings or get_settings()
    clock = clock or SystemClock()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # The lifespan owns the store client: opened here, closed on shutdown.
        the_store = store or open_store(settings)
        await the_store.start()
        ring = load_keys(settings)
        app.state.settings = settings
        app.state.store = the_store
        app.state.body_deadline = deadline = BodyDeadline(settings.http_body_timeout_seconds)
        sweeper = asyncio.create_task(deadline.sweep())
        app.state.verifier = TokenVerifier(
            ring,
            issuer=settings.jwt_issuer,
            audience=settings.jwt_audience,
            cache_size=settings.token_cache_size,
        )
        tenants = wire_tenants(app, settings, the_store, clock)
        recorder = UsageRecorder(the_store, interval=settings.usage_flush_seconds)
        app.state.usage = UsageService(the_store, recorder, clock=clock)
        app.state.sequences = SequenceService(
            the_store,
            clock=clock,
            max_batch=settings.max_batch,
            # An injected lookup (tests) wins over the tenant registry's.
            timezone_of=timezone_of or tenants.timezone_of,
            coalesce=settings.coalesce,
            group_commit=settings.group_commit,
            block_policy=BlockPolicy(
                min_block=settings.cached_block_min,
                max_block=max(settings.cached_block_max, settings.cached_block_min),
                target_seconds=settings.cached_block_target_seconds,
            ),
            usage=recorder,
        )
        app.state.audit = app.state.sequences.audit
        app.state.overview = OverviewService(
            tenants, app.state.usage, app.state.sequences, clock=clock
        )
        app.state.ledger = LedgerService(
            the_store, app.state.sequences, audit=app.state.audit, clock=clock
        )
        app.state.idempotency = IdempotencyService(
            the_store, clock=clock, ttl_seconds=settings.idempotency_ttl_seconds
        )
        exporter = None
        app.state.headroom = None
        if metrics is not None:
            app.state.headroom = HeadroomWatch(
                app.state.overview, interval=settings.headroom_scan_seconds
            )
        if metrics is not None and settings.metrics_port is not None:
            exporter = serve_metrics(
                app, metrics, settings.metrics_port, settings.metrics_host, worker_count()
            )
        # Everything made so far lives as long as the app: move it out of the cyclic
        # GC's reach, or every full collection walks it (measured: 70 ms pauses).
        gc.freeze()
        recorder.start()
        if app.state.headroom is not None:
            app.state.headroom.start()
        thresholds = gc.get_threshold()
        gc.set_threshold(GC_YOUNG_THRESHOLD, *thresholds[1:])
        try:
            yield
        finally:
            gc.set_threshold(*thresholds)
            gc.unfreeze()
            await deadline.stop(sweeper)
            if app.state.headroom is not None:
                await app.state.headroom.close()
            if exporter is not None:
                await asyncio.to_thread(exporter.shutdown)  # waits up to its 0.5 s poll
                exporter.server_close()
            await app.state.sequences.allocator.close()
            await app.state.idempotency.close()
            await app.state.sequences.group.close()  # the group at the store finishes
            await recorder.close()  # the last counts reach the store before it closes
            access.flush()  # what finished requests left pending: lines, observations
            await app.state.external.jwks.close()
            if store is None:  # an injected store belongs to whoever injected it
                await the_store.close()

    app = TallyApp(
        title=f"{settings.brand_name} API" if settings.tenant else "Tally API",
        version="0.1.0",
        description=(
            f"Sequence numbers for {settings.brand_name}, powered by Tally."
            if settings.tenant
            else "Unique, durable, per-tenant sequence numbers."
        ),
        lifespan=lifespan,
        # Tally exports Prometheus metrics and configures no OpenTelemetry SDK; FastAPI's
        # native bridge would still look up the global providers (three os.environ reads)
        # on every request to find out (8 % of a cProfile of 6,000 in-process `next`s).
        telemetry={"tracing": False, "metrics": False, "logs": False},
        docs_url=None,  # console.docs serves Swagger UI from the package, under a CSP
        redoc_url=None,
    )
    app.log_json = log_format(settings) == "json"
    app.access_lines = settings.access_log
    app.access_flush_seconds = settings.access_log_flush_seconds
    problems.install(app)
    openapi.install(app, settings)
    # Routes match in order and matching is per-request work: the hot API goes first.
    app.include_router(sequences_router)
    app.include_router(ledger_router)
    app.include_router(landing.router)
    app.include_router(health.router)
    app.include_router(seed_router)
    app.include_router(audit_router)
    app.include_router(audit_admin_router)
    app.include_router(oauth.router)
    app.include_router(admin_router)
    app.include_router(sequences_admin_router)
    app.include_router(ledger_admin_router)
    app.include_router(usage_router)
    app.include_router(usage_admin_router)
    app.include_router(overview_router)
    app.include_router(console_docs.router)
    app.include_router(console.router)
    app.add_exception_handler(OAuthError, oauth.oauth_error)
    # Inside the fast path (TallyApp): the hot `next` never reaches it.
    app.add_middleware(SecurityHeaders)
    app.fast_path = settings.fast_path
    metrics = Metrics() if settings.metrics_port else None
    app.metrics = metrics
    # No app.dependency_overrides here: while that dict is non-empty FastAPI rebuilds
    # every dependency's signature on every request. Routes that need this app's
    # settings read ``request.app.state.settings`` (``auth.router.app_settings``).
    return app
