"""Create the Bigtable table and its column families when they are missing.

Runs at start-up (and from ``tally migrate``) through the table admin API. Several
processes may start at once: "already exists" is success. Without admin permission
(production service accounts usually have only ``roles/bigtable.user``) the check is
skipped with a warning, and the table must have been created beforehand (see
docs/bigtable.md).
"""

from __future__ import annotations

import contextlib
import logging
from datetime import datetime
from typing import Any

import grpc  # type: ignore[import-untyped]
from google.api_core import exceptions as gexc
from google.cloud.bigtable.data import ReadRowsQuery, RowRange, SetCell
from google.cloud.bigtable_admin_v2 import BigtableTableAdminAsyncClient, types
from google.cloud.bigtable_admin_v2.services.bigtable_table_admin.transports import (
    BigtableTableAdminGrpcAsyncIOTransport,
)

from storage.bigtable_rows import COUNTS, LATEST, RECORDS, BigtableURL, after, emulator_host

_LEDGER = b"!migration#"

log = logging.getLogger("tally.storage.bigtable")

FAMILIES = (RECORDS, COUNTS)


def _family() -> types.ColumnFamily:
    # One version: every write deletes the column before setting it, and reads filter
    # to the newest cell, so older versions are only garbage waiting for collection.
    return types.ColumnFamily(gc_rule=types.GcRule(max_num_versions=1))  # type: ignore[no-untyped-call]


def _admin() -> BigtableTableAdminAsyncClient:
    host = emulator_host()
    if host:
        channel = grpc.aio.insecure_channel(host)
        return BigtableTableAdminAsyncClient(
            transport=BigtableTableAdminGrpcAsyncIOTransport(channel=channel)
        )
    return BigtableTableAdminAsyncClient()


async def ensure_table(url: BigtableURL, *, deadline: float) -> None:
    """The table ``url.table`` with families ``d`` and ``c`` exists when this returns."""
    admin = _admin()
    parent = f"projects/{url.project}/instances/{url.instance}"
    name = f"{parent}/tables/{url.table}"
    try:
        try:
            table = await admin.get_table(name=name, timeout=deadline)
        except gexc.NotFound:
            wanted = types.Table(column_families={f: _family() for f in FAMILIES})
            try:
                await admin.create_table(
                    parent=parent, table_id=url.table, table=wanted, timeout=deadline
                )
                log.info("created Bigtable table %s", url.table)
                return
            except gexc.AlreadyExists:
                table = await admin.get_table(name=name, timeout=deadline)
        missing = [f for f in FAMILIES if f not in table.column_families]
        if missing:
            mods = [
                types.ModifyColumnFamiliesRequest.Modification(id=f, create=_family())
                for f in missing
            ]
            with contextlib.suppress(gexc.AlreadyExists):
                await admin.modify_column_families(name=name, modifications=mods, timeout=deadline)
            log.info("added column families %s to %s", ",".join(missing), url.table)
    except gexc.PermissionDenied:
        log.warning(
            "no Bigtable admin permission: not checking table %s (create it beforehand)",
            url.table,
        )
    finally:
        await admin.transport.close()  # type: ignore[no-untyped-call]


class BigtableAdmin:
    """``tally migrate`` on Bigtable (``storage.admin.StoreAdmin``): the migration ledger
    in rows ``!migration#<id>``, the table's column families as its "indexes". Access
    is IAM's (``roles/bigtable.user`` for the workload), so there are no users here."""

    kind = "bigtable"

    def __init__(self, url: BigtableURL, *, timeout: float = 5.0) -> None:
        from storage.bigtable import BigtableStore  # the store imports this module

        self.url = url
        self._store = BigtableStore(url, timeout=timeout)
        self._started = False

    async def _table(self) -> Any:
        if not self._started:
            await self._store.start()
            self._started = True
        return self._store.table

    async def applied_migrations(self) -> set[str]:
        table = await self._table()
        query = ReadRowsQuery(row_ranges=RowRange(_LEDGER, after(_LEDGER)), row_filter=LATEST)
        rows = await self._store._call(table.read_rows(query))
        return {r.row_key[len(_LEDGER) :].decode() for r in rows}

    async def record_migration(self, migration_id: str, at: datetime) -> None:
        table = await self._table()
        cell = SetCell(RECORDS, b"at", at.isoformat().encode())
        # Insert-if-absent: a concurrent run's record wins and is kept.
        await self._store._call(
            table.check_and_mutate_row(
                _LEDGER + migration_id.encode(), None, false_case_mutations=[cell]
            )
        )

    async def indexes(self) -> dict[str, list[str]]:
        await self._table()
        return {self.url.table: sorted(FAMILIES)}

    async def ensure_user(self, user: str, password: str, database: str) -> Any:
        from storage.admin import UsersNotSupported

        raise UsersNotSupported(
            "Bigtable has no database users: grant the instance's service account"
            " roles/bigtable.user on the instance (see docs/bigtable.md)"
        )

    async def get_user(self, user: str) -> Any:
        from storage.admin import UsersNotSupported

        raise UsersNotSupported("Bigtable has no database users (access is IAM's)")

    async def close(self) -> None:
        await self._store.close()
