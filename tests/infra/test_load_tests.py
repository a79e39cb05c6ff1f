"""The nightly k6 load test: the workflow by schema and zizmor, the script against the API.

k6 itself is not installed here (the workflow installs it). The script runs under node
with stand-ins for ``k6`` and ``k6/http`` that record its requests; those requests are
then sent to a real app, which must answer them as the script expects.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from fastapi import FastAPI

from bench import k6compare
from tests.tenants.builders import make_tenant
from tests.tools import missing, require_tool

from ._support import CHART_DIR, REPO

pytestmark = pytest.mark.infra

K6 = REPO / "bench" / "k6"
WORKFLOW = REPO / ".github" / "workflows" / "load.yml"
BIN = Path(sys.executable).parent

# Stand-ins for k6's modules: record every request, answer as a healthy Tally would.
SHIM = """
const recorded = [];
const answers = {
  "/oauth/token": { status: 200, body: { access_token: "shim-token", token_type: "Bearer" } },
  "/v1/sequences": { status: 201, body: { name: "x" } },
  next: { status: 200, body: { value: 1 } },
};
const http = {
  post(url, body, params) {
    recorded.push({ method: "POST", url, body, params: params || {} });
    const path = new URL(url).pathname;
    const a = path.endsWith("/next") ? answers.next : answers[path];
    return { status: a.status, json: (k) => (k ? a.body[k] : a.body) };
  },
};
const check = (r, checks) => Object.values(checks).every((f) => f(r));
const fail = (m) => { throw new Error(m); };
const open = (name) => OPTIONS_JSON;
const __ENV = ENV_JSON;
"""


def run_script(env: dict[str, str]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The script's options and the requests of setup() and one iteration of ``next``."""
    node = require_tool("node", hint="apt-get install nodejs")
    source = (K6 / "next.js").read_text()
    source = re.sub(r'^import .* from "k6(/http)?";\n', "", source, flags=re.MULTILINE)
    assert "import " not in source, "the script imports something the stand-ins lack"
    shim = SHIM.replace("OPTIONS_JSON", json.dumps((K6 / "options.json").read_text()))
    shim = shim.replace("ENV_JSON", json.dumps(env))
    driver = (
        "\nconst data = setup();\nnext(data);\n"
        "console.log(JSON.stringify({ options, recorded, summary: handleSummary({}) }));\n"
    )
    out = subprocess.run(
        [node, "--input-type=module"],
        input=shim + source + driver,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert "summary.json" in result["summary"]  # what the workflow compares
    return result["options"], result["recorded"]


async def test_the_script_calls_the_api_as_it_is(app: FastAPI, client: httpx.AsyncClient) -> None:
    onboarded = await make_tenant(app.state.tenants, "loadtest")
    env = {
        "TALLY_URL": "http://tally.test/",
        "TALLY_CLIENT_ID": onboarded.client_id,
        "TALLY_CLIENT_SECRET": onboarded.client_secret,
        "TALLY_RATE": "50",
    }
    options, recorded = run_script(env)
    assert options["scenarios"]["steady_next"]["rate"] == 50
    token_call, create_call, next_call = recorded
    # Every path the script calls is an operation of the API, with that method.
    spec = app.openapi()["paths"]
    templates = {
        "/oauth/token": "/oauth/token",
        "/v1/sequences": "/v1/sequences",
        "/v1/sequences/k6-strict/next": "/v1/sequences/{name}/next",
    }
    for call in recorded:
        path = httpx.URL(call["url"]).path
        assert call["method"].lower() in spec[templates[path]], path
    # The token request: client credentials in the form body, never in the URL.
    assert "?" not in token_call["url"] and token_call["body"]["grant_type"] == "client_credentials"
    r = await client.post("/oauth/token", data=token_call["body"])
    assert r.status_code == 200, r.text
    bearer = f"Bearer {r.json()['access_token']}"

    def headers(call: dict[str, Any]) -> dict[str, str]:
        sent: dict[str, str] = call["params"].get("headers", {})
        return {k: bearer if k == "Authorization" else v for k, v in sent.items()}

    r = await client.post(
        "/v1/sequences", content=create_call["body"], headers=headers(create_call)
    )
    assert r.status_code == 201, r.text
    again = await client.post(
        "/v1/sequences", content=create_call["body"], headers=headers(create_call)
    )
    assert again.status_code == 409  # a second run finds it: the script accepts 409
    path = httpx.URL(next_call["url"]).path
    r = await client.post(path, headers=headers(next_call))
    assert r.status_code == 200 and isinstance(r.json()["value"], int), r.text
    # The tags the thresholds select on are the ones the requests carry.
    assert [c["params"]["tags"]["name"] for c in recorded] == ["token", "create", "next"]


def test_thresholds_hold_the_targets_the_alerts_page_on() -> None:
    options = json.loads((K6 / "options.json").read_text())
    thresholds = options["thresholds"]
    rules = yaml.safe_load((CHART_DIR / "values.yaml").read_text())["monitoring"]["rules"]
    p99 = float(re.fullmatch(r"p\(99\)<(\d+)", thresholds["http_req_duration{name:next}"][0])[1])
    assert p99 == rules["nextP99Seconds"] * 1000  # the same target as TallyNextLatencyHigh
    error = float(re.fullmatch(r"rate<([\d.]+)", thresholds["http_req_failed{name:next}"][0])[1])
    assert error == rules["errorRatioHigh"]
    scenario = options["scenarios"]["steady_next"]
    assert scenario["executor"] == "constant-arrival-rate" and scenario["exec"] == "next"
    # The comparer reads exactly the sub-metrics the thresholds make k6 report.
    assert {k + "{name:next}" for k in ("http_req_duration", "http_reqs", "http_req_failed")} <= (
        set(thresholds)
    )
    assert "p(99)" in options["summaryTrendStats"]


def summary(p99: float, rps: float, errors: float) -> dict[str, Any]:
    return {
        "metrics": {
            "http_req_duration{name:next}": {"values": {"p(99)": p99, "avg": p99 / 3}},
            "http_reqs{name:next}": {"values": {"count": rps * 300, "rate": rps}},
            "http_req_failed{name:next}": {"values": {"rate": errors}},
        }
    }


@pytest.mark.parametrize(
    ("run", "expected"),
    [
        ((26.0, 199.0, 0.0), []),
        ((40.0, 199.0, 0.0), ["p99 40.0 ms > baseline 25.0 ms"]),
        ((20.0, 100.0, 0.0), ["100.0 next/s < baseline 195.0"]),
        ((20.0, 199.0, 0.02), ["error rate 2.00% > baseline 0.00%"]),
    ],
)
def test_the_comparer_flags_regressions_against_the_baseline(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], run: tuple[float, ...], expected: list[str]
) -> None:
    (tmp_path / "summary.json").write_text(json.dumps(summary(*run)))
    args = [str(tmp_path / "summary.json"), str(K6 / "baseline.json")]
    assert k6compare.main(args) == (1 if expected else 0)
    out = capsys.readouterr().out
    assert "| p99 (ms) |" in out
    for problem in expected:
        assert problem in out


