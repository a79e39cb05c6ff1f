"""Reset periods: each period of a resetting sequence is its own counter.

The period is the one containing the allocation instant, in the tenant's time zone.
Two requests racing across midnight each get the period of the instant the server
read its clock for them; since every period has its own counter, numbers of
different periods can never collide, at worst a request that arrived at 23:59:59.999
is numbered in the old period.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from zoneinfo import ZoneInfo


class Reset(StrEnum):
    never = "never"
    daily = "daily"
    monthly = "monthly"
    yearly = "yearly"


def local_time(at: datetime, tz: ZoneInfo) -> datetime:
    return at.astimezone(tz)


def period_of(reset: Reset, local: datetime) -> str:
    """The period label ('' for never); it becomes part of the counter key."""
    if reset is Reset.never:
        return ""
    if reset is Reset.yearly:
        return f"{local.year:04d}"
    if reset is Reset.monthly:
        return f"{local.year:04d}-{local.month:02d}"
    return f"{local.year:04d}-{local.month:02d}-{local.day:02d}"


def counter_key(name: str, period: str) -> str:
    return f"{name}/{period}" if period else name
