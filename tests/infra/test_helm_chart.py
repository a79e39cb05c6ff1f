"""The Helm chart: lint, schema, strict Kubernetes validation, and what it renders."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from ._support import CHART_DIR, TERRAFORM_OUTPUTS, missing

pytestmark = pytest.mark.infra

KINDS = ("pooled", "tenant", "provisioned", "provisioned-pooled")
# Custom resources (cert-manager, external-secrets.io) kubernetes-validate has no schema of.
CRD_GROUPS = ("cert-manager.io/", "external-secrets.io/")
LINT_ERROR = 3


def by_kind(objects: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    """The app's one object of ``kind`` (the migrate hook's own objects aside)."""
    matches = [
        o
        for o in objects
        if o["kind"] == kind
        and (o["metadata"].get("labels") or {}).get("app.kubernetes.io/component") != "migrate"
    ]
    assert len(matches) == 1, f"expected one {kind}, found {len(matches)}"
    return matches[0]


def workload(objects: list[dict[str, Any]]) -> dict[str, Any]:
    container: dict[str, Any] = by_kind(objects, "Deployment")["spec"]["template"]["spec"][
        "containers"
    ][0]
    return container


@pytest.fixture(scope="session")
def kubernetes_validate() -> Any:
    try:
        import kubernetes_validate
    except ImportError:
        missing("kubernetes-validate is not installed (pip install 'kubernetes-validate>=1.33')")
    return kubernetes_validate


@pytest.mark.parametrize("kind", KINDS)
def test_chart_lints_without_errors(
    kind: str,
    helm: Any,
    tenant_values: dict[str, Any],
    provisioned_values: dict[str, Any],
    provisioned_pooled: Path,
    kubernetes_validate: Any,
) -> None:
    values = {
        "pooled": None,
        "tenant": tenant_values,
        "provisioned": provisioned_values,
        "provisioned-pooled": yaml.safe_load(provisioned_pooled.read_text()),
    }[kind]
    kube = f"v{kubernetes_validate.latest_version()}"
    report = helm.lint(CHART_DIR, values, namespace="tally", kube_version=kube)
    errors = [m for m in report["messages"] if m["severity"] >= LINT_ERROR]
    assert not report["errors"] and not errors, report


def test_values_schema_accepts_both_value_sets(helm: Any, tenant_values: dict[str, Any]) -> None:
    with helm.Chart.load(CHART_DIR) as chart:
        assert chart.schema is not None
        chart.validate_schema(None)
        chart.validate_schema(tenant_values)


@pytest.mark.parametrize(
    ("path", "bad"),
    [
        (("branding", "color"), "orange"),
        (("tally", "tenant"), "Not_A_Slug"),
        (("ingress", "hosts"), ["https://acme.com/"]),
        (("existingSecret",), ""),
        (("metrics", "port"), 8080),  # the API's port: metrics would reach the Ingress
        (("metrics", "scrapeFrom"), []),  # an empty `from` admits everyone
    ],
)
def test_values_schema_rejects_bad_input(
    path: tuple[str, ...], bad: Any, helm: Any, tenant_values: dict[str, Any]
) -> None:
    values = copy.deepcopy(tenant_values)
    values.setdefault("existingSecret", "tally")
    node = values
    for key in path[:-1]:
        node = node.setdefault(key, {})
    node[path[-1]] = bad
    with helm.Chart.load(CHART_DIR) as chart, pytest.raises(helm.HelmValuesError):
        chart.validate_schema(values)


@pytest.mark.parametrize("kind", KINDS)
def test_every_manifest_is_valid_for_the_newest_kubernetes_in_strict_mode(
    kind: str, manifests: dict[str, list[dict[str, Any]]], kubernetes_validate: Any
) -> None:
    version = kubernetes_validate.latest_version()
    assert manifests[kind]
    for obj in manifests[kind]:
        if obj["apiVersion"].startswith(CRD_GROUPS):
            continue  # no schema here; test_tenant_readiness.py checks what their controllers need
        try:
            kubernetes_validate.validate(obj, version, strict=True)
        except kubernetes_validate.ValidationError as error:
            pytest.fail(f"{obj['kind']}/{obj['metadata']['name']}: {error.message}")


@pytest.mark.parametrize("kind", KINDS)
def test_chart_renders_the_expected_objects_and_never_a_secret(
    kind: str, manifests: dict[str, list[dict[str, Any]]]
) -> None:
    kinds = sorted(o["kind"] for o in manifests[kind])
    # The provisioned bundle also has its TLS certificate and its secrets synced.
    bundle = ["Certificate", "ExternalSecret", "ExternalSecret", "SecretStore"]
    assert kinds == sorted(
        [
            "ConfigMap",
            "Deployment",
            "HorizontalPodAutoscaler",
            "Ingress",
            "Job",
            "NetworkPolicy",
            "NetworkPolicy",  # the migrate hook's own
            "PodDisruptionBudget",
            "Pod",
            "Service",
            "ServiceAccount",
            *(bundle if kind.startswith("provisioned") else []),
        ]
    )
    assert "Secret" not in kinds


@pytest.mark.parametrize("kind", KINDS)
def test_pods_are_hardened(kind: str, manifests: dict[str, list[dict[str, Any]]]) -> None:
    pod_spec = by_kind(manifests[kind], "Deployment")["spec"]["template"]["spec"]
    assert pod_spec["securityContext"]["runAsNonRoot"] is True
    assert pod_spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod_spec["automountServiceAccountToken"] is False
    container = pod_spec["containers"][0]
    security = container["securityContext"]
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"] == {"drop": ["ALL"]}
    assert security["runAsUser"] >= 10000
    assert container["resources"]["requests"] and container["resources"]["limits"]
    tmp = next(v for v in pod_spec["volumes"] if v["name"] == "tmp")
    assert "emptyDir" in tmp
    assert {"name": "tmp", "mountPath": "/tmp"} in container["volumeMounts"]


@pytest.mark.parametrize("kind", KINDS)
def test_probes_and_command(kind: str, manifests: dict[str, list[dict[str, Any]]]) -> None:
    container = workload(manifests[kind])
    # The pod must listen beyond loopback for the Service to reach it.
    all_interfaces = "0.0.0.0"  # noqa: S104
    assert container["command"] == ["tally", "serve", "--host", all_interfaces, "--port", "8080"]
    assert container["ports"] == [
        {"name": "http", "containerPort": 8080, "protocol": "TCP"},
        {"name": "metrics", "containerPort": 9464, "protocol": "TCP"},
    ]
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}


@pytest.mark.parametrize("kind", KINDS)
def test_secrets_come_only_from_existing_secrets(
    kind: str, manifests: dict[str, list[dict[str, Any]]]
) -> None:
    deployment = by_kind(manifests[kind], "Deployment")
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert container["env"] == [
        {
            "name": "TALLY_STORE_URL",
            "valueFrom": {"secretKeyRef": {"name": "tally", "key": "store-url"}},
        }
    ]
    keys = next(
        v for v in deployment["spec"]["template"]["spec"]["volumes"] if v["name"] == "signing-keys"
    )
    assert keys["secret"]["secretName"] == "tally-signing-keys"
    mount = next(m for m in container["volumeMounts"] if m["name"] == "signing-keys")
    config = by_kind(manifests[kind], "ConfigMap")["data"]
    assert mount["readOnly"] is True
    assert mount["mountPath"] == config["TALLY_KEYS_DIR"] == "/var/run/tally/keys"
    assert "TALLY_STORE_URL" not in config


def test_pooled_instance_uses_tally_branding_and_no_tenant(
    manifests: dict[str, list[dict[str, Any]]],
) -> None:
    config = by_kind(manifests["pooled"], "ConfigMap")["data"]
    assert config["TALLY_TENANT"] == ""
    assert config["TALLY_BRAND_NAME"] == "Tally"
    assert config["TALLY_ENVIRONMENT"] == "production"
    assert config["TALLY_LOG_FORMAT"] == "json"  # what the log platform reads
    assert config["TALLY_PUBLIC_URL"] == "https://tally.example.com"
    account = by_kind(manifests["pooled"], "ServiceAccount")
    assert "eks.amazonaws.com/role-arn" not in (account["metadata"].get("annotations") or {})


def test_pooled_release_cd_renders_serves_the_platform_domain_with_its_own_role(
    manifests: dict[str, list[dict[str, Any]]],
) -> None:
    """What `instance.sh release pooled` installs: `tally provision --pooled`'s values."""
    pooled = json.loads(TERRAFORM_OUTPUTS.read_text())["platform"]["value"]["pooled"]
    objects = manifests["provisioned-pooled"]
    config = by_kind(objects, "ConfigMap")["data"]
    assert config["TALLY_TENANT"] == "" and config["TALLY_BRAND_NAME"] == "Tally"
    assert config["TALLY_PUBLIC_URL"] == config["TALLY_JWT_ISSUER"] == pooled["public_url"]
    assert config["TALLY_MONGO_DATABASE"] == pooled["database"]
    ingress = by_kind(objects, "Ingress")["spec"]
    assert [r["host"] for r in ingress["rules"]] == pooled["hosts"]
    account = by_kind(objects, "ServiceAccount")
    assert account["metadata"]["name"] == pooled["service_account_name"]
    assert account["metadata"]["annotations"]["eks.amazonaws.com/role-arn"] == pooled["role_arn"]
    assert all(o["metadata"]["namespace"] == pooled["namespace"] for o in objects)


