"""The tenant file contract between `tally provision` and terraform/live.

terraform/live/tenant.schema.json describes <slug>.json: these tests tie it to the
tenant-instance module's variables and to the root's module call, so a CLI that writes
files valid against the schema writes exactly what Terraform declares.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from ._support import TERRAFORM_DIR, missing

pytestmark = pytest.mark.infra

SCHEMA_FILE = TERRAFORM_DIR / "live" / "tenant.schema.json"
MODULE_DIR = TERRAFORM_DIR / "modules" / "tenant-instance"
FIXTURES = sorted((TERRAFORM_DIR / "live" / "tests" / "fixtures" / "tenants").glob("*.json"))

# Inputs the root feeds from the platform module, never from a tenant file.
PLATFORM_SUPPLIED = {
    "platform_domain",
    "zone_id",
    "ingress_hostname",
    "oidc_provider_arn",
    "oidc_issuer",
    "kms_key_arn",
    "store_ca_secret_arn",
    "service_account_name",
    "name_prefix",
    "tags",
}


def module_variables(module_dir: Path) -> dict[str, bool]:
    """Variable name -> has a default, read from a `terraform fmt`-formatted module."""
    text = "\n".join(p.read_text() for p in sorted(module_dir.glob("*.tf")))
    variables: dict[str, bool] = {}
    for match in re.finditer(r'^variable "([^"]+)" \{\n(.*?)^\}', text, re.MULTILINE | re.DOTALL):
        variables[match.group(1)] = bool(re.search(r"^  default\s*=", match.group(2), re.MULTILINE))
    return variables


@pytest.fixture(scope="module")
def schema() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(SCHEMA_FILE.read_text())
    return loaded


def test_file_keys_are_exactly_the_module_variables_not_supplied_by_the_platform(
    schema: dict[str, Any],
) -> None:
    variables = module_variables(MODULE_DIR)
    assert set(variables) >= PLATFORM_SUPPLIED
    assert set(schema["properties"]) == set(variables) - PLATFORM_SUPPLIED


def test_required_file_keys_are_the_variables_without_default(schema: dict[str, Any]) -> None:
    variables = module_variables(MODULE_DIR)
    without_default = {name for name, has_default in variables.items() if not has_default}
    assert set(schema["required"]) == without_default - PLATFORM_SUPPLIED
    assert schema["additionalProperties"] is False


def test_root_passes_every_file_key_to_the_module(schema: dict[str, Any]) -> None:
    main = (TERRAFORM_DIR / "live" / "main.tf").read_text()
    call = re.search(r'^module "tenant" \{\n(.*?)^\}', main, re.MULTILINE | re.DOTALL)
    assert call
    passed = dict(re.findall(r"^  (\w+)\s*=\s*(?:try\()?each\.value\.(\w+)", call.group(1), re.M))
    assert passed == {key: key for key in schema["properties"]}
    required_lookups = {k for k in passed if f"try(each.value.{k}" not in call.group(1)}
    assert required_lookups == set(schema["required"]), "optional keys must be read with try()"


@pytest.mark.parametrize("path", FIXTURES, ids=lambda p: p.name)
def test_example_tenant_files_match_the_schema(path: Path, schema: dict[str, Any]) -> None:
    try:
        import jsonschema
    except ImportError:
        missing("jsonschema is not installed (it comes with the infra extra)")
    data = json.loads(path.read_text())
    jsonschema.Draft202012Validator(schema).validate(data)
    assert path.stem == data["slug"], "a tenant file is named <slug>.json"


def test_schema_rejects_unknown_keys_and_bad_slugs(schema: dict[str, Any]) -> None:
    try:
        import jsonschema
    except ImportError:
        missing("jsonschema is not installed (it comes with the infra extra)")
    validator = jsonschema.Draft202012Validator(schema)
    good = json.loads(FIXTURES[0].read_text())
    assert validator.is_valid(good)
    assert not validator.is_valid({**good, "store_url": "mongodb://secret"})
    assert not validator.is_valid({**good, "slug": "Acme"})
    assert not validator.is_valid({**good, "slug": "pooled", "namespace": "tally-pooled"})
    assert not validator.is_valid({**good, "primary_color": "orange"})
    assert not validator.is_valid({**good, "namespace": "tally"})  # the pooled instance's


def test_every_copy_of_the_reserved_slugs_is_the_apps_list(schema: dict[str, Any]) -> None:
    """Terraform, the tenant file schema and CD's selector cannot import tenants.schemas."""
    from tenants.schemas import RESERVED_SLUGS

    variables = (MODULE_DIR / "variables.tf").read_text()
    terraform = re.search(r"!contains\(\[([^\]]*)\], var\.slug\)", variables)
    assert terraform, "modules/tenant-instance lost its reserved-slug validation"
    assert set(json.loads(f"[{terraform[1]}]")) == RESERVED_SLUGS
    assert set(schema["properties"]["slug"]["not"]["enum"]) == RESERVED_SLUGS
    cd = (TERRAFORM_DIR.parent / ".github" / "workflows" / "cd.yml").read_text()
    selector = re.search(r"reserved = sorted\(set\(known\) & \{([^}]*)\}\)", cd)
    assert selector, "cd.yml's selector lost its reserved-slug check"
    assert set(json.loads(f"[{selector[1]}]")) == RESERVED_SLUGS
