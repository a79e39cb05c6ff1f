"""Usage series for dashboards: the store's hourly totals plus this process's pending ones.

Buckets are UTC hours or UTC days. Other processes' counts reach the store within
their flush interval (``TALLY_USAGE_FLUSH_SECONDS``); this process's are included at
once.
"""

from __future__ import annotations

from collections import Counter as Tally
from datetime import UTC, datetime, timedelta

from core.clock import Clock, SystemClock
from core.errors import Unprocessable
from storage import Store
from usage.recorder import UsageRecorder
from usage.schemas import Granularity, SequenceUsage, UsageOut, UsagePoint

STEP = {Granularity.hour: timedelta(hours=1), Granularity.day: timedelta(days=1)}
# The default range (ending with the current bucket) and the longest one allowed.
DEFAULT_BUCKETS = {Granularity.hour: 24, Granularity.day: 30}
MAX_BUCKETS = {Granularity.hour: 24 * 31, Granularity.day: 366}


def floor(at: datetime, granularity: Granularity) -> datetime:
    at = at.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    return at.replace(hour=0) if granularity is Granularity.day else at


class UsageService:
    def __init__(self, store: Store, recorder: UsageRecorder, *, clock: Clock | None = None):
        self.store = store
        self.recorder = recorder
        self.clock = clock or SystemClock()

    async def series(
        self,
        tenant: str,
        *,
        sequence: str | None = None,
        granularity: Granularity = Granularity.day,
        start: datetime | None = None,
        end: datetime | None = None,
    ) -> UsageOut:
        """Usage of ``[start, end)`` (widened to whole buckets); defaults end now."""
        if start is not None and end is not None and start >= end:
            raise Unprocessable("`from` must be before `to`.")
        step = STEP[granularity]
        try:
            last = floor(end - timedelta(microseconds=1), granularity) if end else None
            stop = (last + step) if last else floor(self.clock.now(), granularity) + step
            first = (
                floor(start, granularity) if start else stop - DEFAULT_BUCKETS[granularity] * step
            )
        except OverflowError:  # e.g. to=9999-12-31T23:59:59Z: no bucket can end after it
            raise Unprocessable("`from`/`to` out of range.") from None
        if first >= stop:
            raise Unprocessable("`from` must be before `to`.")
        buckets = (stop - first) // step
        if buckets > MAX_BUCKETS[granularity]:
            raise Unprocessable(
                f"At most {MAX_BUCKETS[granularity]} {granularity.value}s per request"
                f" (asked for {buckets})."
            )
        rows = [
            r
            for r in await self.recorder.counted(
                tenant,
                lambda: self.store.read_usage(tenant, sequence=sequence, since=first, until=stop),
            )
            if first <= r.hour < stop and (sequence is None or r.sequence == sequence)
        ]
        requests: Tally[datetime] = Tally()
        numbers: Tally[datetime] = Tally()
        per_seq: dict[str, list[int]] = {}
        for row in rows:
            bucket = floor(row.hour, granularity)
            requests[bucket] += row.requests
            numbers[bucket] += row.numbers
            totals = per_seq.setdefault(row.sequence, [0, 0])
            totals[0] += row.requests
            totals[1] += row.numbers
        points = [
            UsagePoint(start=first + i * step, requests=requests[t], numbers=numbers[t])
            for i in range(buckets)
            for t in [first + i * step]
        ]
        return UsageOut(
            tenant=tenant,
            sequence=sequence,
            granularity=granularity,
            start=first,
            end=stop,
            points=points,
            requests=sum(requests.values()),
            numbers=sum(numbers.values()),
            sequences=[
                SequenceUsage(sequence=name, requests=r, numbers=n)
                for name, (r, n) in sorted(per_seq.items(), key=lambda kv: (-kv[1][1], kv[0]))
            ],
        )
