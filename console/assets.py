"""Static assets served from installed packages: an allowlist, ETags, no directory walk."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import lru_cache
from importlib.resources import files

from fastapi import Request, Response

from core.errors import NotFound

_TYPES = {
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".png": "image/png",
    ".svg": "image/svg+xml",
}
# (package, folder) and the files served from it; nothing else is reachable.
SWAGGER = ("fastapi_swagger", "resources", ("swagger-ui-bundle.js", "swagger-ui.css"))
CONSOLE = (
    "console",
    "static",
    ("console.css", "console.js", "docs.js", "favicon.svg", "landing.css"),
)


@dataclass(frozen=True, slots=True)
class Asset:
    body: bytes
    media_type: str
    etag: str


@lru_cache(maxsize=32)
def _load(package: str, folder: str, name: str) -> Asset:
    body = files(package).joinpath(folder, name).read_bytes()
    suffix = name[name.rfind(".") :]
    return Asset(body, _TYPES[suffix], '"' + hashlib.sha256(body).hexdigest()[:32] + '"')


def serve(request: Request, source: tuple[str, str, tuple[str, ...]], name: str) -> Response:
    """The named asset of ``source``; 404 for anything not on its list."""
    package, folder, allowed = source
    if name not in allowed:
        raise NotFound(f"No asset named '{name}'.")
    asset = _load(package, folder, name)
    # Names are not content-hashed, so browsers revalidate (a 304 costs one round trip).
    headers = {"ETag": asset.etag, "Cache-Control": "no-cache"}
    if request.headers.get("if-none-match") == asset.etag:
        return Response(status_code=304, headers=headers)
    return Response(asset.body, media_type=asset.media_type, headers=headers)
