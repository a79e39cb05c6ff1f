"""Monitoring as code in the chart: ServiceMonitor, PrometheusRule, dashboard, Probe.

The rules are checked and unit-tested by promtool as rendered (thresholds, job and
namespace filled in); the dashboard may use only metric names a real Tally exports.
"""

from __future__ import annotations

import asyncio
import json
import re
import shutil
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from api.app import create_app
from core.clock import FrozenClock
from core.settings import Settings
from tenants.schemas import TenantCreate
from tests.conftest import app_token, bearer
from tests.e2e.conftest import free_port
from tests.tools import require_tool

from ._support import CHART_DIR, REPO, run
from .test_helm_chart import kubernetes_validate as kubernetes_validate  # the fixture

pytestmark = pytest.mark.infra

ALERT_TESTS = Path(__file__).parent / "alerts" / "tally_alerts_test.yaml"
RUNBOOKS = REPO / "docs" / "runbooks.md"
DASHBOARD = CHART_DIR / "dashboards" / "tally.json"
MONITORING_ON = {
    "monitoring": {
        "serviceMonitor": {"enabled": True, "labels": {"release": "kube-prometheus-stack"}},
        "rules": {"enabled": True},
        "dashboard": {"enabled": True},
        "probe": {"enabled": True},
    }
}
# What the issue asks the rules to cover, and at which severity.
REQUIRED_ALERTS = {
    "TallyInstanceDown": "P0",
    "TallyReadyzFailing": "P0",
    "TallyStoreUnavailable": "P0",
    "TallyErrorRatioCritical": "P0",
    "TallyErrorRatioHigh": "P1",
    "TallyNextLatencyHigh": "P1",
    "TallyStoreIncrementSlow": "P1",
    "TallySequenceNearExhaustion": "P2",
    "TallyUsageFlushFailing": "P2",
    "TallyCPUHigh": "P3",
    "TallyCertificateExpiry": "P3",
}
PROMQL_WORDS = {
    "sum", "min", "max", "avg", "count", "rate", "irate", "increase", "histogram_quantile",
    "by", "without", "or", "and", "unless", "on", "ignoring", "group_left", "group_right",
    "bool", "offset", "time", "vector", "absent", "topk", "bottomk", "clamp_min",
    "clamp_max", "abs", "label_values",
}  # fmt: skip


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression reads (label matchers, ranges, strings,
    groupings, functions and numbers removed)."""
    expr = re.sub(r'"(?:[^"\\]|\\.)*"', "", expr)
    expr = re.sub(r"\{[^{}]*\}", "", expr)
    expr = re.sub(r"\[[^\]]*\]", "", expr)
    expr = re.sub(r"\b(by|without|on|ignoring)\s*\([^)]*\)", "", expr)
    names = set(re.findall(r"(?<![\w$.])[A-Za-z_:][A-Za-z0-9_:]*", expr))
    return names - PROMQL_WORDS


def test_the_metric_name_extractor_sees_what_an_expression_reads() -> None:
    assert metric_names(
        'histogram_quantile(0.99, sum by (le, route) (rate(tally_x_bucket{job=~"$job",'
        ' route="/v1/{name}"}[$__rate_interval]))) / on (pod) max(up) > 0.5'
    ) == {"tally_x_bucket", "up"}


@pytest.fixture(scope="module")
def monitored(helm: Any) -> list[dict[str, Any]]:
    with helm.Chart.load(CHART_DIR) as chart:
        out = chart.render(MONITORING_ON, name="tally", namespace="tally", is_install=True)
    return [
        doc
        for path, text in sorted(out.items())
        if path.endswith(".yaml")
        for doc in yaml.safe_load_all(text)
        if doc
    ]


def one(objects: list[dict[str, Any]], kind: str, name: str | None = None) -> dict[str, Any]:
    found = [
        o for o in objects if o["kind"] == kind and (name is None or o["metadata"]["name"] == name)
    ]
    assert len(found) == 1, f"expected one {kind} {name or ''}, found {len(found)}"
    return found[0]


def alerts(objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
    rule = one(objects, "PrometheusRule")
    return [r for group in rule["spec"]["groups"] for r in group["rules"] if "alert" in r]


@pytest.fixture(scope="module")
def rules_dir(monitored: list[dict[str, Any]], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The rendered rule groups as a Prometheus rule file, beside the promtool tests."""
    where = tmp_path_factory.mktemp("rules")
    groups = one(monitored, "PrometheusRule")["spec"]["groups"]
    (where / "rules.yaml").write_text(yaml.safe_dump({"groups": groups}, sort_keys=False))
    shutil.copy(ALERT_TESTS, where / ALERT_TESTS.name)
    return where


