"""Hand-made tokens for the auth tests: real signatures over headers and claims we choose."""

from __future__ import annotations

import base64
import json
import time
from typing import Any

import jwt

from auth.keys import KeyRing
from core.settings import Settings


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def segment(obj: Any) -> str:
    return b64(json.dumps(obj).encode())


def claims(settings: Settings, **overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    base: dict[str, Any] = {
        "iss": settings.jwt_issuer,
        "aud": settings.jwt_audience,
        "sub": "attacker",
        "tid": "acme",
        "scope": "sequences:read sequences:next sequences:write",
        "iat": now,
        "exp": now + 300,
    }
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not None}


def signed(ring: KeyRing, payload: dict[str, Any], **header: Any) -> str:
    """Signed by the real active key, with header fields overridden (None drops one)."""
    key = ring.active
    fields = {"alg": "ES256", "kid": key.kid, "typ": "at+jwt", **header}
    head = {k: v for k, v in fields.items() if v is not None}
    signing_input = f"{segment(head)}.{segment(payload)}"
    sig = jwt.get_algorithm_by_name("ES256").sign(signing_input.encode(), key.private)
    return f"{signing_input}.{b64(sig)}"
