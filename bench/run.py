"""``make bench``: Tally as shipped next to its yardsticks, in one run, with ratios.

Every HTTP row is a real server process started by ``tally serve`` (the command the
image and the Helm chart run: production environment, its logging with the access
log on, Prometheus metrics on as the chart enables them); the yardsticks run on that
same command through its hidden ``--app`` option:

- ``asgi-limit``: a raw ASGI counter (``bench.asgi_counter``): the server's limit;
- ``rsgi-limit``: the same counter on granian's RSGI interface (``bench.rsgi_counter``):
  how much of that limit is the ASGI exchange itself;
- ``fastapi``: bare FastAPI with an in-memory counter (``bench.baseline_app``);
- ``redis-1key`` / ``redis-1000keys``: Redis ``INCR`` with ``appendfsync always``
  (durable, what users pick instead), redis-server started here on a free port and
  driven by ``redis-benchmark``;
- Tally ``strict`` (one hot sequence), ``cached``, ``getcounter`` (``GET /getCounter``),
  ``spread`` (100 registered tenants x 10 sequences, each request a random tenant's
  random sequence with that tenant's token), ``batch`` (count=10,000), and variants;

Each row gets a fresh data directory and a fresh SQLite file (WAL, synchronous=FULL);
wrk warms it up, then measures with 64 connections. Results: ``bench/results/<output>
.json`` and ``.md``, also printed.

    python -m bench.run [--duration 8] [--only strict,spread] [--skip spread]
                        [--workers 2] [--store mongodb://...] [--profile strict]

``--profile ROW`` records the row's server with py-spy while it is measured, sampling
the thread that holds the GIL (the one resource every request needs):
``python -m bench.profile bench/results/profile-ROW.txt`` summarises it.

``--store bigtable://PROJECT/INSTANCE`` runs Tally's rows on Bigtable, each row in a table
of its own (``table_prefix``). Unless ``BIGTABLE_EMULATOR_HOST`` names a running emulator
or ``--bigtable-real`` is given, the bench starts Google's emulator (``bench.emulator``),
and the report labels the figures as emulator figures: the emulator is in memory and
serialises read-modify-write, so they say nothing about production throughput.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from bench import emulator, load, report, servers

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
ISSUER = "https://tally.bench"
AUDIENCE = "tally-bench"
HOT_TENANT = "bench"
SPREAD_TENANTS = 100
SPREAD_SEQUENCES = 10


@dataclass
class Config:
    name: str
    description: str
    kind: str = "tally"  # tally | yardstick | redis
    server: str = "granian"  # what `tally serve` runs (api.server); the report's label
    app: str = "api.app:create_app"
    env: dict[str, str] = field(default_factory=dict)
    mode: str = "strict"
    count: int = 1
    workers: int = 1
    route: str = "next"  # next | getcounter | spread
    redis_keys: int | None = None
    ledger: bool = False  # the hot sequence keeps a ledger (issue 10)
    idempotent: bool = False  # every request carries a fresh Idempotency-Key (issue 10)
    rsgi: bool = False  # the app speaks granian's RSGI (the rsgi-limit yardstick)


def ledger_configurations() -> list[Config]:
    """Issue 10's rows: next on a ledger sequence (an entry per number, written in the
    increment's transaction) and next with an Idempotency-Key (a claim and a stored
    response per request); both against ``strict``."""
    return [
        Config("strict-ledger", "Tally strict next on a ledger sequence", ledger=True),
        Config(
            "strict-idempotent",
            "Tally strict next, a fresh Idempotency-Key on every request",
            idempotent=True,
        ),
    ]


def configurations(workers: int) -> list[Config]:
    configs = [
        Config(
            "asgi-limit",
            "raw ASGI counter (no framework, auth or store): the server's limit",
            kind="yardstick",
            app="bench.asgi_counter:create_app",
        ),
        Config(
            "rsgi-limit",
            "the same raw counter on granian's RSGI interface: what ASGI itself costs",
            kind="yardstick",
            app="bench.rsgi_counter:create_app",
            rsgi=True,
        ),
        Config(
            "fastapi",
            "bare FastAPI POST counter (no auth, no store)",
            kind="yardstick",
            app="bench.baseline_app:create_app",
        ),
        Config("redis-1key", "Redis INCR, appendfsync always, 1 key", kind="redis"),
        Config(
            "redis-1000keys",
            "Redis INCR, appendfsync always, 1,000 keys",
            kind="redis",
            redis_keys=1000,
        ),
        # Each -quiet row right after its own: the access log's cost is a ratio of two
        # rows, so they are measured back to back.
        Config("strict", "Tally strict next, one hot sequence"),
        Config(
            "strict-quiet",
            "strict, access log off (TALLY_ACCESS_LOG=false)",
            env={"TALLY_ACCESS_LOG": "false"},
        ),
        Config("cached", "Tally cached next, one hot sequence", mode="cached"),
        Config(
            "cached-quiet",
            "cached, access log off (TALLY_ACCESS_LOG=false): what the access line costs",
            env={"TALLY_ACCESS_LOG": "false"},
            mode="cached",
        ),
        Config(
            "getcounter",
            "Tally GET /getCounter (the tenant's default sequence)",
            route="getcounter",
        ),
        Config(
            "spread",
            f"Tally strict next, {SPREAD_TENANTS} tenants x {SPREAD_SEQUENCES} sequences, "
            "random, per-tenant tokens",
            route="spread",
        ),
        Config("batch", "Tally strict next, count=10,000", count=10_000),
        Config(
            "spread-no-group",
            "spread, group commit off (TALLY_GROUP_COMMIT=false: a commit per counter)",
            env={"TALLY_GROUP_COMMIT": "false"},
            route="spread",
        ),
        Config(
            "strict-naive",
            "strict, coalescing and group commit off (one increment and one commit per request)",
            env={"TALLY_COALESCE": "false", "TALLY_GROUP_COMMIT": "false"},
        ),
        Config(
            "strict-uncached-jwt",
            "strict, ES256 verified every request",
            env={"TALLY_TOKEN_CACHE_SIZE": "0"},
        ),
        Config(
            "cached-routed",
            "cached, through FastAPI's router (TALLY_FAST_PATH=false)",
            env={"TALLY_FAST_PATH": "false"},
            mode="cached",
        ),
    ]
    configs += ledger_configurations()
    if workers > 1:
        # The limit with as many workers (the x limit column divides by it), then Tally's.
        for base in ("asgi-limit", "strict", "cached", "spread"):
            c = next(c for c in configs if c.name == base)
            configs.append(
                replace(
                    c,
                    name=f"{base}-x{workers}",
                    description=f"{c.description}; {workers} workers",
                    env=dict(c.env),
                    workers=workers,
                )
            )
    return configs


def base_env(workdir: Path, root: Path, store: str | None, name: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TALLY_")}
    env.update(
        TALLY_ENVIRONMENT="production",
        TALLY_STORE_URL=store or f"sqlite:///{workdir}/tally.db",
        TALLY_KEYS_DIR=str(workdir / "keys"),
        TALLY_JWT_ISSUER=ISSUER,
        TALLY_JWT_AUDIENCE=AUDIENCE,
        # The hot rows' one tenant is unregistered: a registered one is held to its
        # plan's rate (5,000 req/s at most), which would measure the limiter.
        TALLY_UNREGISTERED_TENANTS="allow",
        TALLY_METRICS_PORT=str(servers.free_port()),
        PYTHONPATH=str(root),
    )
    if store and store.startswith("bigtable://"):
        joiner = "&" if "?" in store else "?"
        env["TALLY_STORE_URL"] = f"{store}{joiner}table_prefix=bench_{name.replace('-', '_')}_"
    elif store:
        env["TALLY_MONGO_DATABASE"] = f"tally_bench_{name.replace('-', '_')}"
    return env


def store_label(store: str | None) -> str:
    """What the report says the store was (emulator figures are labelled as such)."""
    if not store:
        return "sqlite (WAL, synchronous=FULL)"
    if store.startswith("bigtable://"):
        host = os.environ.get("BIGTABLE_EMULATOR_HOST")
        if host:
            return (
                f"bigtable EMULATOR at {host}: emulator figures (in memory, read-modify-write"
                " serialised), not production throughput"
            )
        return "bigtable (--store, real instance)"
    return "mongodb (--store)"


@contextlib.contextmanager
def bigtable_emulator(args: argparse.Namespace) -> Iterator[None]:
    """Start an emulator for a ``bigtable://`` store unless one is named or real is asked."""
    wanted = args.store and args.store.startswith("bigtable://")
    if not wanted or args.bigtable_real or os.environ.get("BIGTABLE_EMULATOR_HOST"):
        yield
        return
    path = emulator.find()
    if path is None:
        raise SystemExit(
            "bench: --store bigtable:// needs Google's emulator (cbtemulator, package"
            " google-cloud-cli-bigtable-emulator; or set CBTEMULATOR), BIGTABLE_EMULATOR_HOST,"
            " or --bigtable-real for a real instance"
        )
    with (
        tempfile.TemporaryDirectory(prefix="tally-bench-cbt-") as tmp,
        emulator.running(path, Path(tmp)) as host,
    ):
        os.environ["BIGTABLE_EMULATOR_HOST"] = host
        try:
            yield
        finally:
            os.environ.pop("BIGTABLE_EMULATOR_HOST", None)


class Tokens:
    """Tokens signed with the instance's key ring, as ``tally token`` signs them."""

    def __init__(self, keys_dir: Path) -> None:
        from auth.keys import KeyRing

        # Production never creates keys: made here, as an operator would beforehand.
        self.ring = KeyRing.load_or_create(keys_dir)

    def mint(self, tenant: str, scopes: list[str] | None = None) -> str:
        from auth.schemas import TENANT_SCOPES
        from auth.tokens import mint

        return mint(
            self.ring,
            issuer=ISSUER,
            audience=AUDIENCE,
            subject="bench",
            tenant=tenant,
            scopes=scopes or list(TENANT_SCOPES),
            ttl_seconds=3600,
        )


async def _setup_spread(url: str, tokens: Tokens) -> list[str]:
    async with httpx.AsyncClient(base_url=url, timeout=60) as client:
        return await setup_spread(client, tokens)


async def setup_spread(client: httpx.AsyncClient, tokens: Tokens) -> list[str]:
    """Onboard the tenants over the admin API and create their sequences; their tokens."""
    admin = {"Authorization": f"Bearer {tokens.mint('', ['platform:admin'])}"}
    slugs = [f"t{i:03d}" for i in range(SPREAD_TENANTS)]
    limit = asyncio.Semaphore(8)

    async def onboard(slug: str) -> str:
        async with limit:
            spec = {"slug": slug, "name": f"Tenant {slug}", "plan": "enterprise"}
            r = await client.post("/admin/v1/tenants", json=spec, headers=admin)
            r.raise_for_status()
            token = tokens.mint(slug)
            for s in range(SPREAD_SEQUENCES):
                r = await client.post(
                    "/v1/sequences",
                    json={"name": f"s{s}"},
                    headers={"Authorization": f"Bearer {token}"},
                )
                r.raise_for_status()
            return token

    return list(await asyncio.gather(*(onboard(s) for s in slugs)))


