"""A tenant's release becomes ready on `tally provision`'s values alone (no `ci/` values),
and so does the pooled one on `tally provision --pooled`'s (what CD releases it with).

Every object a pod needs before it can pass /readyz must be made by the release itself
or by a controller from something the release renders: the Secrets (external-secrets.io
through the tenant's IAM role), the store's CA bundle, the TLS Secret (cert-manager),
the ingress class, and the migrate hook's prerequisites, in the order Helm creates them.
"""

from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import urlparse

import pytest

from ._support import TERRAFORM_DIR, TERRAFORM_OUTPUTS

pytestmark = pytest.mark.infra

KINDS = ("pooled", "tenant", "provisioned", "provisioned-pooled")


def one(objects: list[dict[str, Any]], kind: str, name: str | None = None) -> dict[str, Any]:
    found = [o for o in objects if o["kind"] == kind and name in (None, o["metadata"]["name"])]
    assert len(found) == 1, f"expected one {kind} {name or ''}, found {len(found)}"
    return found[0]


# The releases rendered from `tally provision`'s values alone.
PROVISIONED = ("provisioned", "provisioned-pooled")


def outputs(kind: str = "provisioned") -> tuple[dict[str, Any], dict[str, Any]]:
    """(platform, the instance's own block) of the outputs its values came from."""
    data = json.loads(TERRAFORM_OUTPUTS.read_text())
    platform = data["platform"]["value"]
    if kind == "provisioned-pooled":
        return platform, platform["pooled"]
    return platform, data["tenants"]["value"]["acme"]


def pod_spec(obj: dict[str, Any]) -> dict[str, Any]:
    spec: dict[str, Any] = obj["spec"]["template"]["spec"]
    return spec


def secret_refs(spec: dict[str, Any]) -> set[tuple[str, str | None]]:
    """(secret, key) every container env and secret volume of a pod needs (key None: all)."""
    refs: set[tuple[str, str | None]] = set()
    for container in spec["containers"]:
        for env in container.get("env", []):
            ref = env.get("valueFrom", {}).get("secretKeyRef")
            if ref:
                refs.add((ref["name"], ref["key"]))
    for volume in spec.get("volumes", []):
        secret = volume.get("secret")
        if secret:
            items = secret.get("items")
            if items:
                refs.update((secret["secretName"], item["key"]) for item in items)
            else:
                refs.add((secret["secretName"], None))
    return refs


def hook_weight(obj: dict[str, Any]) -> int | None:
    annotations = obj["metadata"].get("annotations") or {}
    hooks = set(annotations.get("helm.sh/hook", "").split(","))
    if {"pre-install", "pre-upgrade"} <= hooks:
        return int(annotations.get("helm.sh/hook-weight", "0"))
    return None


@pytest.mark.parametrize("kind", PROVISIONED)
def test_every_secret_a_pod_needs_is_synced_through_the_instances_role(
    kind: str, manifests: dict[str, list[dict[str, Any]]]
) -> None:
    objects = manifests[kind]
    platform, acme = outputs(kind)
    account = one(objects, "ServiceAccount")
    assert account["metadata"]["annotations"]["eks.amazonaws.com/role-arn"] == acme["role_arn"]
    stores = {o["metadata"]["name"]: o for o in objects if o["kind"] == "SecretStore"}
    synced: dict[str, dict[str, Any]] = {
        o["spec"]["target"]["name"]: o for o in objects if o["kind"] == "ExternalSecret"
    }
    needed = secret_refs(pod_spec(one(objects, "Deployment"))) | secret_refs(
        pod_spec(one(objects, "Job"))
    )
    assert {name for name, _ in needed} == {"tally", "tally-signing-keys"}
    remote_keys: set[str] = set()
    for name, key in needed:
        assert name in synced, f"nothing creates Secret {name}"
        spec = synced[name]["spec"]
        keys = {d["secretKey"] for d in spec.get("data", [])}
        assert key is None or key in keys or spec.get("dataFrom"), f"{name} lacks key {key}"
        remote_keys |= {d["remoteRef"]["key"] for d in spec.get("data", [])}
        remote_keys |= {d["extract"]["key"] for d in spec.get("dataFrom", [])}
        store = stores[spec["secretStoreRef"]["name"]]["spec"]["provider"]["aws"]
        assert store["service"] == "SecretsManager" and store["region"] == platform["region"]
        assert store["auth"]["jwt"]["serviceAccountRef"]["name"] == account["metadata"]["name"]
    # Exactly the secrets Terraform made for this instance (and the platform's CA bundle).
    assert remote_keys == {
        acme["store_secret_name"],
        acme["signing_keys_secret_name"],
        platform["store_ca_secret_name"],
    }


