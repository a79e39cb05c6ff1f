"""Terraform: formatting, offline init, validate and `terraform test` for every root."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from ._support import TERRAFORM_DIR, TERRAFORM_ROOTS, run

pytestmark = pytest.mark.infra


def test_terraform_is_formatted(terraform: str, tf_env: dict[str, str]) -> None:
    result = run(
        [terraform, "fmt", "-check", "-recursive", "-diff", "-no-color"], TERRAFORM_DIR, tf_env
    )
    assert result.returncode == 0, (
        f"run `terraform fmt -recursive terraform/`:\n{result.stdout}{result.stderr}"
    )


@pytest.mark.parametrize("root", TERRAFORM_ROOTS)
def test_terraform_validates(
    root: str, terraform: str, tf_env: dict[str, str], tf_workspace: Path
) -> None:
    result = run([terraform, "validate", "-json", "-no-color"], tf_workspace / root, tf_env)
    report = json.loads(result.stdout)
    assert report["valid"], json.dumps(report["diagnostics"], indent=2)
    assert report["warning_count"] == 0, json.dumps(report["diagnostics"], indent=2)


@pytest.mark.parametrize("root", TERRAFORM_ROOTS)
def test_terraform_tests_pass_offline(
    root: str, terraform: str, tf_env: dict[str, str], tf_workspace: Path
) -> None:
    assert list((tf_workspace / root / "tests").glob("*.tftest.hcl")), (
        f"{root} has no tests/*.tftest.hcl"
    )
    result = run([terraform, "test", "-no-color"], tf_workspace / root, tf_env)
    assert result.returncode == 0, f"{result.stdout}\n{result.stderr}"
    assert re.search(r"Success! \d+ passed, 0 failed", result.stdout), result.stdout


def test_root_pins_the_provider_exactly_and_commits_its_lock_file() -> None:
    versions = (TERRAFORM_DIR / "live" / "versions.tf").read_text()
    pin = re.search(r'source\s*=\s*"hashicorp/aws"\s*\n\s*version\s*=\s*"([^"]+)"', versions)
    assert pin and re.fullmatch(r"\d+\.\d+\.\d+", pin.group(1)), (
        "the root must pin an exact aws version"
    )

    lock = (TERRAFORM_DIR / "live" / ".terraform.lock.hcl").read_text()
    locked = re.search(
        r'provider "registry.terraform.io/hashicorp/aws" \{\s*version\s*=\s*"([^"]+)"', lock
    )
    assert locked and locked.group(1) == pin.group(1)


@pytest.mark.parametrize(
    "module", sorted(p.name for p in (TERRAFORM_DIR / "modules").iterdir() if p.is_dir())
)
def test_modules_declare_provider_floors_not_pins(module: str) -> None:
    versions = (TERRAFORM_DIR / "modules" / module / "versions.tf").read_text()
    assert re.search(r'version\s*=\s*">=\s*\d', versions), (
        "modules take >= floors so roots choose the version"
    )
    assert not (TERRAFORM_DIR / "modules" / module / ".terraform.lock.hcl").exists(), (
        "modules commit no lock file"
    )


@pytest.mark.parametrize("root", TERRAFORM_ROOTS)
def test_every_variable_and_output_is_described(root: str) -> None:
    for name in ("variables.tf", "outputs.tf"):
        text = (TERRAFORM_DIR / root / name).read_text()
        blocks = re.split(r'^(?=(?:variable|output) ")', text, flags=re.MULTILINE)
        for block in blocks:
            if not block.startswith(("variable ", "output ")):
                continue
            header = block.splitlines()[0]
            assert "description" in block, f"{root}/{name}: {header} has no description"
            if header.startswith("variable"):
                assert re.search(r"^\s*type\s*=", block, re.MULTILINE), (
                    f"{root}/{name}: {header} has no type"
                )


def test_live_refuses_a_tenant_file_whose_namespace_is_not_tally_slug(
    terraform: str, tf_env: dict[str, str], tf_workspace: Path, tmp_path: Path
) -> None:
    """acme in tally (the pooled namespace) or in tally-globex would let those pods assume
    tally-acme's role; `terraform test` cannot expect a child module's validation failure,
    so the plan is run here and its error read."""
    tenants = tmp_path / "tenants"
    tenants.mkdir()
    for slug, namespace in (
        ("acme", "tally-globex"),
        ("globex", "tally-globex"),
        ("beta", "tally"),
    ):
        tenant = {"display_name": slug, "namespace": namespace, "plan": "standard",
                  "primary_color": "#112233", "slug": slug}  # fmt: skip
        (tenants / f"{slug}.json").write_text(json.dumps(tenant))
    live = tf_workspace / "live"
    suite = (live / "tests" / "live.tftest.hcl").read_text()
    mocks = suite[: suite.index("\nvariables {")]  # the mocked provider, no runs
    # A directory of its own: the suite's tests/ runs in parallel with this.
    tests_dir = live / f"tests-{tmp_path.name}"
    tests_dir.mkdir()
    (tests_dir / "refused.tftest.hcl").write_text(
        mocks + "\nvariables {\n"
        '  region = "eu-west-1"\n  domain_name = "tally.example.com"\n'
        '  cluster_oidc_issuer_url = "https://oidc.eks.eu-west-1.amazonaws.com/id/EXAMPLE"\n'
        '  ingress_hostname = "k8s-ingress-1234.eu-west-1.elb.amazonaws.com"\n'
        '  vpc_id = "vpc-0123456789abcdef0"\n  subnet_ids = ["subnet-a", "subnet-b"]\n'
        f'  tenants_dir = "{tenants}"\n}}\n\nrun "plan" {{\n  command = plan\n}}\n'
    )  # fmt: skip
    try:
        result = run(
            [terraform, "test", "-no-color", f"-test-directory={tests_dir.name}"], live, tf_env
        )
    finally:
        shutil.rmtree(tests_dir)
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    refused = re.findall(r'var\.namespace is "([^"]+)"\n\s*│ var\.slug is "([^"]+)"', output)
    assert sorted(refused) == [("tally", "beta"), ("tally-globex", "acme")], output
    assert "namespace must be tally-<slug>" in output
