"""Bigtable building blocks: row keys, cell encodings, filters, the URL, table creation.

Kept apart from ``storage.bigtable`` (the ``Store`` itself) so the schema lives in one
place; the module docstring of ``storage.bigtable`` documents it.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from google.cloud.bigtable.data import DeleteRangeFromColumn, SetCell
from google.cloud.bigtable.data import row_filters as rf

from core.settings import bigtable_url_parts
from storage.base import Counter

TABLE = "tally"
RECORDS = "d"  # documents: definitions, tenants, clients, audit entries
COUNTS = "c"  # int64 cells moved by ReadModifyWriteRow, and the counters' shape
REGISTRY = "!tenant#"  # '!' sorts before every slug character: one range of all tenants
PLATFORM_PREFIX = "!platform#"  # the tenant key "" (platform-admin clients)


@dataclass(frozen=True, slots=True)
class BigtableURL:
    project: str
    instance: str
    app_profile: str | None = None
    table_prefix: str = ""

    @property
    def table(self) -> str:
        return f"{self.table_prefix}{TABLE}"


_ID = re.compile(r"^[a-z][a-z0-9-]{1,62}[a-z0-9]$")


def parse_url(url: str) -> BigtableURL:
    """``bigtable://PROJECT/INSTANCE[?app_profile=...&table_prefix=...]``."""
    # The parsing lives with the settings, whose validator refuses such a URL at start-up.
    return BigtableURL(*bigtable_url_parts(url))


def emulator_host() -> str | None:
    return os.environ.get("BIGTABLE_EMULATOR_HOST") or None


# -- row keys ------------------------------------------------------------------------
def prefix(tenant: str) -> str:
    return f"{tenant}#" if tenant else PLATFORM_PREFIX


def key(tenant: str, kind: str, name: str = "") -> bytes:
    return f"{prefix(tenant)}{kind}#{name}".encode()


def after(start: bytes) -> bytes:
    """The smallest key above every key that starts with ``start``."""
    return start[:-1] + bytes([start[-1] + 1])


# -- cell encodings ------------------------------------------------------------------
def i64(value: int) -> bytes:
    """8-byte big-endian, as ReadModifyWriteRow increments (two's complement)."""
    return (value % 2**64).to_bytes(8, "big")


def u64(raw: bytes) -> int:
    # Unsigned on purpose: a counter pushed past 2^63-1 by an increment that Tally then
    # refuses wraps to a negative int64; read unsigned, it is still the true sum.
    return int.from_bytes(raw, "big", signed=False) if raw else 0


Shape = tuple[int, int, int, str]  # base, step, cap, incarnation


def shape_of(counter: Counter) -> Shape:
    return (counter.base, counter.step, counter.cap, counter.incarnation)


def shape_bytes(counter: Counter) -> bytes:
    return f"{counter.base},{counter.step},{counter.cap},{counter.incarnation}".encode()


def parse_shape(raw: bytes) -> Shape | None:
    if not raw:
        return None
    base, step, cap, incarnation = raw.decode().split(",", 3)
    return int(base), int(step), int(cap), incarnation


def doc(value: dict[str, Any]) -> bytes:
    return json.dumps(value, separators=(",", ":"), sort_keys=True).encode()


def undoc(raw: bytes) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(raw)
    return loaded


def when(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def unwhen(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def replace_cell(family: str, qualifier: bytes, value: bytes) -> list[Any]:
    """Mutations that leave ``value`` the column's only version.

    Deleting first makes the new cell the newest whatever the clocks: a SetCell is
    stamped by this client, a ReadModifyWriteRow by the server.
    """
    return [DeleteRangeFromColumn(family, qualifier), SetCell(family, qualifier, value)]


# -- filters -------------------------------------------------------------------------
def column(family: str, qualifier: bytes) -> rf.RowFilter:
    # Only the newest version: cells a newer write replaced stay readable until garbage
    # collection removes them, and a predicate that saw them would match stale values.
    return rf.RowFilterChain(
        [rf.ColumnRangeFilter(family, qualifier, qualifier), rf.CellsColumnLimitFilter(1)]
    )


def equals(family: str, qualifier: bytes, value: bytes) -> rf.RowFilter:
    return rf.RowFilterChain([column(family, qualifier), rf.LiteralValueFilter(value)])


def at_least(family: str, qualifier: bytes, value: bytes) -> rf.RowFilter:
    return rf.RowFilterChain([column(family, qualifier), rf.ValueRangeFilter(start_value=value)])


def non_empty(family: str, qualifier: bytes) -> rf.RowFilter:
    return rf.RowFilterChain([column(family, qualifier), rf.ValueRegexFilter(b"(?s).+")])


def all_of(*conditions: rf.RowFilter) -> rf.RowFilter:
    """A predicate that matches only when every condition matches (a row's AND)."""
    head, *rest = conditions
    if not rest:
        return head
    return rf.ConditionalRowFilter(head, true_filter=all_of(*rest))


LATEST = rf.CellsColumnLimitFilter(1)
KEYS_ONLY = rf.RowFilterChain([rf.CellsRowLimitFilter(1), rf.StripValueTransformerFilter(True)])


def cells(row: Any) -> dict[bytes, bytes]:
    """Qualifier -> newest value (rows read with ``LATEST`` hold one cell per column)."""
    out: dict[bytes, bytes] = {}
    for cell in row.cells if row is not None else []:
        out.setdefault(cell.qualifier, cell.value)
    return out