@pytest.mark.parametrize("kind", PROVISIONED)
def test_the_store_ca_is_mounted_where_the_store_url_points(
    kind: str, manifests: dict[str, list[dict[str, Any]]]
) -> None:
    """terraform/live writes tlsCAFile=<var.store_ca_file> into every DocumentDB URL."""
    variables = (TERRAFORM_DIR / "live" / "variables.tf").read_text()
    match = re.search(r'variable "store_ca_file" \{.*?default\s*=\s*"([^"]+)"', variables, re.S)
    assert match, "terraform/live lost var.store_ca_file"
    ca_file = match[1]
    for workload in ("Deployment", "Job"):
        spec = pod_spec(one(manifests[kind], workload))
        mount = next(m for m in spec["containers"][0]["volumeMounts"] if m["name"] == "store-ca")
        volume = next(v for v in spec["volumes"] if v["name"] == "store-ca")
        paths = [f"{mount['mountPath']}/{i['path']}" for i in volume["secret"]["items"]]
        assert paths == [ca_file], workload


@pytest.mark.parametrize("kind", PROVISIONED)
def test_tls_for_every_host_is_issued_into_the_secret_the_ingress_serves(
    kind: str, manifests: dict[str, list[dict[str, Any]]]
) -> None:
    objects = manifests[kind]
    platform, acme = outputs(kind)
    ingress = one(objects, "Ingress")["spec"]
    certificate = one(objects, "Certificate")["spec"]
    assert ingress["ingressClassName"] == platform["ingress_class_name"]
    hosts = [rule["host"] for rule in ingress["rules"]]
    assert hosts == acme["hosts"]  # the custom domain too, for acme
    assert ingress["tls"] == [{"hosts": hosts, "secretName": certificate["secretName"]}]
    assert certificate["dnsNames"] == hosts
    assert certificate["issuerRef"] == {
        "group": "cert-manager.io",
        "kind": "ClusterIssuer",
        "name": platform["cluster_issuer"],
    }
    config = one(objects, "ConfigMap")["data"]
    assert urlparse(config["TALLY_PUBLIC_URL"]).hostname in hosts
    assert config["TALLY_JWT_ISSUER"] == config["TALLY_PUBLIC_URL"] == acme["public_url"]


@pytest.mark.parametrize("kind", PROVISIONED)
def test_the_ingress_reaches_the_readiness_probed_port(
    kind: str, manifests: dict[str, list[dict[str, Any]]]
) -> None:
    objects = manifests[kind]
    container = pod_spec(one(objects, "Deployment"))["containers"][0]
    service = one(objects, "Service")
    backend = one(objects, "Ingress")["spec"]["rules"][0]["http"]["paths"][0]["backend"]
    assert backend["service"]["name"] == service["metadata"]["name"]
    port = next(
        p for p in service["spec"]["ports"] if p["name"] == backend["service"]["port"]["name"]
    )
    assert port["targetPort"] in ("http", 8080)
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    config_maps = {o["metadata"]["name"] for o in objects if o["kind"] == "ConfigMap"}
    for source in container.get("envFrom", []):
        assert source["configMapRef"]["name"] in config_maps


