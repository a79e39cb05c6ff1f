"""Sequence errors.

TallyError
├── NotFound (404)
│   └── SequenceNotFound         unknown name, or another tenant's
├── Conflict (409)
│   ├── SequenceExists           create with a taken name
│   ├── SequenceExhausted        the next number(s) would pass ``max``
│   └── CounterMoved             advance/PATCH would move the counter backwards
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
