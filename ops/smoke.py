"""``tally smoke``: does a deployed instance work, end to end, as a client sees it?

Checks in order, stopping at the first failure: ``/healthz``, ``/readyz``, a token
from ``/oauth/token`` (client credentials), then a number from a dedicated smoke
sequence that must be larger than the last one it issued. The sequence is created on
the first run (the client then needs ``sequences:write`` as well as ``sequences:next``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import httpx

SMOKE_SEQUENCE = "tally-smoke"


class SmokeFailed(Exception):
    """One line saying which check failed and why (never a secret or a token)."""


@dataclass
class SmokeResult:
    url: str
    sequence: str
    last: int | None
    value: int
    checks: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "url": self.url,
            "sequence": self.sequence,
            "last": self.last,
            "value": self.value,
            "checks": self.checks,
        }


def _problem(response: httpx.Response) -> str:
    """The server's own one-line reason (problem+json detail), else the status."""
    try:
        body = response.json()
    except ValueError:
        body = None
    detail = body.get("detail") or body.get("error_description") if isinstance(body, dict) else None
    reason = f"HTTP {response.status_code}"
    return f"{reason}: {detail}" if detail else reason


async def smoke(
    url: str,
    client_id: str,
    client_secret: str,
    *,
    sequence: str = SMOKE_SEQUENCE,
    request_timeout: float = 10.0,
    transport: httpx.AsyncBaseTransport | None = None,
) -> SmokeResult:
    """Run every check against ``url``; raise ``SmokeFailed`` at the first that fails."""
    base = url.rstrip("/")
    async with httpx.AsyncClient(
        base_url=base, timeout=request_timeout, transport=transport, follow_redirects=False
    ) as http:

        async def call(check: str, method: str, path: str, **kwargs: Any) -> httpx.Response:
            try:
                return await http.request(method, path, **kwargs)
            except httpx.TimeoutException:
                raise SmokeFailed(
                    f"{check}: {base}{path} timed out after {request_timeout:g} s"
                ) from None
            except httpx.TransportError as exc:
                raise SmokeFailed(f"{check}: cannot reach {base}{path} ({exc})") from None

        checks: list[str] = []
        for path in ("/healthz", "/readyz"):
            answer = await call(path.strip("/"), "GET", path)
            if answer.status_code != 200:
                raise SmokeFailed(f"{path.strip('/')}: {_problem(answer)}")
            checks.append(path.strip("/"))

        answer = await call(
            "token",
            "POST",
            "/oauth/token",
            data={"grant_type": "client_credentials"},
            auth=(client_id, client_secret),
        )
        if answer.status_code != 200:
            raise SmokeFailed(f"token: {_problem(answer)} (client {client_id})")
        try:
            token = str(answer.json()["access_token"])
        except (ValueError, KeyError, TypeError):
            raise SmokeFailed("token: the answer holds no access_token") from None
        checks.append("token")
        auth = {"Authorization": f"Bearer {token}"}

        path = f"/v1/sequences/{sequence}"
        answer = await call("sequence", "GET", path, headers=auth)
        if answer.status_code == 404:
            created = await call(
                "sequence", "POST", "/v1/sequences", headers=auth, json={"name": sequence}
            )
            if created.status_code not in (201, 409):  # 409: a concurrent smoke made it
                raise SmokeFailed(f"sequence: cannot create {sequence}: {_problem(created)}")
            answer = await call("sequence", "GET", path, headers=auth)
        if answer.status_code != 200:
            raise SmokeFailed(f"sequence: {_problem(answer)}")
        last = answer.json().get("last")

        answer = await call("next", "POST", f"{path}/next", headers=auth)
        if answer.status_code != 200:
            raise SmokeFailed(f"next: {_problem(answer)}")
        try:
            value = int(answer.json()["value"])
        except (ValueError, KeyError, TypeError):
            raise SmokeFailed("next: the answer holds no number") from None
        if last is not None and value <= int(last):
            raise SmokeFailed(f"next: {sequence} gave {value}, not more than its last {last}")
        checks.append("next")
    return SmokeResult(url=base, sequence=sequence, last=last, value=value, checks=checks)
