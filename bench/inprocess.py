"""CPU per request in-process: the app's own cost, without a server or wrk.

python -m bench.inprocess spread [--requests 30000] [--gc-young 700] >/dev/null

Builds the app as ``tally serve`` does (production settings, a fresh SQLite file, its
lifespan), sets up the bench's rows over the admin API (``strict``: one unregistered
tenant's one sequence; ``spread``: 100 enterprise tenants x 10 sequences, per-tenant
tokens), then calls the ASGI app straight from 64 concurrent callers on uvloop and
reports the event loop's CPU and the process's CPU (the SQLite writer thread too) per
request, and the cyclic GC's collections and time. CPU time is steadier than req/s
on a shared host, but still moves with it: compare versions in alternating runs.
``--gc-young`` overrides the young generation's threshold after start-up (700 is
CPython's default), to measure what ``api.app.GC_YOUNG_THRESHOLD`` buys. The access
log goes to stdout, as shipped; the figures go to stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import random
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import uvloop

from bench.run import ROOT, SPREAD_SEQUENCES, Tokens, base_env, setup_spread

CALLERS, WARMUP = 64, 3_000


async def _targets(app: Any, tokens: Tokens, row: str) -> list[tuple[bytes, str]]:
    """The row's ``(token, path)`` pairs, set up as ``bench.run`` sets them up."""
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
        if row == "strict":
            token = tokens.mint("hot")
            auth = {"Authorization": f"Bearer {token}"}
            r = await client.post("/v1/sequences", json={"name": "hot"}, headers=auth)
            r.raise_for_status()
            return [(token.encode(), "/v1/sequences/hot/next")]
        spread = await setup_spread(client, tokens)
    paths = [f"/v1/sequences/s{s}/next" for s in range(SPREAD_SEQUENCES)]
    return [(token.encode(), path) for token in spread for path in paths]


async def drive(
    app: Any,
    targets: list[tuple[bytes, str]],
    n: int,
    statuses: Counter[int],
    callers: int = CALLERS,
) -> None:
    """``n`` strict ``next`` calls of random ``(token, path)`` targets, raw ASGI as a
    server makes them, from ``callers`` concurrent callers; answers counted by status."""
    left = [n]

    async def one(token: bytes, path: str) -> None:
        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "POST",
            "scheme": "http",
            "path": path,
            "raw_path": path.encode(),
            "root_path": "",
            "query_string": b"",
            "headers": [(b"host", b"bench"), (b"authorization", b"Bearer " + token)],
            "client": ("127.0.0.1", 1),
            "server": ("bench", 80),
        }

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                statuses[message["status"]] += 1

        await app(scope, receive, send)

    async def caller() -> None:
        while left[0] > 0:
            left[0] -= 1
            await one(*random.choice(targets))  # noqa: S311 - load, not crypto

    await asyncio.gather(*(caller() for _ in range(callers)))


async def measure(row: str, requests: int, gc_young: int | None) -> str:
    from api.app import create_app

    with tempfile.TemporaryDirectory(prefix="tally-inprocess-") as tmp:
        # The bench's server environment, minus the metrics exporter's port.
        env = base_env(Path(tmp), ROOT, None, row)
        del env["TALLY_METRICS_PORT"]
        os.environ.clear()
        os.environ.update(env)
        tokens = Tokens(Path(tmp) / "keys")
        app = create_app()
        async with app.router.lifespan_context(app):
            targets = await _targets(app, tokens, row)
            if gc_young is not None:
                gc.set_threshold(gc_young, *gc.get_threshold()[1:])
            statuses: Counter[int] = Counter()
            await drive(app, targets, WARMUP, statuses)
            statuses.clear()
            collections: Counter[int] = Counter()
            in_gc = [0.0, 0.0]

            def watch(phase: str, info: dict[str, Any]) -> None:
                if phase == "start":
                    collections[info["generation"]] += 1
                    in_gc[1] = time.perf_counter()
                else:
                    in_gc[0] += time.perf_counter() - in_gc[1]

            gc.callbacks.append(watch)
            wall, loop, proc = time.perf_counter(), time.thread_time(), time.process_time()
            try:
                await drive(app, targets, requests, statuses)
            finally:
                gc.callbacks.remove(watch)
            wall = time.perf_counter() - wall
            loop, proc = time.thread_time() - loop, time.process_time() - proc
            threshold = gc.get_threshold()[0]
    us = 1e6 / requests
    return (
        f"{row}: {requests} requests {dict(statuses)}, event loop {loop * us:.1f} µs,"
        f" process {proc * us:.1f} µs CPU a request, {requests / wall:,.0f} req/s;"
        f" GC young threshold {threshold}: {sum(collections.values())} collections"
        f" {dict(sorted(collections.items()))}, {in_gc[0] * us:.1f} µs a request"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("row", choices=["strict", "spread"])
    parser.add_argument("--requests", type=int, default=30_000)
    parser.add_argument("--gc-young", type=int, help="young-generation GC threshold")
    args = parser.parse_args()
    print(uvloop.run(measure(args.row, args.requests, args.gc_young)), file=sys.stderr)


if __name__ == "__main__":
    main()
