"""``tally provision``: render a tenant's provisioning bundle, deterministically.

(``tally provision --pooled`` renders the pooled instance's Helm values the same way,
from the platform's ``pooled`` output alone: ``deploy/pooled/values.yaml``.)

Two files per tenant, both free of secrets:

* ``terraform/live/tenants/<slug>.json`` — the tenant file ``terraform/live`` reads
  (one ``tenant-instance`` per file); its keys are exactly the variables declared in
  ``terraform/live/tenant.schema.json``.
* ``deploy/tenants/<slug>/values.yaml`` — Helm values for the tenant's branded, siloed
  instance of ``deploy/helm/tally``.

Given ``terraform output -json`` of ``terraform/live``, the values take the real host
names, public URL, IAM role and image repository from it; without, they are derived
the same way the tenant-instance module derives them (``<slug>.<platform domain>``).
The same inputs always give the same bytes (sorted keys, fixed layout, no timestamps).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from tenants.errors import ProvisionError
from tenants.schemas import TenantOut

TENANT_FILE_DIR = Path("terraform/live/tenants")
# Used when `terraform output` does not name them (platform outputs override).
DEFAULT_INGRESS_CLASS = "nginx"
DEFAULT_CLUSTER_ISSUER = "letsencrypt"
# The file name terraform/live's store URL names in tlsCAFile (var.store_ca_file).
STORE_CA_FILE = "global-bundle.pem"
VALUES_DIR = Path("deploy/tenants")
# Where the pooled instance runs (the platform module's pooled_namespace; CD deploys there).
POOLED_NAMESPACE = "tally"
POOLED_VALUES = Path("deploy/pooled/values.yaml")
_PLAIN = re.compile(r"^[A-Za-z0-9_./-]+$")


def namespace_of(slug: str) -> str:
    return f"tally-{slug}"


def tenant_file(tenant: TenantOut, *, namespace: str) -> dict[str, Any]:
    """The tenant-instance variables for this tenant (see tenant.schema.json)."""
    return {
        "display_name": tenant.branding.display_name or tenant.name,
        "domain": tenant.domain,
        "logo_url": tenant.branding.logo_url,
        "namespace": namespace,
        "plan": tenant.plan.name,
        "primary_color": tenant.branding.primary_color,
        "slug": tenant.slug,
        "timezone": tenant.timezone,
    }


def _outputs_for(outputs: dict[str, Any], slug: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """(platform, tenant) blocks of ``terraform output -json``; tenant may be absent."""

    def value(name: str) -> dict[str, Any]:
        block = outputs.get(name, {})
        got = block.get("value", {}) if isinstance(block, dict) else {}
        if not isinstance(got, dict):
            raise ProvisionError(f"terraform output '{name}' is not an object")
        return got

    mine = value("tenants").get(slug) or {}
    if not isinstance(mine, dict):
        raise ProvisionError(f"terraform output 'tenants' for {slug} is not an object")
    hosts = mine.get("hosts")
    if mine and not (
        isinstance(hosts, list)
        and hosts
        and all(isinstance(h, str) for h in hosts)
        and isinstance(mine.get("public_url"), str)
    ):
        raise ProvisionError(
            f"terraform output 'tenants' for {slug} needs hosts (a list of names)"
            " and public_url (a string)"
        )
    return value("platform"), mine


def _check_namespace(name: str, mine: dict[str, Any], namespace: str) -> None:
    if mine.get("namespace", namespace) != namespace:
        raise ProvisionError(
            f"terraform outputs put {name} in namespace {mine['namespace']!r},"
            f" not {namespace!r}; re-run terraform apply after provisioning"
        )


def _instance_values(
    platform: dict[str, Any],
    mine: dict[str, Any],
    *,
    name: str,
    hosts: list[str],
    public_url: str,
    database: str,
    image_tag: str | None,
) -> dict[str, Any]:
    """What every instance's values share, pooled or a tenant's: its URL, hosts and TLS,
    database, IAM role and synced secrets, and image, from the platform's outputs and
    the instance's own block (``mine``). ``name`` is the slug, or ``pooled``."""
    values: dict[str, Any] = {
        "tally": {
            "publicUrl": public_url,
            "jwt": {"issuer": public_url, "audience": "tally"},
            "mongoDatabase": database,
        },
        "ingress": {
            "className": platform.get("ingress_class_name") or DEFAULT_INGRESS_CLASS,
            "hosts": hosts,
            "tls": {"enabled": True, "secretName": f"tally-{name}-tls"},
        },
        # TLS for every host, custom domain included: cert-manager issues the Secret the
        # Ingress names (HTTP-01 through that Ingress, so the client publishes one CNAME).
        "certificate": {
            "enabled": True,
            "issuerName": platform.get("cluster_issuer") or DEFAULT_CLUSTER_ISSUER,
        },
    }
    if mine.get("role_arn"):
        values["serviceAccount"] = {"roleArn": mine["role_arn"]}
    region = platform.get("region")
    if region and mine.get("role_arn"):
        # Its own database user and signing keys, synced with the instance's own IAM role.
        values["externalSecrets"] = {
            "enabled": True,
            "region": region,
            "storeSecret": mine.get("store_secret_name") or f"tally/{name}/store",
            "signingKeysSecret": mine.get("signing_keys_secret_name")
            or f"tally/{name}/signing-keys",
        }
        if platform.get("store_ca_secret_name"):
            # DocumentDB's TLS: the URL's tlsCAFile is <storeCA.mountPath>/<secretKey>.
            values["externalSecrets"]["storeCASecret"] = platform["store_ca_secret_name"]
            values["storeCA"] = {"secretKey": STORE_CA_FILE}
    image: dict[str, Any] = {}
    if platform.get("ecr_repository_url"):
        image["repository"] = platform["ecr_repository_url"]
    if image_tag:
        image["tag"] = image_tag
    if image:
        values["image"] = image
    return values


