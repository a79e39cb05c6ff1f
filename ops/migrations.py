"""Data migrations, applied once each, in order, by ``tally migrate``.

Tables and indexes are not listed here: ``Store.start`` creates them idempotently on
every backend, and migrate calls it first. A data migration is for what a new index
or a new code path cannot do alone (backfilling a field, reshaping documents).

Rules for adding one (append, never reorder or edit a released one):

* ``id`` is ``NNNN-short-name`` and never changes: the ledger records it.
* ``apply`` works through the ``Store`` interface and is **idempotent**: two
  ``tally migrate`` runs may start at once (the Helm hook of two upgrades, or CD and an
  operator) and both may apply it before either records it.
* It must be correct for code one release older still running beside it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from storage import Store


@dataclass(frozen=True, slots=True)
class Migration:
    id: str
    description: str
    apply: Callable[[Store], Awaitable[None]]


# None yet: the schema so far is created entirely by Store.start.
MIGRATIONS: tuple[Migration, ...] = ()
