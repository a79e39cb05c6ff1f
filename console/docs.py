"""``/docs``: Swagger UI from the ``fastapi-swagger`` package, served by Tally itself.

No CDN: the bundle and its stylesheet come from the installed package, and a script
of our own (no inline script, so the CSP holds) starts it on ``/openapi.json``.
"""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from fastapi.responses import HTMLResponse

from console import assets
from console.pages import render

router = APIRouter(include_in_schema=False)


@router.get("/docs", response_class=HTMLResponse)
async def docs(request: Request) -> HTMLResponse:
    """Swagger UI under the instance's brand."""
    return render(request, "docs.html", title=request.app.title, openapi_url="/openapi.json")


@router.get("/docs/assets/{name}")
async def swagger_asset(request: Request, name: str) -> Response:
    """Swagger UI's bundle and stylesheet."""
    return assets.serve(request, assets.SWAGGER, name)
