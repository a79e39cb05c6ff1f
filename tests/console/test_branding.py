"""Brand colours: text on the brand colour is picked from its luminance (WCAG contrast)."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from console.branding import INK, WHITE, brand_of, contrast, luminance, text_on
from console.headers import content_security_policy
from core.settings import Settings


def test_luminance_spans_black_to_white() -> None:
    assert luminance("#000000") == 0 and luminance("#ffffff") == pytest.approx(1)
    assert contrast("#000000", "#ffffff") == pytest.approx(21)


@pytest.mark.parametrize(
    ("color", "text"),
    [("#3b5bdb", WHITE), ("#ffd43b", INK), ("#ffffff", INK), ("#1a1a1a", WHITE), ("#ff6600", INK)],
)
def test_text_on_the_brand_colour_is_the_more_readable_of_white_and_ink(
    color: str, text: str
) -> None:
    assert text_on(color) == text
    other = INK if text == WHITE else WHITE
    assert contrast(color, text) >= contrast(color, other)
    assert contrast(color, text) >= 4.5  # WCAG AA for body text, for every colour here


def _settings(tmp_path: Path, **brand: str) -> Settings:
    return Settings(
        _env_file=None,  # type: ignore[call-arg]
        store_url=f"sqlite:///{tmp_path}/t.db",  # type: ignore[arg-type]
        keys_dir=tmp_path / "keys",
        **brand,  # type: ignore[arg-type]
    )


def test_a_pale_brand_colour_is_not_used_for_links_on_white(tmp_path: Path) -> None:
    pale = brand_of(_settings(tmp_path, brand_color="#FFD43B"))
    assert pale.color == "#ffd43b" and pale.accent == INK
    dark = brand_of(_settings(tmp_path, brand_color="#1864ab"))
    assert dark.accent == "#1864ab"


def test_the_logo_origin_is_the_only_foreign_source_the_csp_allows(tmp_path: Path) -> None:
    settings = _settings(tmp_path, brand_logo_url="https://cdn.acme.test/img/logo.svg")
    policy = content_security_policy(settings)
    assert "img-src 'self' https://cdn.acme.test;" in policy
    assert policy.count("https://") == 1
    assert "https://" not in content_security_policy(_settings(tmp_path))


async def test_brand_stylesheet_and_docs_show_the_siloed_brand(tmp_path: Path) -> None:
    from api.app import create_app

    app = create_app(
        _settings(
            tmp_path,
            tenant="acme",
            brand_name="Acme <Invoicing>",
            brand_color="#ffd43b",
            brand_logo_url="https://cdn.acme.test/logo.svg",
        )
    )
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
            css = await c.get("/console/brand.css")
            assert css.headers["content-type"].startswith("text/css")
            assert "--brand: #ffd43b; --on-brand: #111827;" in css.text
            docs = await c.get("/docs")
            assert "<title>Acme &lt;Invoicing&gt; API - docs</title>" in docs.text
            assert 'src="https://cdn.acme.test/logo.svg"' in docs.text
            assert "https://cdn.acme.test" in docs.headers["content-security-policy"]