def test_monitoring_is_off_by_default(manifests: dict[str, list[dict[str, Any]]]) -> None:
    for objects in manifests.values():
        kinds = {o["kind"] for o in objects}
        assert not kinds & {"ServiceMonitor", "PrometheusRule", "Probe"}
        assert not [o for o in objects if o["metadata"]["name"].endswith("-dashboard")]


def test_rules_pass_promtool_check(rules_dir: Path) -> None:
    promtool = require_tool("promtool", hint="apt-get install prometheus")
    result = run([promtool, "check", "rules", "rules.yaml"], rules_dir)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(REQUIRED_ALERTS)} rules found" in result.stdout


def test_rules_pass_promtool_unit_tests(rules_dir: Path) -> None:
    promtool = require_tool("promtool", hint="apt-get install prometheus")
    result = run([promtool, "test", "rules", ALERT_TESTS.name], rules_dir)
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_alert_has_a_firing_and_a_quiet_unit_test(monitored: list[dict[str, Any]]) -> None:
    cases = [
        case
        for test in yaml.safe_load(ALERT_TESTS.read_text())["tests"]
        for case in test.get("alert_rule_test", [])
    ]
    firing = {c["alertname"] for c in cases if c["exp_alerts"]}
    quiet = {c["alertname"] for c in cases if not c["exp_alerts"]}
    names = {a["alert"] for a in alerts(monitored)}
    assert firing == names and quiet >= names


def test_alerts_cover_the_issue_at_their_severity_and_link_a_runbook_section(
    monitored: list[dict[str, Any]],
) -> None:
    rendered = {a["alert"]: a for a in alerts(monitored)}
    assert {name: a["labels"]["severity"] for name, a in rendered.items()} == REQUIRED_ALERTS
    headings = re.findall(r"^## (\S+)$", RUNBOOKS.read_text(), flags=re.MULTILINE)
    anchors = {h.lower() for h in headings}
    for name, alert in rendered.items():
        url = alert["annotations"]["runbook_url"]
        assert url.startswith("https://") and url.endswith(f"runbooks.md#{name.lower()}")
        assert name.lower() in anchors, f"docs/runbooks.md has no section {name}"
        assert alert["annotations"]["summary"]
    section = RUNBOOKS.read_text().split("## TallyStoreUnavailable")[1].split("\n## ")[0]
    assert "Confirm" in section and "Act" in section


def test_rules_select_this_release_and_take_thresholds_from_values(helm: Any) -> None:
    values = {"monitoring": {"rules": {"enabled": True, "nextP99Seconds": 0.2}}}
    with helm.Chart.load(CHART_DIR) as chart:
        out = chart.render(values, name="acme", namespace="tally-acme", is_install=True)
    objects = [d for p, t in out.items() if p.endswith(".yaml") for d in yaml.safe_load_all(t) if d]
    rendered = {a["alert"]: a for a in alerts(objects)}
    assert "TallyReadyzFailing" not in rendered  # probe-based alerts need the probe
    assert 'job="acme-tally", namespace="tally-acme"' in rendered["TallyInstanceDown"]["expr"]
    assert rendered["TallyNextLatencyHigh"]["expr"].rstrip().endswith("> 0.2")


def test_service_monitor_scrapes_the_metrics_port_of_this_service(
    monitored: list[dict[str, Any]],
) -> None:
    monitor = one(monitored, "ServiceMonitor")
    service = one(monitored, "Service")
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    selector = monitor["spec"]["selector"]["matchLabels"]
    assert selector.items() <= service["metadata"]["labels"].items()
    assert monitor["spec"]["namespaceSelector"] == {"matchNames": ["tally"]}
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["port"] in {p["name"] for p in service["spec"]["ports"]}
    assert endpoint["port"] == "metrics" and endpoint["path"] == "/metrics"
    # Scraped once: the pod annotations give way to the ServiceMonitor.
    pod = one(monitored, "Deployment")["spec"]["template"]["metadata"]
    assert "prometheus.io/scrape" not in pod.get("annotations", {})


def test_probe_checks_readyz_of_every_ingress_host(monitored: list[dict[str, Any]]) -> None:
    probe = one(monitored, "Probe")
    ingress = one(monitored, "Ingress")
    hosts = [rule["host"] for rule in ingress["spec"]["rules"]]
    assert probe["spec"]["targets"]["staticConfig"]["static"] == [
        f"https://{h}/readyz" for h in hosts
    ]
    assert probe["spec"]["jobName"] == "tally-probe"  # what the uptime alerts select
    assert probe["spec"]["prober"]["url"]


