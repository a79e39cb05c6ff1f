"""`tally provision`: the bundle Terraform and Helm consume, rendered by the real CLI."""

from __future__ import annotations

import json
from typing import Any

import pytest

from ._support import TERRAFORM_DIR, missing, run

pytestmark = pytest.mark.infra


def test_tenant_file_is_valid_against_the_terraform_contract(provisioned: dict[str, Any]) -> None:
    """Every key written is a declared variable and every required one is written.

    tenant.schema.json is tied to the tenant-instance variables by
    test_tenant_contract.py; here the CLI's real output is held to that schema.
    """
    try:
        import jsonschema
    except ImportError:
        missing("jsonschema is not installed (it comes with the infra extra)")
    schema = json.loads((TERRAFORM_DIR / "live" / "tenant.schema.json").read_text())
    data = json.loads(provisioned["tenant_file"].read_text())
    jsonschema.Draft202012Validator(schema).validate(data)
    assert set(schema["required"]) <= set(data)
    assert provisioned["tenant_file"].stem == data["slug"] == "acme"
    assert data == {
        "display_name": "Acme Corp",
        "domain": "numbers.acme.com",
        "logo_url": "https://cdn.acme.com/logo.svg",
        "namespace": "tally-acme",
        "plan": "enterprise",
        "primary_color": "#FF6600",
        "slug": "acme",
        "timezone": "Europe/Berlin",
    }


def test_rendering_is_byte_for_byte_deterministic(provisioned: dict[str, Any]) -> None:
    before = {p: provisioned[p].read_bytes() for p in ("tenant_file", "values_file")}
    again = run(provisioned["command"], provisioned["work"], provisioned["env"])
    assert again.returncode == 0, again.stderr
    assert {p: provisioned[p].read_bytes() for p in before} == before


def test_bundle_holds_no_secret(provisioned: dict[str, Any]) -> None:
    for key in ("tenant_file", "values_file"):
        text = provisioned[key].read_text()
        assert provisioned["client_secret"] not in text
        for marker in ("secret_hash", "client_secret", "mongodb://", "sqlite://", "PRIVATE KEY"):
            assert marker not in text, f"{key} mentions {marker}"


def test_values_merge_the_terraform_outputs(provisioned_values: dict[str, Any]) -> None:
    assert provisioned_values["serviceAccount"]["roleArn"] == (
        "arn:aws:iam::111122223333:role/tally-acme"
    )
    assert provisioned_values["image"] == {
        "repository": "111122223333.dkr.ecr.eu-west-1.amazonaws.com/tally",
        "tag": "0.1.0",
    }
    assert provisioned_values["ingress"]["hosts"] == ["acme.tally.example.com", "numbers.acme.com"]


def test_provisioned_release_is_the_branded_siloed_instance(
    manifests: dict[str, list[dict[str, Any]]],
) -> None:
    objects = manifests["provisioned"]
    config = next(o for o in objects if o["kind"] == "ConfigMap")["data"]
    assert config["TALLY_TENANT"] == "acme"
    assert config["TALLY_BRAND_NAME"] == "Acme Corp"
    assert config["TALLY_BRAND_COLOR"] == "#FF6600"
    assert config["TALLY_BRAND_LOGO_URL"] == "https://cdn.acme.com/logo.svg"
    assert config["TALLY_PUBLIC_URL"] == config["TALLY_JWT_ISSUER"] == "https://numbers.acme.com"
    ingress = next(o for o in objects if o["kind"] == "Ingress")["spec"]
    hosts = ["acme.tally.example.com", "numbers.acme.com"]
    assert [r["host"] for r in ingress["rules"]] == hosts
    assert ingress["tls"] == [{"hosts": hosts, "secretName": "tally-acme-tls"}]
    account = next(o for o in objects if o["kind"] == "ServiceAccount")
    assert account["metadata"]["annotations"]["eks.amazonaws.com/role-arn"].endswith(
        ":role/tally-acme"
    )
    deployment = next(o for o in objects if o["kind"] == "Deployment")
    image = deployment["spec"]["template"]["spec"]["containers"][0]["image"]
    assert image == "111122223333.dkr.ecr.eu-west-1.amazonaws.com/tally:0.1.0"
    assert all(o["metadata"]["namespace"] == "tally-acme" for o in objects)


@pytest.mark.parametrize(
    "text",
    [
        *["yes", "y", "N", "null", "007", "-", "-1", ".5", ".inf", "a: b", "- x", "#FF6600"],
        *["x\ny: z", "{a}", "'q'", '"dq"', "ünï", ""],
    ],
)
def test_values_writer_round_trips_hostile_strings(text: str) -> None:
    try:
        import yaml
    except ImportError:
        missing("PyYAML is not installed (it comes with the infra extra)")
    from tenants.provision import to_yaml

    doc = {"branding": {"name": text, "list": [text, "plain"]}, "n": 3, "ok": True}
    assert yaml.safe_load(to_yaml(doc)) == doc