def helm_values(
    tenant: TenantOut,
    *,
    namespace: str,
    platform_domain: str | None,
    outputs: dict[str, Any] | None = None,
    image_tag: str | None = None,
) -> dict[str, Any]:
    """Values for the tenant's siloed release of the Helm chart."""
    platform, mine = _outputs_for(outputs or {}, tenant.slug)
    if mine:
        _check_namespace(tenant.slug, mine, namespace)
        hosts = list(mine["hosts"])
        public_url = str(mine["public_url"])
    else:
        domain = platform_domain or platform.get("domain_name")
        if not domain:
            raise ProvisionError(
                "the platform domain is unknown: pass --platform-domain or --terraform-outputs"
            )
        fqdn = f"{tenant.slug}.{domain}"
        hosts = [fqdn, *([tenant.domain] if tenant.domain else [])]
        public_url = f"https://{tenant.domain or fqdn}"
    values = _instance_values(
        platform,
        mine,
        name=tenant.slug,
        hosts=hosts,
        public_url=public_url,
        database=mine.get("database") or "tally_" + tenant.slug.replace("-", "_"),
        image_tag=image_tag,
    )
    values["tally"]["tenant"] = tenant.slug
    values["branding"] = {
        "name": tenant.branding.display_name or tenant.name,
        "color": tenant.branding.primary_color,
        "logoUrl": tenant.branding.logo_url or "",
    }
    return values


def pooled_values(
    outputs: dict[str, Any], *, namespace: str = POOLED_NAMESPACE, image_tag: str | None = None
) -> dict[str, Any]:
    """Values for the pooled release (Tally's branding, every tenant), from the platform's
    ``pooled`` output the way a tenant's come from its own: hosts, role, secrets."""
    platform, _ = _outputs_for(outputs, "")
    mine = platform.get("pooled")
    mine = mine if isinstance(mine, dict) else {}
    missing = [k for k in ("hosts", "public_url", "role_arn") if not mine.get(k)]
    if missing:
        raise ProvisionError(
            f"terraform output platform.pooled lacks {', '.join(missing)};"
            " run terraform apply with this version of terraform/live"
        )
    _check_namespace("the pooled instance", mine, namespace)
    return _instance_values(
        platform,
        mine,
        name="pooled",
        hosts=list(mine["hosts"]),
        public_url=str(mine["public_url"]),
        database=mine.get("database") or "tally",
        image_tag=image_tag,
    )


def to_yaml(data: Any, indent: int = 0) -> str:
    """A small, deterministic YAML writer for nested dicts/lists of scalars.

    Strings are written as JSON strings (valid YAML double-quoted scalars) unless they
    are plainly safe, so nothing a tenant typed can change the document's structure.
    """
    pad = "  " * indent
    lines: list[str] = []
    if isinstance(data, dict):
        for key in sorted(data):
            value = data[key]
            if isinstance(value, dict) and value:
                lines.append(f"{pad}{key}:")
                lines.append(to_yaml(value, indent + 1))
            elif isinstance(value, list) and value:
                lines.append(f"{pad}{key}:")
                lines.extend(f"{pad}  - {_scalar(item)}" for item in value)
            else:
                lines.append(f"{pad}{key}: {_scalar(value)}")
    return "\n".join(lines)


def _scalar(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if value is None:
        return "null"
    if isinstance(value, (dict, list)):
        return "{}" if isinstance(value, dict) else "[]"
    text = str(value)
    # Plain only when it starts with a letter and is no YAML 1.1/1.2 keyword (Helm's
    # parser still reads y/n/yes/no/on/off as booleans); everything else is quoted.
    reserved = {"true", "false", "yes", "no", "on", "off", "y", "n", "null", "nan", "inf"}
    if _PLAIN.match(text) and text[0].isalpha() and text.lower() not in reserved:
        return text
    return json.dumps(text)


def render(
    tenant: TenantOut,
    *,
    platform_domain: str | None,
    outputs: dict[str, Any] | None = None,
    image_tag: str | None = None,
    namespace: str | None = None,
) -> dict[Path, str]:
    """Relative path -> file content of the tenant's bundle."""
    ns = namespace or namespace_of(tenant.slug)
    values = helm_values(
        tenant, namespace=ns, platform_domain=platform_domain, outputs=outputs, image_tag=image_tag
    )
    header = (
        f"# Helm values for {tenant.slug}'s branded instance, rendered by `tally provision`.\n"
        f"# helm upgrade --install tally deploy/helm/tally --namespace {ns} --create-namespace"
        f" -f deploy/tenants/{tenant.slug}/values.yaml\n"
    )
    return {
        TENANT_FILE_DIR / f"{tenant.slug}.json": json.dumps(
            tenant_file(tenant, namespace=ns), indent=2, sort_keys=True
        )
        + "\n",
        VALUES_DIR / tenant.slug / "values.yaml": header + to_yaml(values) + "\n",
    }


def render_pooled(outputs: dict[str, Any], *, image_tag: str | None = None) -> dict[Path, str]:
    """Relative path -> content of the pooled instance's values (CD renders them each release)."""
    header = (
        "# Helm values for the pooled instance, rendered by `tally provision --pooled`.\n"
        f"# helm upgrade --install tally deploy/helm/tally --namespace {POOLED_NAMESPACE}"
        f" --create-namespace -f {POOLED_VALUES}\n"
    )
    return {POOLED_VALUES: header + to_yaml(pooled_values(outputs, image_tag=image_tag)) + "\n"}