def test_tenant_instance_is_branded_and_siloed(
    manifests: dict[str, list[dict[str, Any]]], tenant_values: dict[str, Any]
) -> None:
    config = by_kind(manifests["tenant"], "ConfigMap")["data"]
    assert config["TALLY_TENANT"] == "acme"
    assert config["TALLY_BRAND_NAME"] == "Acme Corp"
    assert config["TALLY_BRAND_COLOR"] == "#FF6600"
    assert config["TALLY_BRAND_LOGO_URL"] == "https://cdn.acme.com/logo.svg"
    assert config["TALLY_PUBLIC_URL"] == "https://numbers.acme.com"
    assert config["TALLY_JWT_ISSUER"] == "https://numbers.acme.com"
    assert config["TALLY_MONGO_DATABASE"] == "tally_acme"
    for obj in manifests["tenant"]:
        assert obj["metadata"]["namespace"] == "tally-acme"
    account = by_kind(manifests["tenant"], "ServiceAccount")
    assert account["metadata"]["name"] == "tally"
    assert (
        account["metadata"]["annotations"]["eks.amazonaws.com/role-arn"]
        == (tenant_values["serviceAccount"]["roleArn"])
    )


def test_tenant_ingress_serves_its_hosts_over_tls(
    manifests: dict[str, list[dict[str, Any]]],
) -> None:
    spec = by_kind(manifests["tenant"], "Ingress")["spec"]
    hosts = ["acme.tally.example.com", "numbers.acme.com"]
    assert [rule["host"] for rule in spec["rules"]] == hosts
    assert spec["tls"] == [{"hosts": hosts, "secretName": "tally-acme-tls"}]
    assert spec["ingressClassName"] == "nginx"
    backend = spec["rules"][0]["http"]["paths"][0]["backend"]["service"]
    assert backend == {"name": "tally", "port": {"name": "http"}}


