"""Settings: defaults, validation, and refusing development defaults in production."""

from __future__ import annotations

import pytest

from core.settings import Settings, SettingsError, load_settings


def test_defaults_serve_sqlite_under_data() -> None:
    s = Settings(_env_file=None)  # type: ignore[call-arg]
    assert s.store_kind == "sqlite"
    assert s.store_url.get_secret_value() == "sqlite:///./data/tally.db"


@pytest.mark.parametrize(
    ("url", "kind"),
    [("mongodb://db:27017", "mongodb"), ("mongodb+srv://c.example.net", "mongodb")],
)
def test_mongodb_urls_select_mongodb(monkeypatch: pytest.MonkeyPatch, url: str, kind: str) -> None:
    monkeypatch.setenv("TALLY_STORE_URL", url)
    assert load_settings().store_kind == kind


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("TALLY_STORE_URL", "postgres://u:hunter2@db/x"),
        ("TALLY_TOKEN_TTL_SECONDS", "-5"),
        ("TALLY_ENVIRONMENT", "staging"),
        ("TALLY_MONGO_WRITE_CONCERN", "most"),
        ("TALLY_BRAND_COLOR", "red"),
        # Past the URL's shape, the options the Bigtable store reads (a typo, a bad prefix).
        ("TALLY_STORE_URL", "bigtable://proj/inst?app_profil=tally-rw"),
        ("TALLY_STORE_URL", "bigtable://proj/inst?table_prefix=a%23b"),
    ],
)
def test_bad_setting_is_one_line_naming_it(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(SettingsError) as err:
        load_settings()
    message = str(err.value)
    assert name in message and "\n" not in message
    assert "hunter2" not in message


def test_production_refuses_development_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TALLY_ENVIRONMENT", "production")
    with pytest.raises(SettingsError, match="TALLY_JWT_ISSUER"):
        load_settings()
    monkeypatch.setenv("TALLY_JWT_ISSUER", "https://tally.example.com")
    with pytest.raises(SettingsError, match="TALLY_STORE_URL"):
        load_settings()
    monkeypatch.setenv("TALLY_STORE_URL", "mongodb://db:27017")
    settings = load_settings()
    assert settings.environment == "production" and not settings.auto_create_keys


def test_every_setting_is_documented_in_the_readme() -> None:
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    undocumented = [
        f"TALLY_{name.upper()}"
        for name in Settings.model_fields
        if f"`TALLY_{name.upper()}`" not in readme
    ]
    assert not undocumented, f"add to the README's Configuration table: {undocumented}"
