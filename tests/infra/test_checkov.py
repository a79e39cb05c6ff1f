"""checkov on Terraform, the rendered manifests and the Dockerfile: no unexplained failure."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from ._support import CHECKOV_BIN, DOCKERFILE, REPO, TERRAFORM_DIR, missing, run

pytestmark = pytest.mark.infra


def checkov(target: list[str], framework: str) -> dict[str, Any]:
    if not CHECKOV_BIN:
        missing("checkov not found (set TALLY_CHECKOV, put it on PATH, or install .venv-checkov)")
    args = [CHECKOV_BIN, *target, "--framework", framework, "--skip-download", "-o", "json"]
    result = run(args, REPO, timeout=600)
    # 0: no failure, 1: failures; anything else is checkov itself failing.
    assert result.returncode in (0, 1), f"checkov crashed:\n{result.stdout}\n{result.stderr}"
    reports = json.loads(result.stdout)
    reports = reports if isinstance(reports, list) else [reports]
    results: dict[str, list[dict[str, Any]]] = {"passed_checks": [], "failed_checks": []}
    results["skipped_checks"] = []
    for report in reports:
        for key in results:
            results[key] += report.get("results", {}).get(key, [])
    return results


def assert_clean(results: dict[str, list[dict[str, Any]]]) -> None:
    failed = [
        f"{c['check_id']} {c['resource']} ({c['file_path']}): {c['check_name']}"
        for c in results["failed_checks"]
    ]
    assert not failed, "checkov failures:\n" + "\n".join(failed)
    assert results["passed_checks"], "checkov scanned nothing"
    for check in results["skipped_checks"]:
        reason = (check.get("check_result") or {}).get("suppress_comment", "")
        assert len(reason.strip()) > 20, (
            f"{check['check_id']} on {check['resource']} is skipped without a reason"
        )


def test_checkov_terraform() -> None:
    assert_clean(checkov(["--directory", str(TERRAFORM_DIR)], "terraform"))


def test_checkov_rendered_manifests(manifests_dir: Path) -> None:
    assert_clean(checkov(["--directory", str(manifests_dir)], "kubernetes"))


def test_checkov_dockerfile() -> None:
    assert_clean(checkov(["--file", str(DOCKERFILE)], "dockerfile"))