def _issued_spread(url: str, tokens: list[str]) -> int:
    total = 0
    with httpx.Client(base_url=url, timeout=30) as client:
        for token in tokens:
            r = client.get("/v1/sequences", headers={"Authorization": f"Bearer {token}"})
            r.raise_for_status()
            total += sum(item.get("last") or 0 for item in r.json()["items"])
    return total


def group_commits(scrapes: list[str]) -> report.Groups:
    """The group commits the workers' metrics count (``tally_store_group_commit_*``),
    summed over every worker's scrape: how many, the increments they carried, and the
    seconds they took from the group leaving the event loop until its results were back."""
    from prometheus_client.parser import text_string_to_metric_families

    want = {
        "tally_store_group_commit_seconds_count": "commits",
        "tally_store_group_commit_seconds_sum": "seconds",
        "tally_store_group_commit_increments_total": "increments",
    }
    found = {"commits": 0.0, "seconds": 0.0, "increments": 0.0}
    for text in scrapes:
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name in want:
                    found[want[sample.name]] += sample.value
    return report.Groups(
        commits=int(found["commits"]),
        increments=int(found["increments"]),
        seconds=found["seconds"],
    )


def _scrape_workers(env: dict[str, str], workers: int) -> list[str]:
    """Each worker's metrics: a worker of ``tally serve --workers N`` exports on the first
    free port of ``TALLY_METRICS_PORT`` … ``+ N - 1``; a port nobody answers on is left
    out."""
    first = int(env["TALLY_METRICS_PORT"])
    scrapes = []
    for port in range(first, first + workers):
        with contextlib.suppress(httpx.TransportError):
            scrapes.append(httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text)
    return scrapes


