"""Paths, tool discovery and helpers shared by the infrastructure checks.

A missing tool skips its tests with the reason, except under ``CI=true``, where it
fails them: CI must prove the infrastructure, not skip it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from tests.tools import missing as missing

REPO = Path(__file__).resolve().parents[2]
TERRAFORM_DIR = REPO / "terraform"
TERRAFORM_ROOTS = ("modules/instance-role", "modules/platform", "modules/tenant-instance", "live")
CHART_DIR = REPO / "deploy" / "helm" / "tally"
TENANT_VALUES = CHART_DIR / "ci" / "tenant-values.yaml"
DOCKERFILE = REPO / "deploy" / "Dockerfile"
# Shaped like `terraform output -json` of terraform/live for tenant acme.
TERRAFORM_OUTPUTS = Path(__file__).parent / "fixtures" / "terraform-outputs.json"

# Read at import: the suite's autouse fixture clears TALLY_* variables before each test.
TERRAFORM_BIN = os.environ.get("TALLY_TERRAFORM") or shutil.which("terraform")
TF_PLUGIN_DIR = Path(os.environ.get("TALLY_TF_PLUGIN_DIR", "/opt/tf-plugins"))
# checkov pins packaging<24, which pytest>=9 cannot share a venv with: look for it on
# PATH, in TALLY_CHECKOV, or in a side venv .venv-checkov/.
CHECKOV_BIN = (
    os.environ.get("TALLY_CHECKOV")
    or shutil.which("checkov")
    or next((str(p) for p in [REPO / ".venv-checkov" / "bin" / "checkov"] if p.exists()), None)
)

# Release name, namespace and values file of the two renderings under test.
RELEASES: dict[str, tuple[str, str, Path | None]] = {
    "pooled": ("tally", "tally", None),
    "tenant": ("tally", "tally-acme", TENANT_VALUES),
}


def run(
    args: list[str], cwd: Path, env: dict[str, str] | None = None, timeout: int = 300
) -> subprocess.CompletedProcess[str]:
    """Run a tool and return its result without raising on a non-zero exit."""
    return subprocess.run(
        args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )
