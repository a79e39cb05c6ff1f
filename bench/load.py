"""The load generators: wrk (with Lua scripts) for HTTP, redis-benchmark for Redis."""

from __future__ import annotations

import csv
import io
import json
import subprocess
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.servers import on_cpus

# Every script ends with this: one machine-readable line of wrk's own summary.
_DONE = """
done = function(summary, latency, requests)
  io.write(string.format(
    'WRKJSON {"requests":%d,"duration_us":%d,"status_errors":%d,"socket_errors":%d,' ..
    '"p50_us":%d,"p90_us":%d,"p99_us":%d,"mean_us":%.1f}\\n',
    summary.requests, summary.duration, summary.errors.status,
    summary.errors.connect + summary.errors.read + summary.errors.write +
    summary.errors.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.mean))
end
"""


def _lua_string(s: str) -> str:
    return json.dumps(s)  # a JSON string literal is a valid Lua string literal here


def one_request(method: str, token: str, body: str | None) -> str:
    """Every request alike: one tenant, one path (wrk's fastest mode)."""
    lines = [f"wrk.method = {_lua_string(method)}"]
    lines.append(f'wrk.headers["Authorization"] = {_lua_string("Bearer " + token)}')
    if body is not None:
        lines.append('wrk.headers["Content-Type"] = "application/json"')
        lines.append(f"wrk.body = {_lua_string(body)}")
    return "\n".join(lines) + "\n" + _DONE


def fresh_keys(token: str, body: str) -> str:
    """Every request with its own ``Idempotency-Key`` (a client that could retry each)."""
    return (
        f"local auth = {_lua_string('Bearer ' + token)}\n"
        f"local body = {_lua_string(body)}\n"
        """
local prefix, n = "", 0
init = function(args)
  prefix = string.format("%x-%x-", os.time(), tonumber(tostring({}):sub(8), 16))
end
request = function()
  n = n + 1
  return wrk.format("POST", nil, {["Authorization"] = auth,
    ["Content-Type"] = "application/json", ["Idempotency-Key"] = prefix .. n}, body)
end
""" + _DONE
    )


def spread(tokens: list[str], sequences: list[str], body: str) -> str:
    """Each request a random tenant's random sequence, with that tenant's token.

    The requests are formatted once per wrk thread (``init``), so the Lua cost per
    request is one random pick, not string building.
    """
    toks = ", ".join(_lua_string(t) for t in tokens)
    seqs = ", ".join(_lua_string(s) for s in sequences)
    return (
        f"local tokens = {{{toks}}}\n"
        f"local sequences = {{{seqs}}}\n"
        f"local body = {_lua_string(body)}\n"
        """
local reqs = {}
init = function(args)
  math.randomseed(os.time() + tonumber(tostring({}):sub(8), 16) % 100000)
  for t = 1, #tokens do
    for s = 1, #sequences do
      reqs[#reqs + 1] = wrk.format("POST", "/v1/sequences/" .. sequences[s] .. "/next",
        {["Authorization"] = "Bearer " .. tokens[t], ["Content-Type"] = "application/json"},
        body)
    end
  end
end
request = function()
  return reqs[math.random(#reqs)]
end
""" + _DONE
    )


def wrk(
    url: str,
    script: Path,
    seconds: float,
    connections: int,
    threads: int,
    cpus: Collection[int] = (),
) -> dict[str, Any]:
    out = subprocess.run(
        on_cpus(
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
            cpus,
        ),
        capture_output=True,
        text=True,
        check=True,
        timeout=seconds + 60,
    )
    line = next(x for x in out.stdout.splitlines() if x.startswith("WRKJSON "))
    data: dict[str, Any] = json.loads(line.removeprefix("WRKJSON "))
    return data


@dataclass(frozen=True, slots=True)
class RedisRun:
    requests: int
    requests_per_s: float
    p50_ms: float
    p99_ms: float
    seconds: float


def redis_benchmark(
    port: int, *, requests: int, connections: int, keys: int | None, cpus: Collection[int] = ()
) -> RedisRun:
    """``INCR`` from ``connections`` clients; ``keys``: spread over that many keys."""
    cmd = ["redis-benchmark", "-h", "127.0.0.1", "-p", str(port), "-c", str(connections)]
    cmd += ["-n", str(requests), "-t", "incr", "--csv"]
    if keys:
        cmd += ["-r", str(keys)]  # INCR counter:__rand_int__ over `keys` keys
    out = subprocess.run(
        on_cpus(cmd, cpus), capture_output=True, text=True, check=True, timeout=600
    )
    rows = list(csv.DictReader(io.StringIO(out.stdout)))
    row = next(r for r in rows if r["test"].upper().startswith("INCR"))
    rps = float(row["rps"])
    return RedisRun(
        requests=requests,
        requests_per_s=rps,
        p50_ms=float(row["p50_latency_ms"]),
        p99_ms=float(row["p99_latency_ms"]),
        seconds=requests / rps if rps else 0.0,
    )