def run_redis(config: Config, args: argparse.Namespace) -> report.Result:
    with tempfile.TemporaryDirectory(prefix=f"tally-bench-{config.name}-") as tmp:
        workdir = Path(tmp)
        port = servers.free_port()
        cmd = servers.on_cpus(servers.redis_command(port, workdir), args.placement.server)
        with servers.running(cmd, dict(os.environ), workdir / "redis.log") as proc:
            servers.wait_redis(proc, port)

            def bench(n: int) -> load.RedisRun:
                return load.redis_benchmark(
                    port,
                    requests=n,
                    connections=args.connections,
                    keys=config.redis_keys,
                    cpus=args.placement.load,
                )

            warm = bench(20_000)
            # redis-benchmark counts requests, not seconds: size the run from the warm-up.
            n = max(20_000, int(warm.requests_per_s * args.duration))
            load_before = os.getloadavg()[0]
            got = bench(n)
    return report.Result(
        name=config.name,
        description=config.description,
        server="redis-server",
        workers=1,
        count=1,
        requests_per_s=got.requests_per_s,
        numbers_per_s=got.requests_per_s,
        p50_ms=got.p50_ms,
        p99_ms=got.p99_ms,
        requests=got.requests,
        status_errors=0,
        socket_errors=0,
        load_before=load_before,
    )


