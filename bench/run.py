"""``make bench``: every configuration as a real server process, driven by wrk, one run.

Each configuration is started with the same uvicorn command line (one worker unless
``--workers``, no access log), gets a fresh data directory, a sequence created over
HTTP and a real ES256 token minted with ``tally token``; wrk then warms it up and
measures it with 64 connections. Results go to ``bench/results/latest.json`` and
``latest.md`` and are printed.

    python -m bench.run [--duration 10] [--only strict,cached] [--workers 2]
                        [--store mongodb://...] [--profile strict]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
BIN = Path(sys.executable).parent
UVICORN_OPTIONS = ["--no-access-log", "--log-level", "warning", "--host", "127.0.0.1"]

LUA = """
wrk.method = "POST"
wrk.headers["Authorization"] = "Bearer {token}"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{body}'

done = function(summary, latency, requests)
  io.write(string.format(
    'WRKJSON {{"requests":%d,"duration_us":%d,"status_errors":%d,"socket_errors":%d,' ..
    '"p50_us":%d,"p90_us":%d,"p99_us":%d,"mean_us":%.1f}}\\n',
    summary.requests, summary.duration, summary.errors.status,
    summary.errors.connect + summary.errors.read + summary.errors.write +
    summary.errors.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.mean))
end
"""


@dataclass
class Config:
    name: str
    description: str
    app: str = "api.app:create_app"
    factory: bool = True
    env: dict[str, str] = field(default_factory=dict)
    mode: str = "strict"
    count: int = 1
    workers: int = 1
    tally: bool = True


@dataclass
class Result:
    name: str
    description: str
    workers: int
    count: int
    requests_per_s: float
    numbers_per_s: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    requests: int
    status_errors: int
    socket_errors: int
    last_issued: int | None
    load_before: float
    ratio_to_baseline: float | None = None


def configurations(workers: int, store: str | None) -> list[Config]:
    naive = {"TALLY_COALESCE": "false"}
    configs = [
        Config(
            "baseline",
            "bare FastAPI, in-memory counter, no auth/store",
            "bench.baseline_app:app",
            factory=False,
            tally=False,
        ),
        Config("strict-naive", "strict, coalescing off (one commit per request)", env=naive),
        Config("strict", "strict, coalesced"),
        Config(
            "strict-uncached-jwt",
            "strict, coalesced, ES256 verified every request",
            env={"TALLY_TOKEN_CACHE_SIZE": "0"},
        ),
        Config("cached", "cached mode (leased blocks)", mode="cached"),
        Config(
            "cached-metrics",
            "cached, Prometheus metrics on (as the Helm chart runs it)",
            env={"TALLY_METRICS_PORT": str(free_port())},
            mode="cached",
        ),
        Config(
            "cached-routed",
            "cached, through FastAPI's router (TALLY_FAST_PATH=false)",
            env={"TALLY_FAST_PATH": "false"},
            mode="cached",
        ),
        Config("batch", "strict, coalesced, count=10000 per request", count=10_000),
    ]
    if workers > 1:
        for base in ("strict", "cached"):
            c = next(c for c in configs if c.name == base)
            configs.append(
                Config(
                    f"{base}-x{workers}",
                    f"{c.description}, {workers} workers",
                    env=dict(c.env),
                    mode=c.mode,
                    workers=workers,
                )
            )
    if store:
        for c in configs:
            if c.tally:
                c.env["TALLY_STORE_URL"] = store
                c.env["TALLY_MONGO_DATABASE"] = f"tally_bench_{c.name.replace('-', '_')}"
    return configs


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def base_env(workdir: Path, root: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TALLY_")}
    env.update(
        TALLY_STORE_URL=f"sqlite:///{workdir}/tally.db",
        TALLY_KEYS_DIR=str(workdir / "keys"),
        TALLY_JWT_ISSUER="https://tally.bench",
        TALLY_JWT_AUDIENCE="tally-bench",
        PYTHONPATH=str(root),
    )
    return env


def start(config: Config, env: dict[str, str], port: int, log: Path) -> subprocess.Popen[bytes]:
    cmd = [str(BIN / "python"), "-m", "uvicorn", config.app, "--port", str(port)]
    cmd += ["--workers", str(config.workers), *UVICORN_OPTIONS]
    if config.factory:
        cmd.append("--factory")
    with log.open("wb") as out:
        return subprocess.Popen(
            cmd, env=env, cwd=env["PYTHONPATH"], stdout=out, stderr=subprocess.STDOUT
        )


def wait_ready(proc: subprocess.Popen[bytes], url: str, path: str) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            if httpx.get(url + path, timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise RuntimeError("server did not become ready in 30 s")


def mint(env: dict[str, str]) -> str:
    out = subprocess.run(
        [str(BIN / "tally"), "token", "--tenant", "bench", "--ttl", "3600"],
        env=env,
        cwd=env["PYTHONPATH"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return out.stdout.strip()


def wrk(url: str, script: Path, seconds: float, connections: int, threads: int) -> dict[str, Any]:
    out = subprocess.run(
        [
            "wrk",
            f"-t{threads}",
            f"-c{connections}",
            f"-d{max(1, round(seconds))}s",
            "--latency",
            "-s",
            str(script),
            url,
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=seconds + 60,
    )
    line = next(x for x in out.stdout.splitlines() if x.startswith("WRKJSON "))
    data: dict[str, Any] = json.loads(line.removeprefix("WRKJSON "))
    return data


def run_one(config: Config, args: argparse.Namespace, token_holder: dict[str, str]) -> Result:
    with tempfile.TemporaryDirectory(prefix=f"tally-bench-{config.name}-") as tmp:
        workdir = Path(tmp)
        env = base_env(workdir, args.app_root if config.tally else ROOT)
        env.update(config.env)
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        # Minting also creates the development key the Tally server will load.
        token = mint(env) if config.tally else token_holder.get("token") or mint(env)
        token_holder["token"] = token
        proc = start(config, env, port, workdir / "server.log")
        profiler: subprocess.Popen[bytes] | None = None
        try:
            wait_ready(proc, url, "/readyz" if config.tally else "/docs")
            headers = {"Authorization": f"Bearer {token}"}
            if config.tally:
                r = httpx.post(
                    f"{url}/v1/sequences",
                    headers=headers,
                    json={"name": "orders", "mode": config.mode},
                    timeout=30,
                )
                r.raise_for_status()
            body = json.dumps({"count": config.count})
            script = workdir / "next.lua"
            script.write_text(LUA.format(token=token, body=body))
            target = f"{url}/v1/sequences/orders/next"
            wrk(target, script, args.warmup, args.connections, args.threads)
            load = os.getloadavg()[0]
            if args.profile and config.name in args.profile:
                profiler = subprocess.Popen(
                    [
                        str(BIN / "py-spy"),
                        "record",
                        "-p",
                        str(proc.pid),
                        "--subprocesses",
                        "-d",
                        str(int(args.duration)),
                        "-r",
                        "250",
                        "--nonblocking",
                        "-f",
                        "raw",
                        "-o",
                        str(RESULTS / f"profile-{config.name}.txt"),
                    ],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            data = wrk(target, script, args.duration, args.connections, args.threads)
            if profiler is not None:
                profiler.wait(timeout=60)
            last = None
            if config.tally:
                got = httpx.get(f"{url}/v1/sequences/orders", headers=headers, timeout=30)
                last = got.json().get("last")
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    seconds = data["duration_us"] / 1e6
    ok = data["requests"] - data["status_errors"]
    return Result(
        name=config.name,
        description=config.description,
        workers=config.workers,
        count=config.count,
        requests_per_s=data["requests"] / seconds,
        numbers_per_s=ok * config.count / seconds,
        p50_ms=data["p50_us"] / 1000,
        p90_ms=data["p90_us"] / 1000,
        p99_ms=data["p99_us"] / 1000,
        requests=data["requests"],
        status_errors=data["status_errors"],
        socket_errors=data["socket_errors"],
        last_issued=last,
        load_before=load,
    )


def targets(by: dict[str, Result]) -> list[tuple[str, str, bool]]:
    rows: list[tuple[str, str, bool]] = []

    def ratio(a: str, b: str) -> float | None:
        if a in by and b in by and by[b].requests_per_s:
            return by[a].requests_per_s / by[b].requests_per_s
        return None

    def add(label: str, value: float | None, goal: float, fmt: str) -> None:
        if value is not None:
            rows.append((label, fmt.format(value), value >= goal))

    add("cached >= 0.8 x baseline req/s", ratio("cached", "baseline"), 0.8, "{:.2f} x")
    add("strict >= 0.6 x baseline req/s", ratio("strict", "baseline"), 0.6, "{:.2f} x")
    add("strict >= 5 x strict-naive req/s", ratio("strict", "strict-naive"), 5.0, "{:.1f} x")
    if "batch" in by:
        add("batch >= 10,000,000 numbers/s", by["batch"].numbers_per_s, 1e7, "{:,.0f}")
    uncached = ratio("strict-uncached-jwt", "strict")
    if uncached is not None:
        cost = 1 - uncached
        rows.append(("ES256 verification <= 5 % (uncached vs cached)", f"{cost:.1%}", cost <= 0.05))
    return rows


def machine() -> dict[str, Any]:
    model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpus": os.cpu_count(),
        "cpu_model": model,
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def markdown(results: list[Result], meta: dict[str, Any]) -> str:
    lines = [
        f"Tally benchmark, {meta['started']} — {meta['machine']['cpus']} cores "
        f"({meta['machine']['cpu_model']}), Python {meta['machine']['python']}; wrk "
        f"{meta['connections']} connections, {meta['duration']} s after {meta['warmup']} s "
        "warm-up; server and wrk on the same machine.",
        "",
        "| configuration | workers | req/s | numbers/s | p50 ms | p99 ms | x baseline | errors |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        ratio = f"{r.ratio_to_baseline:.2f}" if r.ratio_to_baseline is not None else "—"
        lines.append(
            f"| {r.name} | {r.workers} | {r.requests_per_s:,.0f} | {r.numbers_per_s:,.0f} | "
            f"{r.p50_ms:.2f} | {r.p99_ms:.2f} | {ratio} | "
            f"{r.status_errors + r.socket_errors} |"
        )
    rows = meta.get("targets") or []
    if rows:
        lines += ["", "| target | measured | met |", "|---|---:|:---:|"]
        lines += [f"| {label} | {value} | {'yes' if ok else 'no'} |" for label, value, ok in rows]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--duration", type=float, default=10.0, help="measured seconds")
    parser.add_argument("--warmup", type=float, default=2.0, help="warm-up seconds")
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--threads", type=int, default=1, help="wrk threads")
    parser.add_argument("--workers", type=int, default=1, help="also run strict/cached with N")
    parser.add_argument("--store", help="a MongoDB URL to use instead of a fresh SQLite file")
    parser.add_argument("--only", help="comma-separated configuration names")
    parser.add_argument("--profile", help="configurations to py-spy (raw; see bench.profile)")
    parser.add_argument("--output", default="latest", help="results file stem")
    parser.add_argument(
        "--app-root",
        type=Path,
        default=ROOT,
        help="serve Tally from another checkout (e.g. `git archive` of an older commit)",
    )
    args = parser.parse_args(argv)
    if shutil.which("wrk") is None:
        print(
            "bench: wrk is not installed. Install it with `sudo apt-get install wrk`"
            " (Debian/Ubuntu) or `brew install wrk` (macOS), then run `make bench` again.",
            file=sys.stderr,
        )
        return 2
    if args.profile and shutil.which(str(BIN / "py-spy")) is None:
        print("bench: --profile needs py-spy: pip install -e '.[bench]'", file=sys.stderr)
        return 2
    args.profile = set(args.profile.split(",")) if args.profile else set()
    configs = configurations(args.workers, args.store)
    if args.only:
        wanted = set(args.only.split(","))
        configs = [c for c in configs if c.name in wanted]
    RESULTS.mkdir(parents=True, exist_ok=True)
    started = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    results: list[Result] = []
    holder: dict[str, str] = {}
    for config in configs:
        print(f"bench: {config.name} ({config.description}) ...", file=sys.stderr, flush=True)
        result = run_one(config, args, holder)
        results.append(result)
        print(
            f"  {result.requests_per_s:,.0f} req/s, {result.numbers_per_s:,.0f} numbers/s, "
            f"p50 {result.p50_ms:.2f} ms, p99 {result.p99_ms:.2f} ms, "
            f"errors {result.status_errors + result.socket_errors}, load {result.load_before:.2f}",
            file=sys.stderr,
            flush=True,
        )
    by = {r.name: r for r in results}
    if "baseline" in by:
        for r in results:
            r.ratio_to_baseline = r.requests_per_s / by["baseline"].requests_per_s
    meta: dict[str, Any] = {
        "started": started,
        "machine": machine(),
        "connections": args.connections,
        "duration": args.duration,
        "warmup": args.warmup,
        "uvicorn_options": UVICORN_OPTIONS,
        "store": "mongodb (--store)" if args.store else "sqlite (WAL, synchronous=FULL)",
    }
    meta["targets"] = targets(by)
    (RESULTS / f"{args.output}.json").write_text(
        json.dumps({"meta": meta, "results": [asdict(r) for r in results]}, indent=2) + "\n"
    )
    table = markdown(results, meta)
    (RESULTS / f"{args.output}.md").write_text(table)
    print(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
