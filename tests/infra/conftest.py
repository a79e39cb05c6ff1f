"""Session fixtures of the infrastructure checks: Terraform workspace, Helm renderings."""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path
from typing import Any

import pytest

from ._support import (
    CHART_DIR,
    RELEASES,
    TENANT_VALUES,
    TERRAFORM_BIN,
    TERRAFORM_DIR,
    TERRAFORM_OUTPUTS,
    TERRAFORM_ROOTS,
    TF_PLUGIN_DIR,
    missing,
    run,
)


@pytest.fixture(scope="session")
def terraform() -> str:
    if not TERRAFORM_BIN:
        missing("terraform binary not found (set TALLY_TERRAFORM or put terraform on PATH)")
    return TERRAFORM_BIN


@pytest.fixture(scope="session")
def tf_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Environment isolated from the user's Terraform configuration and the network."""
    config = tmp_path_factory.mktemp("tfrc") / "terraformrc"
    config.write_text("")
    env = {k: v for k, v in os.environ.items() if not k.startswith("TF_")}
    env.update(
        TF_CLI_CONFIG_FILE=str(config),
        TF_IN_AUTOMATION="1",
        TF_INPUT="0",
        CHECKPOINT_DISABLE="1",
    )
    return env


@pytest.fixture(scope="session")
def tf_plugin_dir() -> Path:
    if not (TF_PLUGIN_DIR / "registry.terraform.io" / "hashicorp" / "aws").is_dir():
        missing(f"offline AWS provider mirror not in {TF_PLUGIN_DIR} (set TALLY_TF_PLUGIN_DIR)")
    return TF_PLUGIN_DIR


@pytest.fixture(scope="session")
def tf_workspace(
    terraform: str,
    tf_env: dict[str, str],
    tf_plugin_dir: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Path:
    """A copy of terraform/ with every root initialised once from the offline mirror.

    Working on a copy keeps .terraform/ and module lock files out of the work tree.
    """
    workspace = tmp_path_factory.mktemp("terraform") / "terraform"
    shutil.copytree(
        TERRAFORM_DIR, workspace, ignore=shutil.ignore_patterns(".terraform", "*.tfstate*")
    )
    for root in TERRAFORM_ROOTS:
        args = [
            terraform,
            "init",
            "-backend=false",
            "-input=false",
            "-no-color",
            f"-plugin-dir={tf_plugin_dir}",
        ]
        if (workspace / root / ".terraform.lock.hcl").exists():
            # The committed lock file must already match the mirror.
            args.append("-lockfile=readonly")
        result = run(args, workspace / root, tf_env)
        assert result.returncode == 0, (
            f"terraform init in {root} failed:\n{result.stdout}\n{result.stderr}"
        )
    return workspace


def _yaml() -> Any:
    try:
        import yaml
    except ImportError:
        missing("PyYAML is not installed (it comes with the infra extra)")
    return yaml


@pytest.fixture(scope="session")
def helm() -> Any:
    try:
        import helm_python
    except ImportError:
        missing("helm-python-sdk is not installed (pip install 'helm-python-sdk>=0.2.2')")
    return helm_python


@pytest.fixture(scope="session")
def tenant_values() -> dict[str, Any]:
    values: dict[str, Any] = _yaml().safe_load(TENANT_VALUES.read_text())
    return values


@pytest.fixture(scope="session")
def provisioned(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A tenant onboarded and provisioned through the real `tally` CLI.

    Returns the bundle's paths, the tenant's one-time client secret and the store path,
    so tests can check the bundle and prove no secret leaked into it.
    """
    work = tmp_path_factory.mktemp("provision")
    env = {k: v for k, v in os.environ.items() if not k.startswith("TALLY_")}
    env.update(TALLY_STORE_URL=f"sqlite:///{work}/tally.db", TALLY_KEYS_DIR=str(work / "keys"))
    tally = str(Path(sys.executable).parent / "tally")
    created = run(
        [
            tally, "tenants", "create", "acme", "--name", "Acme Corp",
            "--domain", "numbers.acme.com", "--plan", "enterprise", "--color", "#FF6600",
            "--logo-url", "https://cdn.acme.com/logo.svg", "--timezone", "Europe/Berlin",
            "--json",
        ],
        work,
        env,
    )  # fmt: skip
    assert created.returncode == 0, created.stderr
    bundle = [
        tally, "provision", "acme", "--out", str(work / "out"), "--image-tag", "0.1.0",
        "--terraform-outputs", str(TERRAFORM_OUTPUTS),
    ]  # fmt: skip
    first = run(bundle, work, env)
    assert first.returncode == 0, first.stderr
    out = work / "out"
    return {
        "env": env,
        "work": work,
        "command": bundle,
        "tenant_file": out / "terraform" / "live" / "tenants" / "acme.json",
        "values_file": out / "deploy" / "tenants" / "acme" / "values.yaml",
        "client_secret": json.loads(created.stdout)["client_secret"],
    }


@pytest.fixture(scope="session")
def provisioned_pooled(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The pooled instance's values as CD renders them: `tally provision --pooled`."""
    work = tmp_path_factory.mktemp("provision-pooled")
    env = {k: v for k, v in os.environ.items() if not k.startswith("TALLY_")}
    tally = str(Path(sys.executable).parent / "tally")
    result = run(
        [tally, "provision", "--pooled", "--terraform-outputs", str(TERRAFORM_OUTPUTS),
         "--out", str(work)],
        work,
        env,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return work / "deploy" / "pooled" / "values.yaml"


@pytest.fixture(scope="session")
def provisioned_values(provisioned: dict[str, Any]) -> dict[str, Any]:
    values: dict[str, Any] = _yaml().safe_load(provisioned["values_file"].read_text())
    return values


@pytest.fixture(scope="session")
def rendered(
    helm: Any, provisioned: dict[str, Any], provisioned_pooled: Path
) -> dict[str, dict[str, str]]:
    """Rendered templates per release kind: {"pooled"|"tenant"|"provisioned"|
    "provisioned-pooled": {path: text}}; the last two from `tally provision`'s values."""
    out: dict[str, dict[str, str]] = {}
    releases = {
        **RELEASES,
        "provisioned": ("tally", "tally-acme", provisioned["values_file"]),
        "provisioned-pooled": ("tally", "tally", provisioned_pooled),
    }
    with helm.Chart.load(CHART_DIR) as chart:
        for kind, (name, namespace, values_file) in releases.items():
            values = _yaml().safe_load(values_file.read_text()) if values_file else None
            out[kind] = chart.render(values, name=name, namespace=namespace, is_install=True)
    return out


@pytest.fixture(scope="session")
def manifests(rendered: dict[str, dict[str, str]]) -> dict[str, list[dict[str, Any]]]:
    """Kubernetes objects per release kind (NOTES.txt excluded)."""
    yaml = _yaml()
    return {
        kind: [
            doc
            for path, text in sorted(templates.items())
            if path.endswith(".yaml")
            for doc in yaml.safe_load_all(text)
            if doc
        ]
        for kind, templates in rendered.items()
    }


@pytest.fixture(scope="session")
def manifests_dir(
    rendered: dict[str, dict[str, str]], tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """The rendered manifests written as files, one directory per release kind."""
    root = tmp_path_factory.mktemp("manifests")
    for kind, templates in rendered.items():
        for path, text in templates.items():
            if path.endswith(".yaml") and text.strip():
                target = root / kind / path.replace("/", "_")
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_text(text)
    return root
