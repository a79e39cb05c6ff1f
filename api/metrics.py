"""Prometheus metrics (``prometheus-client``), served on their own port.

Two kinds, to keep the hot path cheap:

* HTTP requests: a histogram per (method, route template, status), observed by the
  outermost ASGI layer, ``api.access.AccessLog`` (``Metrics.observe``), counted in
  plain integers (``RequestHistogram``) and exposed by prometheus-client's own
  families. Route templates, never raw paths, so a scanner cannot blow up the label
  set; a request that matched no route is ``route="unmatched"``.
* Domain counters the services keep as plain integers anyway (numbers issued, store
  increments and their time, token-cache hits, leased blocks, usage flushes), read
  only when Prometheus scrapes, by a custom collector.

The port (``TALLY_METRICS_PORT``) is separate from the API's so an Ingress never
exposes it; in Kubernetes the chart opens it to the cluster's Prometheus only. Each
process has its own metrics: run one worker per pod (the chart does), or
several processes each with its own port.
"""

from __future__ import annotations

import os
from bisect import bisect_left
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, ProcessCollector
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    SummaryMetricFamily,
)
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

if TYPE_CHECKING:
    from starlette.applications import Starlette

_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)

# How many workers `tally serve` runs (api.server sets it for them, never a user): each
# exports its metrics on a port of its own, TALLY_METRICS_PORT and the ones after it.
WORKERS = "TALLY_SERVE_WORKERS"


def worker_count() -> int:
    """The workers of the ``tally serve`` this process is one of; 1 outside one."""
    value = os.environ.get(WORKERS, "")
    return int(value) if value.isdigit() and int(value) > 0 else 1


class RequestHistogram(Collector):
    """``tally_http_request_duration_seconds``: per (method, route, status) a row of
    counts, one per bucket and one above the last, and the sum of the durations.

    prometheus-client's ``Histogram`` takes a lock for the sum and another for the
    bucket on every observation (1.1 µs a request in-process, against 0.2 µs here), and
    every request observes one. Only the event loop's thread observes; a scrape (the
    exporter's thread) copies each row at once under the GIL, so a series' buckets and
    its count always agree. The exposition is prometheus-client's own
    ``HistogramMetricFamily``: the same ``_bucket`` / ``_count`` / ``_sum`` series
    (``tests/api/test_metrics.py`` compares them with the library's ``Histogram``)."""

    NAME = "tally_http_request_duration_seconds"

    def __init__(self, bounds: tuple[float, ...] = _BUCKETS) -> None:
        self.bounds = bounds
        self.les = [floatToGoString(b) for b in bounds] + ["+Inf"]  # type: ignore[no-untyped-call]
        self.rows: dict[tuple[str, str, int], list[float]] = {}

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        key = (method, route, status)
        row = self.rows.get(key)
        if row is None:
            row = self.rows[key] = [0] * len(self.les) + [0.0]
        row[bisect_left(self.bounds, seconds)] += 1  # le: a bound counts its own value
        row[-1] += seconds

    def collect(self) -> Iterator[HistogramMetricFamily]:
        family = HistogramMetricFamily(
            self.NAME,
            "HTTP requests by method, route template and status, and how long they took.",
            labels=["method", "route", "status"],
        )
        for (method, route, status), live in list(self.rows.items()):
            row = live.copy()  # one snapshot: the loop's thread may observe meanwhile
            cumulative, buckets = 0.0, []
            for le, n in zip(self.les, row, strict=False):
                cumulative += n
                buckets.append((le, cumulative))
            family.add_metric([method, route, str(status)], buckets, sum_value=row[-1])
        yield family


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.http = RequestHistogram()
        self.registry.register(self.http)
        self.observe = self.http.observe  # (method, route template, status, seconds)
        # process_cpu_seconds_total, process_resident_memory_bytes, ...: the dashboard's
        # CPU and memory panels, read from /proc at scrape time only.
        ProcessCollector(registry=self.registry)

    def watch(self, app: Starlette) -> None:
        """Export the domain counters of ``app``'s services (read at scrape time)."""
        self.registry.register(_DomainCollector(app))


class _DomainCollector(Collector):
    """Registered by ``watch`` in the lifespan, after the services it reads exist."""

    def __init__(self, app: Starlette) -> None:
        self.state = app.state

    def collect(self) -> Iterator[Any]:
        recorder = self.state.usage.recorder
        allocator = self.state.sequences.allocator
        verifier = self.state.verifier
        yield CounterMetricFamily(
            "tally_next_requests",
            "Calls that issued numbers (next and /getCounter).",
            value=recorder.requests_total,
        )
        issued = CounterMetricFamily(
            "tally_numbers_issued", "Numbers issued, by sequence mode.", labels=["mode"]
        )
        for mode in ("strict", "cached"):  # both always present: rate() needs a series
            issued.add_metric([mode], recorder.numbers_by_mode.get(mode, 0))
        yield issued
        yield CounterMetricFamily(
            "tally_usage_flush_failures",
            "Usage rows a flush could not write (kept for the next flush).",
            value=recorder.flush_failures,
        )
        yield SummaryMetricFamily(
            "tally_store_increment_seconds",
            "Store increments made by the allocator (coalesced flights, cached-mode"
            " blocks, direct batches) and the time they took.",
            count_value=allocator.increments,
            sum_value=allocator.increment_seconds,
        )
        group = self.state.sequences.group
        yield SummaryMetricFamily(
            "tally_store_group_commit_seconds",
            "Store calls of group commit (one transaction on SQLite) and the time they took.",
            count_value=group.groups,
            sum_value=group.seconds,
        )
        yield CounterMetricFamily(
            "tally_store_group_commit_increments",
            "Counter increments the group commits carried (divide by their count: group size).",
            value=group.items,
        )
        yield GaugeMetricFamily(
            "tally_cached_leases",
            "Cached-mode counters this process holds leased blocks for.",
            value=allocator.lease_count(),
        )
        tokens = CounterMetricFamily(
            "tally_token_verifications",
            "Bearer tokens checked, by outcome (cache hits skip the signature check).",
            labels=["result"],
        )
        tokens.add_metric(["cache_hit"], verifier.cache_hits)
        tokens.add_metric(["verified"], verifier.verified)
        tokens.add_metric(["rejected"], verifier.rejected)
        yield tokens
        headroom = self.state.headroom
        if headroom is not None and headroom.scans:
            yield GaugeMetricFamily(
                "tally_sequences_near_exhaustion",
                "Sequences with a max (not cycling) with at most 10 % of their current"
                " period left, all tenants (see GET /admin/v1/overview for which).",
                value=headroom.near,
            )
            if headroom.lowest_percent is not None:
                yield GaugeMetricFamily(
                    "tally_sequence_headroom_min_percent",
                    "The least headroom of any sequence within 10 % of its max, percent.",
                    value=headroom.lowest_percent,
                )
