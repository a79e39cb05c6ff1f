"""The onboarding CLI in-process: bad input exits non-zero with one line, writes nothing."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from api.cli import app, main

runner = CliRunner()


@pytest.fixture(autouse=True)
def tally_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TALLY_STORE_URL", f"sqlite:///{tmp_path}/tally.db")
    monkeypatch.setenv("TALLY_KEYS_DIR", str(tmp_path / "keys"))
    monkeypatch.chdir(tmp_path)  # no stray .env


def tally(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


def tenant_slugs() -> list[str]:
    code, out, err = tally("tenants", "list", "--json")
    assert code == 0, err
    return [t["slug"] for t in json.loads(out)]


def test_tenants_create_json_prints_tenant_and_credentials_once() -> None:
    code, out, err = tally(
        "tenants", "create", "acme", "--name", "Acme Corp", "--domain", "numbers.acme.com",
        "--plan", "free", "--color", "#AA3300", "--logo-url", "https://acme.com/logo.svg",
        "--timezone", "America/New_York", "--json",
    )  # fmt: skip
    assert code == 0, err
    body = json.loads(out)
    assert body["tenant"]["slug"] == "acme" and body["tenant"]["plan"]["name"] == "free"
    assert body["client_id"].startswith("acme.") and len(body["client_secret"]) >= 40
    assert body["default_sequence"] == "default"
    code, out, _ = tally("clients", "list", "--tenant", "acme", "--json")
    assert body["client_secret"] not in out
    assert [c["client_id"] for c in json.loads(out)] == [body["client_id"]]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["Bad_Slug", "--name", "X"], "invalid SLUG"),
        (["a", "--name", "X"], "invalid SLUG"),
        (["admin", "--name", "X"], "reserved"),
        (["pooled", "--name", "X"], "reserved"),  # the pooled instance's secrets and role
        (["acme", "--name", "X", "--color", "red"], "invalid --color: must be a #RRGGBB colour"),
        (["acme", "--name", "X", "--color", "#12345"], "invalid --color"),
        (["acme", "--name", "X", "--timezone", "Mars/Olympus"], "unknown time zone"),
        (["acme", "--name", "X", "--timezone", "../../etc/passwd"], "unknown time zone"),
        (["acme", "--name", "X", "--timezone", "Europe"], "unknown time zone"),
        (["acme", "--name", "X", "--plan", "gold"], "invalid --plan"),
        (["acme", "--name", "X", "--logo-url", "http://acme.com/l.png"], "invalid --logo-url"),
        (["acme", "--name", "X", "--domain", "not a domain"], "invalid --domain"),
        (["acme", "--name", "  "], "invalid --name"),
        (["acme", "--name", "X", "--idp-issuer", "https://i"], "--idp-jwks-url is required"),
        (
            [
                "acme",
                "--name",
                "X",
                "--idp-issuer",
                "https://i",
                "--idp-audience",
                "a",
                "--idp-jwks-url",
                "http://evil.example/jwks",
            ],
            "invalid --idp-jwks-url",
        ),
    ],
)
def test_bad_tenant_input_is_one_line_and_writes_nothing(args: list[str], message: str) -> None:
    code, out, err = tally("tenants", "create", *args)
    assert code != 0
    assert out == ""
    assert len(err.strip().splitlines()) == 1, err
    assert err.startswith("tally: ") and message in err
    assert tenant_slugs() == []


def test_existing_slug_is_refused_and_the_first_tenant_is_untouched() -> None:
    assert tally("tenants", "create", "acme", "--name", "First")[0] == 0
    code, _, err = tally("tenants", "create", "acme", "--name", "Second")
    assert code != 0 and err == "tally: A tenant 'acme' already exists.\n"
    code, out, _ = tally("tenants", "show", "acme", "--json")
    assert json.loads(out)["name"] == "First"
    code, out, _ = tally("clients", "list", "--tenant", "acme", "--json")
    assert len(json.loads(out)) == 1


@pytest.mark.parametrize(
    "args",
    [
        ["tenants", "show", "nope"],
        ["tenants", "suspend", "nope"],
        ["tenants", "update", "nope", "--name", "X"],
        ["clients", "create", "--tenant", "nope"],
        ["clients", "list", "--tenant", "nope"],
        ["clients", "revoke", "nope.0123456789abcdef", "--tenant", "nope"],
    ],
)
def test_unknown_tenant_is_one_line_and_non_zero(args: list[str]) -> None:
    code, _, err = tally(*args)
    assert code != 0 and err == "tally: No tenant 'nope'.\n"


def test_update_suspend_resume_delete_round_trip() -> None:
    tally("tenants", "create", "acme", "--name", "Acme")
    code, out, err = tally("tenants", "update", "acme", "--color", "#00ff00", "--json")
    assert code == 0, err and json.loads(out)["branding"]["primary_color"] == "#00ff00"
    code, _, err = tally("tenants", "update", "acme", "--timezone", "Nowhere/Land")
    assert code != 0 and "unknown time zone" in err
    code, _, err = tally("tenants", "update", "acme")
    assert code != 0 and "nothing to update" in err
    code, _, err = tally("tenants", "delete", "acme", "--yes")
    assert code != 0 and "Suspend tenant 'acme'" in err
    code, _, err = tally("tenants", "delete", "acme")
    assert code != 0 and "--yes" in err
    assert json.loads(tally("tenants", "suspend", "acme", "--json")[1])["status"] == "suspended"
    assert json.loads(tally("tenants", "resume", "acme", "--json")[1])["status"] == "active"
    tally("tenants", "suspend", "acme")
    assert tally("tenants", "delete", "acme", "--yes", "--json")[1] == '{"deleted": "acme"}\n'
    assert tenant_slugs() == []


def test_clients_create_rotate_revoke() -> None:
    tally("tenants", "create", "acme", "--name", "Acme")
    code, out, err = tally(
        "clients", "create", "--tenant", "acme", "--scope", "sequences:next", "--json"
    )
    assert code == 0, err
    created = json.loads(out)
    assert created["scopes"] == ["sequences:next"]
    code, out, _ = tally("clients", "rotate", created["client_id"], "--tenant", "acme", "--json")
    assert json.loads(out)["client_secret"] != created["client_secret"]
    code, out, _ = tally("clients", "revoke", created["client_id"], "--tenant", "acme", "--json")
    assert json.loads(out)["status"] == "revoked"
    code, _, err = tally("clients", "revoke", created["client_id"], "--tenant", "acme")
    assert code != 0 and "revoked" in err
    code, _, err = tally("clients", "create", "--tenant", "acme", "--scope", "platform:admin")
    assert code != 0 and err.startswith("tally: invalid --scope")


def test_admin_clients_create_prints_platform_credentials() -> None:
    code, out, err = tally("admin", "clients", "create", "--json")
    assert code == 0, err
    body = json.loads(out)
    assert body["client_id"].startswith("admin.") and body["client_secret"]
    assert body["scopes"] == ["platform:admin"] and body["tenant"] is None


def test_keys_rotate_needs_generate_first() -> None:
    assert tally("token", "--tenant", "demo")[0] == 0  # makes the first key
    code, _, err = tally("keys", "rotate")
    assert code != 0 and "tally keys generate" in err and len(err.splitlines()) == 1
    kid = json.loads(tally("keys", "generate", "--json")[1])["kid"]
    code, _, err = tally("keys", "rotate")  # just published: JWKS caches may not have it
    assert code != 0 and f"key {kid} was published" in err and "--force" in err
    assert json.loads(tally("keys", "rotate", "--force", "--json")[1]) == {"active": kid}
    statuses = {k["status"] for k in json.loads(tally("keys", "list", "--json")[1])}
    assert statuses == {"active", "previous"}


def test_token_json_prints_a_token_response() -> None:
    code, out, err = tally("token", "--tenant", "demo", "--scope", "sequences:read", "--json")
    assert code == 0, err
    body = json.loads(out)
    assert body["token_type"] == "Bearer" and body["scope"] == "sequences:read"
    assert body["access_token"].count(".") == 2


@pytest.mark.parametrize("tenant", ["ACME corp", "a", "acme-", "a" * 33])
def test_token_for_a_tenant_no_server_would_accept_is_refused(tenant: str) -> None:
    code, out, err = tally("token", "--tenant", tenant)
    assert code != 0 and out == "" and err.count("\n") == 1 and "invalid --tenant" in err


def test_tenants_usage_shows_what_the_servers_flushed(tmp_path: Path) -> None:
    import asyncio
    from datetime import UTC, datetime

    from storage import UsageRow
    from storage.sqlite import SQLiteStore

    assert tally("tenants", "create", "acme", "--name", "Acme")[0] == 0

    async def flushed() -> None:  # what servers' usage flushes leave in the store
        store = SQLiteStore(tmp_path / "tally.db")
        await store.start()
        try:
            for hour, numbers in ((9, 5), (10, 7)):
                row = UsageRow("default", datetime(2026, 3, 1, hour, tzinfo=UTC), 2, numbers)
                await store.add_usage("acme", [row])
        finally:
            await store.close()

    asyncio.run(flushed())
    window = [
        "--granularity",
        "hour",
        "--from",
        "2026-03-01T08:00:00Z",
        "--to",
        "2026-03-01T11:00Z",
    ]
    code, out, err = tally("tenants", "usage", "acme", *window, "--json")
    assert code == 0, err
    body = json.loads(out)
    assert [(p["requests"], p["numbers"]) for p in body["points"]] == [(0, 0), (2, 5), (2, 7)]
    assert (body["requests"], body["numbers"]) == (4, 12)
    code, out, _ = tally("tenants", "usage", "acme", *window)
    assert code == 0 and "total: 4 requests, 12 numbers" in out

    for args, message in [
        (["nope"], "nope"),
        (["acme", "--from", "2026-03-01T08:00:00"], "invalid --from: give a time zone"),
        (["acme", "--to", "yesterday"], "invalid --to: not an ISO 8601 date-time"),
        (["acme", "--from", "2026-03-02T00:00Z", "--to", "2026-03-01T00:00Z"], "before"),
    ]:
        code, _, err = tally("tenants", "usage", *args)
        assert code != 0 and message in err and len(err.strip().splitlines()) == 1, (args, err)


def console(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, *args: str
) -> tuple[int, str]:
    """The console script itself (``main``), which turns a bad setting into one line."""
    monkeypatch.setattr(sys, "argv", ["tally", *args])
    with pytest.raises(SystemExit) as exit_:
        main()
    code = exit_.value.code
    return (code if isinstance(code, int) else 1), capsys.readouterr().err


@pytest.mark.parametrize("args", [["tenants", "list"], ["migrate"]])
def test_a_bigtable_url_option_the_store_would_refuse_is_an_invalid_setting(
    args: list[str], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TALLY_STORE_URL", "bigtable://proj/inst?app_profil=tally-rw")
    code, err = console(capsys, monkeypatch, *args)
    assert code == 2 and err.count("\n") == 1, err
    assert err.startswith("tally: invalid setting TALLY_STORE_URL:") and "app_profil" in err


@pytest.mark.parametrize(
    "args",
    [
        ["tenants", "list"],
        ["tenants", "create", "acme", "--name", "Acme"],
        ["clients", "list", "--tenant", "acme"],
        ["admin", "clients", "list"],
        ["provision", "acme", "--platform-domain", "tally.example.com"],
    ],
)
@pytest.mark.parametrize("store", ["under-a-file", "not-a-database"])
def test_a_store_that_cannot_be_opened_is_one_line_not_a_traceback(
    args: list[str], store: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Both fail for root too: no directory can be made under a regular file.
    (tmp_path / "afile").write_text("not a directory\n")
    (tmp_path / "garbage.db").write_text("not a database\n" * 100)
    path = "afile/data/tally.db" if store == "under-a-file" else "garbage.db"
    monkeypatch.setenv("TALLY_STORE_URL", f"sqlite:///{tmp_path}/{path}")
    code, out, err = tally(*args)
    assert code == 2 and out == "" and err.count("\n") == 1, (code, err)
    assert err.startswith("tally: cannot open the store named by TALLY_STORE_URL: "), err
    reason = "Not a directory" if store == "under-a-file" else "file is not a database"
    assert reason in err


@pytest.mark.parametrize("args", [["token", "--tenant", "demo"], ["keys", "generate"]])
def test_a_keys_dir_that_cannot_be_made_is_one_line_not_a_traceback(
    args: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "afile").write_text("not a directory\n")  # refused for root too
    monkeypatch.setenv("TALLY_KEYS_DIR", str(tmp_path / "afile" / "keys"))
    code, out, err = tally(*args)
    assert code == 1 and out == "" and err.count("\n") == 1, (code, err)
    assert err.startswith("tally: cannot write signing keys to ") and "Not a directory" in err


def test_provision_to_an_out_it_cannot_write_is_one_line(tmp_path: Path) -> None:
    assert tally("tenants", "create", "acme", "--name", "Acme")[0] == 0
    (tmp_path / "afile").write_text("not a directory\n")  # refused for root too
    code, out, err = tally(
        "provision", "acme", "--out", str(tmp_path / "afile" / "out"),
        "--platform-domain", "tally.example.com",
    )  # fmt: skip
    assert code == 1 and out == "" and err.count("\n") == 1, (code, err)
    assert err.startswith("tally: cannot write ") and "Not a directory" in err


@pytest.mark.parametrize("mine", [{"hosts": ["a"]}, "x"])
def test_provision_with_a_bad_tenant_block_of_outputs_is_one_line_and_writes_nothing(
    mine: object, tmp_path: Path
) -> None:
    assert tally("tenants", "create", "acme", "--name", "Acme")[0] == 0
    outputs = tmp_path / "outputs.json"
    outputs.write_text(json.dumps({"tenants": {"value": {"acme": mine}}}))
    code, out, err = tally(
        "provision", "acme", "--out", str(tmp_path / "out"), "--terraform-outputs", str(outputs)
    )
    assert code == 1 and out == "" and err.count("\n") == 1, (code, err)
    assert "terraform output 'tenants' for acme" in err
    assert not (tmp_path / "out").exists()
