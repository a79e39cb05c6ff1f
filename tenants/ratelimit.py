"""Per-tenant request rate limits (the plan's ``requests_per_second``).

A token bucket per tenant, per process: ``rate`` tokens a second, holding at most one
second's worth, so a tenant may burst to its plan's rate and sustain it. With N server
processes a tenant's effective limit is N times its plan's (documented; a shared
limiter would put a store round trip on every request). Hand-written rather than a
library because it is a dozen lines on the hot path: one dict lookup and arithmetic.
"""

from __future__ import annotations

import math

from core.errors import TooManyRequests


class RateLimited(TooManyRequests):
    type = "rate-limited"
    title = "Rate limit exceeded"


class TenantRateLimiter:
    def __init__(self) -> None:
        # tenant -> (tokens left, monotonic time of the last refill)
        self._buckets: dict[str, tuple[float, float]] = {}

    def take(self, tenant: str, rate: float, now: float) -> None:
        """Spend one token of ``tenant``'s bucket, or raise ``RateLimited`` (429)."""
        if rate <= 0:
            return
        tokens, last = self._buckets.get(tenant, (rate, now))
        tokens = min(rate, tokens + (now - last) * rate)
        if tokens < 1.0:
            self._buckets[tenant] = (tokens, now)
            wait = math.ceil((1.0 - tokens) / rate)
            raise RateLimited(
                f"Tenant '{tenant}' is over its plan's {rate:g} requests per second.",
                retry_after=wait,
            )
        self._buckets[tenant] = (tokens - 1.0, now)
