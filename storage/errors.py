"""Storage errors.

TallyError
└── Unavailable (503)
    └── StoreUnavailable      the database cannot be reached or timed out
        └── UsagePartlyWritten    add_usage stopped after its first ``written`` rows
AlreadyExists                 a record with that key exists (services map it to 409)
InvalidCursor                 a paging cursor this backend never issued (services map it to 422)
UsersNotSupported             the backend has no database users (``tally migrate``)
"""

from __future__ import annotations

from core.errors import Unavailable


class StoreUnavailable(Unavailable):
    type = "store-unavailable"
    title = "Store unavailable"


class UsagePartlyWritten(StoreUnavailable):
    """``add_usage`` on a store without multi-document transactions failed midway."""

    def __init__(self, written: int, detail: str | None = None) -> None:
        super().__init__(detail)
        self.written = written


class AlreadyExists(Exception):
    """A create collided with an existing key."""


class InvalidCursor(ValueError):
    """A paging cursor that is not one of this backend's ids."""


class UsersNotSupported(Exception):
    """The backend has no database users (SQLite: the file's permissions; Bigtable: IAM)."""