def test_every_rendered_builtin_object_is_strictly_valid(
    monitored: list[dict[str, Any]], kubernetes_validate: Any
) -> None:
    version = kubernetes_validate.latest_version()
    for obj in monitored:
        if obj["apiVersion"].startswith("monitoring.coreos.com/"):
            continue  # CRDs: checked by the tests above and by promtool
        kubernetes_validate.validate(obj, version, strict=True)


def test_dashboard_ships_as_a_sidecar_configmap(monitored: list[dict[str, Any]]) -> None:
    config = one(monitored, "ConfigMap", "tally-dashboard")
    assert config["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert json.loads(config["data"]["tally.json"]) == json.loads(DASHBOARD.read_text())


async def exported_metric_names(settings: Settings) -> set[str]:
    """Every sample name a real Tally serves on its metrics port, each feature used."""
    port = free_port()
    app = create_app(settings.model_copy(update={"metrics_port": port}), clock=FrozenClock())
    async with app.router.lifespan_context(app):
        await app.state.tenants.create(TenantCreate(slug="acme", name="Acme"))
        h = bearer(app_token(app))
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            await client.post("/v1/sequences", json={"name": "s", "max": 10}, headers=h)
            await client.post("/v1/sequences/s/next", json={"count": 10}, headers=h)
        await app.state.headroom.scan()
        text = (await asyncio.to_thread(httpx.get, f"http://127.0.0.1:{port}/metrics")).text
    suffixes = {
        "counter": ("_total", "_created"),
        "histogram": ("_bucket", "_count", "_sum", "_created"),
        "summary": ("", "_count", "_sum", "_created"),
        "gauge": ("",),
    }
    return {
        family.name + suffix
        for family in text_string_to_metric_families(text)
        for suffix in suffixes.get(family.type, ("",))
    }


async def test_dashboard_and_rules_reference_only_metrics_tally_exports(
    settings: Settings, monitored: list[dict[str, Any]]
) -> None:
    exported = await exported_metric_names(settings)
    dashboard = json.loads(DASHBOARD.read_text())
    exprs = [t["expr"] for panel in dashboard["panels"] for t in panel.get("targets", [])]
    used = set().union(*(metric_names(e) for e in exprs))
    assert used <= exported, f"not exported by Tally: {sorted(used - exported)}"
    # What the issue asks the dashboard to show.
    assert {
        "tally_http_request_duration_seconds_count",  # requests
        "tally_http_request_duration_seconds_bucket",  # latency
        "tally_numbers_issued_total",  # numbers issued (by mode)
        "tally_store_increment_seconds_sum",  # store latency
        "tally_token_verifications_total",  # token-cache outcomes
        "tally_sequences_near_exhaustion",  # headroom
    } <= used
    assert any("by (mode)" in e for e in exprs) and any("by (result)" in e for e in exprs)
    # The rules' own Tally metrics exist too (up, cAdvisor, kube-state and blackbox
    # series come from their exporters).
    in_rules = set().union(*(metric_names(a["expr"]) for a in alerts(monitored)))
    tally = {n for n in in_rules if n.startswith("tally_")}
    assert tally and tally <= exported, sorted(tally - exported)


@pytest.mark.parametrize(
    "bad",
    [
        {"rules": {"enabled": True, "treshold": 1}},
        {"serviceMonitor": {"interval": "often"}},
        {"rules": {"errorRatioHigh": 5}},
        {"probes": {}},
    ],
)
def test_values_schema_refuses_bad_monitoring_values(helm: Any, bad: dict[str, Any]) -> None:
    with helm.Chart.load(CHART_DIR) as chart, pytest.raises(helm.HelmValuesError):
        chart.validate_schema({"monitoring": bad})


def test_rules_without_a_metrics_port_are_refused_not_a_p0_that_always_fires(helm: Any) -> None:
    """TallyInstanceDown is `up == 0`: with metrics off nothing is ever up."""
    with helm.Chart.load(CHART_DIR) as chart:
        refused = re.escape("monitoring.rules.enabled needs metrics.enabled")
        with pytest.raises(helm.HelmError, match=refused):
            chart.render(
                {"metrics": {"enabled": False}, "monitoring": {"rules": {"enabled": True}}},
                name="tally", namespace="tally", is_install=True,
            )  # fmt: skip
        assert chart.render(
            {"metrics": {"enabled": False}}, name="tally", namespace="tally", is_install=True
        )
