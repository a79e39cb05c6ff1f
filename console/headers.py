"""Security headers on every ``/console`` and ``/docs`` response and the landing page
``/``, errors included.

A pure ASGI middleware that looks at the path and otherwise passes the request
through untouched. ``api.app`` adds it inside the ``next`` fast path, so the hot API
never reaches it.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from console.branding import brand_of
from core.settings import Settings

PREFIXES = ("/console", "/docs")


def covered(path: str) -> bool:
    return path == "/" or any(path == p or path.startswith(p + "/") for p in PREFIXES)


def content_security_policy(settings: Settings, *, docs: bool = False) -> str:
    """No inline script or style, nothing from another origin but the brand's logo.

    Swagger UI's stylesheet draws its icons as ``data:`` SVG images, so the docs
    allow ``data:`` images; the console does not need them.
    """
    images = ["'self'"]
    if docs:
        images.append("data:")
    origin = brand_of(settings).logo_origin
    if origin:
        images.append(origin)
    return "; ".join(
        [
            "default-src 'self'",
            "script-src 'self'",
            "style-src 'self'",
            f"img-src {' '.join(images)}",
            "connect-src 'self'",
            "font-src 'self'",
            "object-src 'none'",
            "base-uri 'none'",
            "form-action 'self'",
            "frame-ancestors 'none'",
        ]
    )


class SecurityHeaders:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not covered(scope["path"]):
            await self.app(scope, receive, send)
            return
        settings: Settings = scope["app"].state.settings
        policy = content_security_policy(settings, docs=scope["path"].startswith("/docs"))
        extra = [
            (b"content-security-policy", policy.encode()),
            (b"x-content-type-options", b"nosniff"),
            # same-origin, not no-referrer: under no-referrer a form POST says `Origin: null`,
            # and the console checks Origin on every form.
            (b"referrer-policy", b"same-origin"),
            (b"x-frame-options", b"DENY"),
            (b"cross-origin-opener-policy", b"same-origin"),
        ]

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                names = {name.lower() for name, _ in message.get("headers", [])}
                message["headers"] = [
                    *message.get("headers", []),
                    *(h for h in extra if h[0] not in names),
                ]
            await send(message)

        await self.app(scope, receive, send_with_headers)