def test_the_comparer_can_accept_a_run_as_the_new_baseline(tmp_path: Path) -> None:
    (tmp_path / "summary.json").write_text(json.dumps(summary(12.5, 400.0, 0.0)))
    baseline = tmp_path / "baseline.json"
    baseline.write_text((K6 / "baseline.json").read_text())
    assert k6compare.main([str(tmp_path / "summary.json"), str(baseline), "--write"]) == 0
    written = json.loads(baseline.read_text())
    assert (written["next_p99_ms"], written["next_rps"]) == (12.5, 400.0)
    assert written["description"]


def _tool(name: str) -> str:
    path = BIN / name
    if not path.exists():
        missing(f"{name} is not installed (it comes with the infra extra)")
    return str(path)


def test_the_workflow_passes_the_github_workflow_schema() -> None:
    checker = _tool("check-jsonschema")
    out = subprocess.run(
        [checker, "--builtin-schema", "vendor.github-workflows", str(WORKFLOW)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert out.returncode == 0, out.stdout + out.stderr


def test_the_workflow_passes_zizmor() -> None:
    zizmor = _tool("zizmor")
    out = subprocess.run(
        [zizmor, "--offline", "--no-progress", str(WORKFLOW)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert out.returncode == 0, out.stdout + out.stderr


def test_the_workflow_runs_nightly_with_least_privilege_against_staging() -> None:
    workflow = yaml.safe_load(WORKFLOW.read_text())
    triggers = workflow[True]  # YAML 1.1 reads the key `on` as True
    assert triggers["schedule"][0]["cron"] and "workflow_dispatch" in triggers
    assert workflow["permissions"] == {}
    (job,) = workflow["jobs"].values()
    assert job["permissions"] == {"contents": "read"} and job["environment"] == "staging"
    steps = job["steps"]
    for step in steps:
        if "uses" in step:
            assert re.fullmatch(r"[\w.-]+/[\w.-]+@[0-9a-f]{40}", step["uses"]), step["uses"]
    assert steps[0]["with"]["persist-credentials"] is False
    run = "\n".join(s.get("run", "") for s in steps)
    assert "k6 run" in run and "next.js" in run and "bench.k6compare" in run
    assert "baseline.json" in run
    env = next(s["env"] for s in steps if "k6 run" in s.get("run", ""))
    assert env["TALLY_CLIENT_SECRET"].startswith("${{ secrets.")
