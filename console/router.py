"""``/console``: the branded web console's pages, forms and assets (HTML, not in OpenAPI)."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from console import assets
from console.branding import brand_of

router = APIRouter(prefix="/console", include_in_schema=False)


@router.get("/brand.css")
async def brand_css(request: Request) -> Response:
    """The instance's colours as CSS variables (a stylesheet: the CSP allows no inline style)."""
    css = brand_of(request.app.state.settings).stylesheet
    return Response(
        css, media_type="text/css; charset=utf-8", headers={"Cache-Control": "no-cache"}
    )


@router.get("/static/{name}")
async def static(request: Request, name: str) -> Response:
    """The console's own scripts, styles and icons."""
    return assets.serve(request, assets.CONSOLE, name)