def _profiler(pid: int, name: str, seconds: float) -> subprocess.Popen[bytes]:
    cmd = [str(servers.BIN / "py-spy"), "record", "-p", str(pid), "--subprocesses"]
    cmd += ["-d", str(int(seconds)), "-r", "250", "--nonblocking", "--gil", "-f", "raw"]
    cmd += ["-o", str(RESULTS / f"profile-{name}.txt")]
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def run_http(config: Config, args: argparse.Namespace) -> report.Result:
    with tempfile.TemporaryDirectory(prefix=f"tally-bench-{config.name}-") as tmp:
        workdir = Path(tmp)
        root = args.app_root if config.kind == "tally" else ROOT
        env = base_env(workdir, root, args.store, config.name)
        env.update(config.env)
        tokens = Tokens(workdir / "keys")
        hot = tokens.mint(HOT_TENANT)
        port = servers.free_port()
        url = f"http://127.0.0.1:{port}"
        # One worker: one CPU, the load on the others; more workers share every CPU.
        place = args.placement if config.workers == 1 else servers.Placement()
        cmd = servers.http_command(config.app, port, config.workers, rsgi=config.rsgi)
        cmd = servers.on_cpus(cmd, place.server)
        log = workdir / "server.log"
        with servers.running(cmd, env, log) as proc:
            servers.wait_http(proc, url + ("/readyz" if config.kind == "tally" else "/"), log)
            body = json.dumps({"count": config.count})
            script = workdir / "load.lua"
            target = f"{url}/v1/sequences/orders/next"
            spread_tokens: list[str] = []
            if config.route == "spread":
                spread_tokens = asyncio.run(_setup_spread(url, tokens))
                seqs = [f"s{s}" for s in range(SPREAD_SEQUENCES)]
                script.write_text(load.spread(spread_tokens, seqs, body))
                target = url
            elif config.route == "getcounter":
                script.write_text(load.one_request("GET", hot, None))
                target = f"{url}/getCounter"
            else:
                if config.kind == "tally":
                    r = httpx.post(
                        f"{url}/v1/sequences",
                        headers={"Authorization": f"Bearer {hot}"},
                        json={"name": "orders", "mode": config.mode, "ledger": config.ledger},
                        timeout=30,
                    )
                    r.raise_for_status()
                if config.idempotent:
                    script.write_text(load.fresh_keys(hot, body))
                else:
                    script.write_text(load.one_request("POST", hot, body))
            warm = load.wrk(target, script, args.warmup, args.connections, args.threads, place.load)
            load_before = os.getloadavg()[0]
            profiler = None
            if config.name in args.profile:
                profiler = _profiler(proc.pid, config.name, args.duration)
            data = load.wrk(
                target, script, args.duration, args.connections, args.threads, place.load
            )
            if profiler is not None:
                profiler.wait(timeout=60)
            issued = None
            groups = None
            if config.kind == "tally" and config.mode == "strict":
                groups = group_commits(_scrape_workers(env, config.workers))
                if config.route == "spread":
                    issued = _issued_spread(url, spread_tokens)
                else:
                    path = "/v1/sequences/" + (
                        "default" if config.route == "getcounter" else "orders"
                    )
                    r = httpx.get(
                        url + path, headers={"Authorization": f"Bearer {hot}"}, timeout=30
                    )
                    issued = r.json().get("last")
    seconds = data["duration_us"] / 1e6
    ok = data["requests"] - data["status_errors"]
    ok_warm = warm["requests"] - warm["status_errors"]
    return report.Result(
        name=config.name,
        description=config.description,
        server=config.server,
        workers=config.workers,
        count=config.count,
        requests_per_s=data["requests"] / seconds,
        numbers_per_s=ok * config.count / seconds,
        p50_ms=data["p50_us"] / 1000,
        p99_ms=data["p99_us"] / 1000,
        requests=data["requests"],
        status_errors=data["status_errors"],
        socket_errors=data["socket_errors"],
        load_before=load_before,
        issued=issued,
        acknowledged=(ok + ok_warm) * config.count if issued is not None else None,
        answered=ok + ok_warm,
        groups=groups,
    )


