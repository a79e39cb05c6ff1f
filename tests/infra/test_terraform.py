"""Terraform: formatting, offline init, validate and `terraform test` for every root."""

from __future__ import annotations

import json
import re
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
