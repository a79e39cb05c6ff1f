"""The landing page at ``/``: the instance's branding (a siloed tenant's, or Tally's).

Served under the console's Content-Security-Policy (``console.headers``): its styles
are stylesheets (the brand's colours from ``/console/brand.css``), never inline."""

from __future__ import annotations

from html import escape

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from core.settings import Settings

router = APIRouter(include_in_schema=False)

_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{name}</title>
<link rel="stylesheet" href="/console/brand.css">
<link rel="stylesheet" href="/console/static/landing.css">
<link rel="icon" href="/console/static/favicon.svg">
</head>
<body>
<header>{logo}<h1>{name}</h1></header>
<main>
<p>{tagline}</p>
<p>Get an access token with OAuth 2.0 client credentials at <code>POST /oauth/token</code>,
then take numbers with <code>POST /v1/sequences/&lt;name&gt;/next</code>.</p>
<p><a href="/console">Console</a> · <a href="/docs">API documentation</a> ·
<a href="/openapi.json">OpenAPI</a></p>
</main>
</body>
</html>
"""


def render(settings: Settings) -> str:
    logo = (
        f'<img src="{escape(settings.brand_logo_url, quote=True)}" alt="">'
        if settings.brand_logo_url
        else ""
    )
    tagline = (
        f"Sequence numbers for {escape(settings.brand_name)}, powered by Tally."
        if settings.tenant
        else "Unique, durable, per-tenant sequence numbers."
    )
    return _PAGE.format(
        name=escape(settings.brand_name),
        logo=logo,
        tagline=tagline,
    )


@router.get("/", response_class=HTMLResponse)
async def landing(request: Request) -> HTMLResponse:
    """The branded landing page."""
    return HTMLResponse(render(request.app.state.settings))
