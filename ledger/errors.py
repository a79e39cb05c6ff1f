"""Ledger errors.

TallyError
├── NotFound (404)
│   └── ReservationNotFound      unknown id (or another tenant's, or another sequence's)
└── Conflict (409)
    └── ReservationClosed        commit/void of a reservation already voided, expired or
                                 committed (a commit again is a 200, not this)
"""

from __future__ import annotations

from core.errors import Conflict, NotFound


class ReservationNotFound(NotFound):
    type = "reservation-not-found"
    title = "Reservation not found"

    def __init__(self, reservation: str) -> None:
        super().__init__(f"No reservation '{reservation}' on this sequence.")


class ReservationClosed(Conflict):
    type = "reservation-closed"
    title = "Reservation closed"

    def __init__(self, reservation: str, state: str) -> None:
        super().__init__(
            f"Reservation '{reservation}' is {state}; its number stays on record as such.",
            extra={"state": state},
        )
