"""CI and CD workflows: schema, zizmor, the shape the delivery needs, and CD's scripts run."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.tools import require_tool

from ._support import REPO, TERRAFORM_OUTPUTS, missing, run

pytestmark = pytest.mark.infra

WORKFLOWS = REPO / ".github" / "workflows"
CI, CD = WORKFLOWS / "ci.yml", WORKFLOWS / "cd.yml"
INSTANCE_SH = REPO / "deploy" / "cd" / "instance.sh"
BIN = Path(sys.executable).parent
SHA_PINNED = re.compile(r"^[\w.-]+/[\w.-]+(/[\w./-]+)?@[0-9a-f]{40}$")


def load(path: Path) -> dict[Any, Any]:
    try:
        import yaml
    except ImportError:
        missing("PyYAML is not installed (it comes with the infra extra)")
    data: dict[Any, Any] = yaml.safe_load(path.read_text())
    # YAML 1.1 reads the key `on` as True.
    if True in data:
        data["on"] = data.pop(True)
    return data


def tool(name: str) -> str:
    local = BIN / name
    return str(local) if local.exists() else require_tool(name, hint="the infra extra has it")


def steps(job: dict[str, Any]) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = job["steps"]
    return found


@pytest.mark.parametrize("path", [CI, CD], ids=["ci", "cd"])
def test_workflow_passes_the_github_workflow_schema(path: Path) -> None:
    result = run(
        [tool("check-jsonschema"), "--builtin-schema", "vendor.github-workflows", str(path)], REPO
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_zizmor_finds_nothing_of_medium_or_high_severity() -> None:
    result = run(
        [tool("zizmor"), "--offline", "--no-progress", "--format", "json", str(CI), str(CD)], REPO
    )
    assert result.returncode in (0, 11, 12, 13, 14), result.stderr  # 1x: findings exist
    findings = json.loads(result.stdout or "[]")
    serious = [
        f"{f['ident']} ({f['determinations']['severity']}): {f['desc']}"
        for f in findings
        if f["determinations"]["severity"] in ("Medium", "High")
    ]
    assert serious == []


@pytest.mark.parametrize("path", [CI, CD], ids=["ci", "cd"])
def test_actions_are_sha_pinned_least_privilege_and_keep_no_credentials(path: Path) -> None:
    workflow = load(path)
    assert workflow["permissions"] == {}, "no default permissions; each job asks for its own"
    for name, job in workflow["jobs"].items():
        assert "permissions" in job, f"job {name} must declare its permissions"
        assert job["permissions"].get("contents") == "read", name
        assert set(job["permissions"]) <= {"contents", "id-token"}, name
        for step in steps(job):
            uses = step.get("uses")
            if uses:
                assert SHA_PINNED.match(uses), f"{name}: {uses} is not pinned by commit SHA"
            if uses and uses.startswith("actions/checkout@"):
                assert step["with"]["persist-credentials"] is False, name


def test_ci_runs_the_suite_mongodb_audit_and_checkov_then_pushes_the_image_by_digest() -> None:
    workflow = load(CI)
    assert set(workflow["on"]) == {"pull_request", "push"}
    jobs = workflow["jobs"]
    assert any("bash .ci/run" in s.get("run", "") for s in steps(jobs["test"]))
    mongo = jobs["mongodb"]
    env = next(s["env"] for s in steps(mongo) if "MONGODB_URI" in s.get("env", {}))
    assert "replicaSet=rs0" in env["MONGODB_URI"] and "w=majority" in env["MONGODB_URI"]
    assert any("--replSet rs0" in s.get("run", "") for s in steps(mongo))
    audit = " ".join(s.get("run", "") for s in steps(jobs["audit"]))
    assert "pip-audit" in audit and "--require-hashes" in audit and "requirements.lock" in audit
    assert "checkov" in audit
    for name in ("test", "mongodb", "audit"):
        python = next(s for s in steps(jobs[name]) if "setup-python" in s.get("uses", ""))
        assert python["with"]["cache"] == "pip", f"{name} caches pip downloads"
    # The whole suite on the Python the image ships and on the newest one supported.
    shipped = re.search(r"^FROM python:(\d+\.\d+)", (REPO / "deploy/Dockerfile").read_text(), re.M)
    assert shipped is not None
    versions = jobs["test"]["strategy"]["matrix"]["python"]
    assert shipped[1] in versions and "3.13" in versions, versions
    python = next(s for s in steps(jobs["test"]) if "setup-python" in s.get("uses", ""))
    assert python["with"]["python-version"] == "${{ matrix.python }}"
    image = jobs["image"]
    assert set(image["needs"]) == {"test", "mongodb", "audit"}
    assert "refs/heads/main" in image["if"] and "push" in image["if"]
    assert image["permissions"] == {"contents": "read", "id-token": "write"}
    build = next(s for s in steps(image) if "build-push-action" in s.get("uses", ""))["with"]
    assert "push-by-digest=true" in build["outputs"] and "push=true" in build["outputs"]
    assert build["sbom"] is True and build["provenance"] == "mode=max"
    assert "cache-from" not in build, "a shipped image is never built from a shared cache"
    assert build["file"] == "deploy/Dockerfile" and build["context"] == "."


def test_cd_is_manual_canary_first_then_one_tenant_at_a_time_behind_reviewers() -> None:
    workflow = load(CD)
    inputs = workflow["on"]["workflow_dispatch"]["inputs"]
    assert {"digest", "tenants"} <= set(inputs) and inputs["digest"]["required"] is True
    assert workflow["concurrency"]["cancel-in-progress"] is False
    jobs = workflow["jobs"]
    canary, tenants = jobs["canary"], jobs["tenants"]
    assert canary["env"]["INSTANCE"] == "pooled"
    assert set(tenants["needs"]) == {"select", "canary"}
    assert canary["environment"] == tenants["environment"] == "production"
    strategy = tenants["strategy"]
    assert strategy["max-parallel"] == 1 and strategy["fail-fast"] is True
    assert "needs.select.outputs.tenants" in strategy["matrix"]["tenant"]
    for job in (canary, tenants):
        commands = [s["run"] for s in steps(job) if "deploy/cd/instance.sh" in s.get("run", "")]
        assert [c.split()[1] for c in commands] == ["terraform", "secrets", "release", "smoke"]
        assert all("${{" not in c for c in commands), "inputs reach scripts through env only"
    script = INSTANCE_SH.read_text()
    assert "--atomic --wait" in script and "helm rollback tally" in script
    assert '-target="$target"' in script and 'terraform -chdir="$live" plan' in script


def select_step() -> str:
    job = load(CD)["jobs"]["select"]
    script: str = next(s for s in steps(job) if s.get("id") == "select")["run"]
    return script


@pytest.mark.parametrize(
    ("selector", "expected"),
    [
        ("all", ["acme", "globex"]),
        ("none", []),
        ("globex", ["globex"]),
        ("globex, acme", ["acme", "globex"]),
    ],
)
def test_cd_selector_resolves_tenants_from_deploy_tenants(
    selector: str, expected: list[str], tmp_path: Path
) -> None:
    for slug in ("acme", "globex"):
        (tmp_path / "deploy" / "tenants" / slug).mkdir(parents=True)
        (tmp_path / "deploy" / "tenants" / slug / "values.yaml").write_text("{}\n")
    output = tmp_path / "output"
    env = {**os.environ, "DIGEST": "sha256:" + "a" * 64, "SELECTOR": selector,
           "GITHUB_OUTPUT": str(output)}  # fmt: skip
    result = subprocess.run(
        ["bash", "-eo", "pipefail", "-c", select_step()],
        cwd=tmp_path, env=env, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert output.read_text() == f"tenants={json.dumps(expected)}\n"


@pytest.mark.parametrize("selector", ["all", "pooled"])
def test_cd_selector_refuses_a_tenant_directory_named_by_a_reserved_slug(
    selector: str, tmp_path: Path
) -> None:
    """deploy/tenants/pooled would be released by instance.sh as the pooled instance."""
    for slug in ("acme", "pooled"):
        (tmp_path / "deploy" / "tenants" / slug).mkdir(parents=True)
        (tmp_path / "deploy" / "tenants" / slug / "values.yaml").write_text("{}\n")
    output = tmp_path / "output"
    env = {**os.environ, "DIGEST": "sha256:" + "a" * 64, "SELECTOR": selector,
           "GITHUB_OUTPUT": str(output)}  # fmt: skip
    result = subprocess.run(
        ["bash", "-eo", "pipefail", "-c", select_step()],
        cwd=tmp_path, env=env, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert result.returncode != 0 and "reserved slug, not a tenant: pooled" in result.stderr
    assert not output.exists() or "tenants=" not in output.read_text()


@pytest.mark.parametrize(
    ("digest", "selector", "error"),
    [
        ("latest", "all", "digest must be sha256"),
        ("sha256:" + "a" * 64, "acme initech", "initech"),
        ("sha256:" + "a" * 64, "../etc", "../etc"),
    ],
)
def test_cd_selector_refuses_a_bad_digest_or_unknown_tenant(
    digest: str, selector: str, error: str, tmp_path: Path
) -> None:
    (tmp_path / "deploy" / "tenants" / "acme").mkdir(parents=True)
    (tmp_path / "deploy" / "tenants" / "acme" / "values.yaml").write_text("{}\n")
    env = {**os.environ, "DIGEST": digest, "SELECTOR": selector,
           "GITHUB_OUTPUT": str(tmp_path / "out")}  # fmt: skip
    result = subprocess.run(
        ["bash", "-eo", "pipefail", "-c", select_step()],
        cwd=tmp_path, env=env, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert result.returncode != 0 and error in result.stderr


def fake_tools(tmp_path: Path, *, smoke_ok: bool) -> tuple[dict[str, str], Path]:
    """aws, helm, kubectl and tally stand-ins that log their arguments."""
    bin_dir, log = tmp_path / "bin", tmp_path / "calls.log"
    bin_dir.mkdir()
    scripts = {
        "aws": 'echo "aws $*" >>"$LOG"; echo \'{"client_id": "c1", "client_secret": "s1"}\'',
        # Keeps a copy of the values file it is given (instance.sh deletes its work dir).
        "helm": 'echo "helm $*" >>"$LOG"; prev=; for a in "$@"; do '
        '[ "$prev" = -f ] && cp "$a" "$LOG.values"; prev=$a; done; true',
        "kubectl": 'echo "kubectl $*" >>"$LOG"',
        "tally": 'echo "tally $* secret=$TALLY_SMOKE_CLIENT_SECRET" >>"$LOG"; '
        f"exit {0 if smoke_ok else 1}",
    }
    for name, body in scripts.items():
        (bin_dir / name).write_text(f"#!/usr/bin/env bash\n{body}\n")
        (bin_dir / name).chmod(0o755)
    outputs = tmp_path / "outputs.json"
    outputs.write_text(json.dumps({
        "platform": {"value": {"domain_name": "tally.example.com",
                               "ecr_repository_url": "1.dkr.ecr/tally"}},
        "tenants": {"value": {"acme": {"public_url": "https://numbers.acme.com"}}},
    }))  # fmt: skip
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "LOG": str(log),
           "TALLY_TF_OUTPUTS": str(outputs), "RUNNER_TEMP": str(tmp_path)}  # fmt: skip
    return env, log


@pytest.mark.parametrize("smoke_ok", [True, False], ids=["passes", "fails"])
def test_cd_smoke_failure_rolls_the_release_back(smoke_ok: bool, tmp_path: Path) -> None:
    require_tool("jq", hint="apt-get install jq")
    env, log = fake_tools(tmp_path, smoke_ok=smoke_ok)
    result = subprocess.run(
        ["bash", str(INSTANCE_SH), "smoke", "acme"], env=env, capture_output=True, text=True,
        check=False,
    )  # fmt: skip
    calls = log.read_text().splitlines()
    smoke = next(c for c in calls if c.startswith("tally smoke"))
    assert "--url https://numbers.acme.com --client-id c1" in smoke
    assert "secret=s1" in smoke and "s1" not in smoke.split("secret=")[0]  # env, not argv
    rollback = [c for c in calls if c.startswith("helm rollback")]
    if smoke_ok:
        assert result.returncode == 0 and rollback == []
    else:
        assert result.returncode == 1
        assert rollback == ["helm rollback tally --namespace tally-acme --wait --timeout 10m"]


def test_cd_release_pins_the_digest_atomically(tmp_path: Path) -> None:
    require_tool("jq", hint="apt-get install jq")
    env, log = fake_tools(tmp_path, smoke_ok=True)
    digest = "sha256:" + "b" * 64
    result = subprocess.run(
        ["bash", str(INSTANCE_SH), "release", "acme", digest], env=env, capture_output=True,
        text=True, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    (call,) = log.read_text().splitlines()
    assert call.startswith("helm upgrade --install tally deploy/helm/tally --namespace tally-acme")
    assert f"image.digest={digest}" in call and "--atomic --wait" in call
    assert "-f deploy/tenants/acme/values.yaml" in call


def test_cd_script_refuses_an_instance_that_is_no_slug(tmp_path: Path) -> None:
    env, _ = fake_tools(tmp_path, smoke_ok=True)
    result = subprocess.run(
        ["bash", str(INSTANCE_SH), "smoke", "../x"], env=env, capture_output=True, text=True,
        check=False,
    )  # fmt: skip
    assert result.returncode == 2 and "not an instance name" in result.stderr


def test_cd_script_runs_outside_actions_with_outputs_in_tmpdir(tmp_path: Path) -> None:
    """An operator's shell has no RUNNER_TEMP: the outputs default to $TMPDIR."""
    require_tool("jq", hint="apt-get install jq")
    env, log = fake_tools(tmp_path, smoke_ok=True)
    for name in ("RUNNER_TEMP", "TALLY_TF_OUTPUTS", "GITHUB_ENV"):
        env.pop(name, None)
    env["TMPDIR"] = str(tmp_path)  # fake_tools wrote outputs.json there
    result = subprocess.run(
        ["bash", str(INSTANCE_SH), "smoke", "acme"], env=env, capture_output=True, text=True,
        check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert any("--url https://numbers.acme.com" in c for c in log.read_text().splitlines())


CA_PEM = "-----BEGIN CERTIFICATE-----\nMIIBfake\n-----END CERTIFICATE-----\n"
POD_CA = "/var/run/tally/store-ca/global-bundle.pem"
ADMIN = {"username": "tally", "password": "p@ss/w"}  # DocumentDB's managed secret


def fake_secrets_tools(tmp_path: Path) -> tuple[dict[str, str], Path]:
    """A DocumentDB platform as the secrets step sees it: the admin secret, the CA bundle,
    acme's empty store secret; `tally` parses its store URL with PyMongo, as migrate does."""
    bin_dir, log = tmp_path / "bin", tmp_path / "calls.log"
    bin_dir.mkdir()
    (bin_dir / "aws").write_text(
        "#!/usr/bin/env bash\n"
        'echo "aws $*" >>"$LOG"\n'
        'for a in "$@"; do case "$a" in file://*) jq -c . "${a#file://}" >>"$LOG";; esac; done\n'
        'case "$*" in\n'
        f"  *'get-secret-value --secret-id admin-arn '*) echo '{json.dumps(ADMIN)}' ;;\n"
        f'  *"get-secret-value --secret-id tally/platform/store-ca "*) printf %s "{CA_PEM}" ;;\n'
        '  *"get-secret-value --secret-id tally/acme/store "*) exit 254 ;;\n'
        '  *get-secret-value*) echo \'{"x": 1}\' ;;\n'
        "esac\n"
    )  # fmt: skip
    (bin_dir / "tally").write_text(
        f"#!{sys.executable}\n"
        "import os, sys\n"
        "from pymongo import uri_parser\n"
        "options = uri_parser.parse_uri(os.environ['TALLY_STORE_URL'])['options']\n"
        "ca = options['tlsCAFile']\n"
        "with open(os.environ['LOG'], 'a') as log:\n"
        "    log.write(f'tally {sys.argv[1]} ca={ca} pem={open(ca).read()!r}\\n')\n"
    )  # fmt: skip
    for name in ("aws", "tally"):
        (bin_dir / name).chmod(0o755)
    outputs = tmp_path / "outputs.json"
    outputs.write_text(json.dumps({
        "platform": {"value": {
            "store_admin_secret_arn": "admin-arn", "store_scheme": "mongodb",
            "store_host": "docdb.example:27017", "store_ca_secret_name": "tally/platform/store-ca",
            "store_url_options": f"tls=true&tlsCAFile={POD_CA}&replicaSet=rs0&retryWrites=false",
        }},
        "tenants": {"value": {"acme": {
            "store_secret_name": "tally/acme/store", "database": "tally_acme",
            "store_username": "tally-acme", "signing_keys_secret_name": "tally/acme/signing-keys",
        }}},
    }))  # fmt: skip
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "LOG": str(log),
           "TALLY_TF_OUTPUTS": str(outputs), "RUNNER_TEMP": str(tmp_path)}  # fmt: skip
    return env, log