@pytest.mark.parametrize("kind", KINDS)
def test_selectors_never_carry_the_chart_version(
    kind: str, manifests: dict[str, list[dict[str, Any]]]
) -> None:
    objects = manifests[kind]
    selectors = [
        by_kind(objects, "Deployment")["spec"]["selector"]["matchLabels"],
        by_kind(objects, "Service")["spec"]["selector"],
        by_kind(objects, "PodDisruptionBudget")["spec"]["selector"]["matchLabels"],
        by_kind(objects, "NetworkPolicy")["spec"]["podSelector"]["matchLabels"],
    ]
    for selector in selectors:
        assert selector == {
            "app.kubernetes.io/name": "tally",
            "app.kubernetes.io/instance": "tally",
        }


def test_helm_test_pod_calls_healthz(manifests: dict[str, list[dict[str, Any]]]) -> None:
    pod = by_kind(manifests["pooled"], "Pod")
    assert pod["metadata"]["annotations"]["helm.sh/hook"] == "test"
    assert "http://tally:80/healthz" in " ".join(pod["spec"]["containers"][0]["command"])


def test_notes_name_the_mode_and_url(rendered: dict[str, dict[str, str]]) -> None:
    notes = {
        kind: text
        for kind, t in rendered.items()
        for p, text in t.items()
        if p.endswith("NOTES.txt")
    }
    assert "pooled instance" in notes["pooled"]
    assert 'siloed instance of tenant "acme"' in notes["tenant"]
    assert "https://numbers.acme.com" in notes["tenant"]
    assert "Prometheus metrics: port 9464" in notes["pooled"]


@pytest.mark.parametrize("kind", KINDS)
def test_metrics_port_is_scraped_in_cluster_and_never_routed_by_the_ingress(
    kind: str, manifests: dict[str, list[dict[str, Any]]]
) -> None:
    objects = manifests[kind]
    config = by_kind(objects, "ConfigMap")["data"]
    assert config["TALLY_METRICS_PORT"] == "9464"
    pod = by_kind(objects, "Deployment")["spec"]["template"]["metadata"]["annotations"]
    assert pod["prometheus.io/scrape"] == "true" and pod["prometheus.io/port"] == "9464"
    ingress = by_kind(objects, "Ingress")
    backends = [
        path["backend"]["service"]["port"]
        for rule in ingress["spec"]["rules"]
        for path in rule["http"]["paths"]
    ]
    assert backends and all(port == {"name": "http"} for port in backends)
    rules = by_kind(objects, "NetworkPolicy")["spec"]["ingress"]
    metrics_rules = [r for r in rules if {"port": "metrics", "protocol": "TCP"} in r["ports"]]
    assert len(metrics_rules) == 1
    assert metrics_rules[0]["from"] == [
        {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}
    ]
    assert rules[0]["ports"] == [{"port": "http", "protocol": "TCP"}]  # the ingress controller's


def test_metrics_can_be_switched_off(helm: Any) -> None:

    with helm.Chart.load(CHART_DIR) as chart:
        out = chart.render({"metrics": {"enabled": False}}, name="tally", namespace="tally")
    objects = [
        d for path, t in out.items() if path.endswith(".yaml") for d in yaml.safe_load_all(t) if d
    ]
    assert "TALLY_METRICS_PORT" not in by_kind(objects, "ConfigMap")["data"]
    assert [p["name"] for p in workload(objects)["ports"]] == ["http"]
    annotations = by_kind(objects, "Deployment")["spec"]["template"]["metadata"]["annotations"]
    assert "prometheus.io/scrape" not in annotations
