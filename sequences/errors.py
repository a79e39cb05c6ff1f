"""Sequence errors.

TallyError
├── NotFound (404)
│   └── SequenceNotFound         unknown name, or another tenant's
├── Conflict (409)
│   ├── SequenceExists           create with a taken name
│   ├── SequenceExhausted        the next number(s) would pass ``max``
│   ├── CounterMoved             advance/PATCH would move the counter backwards (or
│   │                            skip numbers of a ledger sequence)
│   ├── NotALedger               reservations/ledger/reference on a sequence without one
│   └── LedgerKept               deleting a ledger sequence (its numbers stay on record)
└── Unprocessable (422)
    └── InvalidSequence          settings that do not hold together
"""

from __future__ import annotations

from core.errors import Conflict, NotFound, Unprocessable


class SequenceNotFound(NotFound):
    type = "sequence-not-found"
    title = "Sequence not found"

    def __init__(self, name: str) -> None:
        super().__init__(f"No sequence named '{name}'.")


class SequenceExists(Conflict):
    type = "sequence-exists"
    title = "Sequence already exists"

    def __init__(self, name: str) -> None:
        super().__init__(f"A sequence named '{name}' already exists.")


class SequenceExhausted(Conflict):
    type = "sequence-exhausted"
    title = "Sequence exhausted"


class CounterMoved(Conflict):
    type = "counter-conflict"
    title = "Counter cannot move there"


class InvalidSequence(Unprocessable):
    type = "validation-error"
    title = "Invalid sequence settings"


class NotALedger(Conflict):
    type = "not-a-ledger"
    title = "Not a ledger sequence"

    def __init__(self, name: str) -> None:
        super().__init__(
            f"Sequence '{name}' keeps no ledger (create it with \"ledger\": true for"
            " reservations, references and the gap report)."
        )


class LedgerKept(Conflict):
    type = "ledger-kept"
    title = "Ledger sequences are kept"

    def __init__(self, name: str) -> None:
        super().__init__(
            f"Sequence '{name}' keeps a ledger: its numbers are legal records, so it cannot"
            " be deleted (void unused reservations instead)."
        )