def _commit(root: Path) -> str:
    if not (root / ".git").exists():
        return f"(not a git checkout: {root})"
    out = subprocess.run(
        ["git", "-C", str(root), "rev-parse", "--short", "HEAD"],
        capture_output=True,
        text=True,
        check=False,
    )
    dirty = subprocess.run(
        ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
        capture_output=True,
        text=True,
        check=False,
    )
    return out.stdout.strip() + ("+changes" if dirty.stdout.strip() else "")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--duration", type=float, default=8.0, help="measured seconds")
    parser.add_argument("--warmup", type=float, default=2.0, help="warm-up seconds")
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--threads", type=int, default=1, help="wrk threads")
    parser.add_argument("--workers", type=int, default=1, help="also run rows with N workers")
    parser.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="run every row N times, interleaved, and report the median round",
    )
    parser.add_argument(
        "--store",
        help="a MongoDB or bigtable:// URL for Tally instead of fresh SQLite files",
    )
    parser.add_argument(
        "--bigtable-real",
        action="store_true",
        help="with --store bigtable://: use the real instance, start no emulator",
    )
    parser.add_argument("--only", help="comma-separated row names")
    parser.add_argument("--skip", help="comma-separated row names or substrings (e.g. spread)")
    parser.add_argument("--profile", help="rows to py-spy (raw; see bench.profile)")
    parser.add_argument("--output", default="latest", help="results file stem")
    parser.add_argument(
        "--app-root",
        type=Path,
        default=ROOT,
        help="serve Tally from another checkout (e.g. `git archive` of an older commit)",
    )
    parser.add_argument(
        "--share-cpus",
        action="store_true",
        help="run every server on all CPUs, with the load generators (by default a"
        " one-worker server gets one CPU and wrk the others; see bench.servers.Placement)",
    )
    args = parser.parse_args(argv)
    args.placement = servers.this_machine(share=args.share_cpus)
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    # A stopped bench stops its servers too (the `finally` blocks run on SIGTERM).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    missing = [
        t for t in ("wrk", "redis-server", "redis-benchmark", "redis-cli") if not shutil.which(t)
    ]
    if missing:
        print(
            f"bench: {', '.join(missing)} not installed. Install them with"
            " `sudo apt-get install wrk redis-server redis-tools` (Debian/Ubuntu) or"
            " `brew install wrk redis` (macOS), then run `make bench` again.",
            file=sys.stderr,
        )
        return 2
    if args.profile and shutil.which(str(servers.BIN / "py-spy")) is None:
        print("bench: --profile needs py-spy: pip install -e '.[bench]'", file=sys.stderr)
        return 2
    args.profile = set(args.profile.split(",")) if args.profile else set()
    configs = configurations(args.workers)
    if args.only:
        wanted = set(args.only.split(","))
        configs = [c for c in configs if c.name in wanted]
    if args.skip:
        skip = args.skip.split(",")
        configs = [c for c in configs if not any(s == c.name or s in c.name for s in skip)]
    RESULTS.mkdir(parents=True, exist_ok=True)
    with bigtable_emulator(args):
        return _run(args, configs, argv)


def _run(args: argparse.Namespace, configs: list[Config], argv: list[str] | None) -> int:
    started = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    load_start = os.getloadavg()[0]
    runs: dict[str, list[report.Result]] = {c.name: [] for c in configs}
    # Round after round of every row: a row's rounds are spread over the whole run, so
    # a slow minute of the machine weighs on one round of each row, not on one row.
    for n in range(1, args.rounds + 1):
        for config in configs:
            also = f", round {n} of {args.rounds}" if args.rounds > 1 else ""
            print(
                f"bench: {config.name} ({config.description}{also}) ...",
                file=sys.stderr,
                flush=True,
            )
            result = run_redis(config, args) if config.kind == "redis" else run_http(config, args)
            runs[config.name].append(result)
            print(
                f"  {result.requests_per_s:,.0f} req/s, {result.numbers_per_s:,.0f} numbers/s, "
                f"p50 {result.p50_ms:.2f} ms, p99 {result.p99_ms:.2f} ms, errors "
                f"{result.status_errors + result.socket_errors}, load {result.load_before:.2f}",
                file=sys.stderr,
                flush=True,
            )
    results = [report.median(runs[c.name]) for c in configs]
    report.add_ratios(results)
    meta: dict[str, Any] = {
        "started": started,
        "commit": _commit(args.app_root),
        "command": "python -m bench.run " + shlex.join(sys.argv[1:] if argv is None else argv),
        "machine": report.machine(),
        "load_start": load_start,
        "connections": args.connections,
        "duration": args.duration,
        "warmup": args.warmup,
        "rounds": args.rounds,
        "placement": args.placement.describe(),
        "store": store_label(args.store),
        "targets": report.targets(results),
        "comparisons": report.comparisons(results),
    }
    (RESULTS / f"{args.output}.json").write_text(
        json.dumps({"meta": meta, "results": [asdict(r) for r in results]}, indent=2) + "\n"
    )
    table = report.markdown(results, meta)
    (RESULTS / f"{args.output}.md").write_text(table)
    print(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
