"""Each Terraform module documents itself and ships an example root that validates."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from ._support import TERRAFORM_DIR, run

pytestmark = pytest.mark.infra

MODULES = sorted(p.name for p in (TERRAFORM_DIR / "modules").iterdir() if p.is_dir())


def names(path: Path, kind: str) -> list[str]:
    return re.findall(rf'^{kind} "([^"]+)"', path.read_text(), re.MULTILINE)


def examples(module: str) -> list[Path]:
    return sorted(p.parent for p in (TERRAFORM_DIR / "modules" / module).glob("examples/*/main.tf"))


@pytest.mark.parametrize("module", MODULES)
def test_module_readme_names_every_input_and_output(module: str) -> None:
    root = TERRAFORM_DIR / "modules" / module
    readme = (root / "README.md").read_text()
    missing = [
        f"{kind} {name}"
        for kind, file in (("variable", "variables.tf"), ("output", "outputs.tf"))
        for name in names(root / file, kind)
        if f"`{name}`" not in readme
    ]
    assert missing == [], f"modules/{module}/README.md does not mention {missing}"


@pytest.mark.parametrize("module", MODULES)
def test_module_has_an_example_root_that_calls_it(module: str) -> None:
    found = examples(module)
    assert found, f"modules/{module}/examples/<name>/main.tf is missing"
    for example in found:
        assert re.search(r'source\s*=\s*"\.\./\.\."', (example / "main.tf").read_text())
        assert (example / ".terraform.lock.hcl").exists(), f"{example} commits no lock file"


@pytest.mark.parametrize("module", MODULES)
def test_module_examples_init_offline_and_validate(
    module: str, terraform: str, tf_env: dict[str, str], tf_workspace: Path, tf_plugin_dir: Path
) -> None:
    for example in examples(module):
        copy = tf_workspace / example.relative_to(TERRAFORM_DIR)
        init = run(
            [terraform, "init", "-backend=false", "-input=false", "-no-color",
             f"-plugin-dir={tf_plugin_dir}", "-lockfile=readonly"],
            copy, tf_env,
        )  # fmt: skip
        assert init.returncode == 0, init.stdout + init.stderr
        result = run([terraform, "validate", "-json", "-no-color"], copy, tf_env)
        report = json.loads(result.stdout)
        assert report["valid"] and report["warning_count"] == 0, report["diagnostics"]
