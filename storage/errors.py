"""Storage errors.

TallyError
└── Unavailable (503)
    └── StoreUnavailable      the database cannot be reached or timed out
AlreadyExists                 a record with that key exists (services map it to 409)
"""

from __future__ import annotations

from core.errors import Unavailable


class StoreUnavailable(Unavailable):
    type = "store-unavailable"
    title = "Store unavailable"


class AlreadyExists(Exception):
    """A create collided with an existing key."""
