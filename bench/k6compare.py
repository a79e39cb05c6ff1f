"""Compare a k6 run of ``bench/k6/next.js`` with the stored baseline (nightly load test).

    python3 -m bench.k6compare summary.json bench/k6/baseline.json [--tolerance 0.2]
    python3 -m bench.k6compare summary.json bench/k6/baseline.json --write  # accept

Prints a Markdown table (the workflow appends it to the job summary) and exits 1 when
the p99 of ``next`` rose, or its throughput fell, by more than the tolerance, or its
error rate is above the baseline's. Standard library only: the workflow runs it on the
runner's own Python.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

NEXT = "{name:next}"


def figures(summary: dict[str, Any]) -> dict[str, float]:
    """p99 (ms), throughput (requests/s) and error rate of ``next`` in a k6 summary."""
    metrics = summary["metrics"]

    def value(metric: str, stat: str) -> float:
        try:
            return float(metrics[metric + NEXT]["values"][stat])
        except KeyError:
            raise SystemExit(f"k6 summary has no {metric}{NEXT} {stat}") from None

    return {
        "next_p99_ms": value("http_req_duration", "p(99)"),
        "next_rps": value("http_reqs", "rate"),
        "next_error_rate": value("http_req_failed", "rate"),
    }


def regressions(got: dict[str, float], base: dict[str, float], tolerance: float) -> list[str]:
    out = []
    if got["next_p99_ms"] > base["next_p99_ms"] * (1 + tolerance):
        out.append(f"p99 {got['next_p99_ms']:.1f} ms > baseline {base['next_p99_ms']:.1f} ms")
    if got["next_rps"] < base["next_rps"] * (1 - tolerance):
        out.append(f"{got['next_rps']:.1f} next/s < baseline {base['next_rps']:.1f}")
    if got["next_error_rate"] > base["next_error_rate"] + 0.001:
        out.append(
            f"error rate {got['next_error_rate']:.2%} > baseline {base['next_error_rate']:.2%}"
        )
    return out


def table(got: dict[str, float], base: dict[str, float]) -> str:
    rows = ["| next | this run | baseline |", "| --- | --- | --- |"]
    rows += [
        f"| p99 (ms) | {got['next_p99_ms']:.2f} | {base['next_p99_ms']:.2f} |",
        f"| throughput (/s) | {got['next_rps']:.1f} | {base['next_rps']:.1f} |",
        f"| error rate | {got['next_error_rate']:.3%} | {base['next_error_rate']:.3%} |",
    ]
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("summary", type=Path)
    parser.add_argument("baseline", type=Path)
    parser.add_argument("--tolerance", type=float, default=0.2)
    parser.add_argument("--write", action="store_true", help="make this run the baseline")
    args = parser.parse_args(argv)
    got = figures(json.loads(args.summary.read_text()))
    baseline = json.loads(args.baseline.read_text())
    if args.write:
        args.baseline.write_text(json.dumps({**baseline, **got}, indent=2) + "\n")
        print(f"baseline updated: {args.baseline}")
        return 0
    print("### k6: steady next against the baseline\n")
    print(table(got, baseline))
    problems = regressions(got, baseline, args.tolerance)
    for problem in problems:
        print(f"\n**Regression:** {problem}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
