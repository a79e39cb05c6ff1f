"""Reset periods: each period of a resetting sequence is its own counter.

The period is the one containing the allocation instant, in the tenant's time zone
(``daily``: its local date, ``monthly``: year and month, ``yearly``: the calendar
year). The counter of period P is stored under ``<name>/<P>`` (in MongoDB the
document ``<tenant>/<name>/<P>``), so the first number of a new period is ``start``
again and the old period's counter is left exactly as it was.

Requests racing across midnight:

- A request reads the clock once, after loading the definition and before it
  writes; that instant decides both its period and the dates in its formatted
  value, so ``INV-{yyyy}-{n}`` with a yearly reset can never pair a number with
  the other year.
- A request that read 23:59:59.999 is numbered in the old period even if its write
  lands after midnight, and may therefore finish after the new period's first
  number. Numbers of different periods still never collide: they are different
  counters.
- A batch (``count`` > 1) is never split: all of it belongs to one period.
- Several processes each use their own clock; with skew between hosts, for a moment
  around midnight one may still number in the old period while another has begun
  the new one. Again unique, but not ordered across the boundary; keep hosts on NTP.
- Administrative moves (``advance``, a PATCH of ``step``/``max``) act on the period
  current at the moment of the call.
"""

from __future__ import annotations

import re
from datetime import datetime
from enum import StrEnum
from zoneinfo import ZoneInfo

# The labels ``period_of`` writes: '' (never), YYYY (yearly), YYYY-MM, YYYY-MM-DD.
PERIOD_PATTERN = r"^(\d{4}(-(0[1-9]|1[0-2])(-(0[1-9]|[12]\d|3[01]))?)?)?$"
PERIOD_HELP = "a period is YYYY, YYYY-MM or YYYY-MM-DD (e.g. 2026, 2026-03, 2026-03-31)"
_PERIOD = re.compile(PERIOD_PATTERN)


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


def check_period(label: str | None) -> str | None:
    """The label if it is one ``period_of`` can write (``None`` and '' too); else ``ValueError``."""
    if label is not None and not _PERIOD.fullmatch(label):
        raise ValueError(PERIOD_HELP)
    return label


def counter_key(name: str, period: str) -> str:
    return f"{name}/{period}" if period else name
