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

import grpc  # type: ignore[import-untyped]
from google.api_core import exceptions as gexc
from google.cloud.bigtable_admin_v2 import BigtableTableAdminAsyncClient, types
from google.cloud.bigtable_admin_v2.services.bigtable_table_admin.transports import (
    BigtableTableAdminGrpcAsyncIOTransport,
)

from storage.bigtable_rows import COUNTS, RECORDS, BigtableURL, emulator_host

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
