"""Rendering a tenant's provisioning bundle (no Terraform or Helm needed)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tenants.errors import ProvisionError
from tenants.provision import render
from tenants.schemas import PLANS, Branding, Plan, TenantOut

NOW = datetime(2026, 11, 29, tzinfo=UTC)


def make_tenant(**overrides: object) -> TenantOut:
    fields: dict[str, object] = {
        "slug": "globex",
        "name": "Globex",
        "status": "active",
        "plan": Plan(name="standard", **PLANS["standard"].model_dump()),
        "branding": Branding(display_name="Globex", primary_color="#123456"),
        "domain": None,
        "timezone": "America/Los_Angeles",
        "identity_provider": None,
        "created_at": NOW,
        "updated_at": NOW,
    }
    fields.update(overrides)
    return TenantOut.model_validate(fields)


def test_without_outputs_hosts_follow_the_platform_domain() -> None:
    files = render(make_tenant(), platform_domain="tally.example.com")
    values = files[Path("deploy/tenants/globex/values.yaml")]
    assert "    - globex.tally.example.com\n" in values
    assert 'publicUrl: "https://globex.tally.example.com"' in values
    assert "roleArn" not in values and "repository" not in values
    tenant_file = json.loads(files[Path("terraform/live/tenants/globex.json")])
    assert tenant_file["domain"] is None and tenant_file["logo_url"] is None
    assert tenant_file["namespace"] == "tally-globex"


def test_a_custom_domain_becomes_the_public_url_and_a_second_host() -> None:
    files = render(make_tenant(domain="ids.globex.com"), platform_domain="tally.example.com")
    values = files[Path("deploy/tenants/globex/values.yaml")]
    assert "    - globex.tally.example.com\n    - ids.globex.com\n" in values
    assert 'issuer: "https://ids.globex.com"' in values


def test_same_input_same_bytes() -> None:
    a = render(make_tenant(), platform_domain="tally.example.com", image_tag="1.2.3")
    b = render(make_tenant(), platform_domain="tally.example.com", image_tag="1.2.3")
    assert a == b


def test_unknown_platform_domain_is_a_clear_error() -> None:
    with pytest.raises(ProvisionError, match="--platform-domain"):
        render(make_tenant(), platform_domain=None)


def test_outputs_for_another_namespace_are_refused() -> None:
    outputs = {
        "tenants": {
            "value": {
                "globex": {
                    "namespace": "elsewhere",
                    "hosts": ["h"],
                    "public_url": "https://h",
                }
            }
        }
    }
    with pytest.raises(ProvisionError, match="namespace"):
        render(make_tenant(), platform_domain=None, outputs=outputs)


@pytest.mark.parametrize(
    "mine",
    [
        "x",
        ["globex.tally.example.com"],
        {"hosts": ["globex.tally.example.com"]},
        {"public_url": "https://globex.tally.example.com"},
        {"hosts": "globex.tally.example.com", "public_url": "https://h"},
        {"hosts": [], "public_url": "https://h"},
        {"hosts": [1], "public_url": "https://h"},
        {"hosts": ["h"], "public_url": None},
    ],
)
def test_a_tenant_block_of_outputs_that_is_not_hosts_and_a_url_is_a_clear_error(
    mine: object,
) -> None:
    outputs = {"tenants": {"value": {"globex": mine}}}
    with pytest.raises(ProvisionError, match="terraform output 'tenants' for globex"):
        render(make_tenant(), platform_domain="tally.example.com", outputs=outputs)


def test_cli_refuses_an_unknown_tenant_or_bad_outputs_in_one_line(tmp_path: Path) -> None:
    from tests.e2e.conftest import cli, server_env

    env = server_env(tmp_path)
    unknown = cli(env, "provision", "nope", "--platform-domain", "tally.example.com")
    assert unknown.returncode != 0
    assert unknown.stderr.strip().splitlines() == ["tally: No tenant 'nope'."]
    bad = tmp_path / "outputs.json"
    bad.write_text("[1, 2]")
    result = cli(env, "provision", "nope", "--terraform-outputs", str(bad))
    assert result.returncode != 0 and len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "terraform").exists()


def test_tenant_names_refuse_control_characters() -> None:
    from pydantic import ValidationError

    from tenants.schemas import TenantCreate

    with pytest.raises(ValidationError, match="control characters"):
        TenantCreate(slug="acme", name="Acme\x00Corp")
    assert TenantCreate(slug="acme", name="Acme Ünïcode").name == "Acme Ünïcode"


POOLED = {
    "database": "tally",
    "hosts": ["tally.example.com"],
    "namespace": "tally",
    "public_url": "https://tally.example.com",
    "role_arn": "arn:aws:iam::111122223333:role/tally-pooled",
    "signing_keys_secret_name": "tally/pooled/signing-keys",
    "store_secret_name": "tally/pooled/store",
}
PLATFORM = {
    "region": "eu-west-1",
    "ecr_repository_url": "111122223333.dkr.ecr.eu-west-1.amazonaws.com/tally",
    "store_ca_secret_name": "tally/platform/store-ca",
}


def test_pooled_values_are_wired_from_its_output_as_a_tenants_are_from_theirs() -> None:
    from tenants.provision import helm_values, pooled_values

    globex = {**POOLED, "namespace": "tally-globex", "hosts": ["globex.tally.example.com"]}
    globex.update(public_url="https://globex.tally.example.com", database="tally_globex")
    outputs = {
        "platform": {"value": {**PLATFORM, "pooled": POOLED}},
        "tenants": {"value": {"globex": globex}},
    }
    pooled = pooled_values(outputs, image_tag="1.2.3")
    tenant = helm_values(
        make_tenant(), namespace="tally-globex", platform_domain=None, outputs=outputs,
        image_tag="1.2.3",
    )  # fmt: skip
    assert pooled["serviceAccount"] == {"roleArn": POOLED["role_arn"]}
    assert pooled["externalSecrets"]["storeSecret"] == "tally/pooled/store"
    assert pooled["externalSecrets"]["storeCASecret"] == "tally/platform/store-ca"
    assert pooled["ingress"]["hosts"] == ["tally.example.com"]
    assert pooled["ingress"]["tls"]["secretName"] == "tally-pooled-tls"
    assert pooled["tally"] == {
        "publicUrl": "https://tally.example.com",
        "jwt": {"issuer": "https://tally.example.com", "audience": "tally"},
        "mongoDatabase": "tally",
    }
    # The same wiring as a tenant's, less the tenant and its branding.
    assert set(tenant) - set(pooled) == {"branding"}
    for key in ("certificate", "image", "storeCA"):
        assert pooled[key] == tenant[key]


@pytest.mark.parametrize(
    ("pooled", "message"),
    [
        (None, "lacks hosts, public_url, role_arn;"),
        ({k: v for k, v in POOLED.items() if k != "public_url"}, "lacks public_url"),
        ({**POOLED, "namespace": "tally-pooled"}, "namespace 'tally-pooled'"),
    ],
)
def test_pooled_values_need_the_pooled_output_of_this_version(
    pooled: dict[str, object] | None, message: str
) -> None:
    from tenants.provision import pooled_values

    platform: dict[str, object] = {**PLATFORM, **({"pooled": pooled} if pooled else {})}
    with pytest.raises(ProvisionError, match=message):
        pooled_values({"platform": {"value": platform}})


def test_cli_renders_the_pooled_values_without_a_store(tmp_path: Path) -> None:
    from tests.e2e.conftest import cli, server_env

    env = server_env(tmp_path)
    outputs = tmp_path / "outputs.json"
    outputs.write_text(json.dumps({"platform": {"value": {**PLATFORM, "pooled": POOLED}}}))
    out = tmp_path / "out"
    result = cli(env, "provision", "--pooled", "--terraform-outputs", str(outputs),
                 "--out", str(out))  # fmt: skip
    assert result.returncode == 0, result.stderr
    text = (out / "deploy" / "pooled" / "values.yaml").read_text()
    assert 'roleArn: "arn:aws:iam::111122223333:role/tally-pooled"' in text
    both = cli(env, "provision", "acme", "--pooled", "--terraform-outputs", str(outputs))
    assert both.returncode != 0 and "SLUG or --pooled" in both.stderr
    bare = cli(env, "provision", "--pooled")
    assert bare.returncode != 0 and "--terraform-outputs" in bare.stderr
