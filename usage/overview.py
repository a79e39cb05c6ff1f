"""The platform at a glance: who uses how much, and what is about to run out.

Built from the same services the rest of the admin API uses: the tenant registry,
the usage series (the store's hourly totals plus this process's pending counts; other
processes' counts arrive within ``TALLY_USAGE_FLUSH_SECONDS``) and each tenant's
sequences with their current counters. Days are UTC days, as in the usage API.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable
from typing import TypeVar

from core.clock import Clock, SystemClock
from sequences.service import SequenceService
from tenants.schemas import TenantListItem, TenantOut
from tenants.service import TenantService
from usage.schemas import (
    Granularity,
    NearExhaustion,
    NumbersIssued,
    OverviewOut,
    TenantCounts,
    TenantVolume,
)
from usage.service import UsageService

log = logging.getLogger("tally.overview")
T = TypeVar("T")
R = TypeVar("R")
NEAR = 0.10  # "within 10 % of max"
_PAGE = 500
_PARALLEL = 8  # tenants read at once: a few store round trips each


class OverviewService:
    def __init__(
        self,
        tenants: TenantService,
        usage: UsageService,
        sequences: SequenceService,
        *,
        clock: Clock | None = None,
    ) -> None:
        self.tenants = tenants
        self.usage = usage
        self.sequences = sequences
        self.clock = clock or SystemClock()

    async def volumes(self, slug: str) -> tuple[int, int]:
        """Numbers ``slug`` issued today and in the last 30 days (UTC days)."""
        series = await self.usage.series(slug, granularity=Granularity.day)
        return (series.points[-1].numbers if series.points else 0), series.numbers

    async def list_items(self, tenants: list[TenantOut]) -> list[TenantListItem]:
        """Tenants as the admin list shows them: with sequence counts and volumes."""

        async def item(tenant: TenantOut) -> TenantListItem:
            (today, month), (count, _) = await asyncio.gather(
                self.volumes(tenant.slug), self.sequences.inventory(tenant.slug, within=NEAR)
            )
            return TenantListItem(
                **tenant.model_dump(), sequences=count, numbers_today=today, numbers_30d=month
            )

        return await _bounded(item, tenants)

    async def registered(self) -> list[TenantOut]:
        """Every registered tenant, by slug."""
        out: list[TenantOut] = []
        while True:
            page = await self.tenants.list_tenants(after=out[-1].slug if out else None, limit=_PAGE)
            out += page
            if len(page) < _PAGE:
                return out

    async def near_exhaustion(self) -> list[NearExhaustion]:
        """Every tenant's sequences with a ``max`` and at most 10 % of their period left."""

        async def scan(tenant: TenantOut) -> list[NearExhaustion]:
            _, near = await self.sequences.inventory(tenant.slug, within=NEAR)
            return [NearExhaustion(tenant=tenant.slug, **h.model_dump()) for h in near]

        return [n for ns in await _bounded(scan, await self.registered()) for n in ns]

    async def overview(self, *, top: int = 10) -> OverviewOut:
        """Tenants by status, numbers issued, the top tenants and sequences near their max."""
        registered = await self.registered()

        async def scan(tenant: TenantOut) -> tuple[TenantVolume, list[NearExhaustion]]:
            (today, month), (_, near) = await asyncio.gather(
                self.volumes(tenant.slug), self.sequences.inventory(tenant.slug, within=NEAR)
            )
            volume = TenantVolume(
                slug=tenant.slug, name=tenant.name, numbers_today=today, numbers_30d=month
            )
            return volume, [NearExhaustion(tenant=tenant.slug, **h.model_dump()) for h in near]

        scanned = await _bounded(scan, registered)
        volumes = [v for v, _ in scanned]
        near = [n for _, ns in scanned for n in ns]
        statuses = Counter(t.status for t in registered)
        return OverviewOut(
            generated_at=self.clock.now(),
            tenants=TenantCounts(
                total=len(registered),
                by_status={s: statuses.get(s, 0) for s in ("active", "suspended")} | dict(statuses),
            ),
            numbers=NumbersIssued(
                today=sum(v.numbers_today for v in volumes),
                last_30_days=sum(v.numbers_30d for v in volumes),
            ),
            top_tenants=sorted(
                (v for v in volumes if v.numbers_30d), key=lambda v: (-v.numbers_30d, v.slug)
            )[:top],
            near_exhaustion=sorted(
                near, key=lambda n: (n.headroom_percent, n.remaining, n.tenant, n.sequence)
            ),
        )


async def _bounded(work: Callable[[T], Awaitable[R]], items: Iterable[T]) -> list[R]:
    """``work`` for every item, at most ``_PARALLEL`` at once, results in order."""
    gate = asyncio.Semaphore(_PARALLEL)

    async def one(item: T) -> R:
        async with gate:
            return await work(item)

    return list(await asyncio.gather(*(one(i) for i in items)))


class HeadroomWatch:
    """For the metrics: re-counts the sequences about to run out every ``interval`` s.

    Only sequences that would answer 409 at their end count (not the cycling ones).
    A failed scan (store down) keeps the last figures; the store alerts say why.
    """

    def __init__(self, overview: OverviewService, *, interval: float) -> None:
        self.overview = overview
        self.interval = interval
        self.near = 0
        self.lowest_percent: float | None = None  # least headroom seen, any sequence with a max
        self.scans = 0
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def scan(self) -> None:
        near = await self.overview.near_exhaustion()
        self.near = sum(1 for n in near if not n.cycle)
        self.lowest_percent = min((n.headroom_percent for n in near), default=None)
        self.scans += 1

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def close(self) -> None:
        self._stopping.set()
        if self._task is not None:
            await self._task
            self._task = None

    async def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                await self.scan()
            except Exception as exc:  # the loop must outlive a store outage
                log.warning("headroom scan failed: %s", exc)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), self.interval)