def test_cd_migrate_reads_the_store_ca_from_a_local_copy_and_pods_keep_their_path(
    tmp_path: Path,
) -> None:
    """The URL's tlsCAFile is a pod path: on the runner, migrate names a fetched copy."""
    require_tool("jq", hint="apt-get install jq")
    env, log = fake_secrets_tools(tmp_path)
    result = subprocess.run(
        ["bash", str(INSTANCE_SH), "secrets", "acme"], env=env, capture_output=True, text=True,
        check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    calls = log.read_text().splitlines()
    migrate = next(c for c in calls if c.startswith("tally migrate"))
    assert f"pem={CA_PEM!r}" in migrate and POD_CA not in migrate
    # The instance's own URL, the one its pods use, still names the mounted bundle.
    stored = next(json.loads(c) for c in calls if c.startswith('{"username":"tally-acme"'))
    assert f"tlsCAFile={POD_CA}&" in stored["store-url"]


def test_cd_secrets_stop_when_the_store_ca_bundle_has_no_value(tmp_path: Path) -> None:
    require_tool("jq", hint="apt-get install jq")
    env, log = fake_secrets_tools(tmp_path)
    aws = tmp_path / "bin" / "aws"
    aws.write_text(aws.read_text().replace(f'printf %s "{CA_PEM}"', "exit 254"))
    result = subprocess.run(
        ["bash", str(INSTANCE_SH), "secrets", "acme"], env=env, capture_output=True, text=True,
        check=False,
    )  # fmt: skip
    assert result.returncode == 1 and "tally/platform/store-ca has no value" in result.stderr
    assert not any(c.startswith("tally") for c in log.read_text().splitlines())


def test_cd_releases_the_pooled_instance_with_values_rendered_from_the_outputs(
    tmp_path: Path,
) -> None:
    """Its role, synced secrets, store CA and the host it serves, as a tenant's values have."""
    require_tool("jq", hint="apt-get install jq")
    yaml = pytest.importorskip("yaml")
    env, log = fake_tools(tmp_path, smoke_ok=True)
    (tmp_path / "bin" / "tally").unlink()  # the real `tally provision --pooled`
    env["PATH"] = f"{tmp_path / 'bin'}:{BIN}:{os.environ['PATH']}"
    env["TALLY_TF_OUTPUTS"] = str(TERRAFORM_OUTPUTS)
    digest = "sha256:" + "c" * 64
    result = subprocess.run(
        ["bash", str(INSTANCE_SH), "release", "pooled", digest], env=env, capture_output=True,
        text=True, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    (call,) = log.read_text().splitlines()
    assert call.startswith("helm upgrade --install tally deploy/helm/tally --namespace tally ")
    assert f"image.digest={digest}" in call and "--atomic --wait" in call
    values = yaml.safe_load(Path(f"{log}.values").read_text())
    platform = json.loads(TERRAFORM_OUTPUTS.read_text())["platform"]["value"]
    pooled = platform["pooled"]
    assert values["serviceAccount"] == {"roleArn": pooled["role_arn"]}
    assert values["externalSecrets"] == {
        "enabled": True,
        "region": platform["region"],
        "storeSecret": pooled["store_secret_name"],
        "signingKeysSecret": pooled["signing_keys_secret_name"],
        "storeCASecret": platform["store_ca_secret_name"],
    }
    assert values["storeCA"] == {"secretKey": "global-bundle.pem"}
    assert values["ingress"]["hosts"] == pooled["hosts"]
    assert values["tally"]["publicUrl"] == values["tally"]["jwt"]["issuer"] == pooled["public_url"]
    assert "tenant" not in values["tally"] and "branding" not in values  # Tally's own


def test_cd_smoke_of_an_instance_without_a_public_url_fails_rather_than_guess(
    tmp_path: Path,
) -> None:
    """The platform domain is not necessarily a host the release serves."""
    require_tool("jq", hint="apt-get install jq")
    env, log = fake_tools(tmp_path, smoke_ok=True)
    result = subprocess.run(
        ["bash", str(INSTANCE_SH), "smoke", "pooled"], env=env, capture_output=True, text=True,
        check=False,
    )  # fmt: skip
    assert result.returncode == 1 and "no public_url for pooled" in result.stderr
    assert not log.exists() or "tally smoke" not in log.read_text()


def test_cd_smokes_the_pooled_instance_at_its_public_url(tmp_path: Path) -> None:
    require_tool("jq", hint="apt-get install jq")
    env, log = fake_tools(tmp_path, smoke_ok=True)
    outputs = Path(env["TALLY_TF_OUTPUTS"])
    data = json.loads(outputs.read_text())
    data["platform"]["value"]["pooled"] = {"public_url": "https://tally.example.com"}
    outputs.write_text(json.dumps(data))
    result = subprocess.run(
        ["bash", str(INSTANCE_SH), "smoke", "pooled"], env=env, capture_output=True, text=True,
        check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    smoke = next(c for c in log.read_text().splitlines() if c.startswith("tally smoke"))
    assert "--url https://tally.example.com --client-id c1" in smoke
