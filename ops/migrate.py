"""``tally migrate``: tables and indexes, data migrations and the instance's database user.

The Helm pre-install/pre-upgrade hook runs it in the instance's own namespace with the
instance's own credentials (readWrite on its database is enough for indexes and data).
The platform runs it with ``--tenant SLUG`` (or ``--pooled``) and the store's admin
credentials, which no tenant pod holds, to create or update that instance's user.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from ops.migrations import MIGRATIONS, Migration
from storage import Store
from storage.admin import StoreAdmin

POOLED_USER = "tally_pooled"  # an underscore: no tenant user (tally-<slug>) can be named so
_SLUG = re.compile(r"^[a-z][a-z0-9-]{0,30}[a-z0-9]$")


def tenant_user(slug: str) -> str:
    """The database user of a tenant's siloed instance."""
    return f"tally-{slug}"


def tenant_database(slug: str) -> str:
    """The database of a tenant's siloed instance (as terraform/modules/tenant-instance)."""
    return "tally_" + slug.replace("-", "_")


def valid_slug(slug: str) -> bool:
    return bool(_SLUG.match(slug))


@dataclass
class MigrateResult:
    backend: str
    database: str
    applied: list[str] = field(default_factory=list)  # data migrations this run applied
    migrations: list[str] = field(default_factory=list)  # every one known, in order
    indexes: dict[str, list[str]] = field(default_factory=dict)
    user: dict[str, Any] | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "backend": self.backend,
            "database": self.database,
            "applied": self.applied,
            "migrations": self.migrations,
            "indexes": self.indexes,
            "user": self.user,
        }


async def ensure_user(admin: StoreAdmin, user: str, password: str, database: str) -> dict[str, Any]:
    """Create or update ``user`` with readWrite on ``database`` alone."""
    outcome = await admin.ensure_user(user, password, database)
    return {"name": user, "database": database, "roles": ["readWrite"], "outcome": outcome}


async def migrate(
    store: Store,
    admin: StoreAdmin,
    *,
    database: str,
    migrations: Sequence[Migration] = MIGRATIONS,
    now: datetime | None = None,
) -> MigrateResult:
    """Indexes, then each data migration not yet in the ledger; safe to run concurrently."""
    await store.start()
    result = MigrateResult(backend=admin.kind, database=database)
    done = await admin.applied_migrations()
    for migration in migrations:
        result.migrations.append(migration.id)
        if migration.id in done:
            continue
        await migration.apply(store)
        await admin.record_migration(migration.id, now or datetime.now(UTC))
        result.applied.append(migration.id)
    result.indexes = await admin.indexes()
    return result
