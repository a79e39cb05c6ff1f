"""Rendering console and docs pages: one Jinja2 environment, autoescaped."""

from __future__ import annotations

from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, PackageLoader, select_autoescape

from console.branding import brand_of
from core.settings import Settings

env = Environment(
    loader=PackageLoader("console", "templates"),
    autoescape=select_autoescape(["html"]),
    trim_blocks=True,
    lstrip_blocks=True,
)


def render(
    request: Request,
    template: str,
    *,
    status_code: int = 200,
    headers: dict[str, str] | None = None,
    **context: Any,
) -> HTMLResponse:
    """A page with the instance's brand; never cached (it may show secrets or numbers)."""
    settings: Settings = request.app.state.settings
    html = env.get_template(template).render(brand=brand_of(settings), **context)
    return HTMLResponse(
        html,
        status_code=status_code,
        headers={"Cache-Control": "no-store", **(headers or {})},
    )


def is_console(path: str) -> bool:
    return path == "/console" or path.startswith("/console/")


def error_page(
    request: Request,
    status: int,
    title: str,
    detail: str,
    headers: dict[str, str] | None = None,
) -> HTMLResponse:
    """``error.html``: how the console answers any error, its own routes' or the router's."""
    return render(
        request,
        "error.html",
        status_code=status,
        headers=headers,
        title=title,
        detail=detail,
        status=status,
    )