@pytest.mark.parametrize("kind", PROVISIONED)
def test_what_the_migrate_hook_needs_exists_before_it(
    kind: str, manifests: dict[str, list[dict[str, Any]]]
) -> None:
    objects = manifests[kind]
    job = one(objects, "Job")
    job_weight = hook_weight(job)
    assert job_weight is not None, "the migrate Job must be a pre-install/pre-upgrade hook"
    before = [
        one(objects, "ServiceAccount"),
        *(o for o in objects if o["kind"] in ("SecretStore", "ExternalSecret")),
    ]
    for obj in before:
        weight = hook_weight(obj)
        assert weight is not None and weight < job_weight, (
            f"{obj['kind']}/{obj['metadata']['name']} must be created before the migrate hook"
        )
    account, store = one(objects, "ServiceAccount"), one(objects, "SecretStore")
    assert hook_weight(account) < hook_weight(store)  # type: ignore[operator]
    # A synced Secret must outlive its hook object's re-creation on every upgrade.
    for secret in (o for o in objects if o["kind"] == "ExternalSecret"):
        assert secret["spec"]["target"]["creationPolicy"] == "Orphan"


@pytest.mark.parametrize("kind", KINDS)
def test_migrate_hook_runs_with_the_deployments_image_and_settings(
    kind: str, manifests: dict[str, list[dict[str, Any]]]
) -> None:
    objects = manifests[kind]
    deployment, job = one(objects, "Deployment"), one(objects, "Job")
    app, migrate = pod_spec(deployment), pod_spec(job)
    container, task = app["containers"][0], migrate["containers"][0]
    assert task["command"] == ["tally", "migrate"]
    assert task["image"] == container["image"]
    assert task["securityContext"] == container["securityContext"]
    assert migrate["securityContext"] == app["securityContext"]
    assert migrate["serviceAccountName"] == app["serviceAccountName"]
    assert migrate["restartPolicy"] == "Never"
    # The same settings: the ConfigMap's data inline (it does not exist yet on install)
    # plus the Deployment's own env (the store URL from its Secret).
    config = one(objects, "ConfigMap")["data"]
    expected = [{"name": k, "value": v} for k, v in sorted(config.items())] + container["env"]
    assert task["env"] == expected
    mounts = [m for m in container["volumeMounts"] if m["name"] != "signing-keys"]
    assert task["volumeMounts"] == mounts
    annotations = job["metadata"]["annotations"]
    assert annotations["helm.sh/hook"] == "pre-install,pre-upgrade"
    assert "hook-succeeded" in annotations["helm.sh/hook-delete-policy"]


@pytest.mark.parametrize("kind", KINDS)
def test_the_migrate_pod_is_never_behind_the_service(
    kind: str, manifests: dict[str, list[dict[str, Any]]]
) -> None:
    """A running Job pod without a readiness probe counts as ready: no selector may match."""
    objects = manifests[kind]
    labels = one(objects, "Job")["spec"]["template"]["metadata"]["labels"]
    selectors = [
        one(objects, "Service")["spec"]["selector"],
        one(objects, "PodDisruptionBudget")["spec"]["selector"]["matchLabels"],
        one(objects, "Deployment")["spec"]["selector"]["matchLabels"],
    ]
    for selector in selectors:
        assert not selector.items() <= labels.items(), selector


@pytest.mark.parametrize("kind", KINDS)
def test_the_migrate_pod_has_a_network_policy_with_the_apps_egress(
    kind: str, manifests: dict[str, list[dict[str, Any]]]
) -> None:
    objects = manifests[kind]
    labels = one(objects, "Job")["spec"]["template"]["metadata"]["labels"]
    policies = [o for o in objects if o["kind"] == "NetworkPolicy"]
    app = one(objects, "NetworkPolicy", "tally")
    mine = [
        p for p in policies if p["spec"]["podSelector"]["matchLabels"].items() <= labels.items()
    ]
    assert len(mine) == 1
    policy = mine[0]
    assert policy["spec"]["policyTypes"] == ["Ingress", "Egress"]
    assert "ingress" not in policy["spec"], "nothing may connect to the migrate pod"
    assert policy["spec"]["egress"] == app["spec"]["egress"]
    assert hook_weight(policy) is not None and hook_weight(policy) < hook_weight(  # type: ignore[operator]
        one(objects, "Job")
    )
