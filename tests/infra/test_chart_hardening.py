"""Chart hardening: probes, drain, spread, autoscaling, a strict schema, refused
combinations, and a NetworkPolicy limited to configured CIDRs and ports."""

from __future__ import annotations

import ipaddress
import re
from typing import Any

import pytest
import yaml

from ._support import CHART_DIR
from .test_helm_chart import KINDS, by_kind, workload
from .test_helm_chart import kubernetes_validate as kubernetes_validate  # the fixture

pytestmark = pytest.mark.infra

METADATA = ipaddress.ip_address("169.254.169.254")
# externalSecrets as `tally provision` turns them on, without the store CA.
SYNCED = {
    "enabled": True,
    "region": "eu-west-1",
    "storeSecret": "tally/acme/store",
    "signingKeysSecret": "tally/acme/signing-keys",
}


def render(helm: Any, values: dict[str, Any] | None) -> list[dict[str, Any]]:
    with helm.Chart.load(CHART_DIR) as chart:
        out = chart.render(values, name="tally", namespace="tally", is_install=True)
    return [
        doc
        for path, text in sorted(out.items())
        if path.endswith(".yaml")
        for doc in yaml.safe_load_all(text)
        if doc
    ]


@pytest.mark.parametrize("kind", KINDS)
def test_probes_wait_longer_than_the_store_and_startup_has_its_own(
    kind: str, manifests: dict[str, list[dict[str, Any]]]
) -> None:
    container = workload(manifests[kind])
    config = by_kind(manifests[kind], "ConfigMap")["data"]
    store_ms = int(config["TALLY_MONGO_TIMEOUT_MS"])
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["readinessProbe"]["timeoutSeconds"] * 1000 > store_ms
    startup = container["startupProbe"]
    assert startup["httpGet"] == {"path": "/healthz", "port": "http"}
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 30  # a cold start fits
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        assert container[probe]["timeoutSeconds"] >= 1


@pytest.mark.parametrize("kind", KINDS)
def test_pods_drain_before_they_stop_and_spread_across_zones(
    kind: str, manifests: dict[str, list[dict[str, Any]]]
) -> None:
    deployment = by_kind(manifests[kind], "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    command = workload(manifests[kind])["lifecycle"]["preStop"]["exec"]["command"]
    assert command[0] == "sleep" and int(command[1]) >= 5
    assert pod["terminationGracePeriodSeconds"] > int(command[1])
    spread = {c["topologyKey"]: c for c in pod["topologySpreadConstraints"]}
    zone = spread["topology.kubernetes.io/zone"]
    assert zone["maxSkew"] == 1 and zone["whenUnsatisfiable"] == "ScheduleAnyway"
    assert zone["labelSelector"]["matchLabels"] == deployment["spec"]["selector"]["matchLabels"]


@pytest.mark.parametrize("kind", KINDS)
def test_hpa_scales_at_60_percent_cpu_with_a_behavior(
    kind: str, manifests: dict[str, list[dict[str, Any]]]
) -> None:
    hpa = by_kind(manifests[kind], "HorizontalPodAutoscaler")["spec"]
    (metric,) = hpa["metrics"]
    assert metric["resource"]["name"] == "cpu"
    assert metric["resource"]["target"]["averageUtilization"] == 60
    behavior = hpa["behavior"]
    assert behavior["scaleDown"]["stabilizationWindowSeconds"] >= 60  # no flapping
    assert behavior["scaleUp"]["policies"] and behavior["scaleDown"]["policies"]


@pytest.mark.parametrize("kind", KINDS)
def test_network_policy_egress_is_limited_to_configured_cidrs_and_ports(
    kind: str, manifests: dict[str, list[dict[str, Any]]]
) -> None:
    policy = by_kind(manifests[kind], "NetworkPolicy")["spec"]
    rules = [r for r in policy["egress"] if any("ipBlock" in p for p in r["to"])]
    open_to_all = {
        p["port"] for r in rules for p in r["ports"] if any(
            b["ipBlock"]["cidr"] == "0.0.0.0/0" for b in r["to"]
        )
    }  # fmt: skip
    assert open_to_all == {443}  # the store port is never open to the internet
    store = next(r for r in rules if {"port": 27017, "protocol": "TCP"} in r["ports"])
    assert [b["ipBlock"]["cidr"] for b in store["to"]] == ["10.0.0.0/8"]
    for rule in rules:
        for peer in rule["to"]:
            block = peer["ipBlock"]
            network = ipaddress.ip_network(block["cidr"])
            # Metadata is cut out of every block that holds it, and only there.
            assert (METADATA in network) == ("169.254.169.254/32" in block.get("except", []))


def test_an_alb_with_ip_targets_can_be_admitted_and_egress_configured(
    helm: Any, kubernetes_validate: Any
) -> None:
    values = {
        "networkPolicy": {
            "ingressFrom": [],
            "ingressCIDRs": ["10.20.0.0/22", "10.20.4.0/22"],
            "egress": [
                {"cidrs": ["10.20.32.0/20"], "ports": [27017]},
                {"cidrs": ["169.254.0.0/16", "52.94.0.0/16"], "ports": [443, 8443]},
            ],
        }
    }
    objects = render(helm, values)
    policy = by_kind(objects, "NetworkPolicy")["spec"]
    http = policy["ingress"][0]
    assert [p["ipBlock"]["cidr"] for p in http["from"] if "ipBlock" in p] == [
        "10.20.0.0/22",
        "10.20.4.0/22",
    ]
    egress = [r for r in policy["egress"] if any("ipBlock" in p for p in r["to"])]
    assert [[b["ipBlock"]["cidr"] for b in r["to"]] for r in egress] == [
        ["10.20.32.0/20"],
        ["169.254.0.0/16", "52.94.0.0/16"],
    ]
    assert egress[1]["to"][0]["ipBlock"]["except"] == ["169.254.169.254/32"]
    assert "except" not in egress[1]["to"][1]["ipBlock"]
    assert [p["port"] for p in egress[1]["ports"]] == [443, 8443]
    version = kubernetes_validate.latest_version()
    for obj in objects:
        kubernetes_validate.validate(obj, version, strict=True)


@pytest.mark.parametrize(
    "values",
    [
        {"topologySpreadConstraint": []},  # misspelt: was silently ignored
        {"replicas": 3},
        {"readinessProbe": {"timeout": 10}},
        {"networkPolicy": {"egressCIDR": "0.0.0.0/0"}},  # the old key: now refused
        {"networkPolicy": {"egress": [{"cidrs": ["everywhere"], "ports": [443]}]}},
        {"networkPolicy": {"ingressCIDRs": ["10.0.0.0/33"]}},
        {"autoscaling": {"behaviour": {}}},
        {"topologySpreadConstraints": [{"maxSkew": 1, "topologyKey": "zone"}]},
        {"ingress": {"hosts": []}},  # an Ingress without rules, an empty public URL
    ],
)
def test_the_schema_refuses_unknown_and_malformed_keys(helm: Any, values: dict[str, Any]) -> None:
    with helm.Chart.load(CHART_DIR) as chart, pytest.raises(helm.HelmValuesError):
        chart.validate_schema(values)


@pytest.mark.parametrize(
    "values",
    [
        {"replicaCount": 1, "autoscaling": {"enabled": False}},
        {"autoscaling": {"enabled": True, "minReplicas": 1}},
    ],
)
def test_the_schema_refuses_one_replica_with_a_pdb_of_one(
    helm: Any, values: dict[str, Any]
) -> None:
    with helm.Chart.load(CHART_DIR) as chart:
        with pytest.raises(helm.HelmValuesError, match="minAvailable"):
            chart.validate_schema(values)
        # Either way out of the deadlock is accepted.
        chart.validate_schema({**values, "podDisruptionBudget": {"enabled": False}})
        chart.validate_schema({**values, "podDisruptionBudget": {"minAvailable": 0}})


@pytest.mark.parametrize(
    ("values", "message"),
    [
        (
            {"autoscaling": {"minReplicas": 2}, "podDisruptionBudget": {"minAvailable": 2}},
            "podDisruptionBudget.minAvailable (2) must be below the replica count (2)",
        ),
        (
            {
                "replicaCount": 3,
                "autoscaling": {"enabled": False},
                "podDisruptionBudget": {"minAvailable": 3},
            },
            "must be below the replica count (3)",
        ),
        (
            {"readinessProbe": {"timeoutSeconds": 5}},
            "readinessProbe.timeoutSeconds (5 s) must be longer than tally.storeTimeoutMs (5000",
        ),
        (
            {"tally": {"storeTimeoutMs": 9000}},
            "must be longer than tally.storeTimeoutMs (9000 ms)",
        ),
        (
            {"preStopSleepSeconds": 30, "terminationGracePeriodSeconds": 30},
            "terminationGracePeriodSeconds (30) must be longer than preStopSleepSeconds (30)",
        ),
        (
            {"autoscaling": {"minReplicas": 5, "maxReplicas": 2}},
            "autoscaling.minReplicas (5) must not exceed autoscaling.maxReplicas (2)",
        ),
        (
            {"externalSecrets": SYNCED, "storeCA": {"secretKey": "global-bundle.pem"}},
            "storeCA.secretKey (global-bundle.pem) needs externalSecrets.storeCASecret",
        ),
        (
            {"externalSecrets": {**SYNCED, "storeCASecret": "tally/platform/store-ca"}},
            "externalSecrets.storeCASecret (tally/platform/store-ca) needs storeCA.secretKey",
        ),
        (
            {"ingress": {"enabled": False, "hosts": []}},
            "tally.publicUrl is empty and there is no ingress host",
        ),
    ],
)  # fmt: skip
def test_rendering_refuses_combinations_that_break_the_release(
    helm: Any, values: dict[str, Any], message: str
) -> None:
    with pytest.raises(helm.HelmError, match=re.escape(message)):
        render(helm, values)


def test_the_store_timeout_reaches_the_app_and_a_longer_probe_is_accepted(helm: Any) -> None:
    objects = render(
        helm, {"tally": {"storeTimeoutMs": 9000}, "readinessProbe": {"timeoutSeconds": 12}}
    )
    assert by_kind(objects, "ConfigMap")["data"]["TALLY_MONGO_TIMEOUT_MS"] == "9000"
    assert workload(objects)["readinessProbe"]["timeoutSeconds"] == 12


@pytest.mark.parametrize(
    "values",
    [
        {"autoscaling": {"minReplicas": 3, "maxReplicas": 3}},
        {"autoscaling": {"enabled": False, "minReplicas": 5, "maxReplicas": 2}},  # no HPA
        {
            "externalSecrets": {**SYNCED, "storeCASecret": "tally/platform/store-ca"},
            "storeCA": {"secretKey": "global-bundle.pem"},
        },
        {"storeCA": {"secretKey": "ca.pem"}},  # a key of an operator-made Secret
        {"ingress": {"enabled": False, "hosts": []}, "tally": {"publicUrl": "https://t.example"}},
    ],
)  # fmt: skip
def test_the_refusals_accept_the_consistent_forms(helm: Any, values: dict[str, Any]) -> None:
    assert render(helm, values)
